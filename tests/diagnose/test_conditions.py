"""Rule clauses are three-valued: a clause on an unknown fact leaves the rule undecided."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor.diagnose.conditions import Outcome, evaluate_all, evaluate_condition, specs_intersect
from qatdoctor.knowledge.load import _condition
from qatdoctor.records import Fact, Facts, FactState

FACTS = Facts(
    {
        "aimet-torch": Fact.known("1.32.2"),
        "torch": Fact.known("2.2.2+cu121"),
        "numpy": Fact.known("<2"),
        "aimet-api": Fact.known("v1"),
        "lib:liblapacke.so.3": Fact.absent("not found"),
        "mmengine": Fact.absent("not installed"),
        "driver": Fact.unknown("nvidia-smi timed out"),
    }
)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param({"aimet-torch": ">=1.26,<2.0", "aimet-api": "v1"}, True, id="all-true"),
        pytest.param({"aimet-torch": ">=2.0"}, False, id="version-out-of-range"),
        pytest.param({"aimet-api": "v2"}, False, id="choice-mismatch"),
        pytest.param({"aimet-api": "v1|v2"}, True, id="choice-alternatives"),
        pytest.param({"lib:liblapacke.so.3": "absent"}, True, id="library-absent"),
        pytest.param({"lib:liblapacke.so.3": "present"}, False, id="library-not-present"),
        pytest.param({"mmengine": "present"}, False, id="package-absent"),
        pytest.param({"mmengine": ">=0.10"}, False, id="range-on-absent-package"),
        pytest.param({"driver": ">=525"}, None, id="unknown-fact-undecided"),
        pytest.param({"driver": ">=525", "torch": ">=3"}, False, id="false-beats-unknown"),
        pytest.param({"numpy": ">=2"}, False, id="planned-range-disjoint"),
        pytest.param({"numpy": "<1.24"}, True, id="planned-range-overlaps"),
        pytest.param({"glibc": ">=2.34"}, None, id="never-collected"),
    ],
)
def test_evaluate_all(when: dict[str, str], expected: bool | None) -> None:
    conditions = [_condition(fact, raw) for fact, raw in when.items()]
    assert evaluate_all(conditions, FACTS).value is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param(">=2.1,<2.3", ">=2.3", False, id="adjacent-ranges"),
        pytest.param(">=2.1,<2.3", ">=2.2", True, id="overlap"),
        pytest.param("==2.2.*", "!=2.2.*", False, id="wildcard-complement"),
        pytest.param("<1.24", "<2", True, id="nested"),
        pytest.param(">=2.3,<2.2", "", False, id="unsatisfiable-alone"),
        pytest.param("==1.32.1.post1", ">1.32.1", False, id="exclusive-excludes-post-release"),
        pytest.param("==1.32.1.post1", ">=1.32.1", True, id="inclusive-includes-post-release"),
    ],
)
def test_specs_intersect(a: str, b: str, expected: bool) -> None:
    assert specs_intersect(SpecifierSet(a), SpecifierSet(b)) is expected


# One clause: its result and the line of evidence (or the reason it is undecided) that findings carry.
CLAUSE_FACTS = FACTS.with_values(
    {
        "lib:libcublas.so.12": Fact.known("present"),
        "onnx": Fact.known("absent"),  # a package recorded as the word "absent" is not present
        "glibc": Fact.known("weird"),
        "cuda": Fact.known("12.1"),
        "python": Fact.known("3.10.13"),
    }
)


@pytest.mark.parametrize(
    ("fact", "raw", "result", "note"),
    [
        ("aimet-torch", ">=1.26,<2.0", True, "aimet-torch 1.32.2 in >=1.26,<2.0"),
        ("aimet-torch", ">=2.0", False, "aimet-torch 1.32.2 in >=2.0"),
        ("torch", "==2.2.*", True, "torch 2.2.2+cu121 in ==2.2.*"),
        ("cuda", "!=12.*", False, "cuda 12.1 in !=12.*"),
        ("python", "==3.10.*", True, "python 3.10.13 in ==3.10.*"),
        ("aimet-api", "v2", False, "aimet-api = v1"),
        ("aimet-api", "v1|v2", True, "aimet-api = v1"),
        ("lib:liblapacke.so.3", "absent", True, "lib:liblapacke.so.3 is absent"),
        ("lib:liblapacke.so.3", "present", False, "lib:liblapacke.so.3 is absent"),
        ("lib:libcublas.so.12", "present", True, "lib:libcublas.so.12 is present"),
        ("lib:libcublas.so.12", "absent", False, "lib:libcublas.so.12 is present"),
        ("onnx", "present", False, "onnx is absent"),
        ("onnx", "absent", True, "onnx is absent"),
        ("mmengine", ">=0.10", False, "mmengine is absent"),
        ("mmengine", "==0.10", False, "mmengine is absent"),
        ("mmengine", "absent", True, "mmengine is absent"),
        ("driver", ">=525", None, "driver unknown: nvidia-smi timed out"),
        ("driver", "present", None, "driver unknown: nvidia-smi timed out"),
        ("glibc", ">=2.34", None, "glibc 'weird' is not a version qatdoctor can compare"),
        ("numpy", ">=2", False, "numpy <2 overlaps >=2"),
        ("numpy", "<1.24", True, "numpy <2 overlaps <1.24"),
        ("never-collected", ">=1", None, "never-collected unknown: not collected"),
    ],
)
def test_evaluate_condition(fact: str, raw: str, result: bool | None, note: str) -> None:
    assert evaluate_condition(_condition(fact, raw), CLAUSE_FACTS) == (result, note)


@pytest.mark.parametrize(
    "value", [">=2", "<2", "==1.26.4", "!=2.0.0", "~=1.26", ">2,<3"]
)
def test_a_planned_range_is_compared_as_a_range(value: str) -> None:
    facts = Facts({"numpy": Fact.known(value)})
    result, note = evaluate_condition(_condition("numpy", ">=0"), facts)
    assert result is True and note == f"numpy {value} overlaps >=0"


def test_a_value_that_is_neither_a_range_nor_a_version_is_undecided() -> None:
    facts = Facts({"glibc": Fact.known("X2.35")})
    assert evaluate_condition(_condition("glibc", ">=2.34"), facts) == (
        None,
        "glibc 'X2.35' is not a version qatdoctor can compare",
    )


def test_a_known_fact_with_no_value_is_absent() -> None:
    facts = Facts({"torch": Fact(FactState.KNOWN, None)})
    assert evaluate_condition(_condition("torch", ">=1"), facts) == (False, "torch is absent")


def test_evaluate_all_collects_what_matched_and_what_is_missing() -> None:
    conditions = [_condition("aimet-torch", ">=1.26"), _condition("driver", ">=525"), _condition("aimet-api", "v1")]
    outcome = evaluate_all(conditions, FACTS)
    assert outcome == Outcome(None, ("aimet-torch 1.32.2 in >=1.26", "aimet-api = v1"),
                              ("driver unknown: nvidia-smi timed out",))  # fmt: skip
    decided = evaluate_all(conditions[::2], FACTS)
    assert decided == Outcome(True, ("aimet-torch 1.32.2 in >=1.26", "aimet-api = v1"), ())
    assert evaluate_all([_condition("aimet-api", "v2"), *conditions], FACTS) == Outcome(False)
    assert evaluate_all([], FACTS) == Outcome(True)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param("==2.2.*", ">=2.0", True, id="wildcard-inside-a-range"),
        pytest.param("==2.2.*", "", True, id="wildcard-alone"),
        pytest.param("==2.2.*", "<2.2", False, id="wildcard-below"),
        pytest.param("==2.2.*", ">=2.3", False, id="wildcard-above"),
        pytest.param(">2.2", "<2.3", True, id="open-interval-between-patches"),
        pytest.param(">2.2", "<=2.2.0", False, id="touching-exclusive"),
        pytest.param(">=2.2.0", "<=2.2.0", True, id="single-point"),
        pytest.param("<2.0", ">1.99", True, id="below-a-major"),
        pytest.param("<1", ">0", True, id="below-one"),
        pytest.param(">=0.9,<1", "", True, id="zero-major"),
        pytest.param("<2.1", ">2.0.5", True, id="between-a-patch-and-the-next-minor"),
        pytest.param("!=2.0", "==2.0", False, id="complement"),
        pytest.param("==2.0.*,!=2.0.1", ">=2.0.1,<2.0.2", True, id="a-hole-leaves-the-patches-after-it"),
        pytest.param(">=99999", "", True, id="at-the-top"),
        pytest.param(">99999", "", True, id="beyond-the-top"),
        pytest.param("<0", "", False, id="below-zero"),
        pytest.param("==1.0rc1", ">=1.0rc1", True, id="prerelease-counts"),
        pytest.param("==1.0rc1", ">=0.9", True, id="prerelease-counts-where-only-one-side-names-it"),
        pytest.param("!=2.2.3,==2.2.2.1.*", "!=2.2.2.1", True, id="wildcard-past-an-excluded-point"),
        pytest.param("~=2.2.2.1,!=2.2.2.1.*", "!=2.2.0", True, id="compatible-release-past-an-excluded-prefix"),
        pytest.param("!=1.*,<3.0.0", ">1.0.1", True, id="the-major-after-an-excluded-one"),
        pytest.param("<2.2.2.1", ">2.2.2,>2.1.1", True, id="between-a-release-and-its-first-sub-release"),
        pytest.param("<2.2.3", ">=2,>2.2", True, id="below-a-patch-above-a-minor"),
        pytest.param("===weird", "", False, id="arbitrary-equality-has-no-version"),
        pytest.param("", "", True, id="everything"),
    ],
)
def test_specs_intersect_boundaries(a: str, b: str, expected: bool) -> None:
    assert specs_intersect(SpecifierSet(a), SpecifierSet(b)) is expected
    assert specs_intersect(SpecifierSet(b), SpecifierSet(a)) is expected
