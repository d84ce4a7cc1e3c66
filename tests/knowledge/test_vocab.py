"""The probe script implements every construct detector the matrix uses."""

from __future__ import annotations

import ast
from pathlib import Path

from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.vocab import DETECTOR_KINDS

SCRIPT = Path(__file__).resolve().parents[2] / "qatdoctor" / "target" / "_probe.py"


def _constant(name: str) -> object:
    tree = ast.parse(SCRIPT.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == name for t in n.targets))
    return ast.literal_eval(node.value)


def test_the_script_implements_every_detector_the_matrix_may_use() -> None:
    assert _constant("DETECTOR_KINDS") == DETECTOR_KINDS
    used = {d["kind"] for c in load().constructs for d in c.detect}
    assert used <= set(DETECTOR_KINDS)

