"""The matrix's probe vocabulary ([[probe_term]]): the data may only name its words (that the script implements
them is tests/environment/test_probe_protocol.py: the host sends them in the request)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from qatdoctor.knowledge.load import MatrixError, build, load, read_document

SCRIPT = Path(__file__).resolve().parents[2] / "qatdoctor" / "environment" / "_probe.py"


def _constant(name: str) -> object:
    tree = ast.parse(SCRIPT.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == name for t in n.targets))
    return ast.literal_eval(node.value)


def test_every_check_the_script_declares_is_one_it_reports() -> None:
    source = SCRIPT.read_text()
    checks = _constant("CHECKS")
    assert isinstance(checks, tuple)
    for check in checks:  # declared once, reported at least once more
        assert len(re.findall(rf'"{check}"', source)) >= 2, check


def test_the_stand_ins_stages_are_the_users_without_the_prepared_fold() -> None:
    user_stages = _constant("USER_STAGES")
    assert isinstance(user_stages, tuple)
    assert _constant("STAGES") == tuple(s for s in user_stages if s != "fold_prepared")


def _without(kind: str, word: str) -> dict[str, object]:
    doc, _ = read_document(Path(load().path))
    doc["probe_term"] = [t for t in doc["probe_term"] if (t["kind"], t["id"]) != (kind, word)]
    return doc


@pytest.mark.parametrize(
    ("kind", "word", "where"),
    [
        pytest.param("model", "bn_subclass", "construct 'bn-subclass' → stand_in", id="stand-in"),
        pytest.param("detector", "module-subclass", "construct 'bn-subclass' → detect[0] → kind", id="detector"),
    ],
)
def test_a_construct_may_only_name_words_of_the_vocabulary(kind: str, word: str, where: str) -> None:
    with pytest.raises(MatrixError) as raised:
        build(_without(kind, word))
    assert where in str(raised.value), raised.value
    assert f"unknown {'probe model' if kind == 'model' else 'detector'} {word!r}" in str(raised.value)


def test_stage_order_comes_from_the_matrix() -> None:
    matrix = load()
    crash = matrix.rule("bn-subclass-qat-crash-v1")
    assert crash is not None
    stages = matrix.probe_vocabulary("stage")
    assert matrix.first_stage(crash) == min(stages.index(p.stage) for p in crash.probes)
    assert matrix.first_stage(None) == len(stages)
    assert matrix.first_stage(crash._replace(probes=())) == len(stages)
