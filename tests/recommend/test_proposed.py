"""A set that needs a proposed entry (`proposed = true`, or a torch release in `proposed_releases`) is never
known-good and never recommended; the same matrix without the flags recommends it, so the flag is what decides.

The small matrix: aimet-torch 2.10.0 (reviewed) and 2.11.0; torch 2.4.1, 2.5.1 and 2.5.2, 2.6.0. A known-good rule
covers every 2.x release; one known-bad rule breaks 2.10.0 with torch 2.4. Proposed: aimet-torch 2.11.0, torch
2.5.2 (a release added to a reviewed series) and the torch 2.6 series.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.diagnose.evaluate import could_be_good, evaluate
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.recommend.ranking import best_known_good, recommend, set_with
from qatdoctor.records import Fact, Facts, Status, Verdict
from tests.matrixkit import aimet, bad, good, newest_entry, small, torch, write_copied_release

RULES = [good("good-2.x", {"aimet-torch": ">=2.10"}), bad("bad-2.10-torch-2.4", {"aimet-torch": "==2.10.0",
                                                                                   "torch": "==2.4.*"})]  # fmt: skip
PROPOSED = ("aimet-torch==2.11.0", "torch==2.5.2", "torch==2.6.0")


def matrix(flagged: bool) -> Matrix:
    flag: dict[str, Any] = {"proposed": True} if flagged else {}
    return small(
        [aimet("2.10.0"), aimet("2.11.0", built_with_torch="2.5.1", **flag)],
        [torch("2.4", 1), torch("2.5", 1, 2, **({"proposed_releases": ["2.5.2"]} if flagged else {})),
         torch("2.6", 0, **flag)],
        RULES,
    )  # fmt: skip


def facts(**values: str) -> Facts:
    return Facts({k.replace("_", "-"): Fact.known(v) for k, v in values.items()})


def pins(recommendations: Any) -> list[list[str]]:
    return [[str(p) for p in r.pins][:2] for r in recommendations if r.pins]


EVALUATIONS = [
    pytest.param({"aimet_torch": "2.10.0", "torch": "2.5.1"}, False, id="reviewed-set"),
    pytest.param({"aimet_torch": "2.11.0", "torch": "2.5.1"}, True, id="proposed-aimet-release"),
    pytest.param({"aimet_torch": "2.10.0", "torch": "2.5.2"}, True, id="proposed-torch-release"),
    pytest.param({"aimet_torch": "2.10.0", "torch": "2.6.0"}, True, id="proposed-torch-series"),
]


@pytest.mark.parametrize(("values", "needs_proposed"), EVALUATIONS)
def test_a_set_that_needs_a_proposed_entry_is_never_known_good(values: dict[str, str], needs_proposed: bool) -> None:
    environment = facts(python="3.10.12", **values)
    unflagged = evaluate(environment, matrix(flagged=False))
    assert unflagged.lands_on and could_be_good(environment, matrix(flagged=False))  # known-good without the flag
    flagged = evaluate(environment, matrix(flagged=True))
    findings = {f.id: f for f in flagged.findings}
    assert bool(flagged.lands_on) is not needs_proposed
    assert could_be_good(environment, matrix(flagged=True)) is not needs_proposed
    assert ("coverage.proposed" in findings) is needs_proposed
    if needs_proposed:
        assert findings["coverage.proposed"].status is Status.UNKNOWN and flagged.verdict is Verdict.UNKNOWN
        assert "good-2.x" not in findings and "coverage.untested-combination" not in findings


BROKEN = facts(aimet_torch="2.10.0", torch="2.4.1", python="3.10.12")


def test_no_move_lands_on_a_proposed_entry() -> None:
    unflagged = pins(recommend(evaluate(BROKEN, matrix(flagged=False)), matrix(flagged=False)))
    assert unflagged == [["aimet-torch==2.10.0", "torch==2.5.2"], ["aimet-torch==2.11.0", "torch==2.4.1"],
                         ["aimet-torch==2.11.0", "torch==2.5.2"]]  # fmt: skip
    flagged = pins(recommend(evaluate(BROKEN, matrix(flagged=True)), matrix(flagged=True)))
    assert flagged == [["aimet-torch==2.10.0", "torch==2.5.1"]]


@pytest.mark.parametrize("flagged", [False, True], ids=["unflagged", "flagged"])
def test_the_set_to_pin_and_a_fix_made_whole_skip_proposed_entries(flagged: bool) -> None:
    m = matrix(flagged)
    fresh = best_known_good(facts(python="3.10.12"), m)
    fixed = set_with(evaluate(BROKEN, m), m, python="python", package="torch", spec=">=2.5")
    chosen = [*pins([fresh]), *pins([fixed])]
    assert bool(set(PROPOSED) & {p for pair in chosen for p in pair}) is not flagged, chosen
    assert chosen == ([["aimet-torch==2.10.0", "torch==2.5.1"]] * 2 if flagged else
                      [["aimet-torch==2.11.0", "torch==2.5.2"], ["aimet-torch==2.10.0", "torch==2.5.2"]])  # fmt: skip


@pytest.mark.parametrize("proposed", [True, False], ids=["proposed-copy", "unflagged-copy"])
def test_resolve_on_the_shipped_matrix_with_a_copied_release(tmp_path: Path, proposed: bool) -> None:
    """Issue 19's check: a copy of the newest reviewed [[aimet]] entry as the next release (2.43.0 today); a
    broken set's moves land on it only without the flag."""
    path = write_copied_release(tmp_path, proposed=proposed)
    copied = f"aimet-torch=={newest_entry(load(path))}"  # 2.43.0 on today's matrix
    args = ["resolve", "-a", "aimet-torch=2.0.0", "-a", "torch=2.14.1", "-a", "python=3.11", "--matrix", str(path)]
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    recommendations = json.loads(result.stdout)["recommendations"]
    landing = [r for r in recommendations if copied in r.get("constraints", [])]
    assert recommendations and bool(landing) is not proposed
