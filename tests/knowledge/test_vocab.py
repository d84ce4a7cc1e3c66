"""The probe script and the matrix vocabulary name the same models, stages and checks."""

from __future__ import annotations

import ast
from pathlib import Path

from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.vocab import DETECTOR_KINDS, PROBE_CHECKS, PROBE_MODELS, PROBE_STAGES

SCRIPT = Path(__file__).resolve().parents[2] / "qatdoctor" / "target" / "_probe.py"


def _constant(name: str) -> object:
    tree = ast.parse(SCRIPT.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == name for t in n.targets))
    return ast.literal_eval(node.value)


def test_models_and_stages_match() -> None:
    models = _constant("MODELS")
    assert isinstance(models, tuple)
    assert tuple(m[0] for m in models) == PROBE_MODELS
    stages = ("import", *_constant("STAGES"))  # type: ignore[misc]
    user = _constant("USER_STAGES")  # the user's model (--model) also folds the prepared model
    assert isinstance(user, tuple)
    assert (*stages, *(s for s in user if s not in stages)) == PROBE_STAGES


def test_the_script_implements_every_detector_the_matrix_may_use() -> None:
    assert _constant("DETECTOR_KINDS") == DETECTOR_KINDS
    used = {d["kind"] for c in load().constructs for d in c.detect}
    assert used <= set(DETECTOR_KINDS)


def test_every_check_is_emitted_by_the_script() -> None:
    source = SCRIPT.read_text()
    for check in PROBE_CHECKS:
        assert f'"{check}"' in source, check
