"""`[[model_family]]`: the shipped table, and what loading refuses (unknown constructs, rules, upper-case words)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qatdoctor.knowledge.load import MatrixError, load

ROOT = Path(__file__).resolve().parents[2]
FAMILY = """
[[model_family]]
id = "test-family"
title = "test"
words = [{word}]
sources = [{{ kind = "issue", ref = "https://github.com/qualcomm/aimet/issues/3152" }}]

[[model_family.brings]]
construct = "{construct}"
rules = [{rules}]
when = "always"
symptoms = [["error"]]
basis = "inferred"
evidence = "test"
"""


def test_the_shipped_families_name_real_constructs_and_cite_sources() -> None:
    matrix = load(None)
    ids = {f.id for f in matrix.model_families}
    assert {"rtmdet", "openmmlab", "timm-norm-act", "ultralytics-yolo"} <= ids
    constructs = {c.id for c in matrix.constructs}
    for family in matrix.model_families:
        assert family.sources and family.words
        assert all(b.construct in constructs and b.evidence and b.symptoms for b in family.brings)
    rtmdet = next(f for f in matrix.model_families if f.id == "rtmdet")
    assert {"rtm-det", "rtmdet"} <= set(rtmdet.words)
    assert rtmdet.brings[0].construct == "bn-subclass" and rtmdet.brings[0].basis == "measured"


@pytest.mark.parametrize(
    ("word", "construct", "rules", "expected"),
    [
        ('"rtm-x"', "no-such-construct", "", "unknown construct 'no-such-construct'"),
        ('"RTM-X"', "bn-subclass", "", "must be lower case"),
        ('"rtm-x"', "bn-subclass", '"silu-quantsim-valueerror-2.0.0"', "is no model rule of bn-subclass"),
    ],
)
def test_bad_families_are_refused(tmp_path: Path, word: str, construct: str, rules: str, expected: str) -> None:
    path = tmp_path / "compat_matrix.toml"
    text = (ROOT / "compat_matrix.toml").read_text(encoding="utf-8")
    path.write_text(text + FAMILY.format(word=word, construct=construct, rules=rules), encoding="utf-8")
    with pytest.raises(MatrixError, match=expected):
        load(path)
    path.write_text(text + FAMILY.format(word='"rtm-x"', construct="bn-subclass", rules=""), encoding="utf-8")
    assert any(f.id == "test-family" for f in load(path).model_families), "the valid variant loads"
