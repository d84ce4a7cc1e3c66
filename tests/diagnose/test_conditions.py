"""Rule clauses are three-valued: a clause on an unknown fact leaves the rule undecided."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor.diagnose.conditions import evaluate_all, specs_intersect
from qatdoctor.knowledge.load import _condition
from qatdoctor.model import Fact, Facts

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
