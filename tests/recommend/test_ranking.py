"""Ranking on small matrices: each row is a matrix written here, an environment, and the moves in order.

aimet-torch 2.10.0 works with torch 2.4, 2.5 and 2.6 except 2.5 (a known-bad error); the environment has torch
2.5.1, so keeping aimet-torch means moving torch one series down or up, at the same distance: the newer wins the
tie, unless it brings a failure for models (an error-level model rule). A warning-level model rule is no hazard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from qatdoctor.diagnose.evaluate import evaluate
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.recommend.ranking import best_known_good, recommend, set_with
from qatdoctor.records import Fact, Facts
from tests.matrixkit import aimet, bad, good, small, torch

SERIES = [torch("2.4", 1), torch("2.5", 1), torch("2.6", 1)]
BASE = [good("good-2.10", {"aimet-torch": "==2.10.0"}), bad("bad-2.10-torch-2.5", {"aimet-torch": "==2.10.0",
                                                                                     "torch": "==2.5.*"})]  # fmt: skip


def model_rule(rule_id: str, torch_spec: str, severity: str, aimet_spec: str = "==2.10.0") -> dict[str, Any]:
    """A model-scope known-bad rule (a caveat when the model is not seen) of this severity."""
    when = {"aimet-torch": aimet_spec, "torch": torch_spec}
    return bad(rule_id, when, severity=severity, scope="model", model_feature="bn-subclass")


def facts(**values: str) -> Facts:
    return Facts({k.replace("_", "-"): Fact.known(v) for k, v in values.items()})


def moves(matrix: Matrix, environment: Facts) -> list[str]:
    return [f"{r.kind}: {', '.join(f'{p.name}{p.spec}' for p in r.pins[:2])}"
            for r in recommend(evaluate(environment, matrix), matrix) if r.kind != "code"]  # fmt: skip


ON_2_5 = facts(aimet_torch="2.10.0", torch="2.5.1", python="3.10.12")
KEEP_AIMET = [
    pytest.param([], "torch==2.6.1", id="a-tie-goes-to-the-newer-torch"),
    pytest.param([model_rule("warn-2.6", "==2.6.*", "warning")], "torch==2.6.1", id="a-warning-is-no-hazard"),
    pytest.param([model_rule("err-2.6", "==2.6.*", "error")], "torch==2.4.1", id="an-error-for-models-is-a-hazard"),
    pytest.param(
        [model_rule("err-2.4", "==2.4.*", "error"), model_rule("warn-2.6", "==2.6.*", "warning")],
        "torch==2.6.1",
        id="an-error-outweighs-a-warning",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), KEEP_AIMET)
def test_keep_aimet_picks_the_nearest_torch(extra: Sequence[Mapping[str, Any]], expected: str) -> None:
    matrix = small([aimet("2.10.0")], SERIES, [*BASE, *extra])
    (first, *_) = moves(matrix, ON_2_5)
    assert first == f"keep-aimet: aimet-torch==2.10.0, {expected}"


def test_a_patch_tie_in_set_with_goes_to_the_newer_patch() -> None:
    """Within a series the installed patch is bad; its neighbours are at the same distance: the newer wins."""
    matrix = small([aimet("2.10.0")], [torch("2.5", 0, 1, 2)],
                   [good("good-2.10", {"aimet-torch": "==2.10.0"}),
                    bad("bad-2.5.1", {"aimet-torch": "==2.10.0", "torch": "==2.5.1"})])  # fmt: skip
    environment = facts(aimet_torch="2.10.0", torch="2.5.1", python="3.10.12")
    found = set_with(evaluate(environment, matrix), matrix, python="python", package="torch", spec="!=2.5.1")
    assert found is not None and [str(p) for p in found.pins][:2] == ["aimet-torch==2.10.0", "torch==2.5.2"]


NEWEST = [
    pytest.param([], "torch==2.6.1", id="the-newest-torch"),
    pytest.param([model_rule("warn-2.6", "==2.6.*", "warning")], "torch==2.6.1", id="a-warning-is-no-hazard"),
    pytest.param([model_rule("err-2.6", "==2.6.*", "error")], "torch==2.4.1", id="fewer-hazards-first"),
]


@pytest.mark.parametrize(("extra", "expected"), NEWEST)
def test_a_fresh_install_gets_the_newest_set_without_hazards(extra: Sequence[Mapping[str, Any]], expected: str) -> None:
    matrix = small([aimet("2.9.0"), aimet("2.10.0")], SERIES, [*BASE, *extra])
    found = best_known_good(facts(python="3.10.12"), matrix)
    assert found is not None and [str(p) for p in found.pins][:2] == ["aimet-torch==2.10.0", expected]


KEEP_TORCH = [
    pytest.param([], "aimet-torch==2.11.0", id="upgrade-before-downgrade"),
    pytest.param([model_rule("w", "==2.5.*", "warning", "==2.11.0")], "aimet-torch==2.11.0",
                 id="a-warning-is-no-hazard"),
    pytest.param([model_rule("e", "==2.5.*", "error", "==2.11.0")], "aimet-torch==2.9.0",
                 id="an-error-for-models-is-a-hazard"),
]


@pytest.mark.parametrize(("extra", "expected"), KEEP_TORCH)
def test_keep_torch_picks_the_nearest_aimet(extra: Sequence[Mapping[str, Any]], expected: str) -> None:
    rules = [*BASE, good("good-2.9", {"aimet-torch": "==2.9.0"}), good("good-2.11", {"aimet-torch": "==2.11.0"})]
    matrix = small([aimet("2.9.0"), aimet("2.10.0"), aimet("2.11.0")], SERIES, [*rules, *extra])
    found = [m for m in moves(matrix, ON_2_5) if m.startswith("keep-torch")]
    assert found == [f"keep-torch: {expected}, torch==2.5.1"]
