"""Recommendations: the smallest version change that lands on a known-good combination, re-evaluated against the
whole matrix; Python, glibc and the driver are held fixed. Each row is an environment and the moves offered for
it, in order (kind, summary and the pip command)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from qatdoctor.core import load_matrix
from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.evaluate import evaluate
from qatdoctor.diagnose.rules import rule_finding
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.recommend.ranking import Memo, best_known_good, recommend, set_with
from qatdoctor.records import Change, Fact, Facts, Finding, Recommendation, Scope, Severity, Status

MATRIX = load_matrix(None)
PIP = "python -m pip install"
CU126 = "--extra-index-url https://download.pytorch.org/whl/cu126"
V1_TO_V2 = "v1 → v2 QuantSim API: needs porting your QuantSim code"


def make_facts(**values: str | Fact) -> Facts:
    def name(key: str) -> str:
        return "env:" + key[4:] if key.startswith("env_") else key.replace("_", "-")

    return Facts({name(k): v if isinstance(v, Fact) else Fact.known(v) for k, v in values.items()})


def line(rec: Recommendation) -> str:
    return f"{rec.id} | {rec.summary} | {' '.join(rec.commands)}"


def lines(values: dict[str, str | Fact]) -> list[str]:
    return [line(r) for r in recommend(evaluate(make_facts(**values), MATRIX), MATRIX)]


MOVES = [
    pytest.param(
        {"aimet_torch": "1.32.2", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.10.13", "numpy": "1.23.5"},
        [f'rec.keep-aimet | pin torch==2.2.2 (keep aimet-torch 1.32.2) | {PIP} "torch==2.2.2" "torchvision==0.17.2"',
         f'rec.keep-torch | upgrade aimet-torch to 2.37.0 (keep torch 2.14.1) | {PIP} "aimet-torch==2.37.0"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0+cu130 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0+cu130" "torchvision==0.25.0+cu130" '
         '--extra-index-url https://download.pytorch.org/whl/cu130'],
        id="1.32.2-with-a-torch-it-does-not-pin"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.2.2", "python": "3.11.7", "numpy": "2.4.6"},
        [f'rec.keep-aimet | pin torch==2.5.1 (keep aimet-torch 2.42.0) | {PIP} "torch==2.5.1" "torchvision==0.20.1"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1+cu126 | '
         f'{PIP} "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}',
         'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | '
         f'{PIP} "aimet-torch==2.0.0" "torchvision==0.17.2" "numpy<2"'],
        id="2.42.0-with-torch-2.2-keeps-cuda-12"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "driver": "535.104.05"},
        ['rec.keep-aimet | pin torch==2.14.1+cu126 (keep aimet-torch 2.42.0) | '
         f'{PIP} "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}'],
        id="driver-too-old-for-cu130"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "driver": "470.1"},
        ['rec.keep-aimet | pin torch==2.6.0+cu118 (keep aimet-torch 2.42.0) | '
         f'{PIP} "torch==2.6.0+cu118" "torchvision==0.21.0+cu118" '
         '--extra-index-url https://download.pytorch.org/whl/cu118'],
        id="driver-only-runs-cuda-11"),
    pytest.param(
        {"aimet_torch": Fact.absent(), "torch": Fact.absent(), "python": "3.11.7"},
        [f'rec.fresh | install aimet-torch 2.42.0 with torch 2.14.1 | {PIP} "aimet-torch==2.42.0" "torch==2.14.1" '
         '"torchvision==0.29.1"'],
        id="fresh-install"),
    pytest.param(
        {"aimet_torch": "1.32.2", "torch": "2.2.2", "torchvision": "0.17.2", "python": "3.10.13", "numpy": "2.2.6"},
        [f'rec.keep-aimet | pin torch==2.2.2 (keep aimet-torch 1.32.2) | {PIP} "numpy<1.24,>=1.20.5"',
         f'rec.keep-torch | upgrade aimet-torch to 1.33.0 (keep torch 2.2.2) | {PIP} "aimet-torch==1.33.0" '
         '"numpy<1.24,>=1.20.5"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"'],
        id="numpy-2-pulled-into-1.32.2"),
    pytest.param(
        {"aimet_torch": "1.32.2", "torch": "2.2.2+cu118", "torchvision": "0.17.2+cu118", "python": "3.10.13",
         "numpy": "1.23.5"},
        ['rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"',
         f'rec.keep-torch | upgrade aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0"'],
        id="cuda-11-build-under-a-cuda-12-release"),
    pytest.param(
        {"aimet_torch": "2.10.0", "torch": "2.2.2", "python": "3.10.13", "numpy": "1.26.4",
         "env_AIMET_DEFAULT_API": "v1"},
        [f'rec.keep-aimet | pin torch==2.1.2 (keep aimet-torch 2.10.0) | {PIP} "torch==2.1.2" "torchvision==0.16.2"',
         f'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2"',
         'rec.newest | install aimet-torch 2.29.0 with torch 2.11.0+cu128 | '
         f'{PIP} "aimet-torch==2.29.0" "torch==2.11.0+cu128" "torchvision==0.26.0+cu128" '
         '--extra-index-url https://download.pytorch.org/whl/cu128',
         'rec.code.aimet-v1-api-torch-mismatch-2.1-2.24 | Migrate to the default v2 QuantSim (drop AIMET_DEFAULT_API=v1 '
         'and imports from aimet_torch.v1); v1 is removed in 2.30. | '],
        id="v1-api-asked-for-keeps-v1"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "aimet_api": "v1"},
        [f'rec.keep-aimet | pin torch==2.14.1 (keep aimet-torch 2.42.0) | {PIP} "torchvision==0.29.1"',
         'rec.code.aimet-v1-api-removed-2.30 | Migrate to the default v2 QuantSim (drop AIMET_DEFAULT_API=v1 and '
         'imports from aimet_torch.v1); v1 is removed in 2.30. | '],
        id="v1-removed"),
    pytest.param(
        {"aimet_torch": "1.35.0", "torch": "2.2.2", "python": "3.8.10", "numpy": "1.23.5", "glibc": "2.35"},
        ['rec.newest | install aimet-torch 2.19.0 with torch 2.1.2 | '
         f'{PIP} "aimet-torch==2.19.0" "torch==2.1.2" "torchvision==0.16.2"',
         f'rec.keep-torch | upgrade aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2"'],
        id="python-3.8-holds-aimet-below-2.20"),
    pytest.param(
        {"aimet_torch": "2.17.0", "torch": "2.9.0", "python": "3.12.1", "numpy": Fact.unknown("x")},
        ['rec.newest | install aimet-torch 2.42.0 with torch 2.14.1+cu126 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}'],
        id="python-3.12-only-newest"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.2.2+cpu", "python": "3.11.7", "numpy": "2.4.6"},
        [f'rec.keep-aimet | pin torch==2.5.1 (keep aimet-torch 2.42.0) | {PIP} "torch==2.5.1" "torchvision==0.20.1"',
         f'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1 | {PIP} "torch==2.14.1" "torchvision==0.29.1"',
         f'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2+cpu" "numpy<2" --extra-index-url https://download.pytorch.org/whl/cpu'],
        id="cpu-build-kept-when-torch-is-kept"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.99.0", "python": "3.11.7"},
        [f'rec.keep-aimet | pin torch==2.15.0 (keep aimet-torch 2.42.0) | {PIP} "torch==2.15.0" "torchvision==0.29.2"',
         f'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1 | {PIP} "torch==2.14.1" "torchvision==0.29.1"'],
        id="torch-series-unknown-no-keep-torch"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.11.7", "numpy": "2.4.6"},
        [], id="a-known-good-set-needs-no-move"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1+cu126", "torchvision": "0.29.0", "python": "3.11.7", "numpy": "2.4.6",
         "driver": "580.95"},
        ['rec.keep-aimet | pin torch==2.14.1+cu130 (keep aimet-torch 2.42.0) | '
         f'{PIP} "torch==2.14.1+cu130" "torchvision==0.29.1+cu130" --extra-index-url https://download.pytorch.org/whl/cu130',
         'rec.keep-torch | move aimet-torch to 2.42.0 (keep torch 2.14.1) | '
         f'{PIP} "torchvision==0.29.1+cu126" {CU126}'],
        id="the-pypi-build-named-to-replace-an-installed-local-build"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1+cu126", "torchvision": "0.29.0", "python": "3.11.7", "numpy": "2.4.6"},
        ['rec.keep-aimet | pin torch==2.14.1+cu126 (keep aimet-torch 2.42.0) | '
         f'{PIP} "torchvision==0.29.1+cu126" {CU126}'],
        id="without-a-driver-the-cuda-major-is-kept"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "driver": "300.0"},
        [], id="a-driver-too-old-for-every-build"),
    pytest.param(
        {"aimet_torch": "2.5.0", "torch": "2.8.0", "python": "3.10.13", "numpy": "1.26.4", "driver": "550.1"},
        [f'rec.keep-aimet | pin torch==2.1.2 (keep aimet-torch 2.5.0) | {PIP} "torch==2.1.2" "torchvision==0.16.2"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"'],
        id="an-untested-pair"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": Fact.absent(), "python": "3.11.7"},
        [f'rec.keep-aimet | pin torch==2.15.0 (keep aimet-torch 2.42.0) | {PIP} "torch==2.15.0" "torchvision==0.29.2"',
         f'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1 | {PIP} "torch==2.14.1" "torchvision==0.29.1"'],
        id="no-torch-the-newest-measured-one"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.9.1", "python": "3.11.7"},
        [f'rec.keep-aimet | pin torch==2.8.0 (keep aimet-torch 2.42.0) | {PIP} "torch==2.8.0" "torchvision==0.23.0"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1+cu126 | '
         f'{PIP} "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}'],
        id="the-nearest-measured-series"),
    pytest.param(
        {"aimet_torch": "2.42.0", "torch": "2.13.0", "python": "3.10.13"},
        ['rec.keep-aimet | pin torch==2.10.0+cu130 (keep aimet-torch 2.42.0) | '
         f'{PIP} "torch==2.10.0+cu130" "torchvision==0.25.0+cu130" --extra-index-url https://download.pytorch.org/whl/cu130',
         f'rec.keep-torch | move aimet-torch to 2.39.0 (keep torch 2.13.0) | {PIP} "aimet-torch==2.39.0" '
         '"torchvision==0.28.0"'],
        id="measured-before-nearer-and-the-cuda-major-kept"),
    pytest.param(
        {"aimet_torch": Fact.absent(), "torch": "2.2.2", "python": "3.10.13"},
        [f'rec.keep-torch | upgrade aimet-torch to 1.34.0 (keep torch 2.2.2) | {PIP} "aimet-torch==1.34.0" '
         '"torchvision==0.17.2" "numpy<1.24,>=1.20.5"',
         'rec.fresh | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"'],
        id="no-aimet-the-newest-release-for-the-torch-with-fewest-caveats"),
    pytest.param(
        {"aimet_torch": "2.30.0", "torch": "2.10.0", "python": "3.10.13"},
        ['rec.keep-aimet | pin torch==2.11.0+cu128 (keep aimet-torch 2.30.0) | '
         f'{PIP} "torch==2.11.0+cu128" "torchvision==0.26.0+cu128" --extra-index-url https://download.pytorch.org/whl/cu128',
         f'rec.keep-torch | upgrade aimet-torch to 2.42.0 (keep torch 2.10.0) | {PIP} "aimet-torch==2.42.0" '
         '"torchvision==0.25.0"'],
        id="an-upgrade-before-a-nearer-downgrade"),
    pytest.param(
        {"aimet_torch": "1.32.2", "torch": "2.10.0", "python": "3.11.7"},
        [f'rec.keep-torch | upgrade aimet-torch to 2.25.0 (keep torch 2.10.0) | {PIP} "aimet-torch==2.25.0" '
         '"torchvision==0.25.0"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1+cu126 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}'],
        id="the-smallest-upgrade"),
    pytest.param(
        {"aimet_torch": "2.38.0", "torch": "2.2.2", "python": "3.10.13"},
        ['rec.keep-aimet | pin torch==2.14.1+cu126 (keep aimet-torch 2.38.0) | '
         f'{PIP} "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"',
         f'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2" "numpy<2"'],
        id="a-measured-torch-before-a-nearer-declared-one"),
    pytest.param(
        {"aimet_torch": "2.10.0", "torch": "2.2.2", "python": "3.10.13", "aimet_api": "v1", "numpy": "1.26.4"},
        [f'rec.keep-aimet | pin torch==2.1.2 (keep aimet-torch 2.10.0) | {PIP} "torch==2.1.2" "torchvision==0.16.2"',
         f'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"',
         'rec.code.aimet-v1-api-torch-mismatch-2.1-2.24 | Migrate to the default v2 QuantSim (drop AIMET_DEFAULT_API=v1 '
         'and imports from aimet_torch.v1); v1 is removed in 2.30. | '],
        id="a-stated-v1-api-carries-over-to-releases-that-ship-it"),
    pytest.param(
        {"aimet_torch": "2.10.0", "torch": "2.2.2", "python": "3.10.13", "numpy": Fact.unknown("x")},
        [f'rec.keep-aimet | pin torch==2.1.2 (keep aimet-torch 2.10.0) | {PIP} "torch==2.1.2" "torchvision==0.16.2" '
         '"numpy<2"',
         'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
         f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"',
         f'rec.keep-torch | move aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" '
         '"torchvision==0.17.2" "numpy<2"'],
        id="an-unknown-numpy-gets-the-release-range"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "expected"), MOVES)
def test_version_moves(values: dict[str, str | Fact], expected: list[str]) -> None:
    assert lines(values) == expected


def test_every_move_lands_on_a_clean_known_good_set() -> None:
    values = {"aimet_torch": "1.32.2", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.10.13", "numpy": "1.23.5"}
    for rec in recommend(evaluate(make_facts(**values), MATRIX), MATRIX):
        assert rec.lands_on, rec
        planned = {**values, **{c.package.replace("-", "_"): c.target for c in rec.changes}}
        again = evaluate(make_facts(**planned), MATRIX)
        assert not any(f.failed and f.severity is Severity.ERROR for f in again.findings), rec.summary


def test_the_details_of_a_move() -> None:
    values = {"aimet_torch": "1.32.2", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.10.13", "numpy": "1.23.5"}
    keep_aimet, keep_torch, newest = recommend(evaluate(make_facts(**values), MATRIX), MATRIX)
    assert keep_aimet.kind == "keep-aimet"
    assert keep_aimet.changes == (Change("torch", "2.14.1", "2.2.2"), Change("torchvision", "0.29.1", "0.17.2"))
    assert keep_aimet.constraints == ("aimet-torch==1.32.2", "torch==2.2.2", "torchvision==0.17.2")
    assert keep_aimet.lands_on == ("good-aimet-1.32.2-1.35.0-torch-2.2.2-py310", "aimet-torch 1.32.2 pins torch==2.2.2")
    assert keep_aimet.notes[:2] == (
        "changes: torch 2.14.1 → 2.2.2, torchvision 0.29.1 → 0.17.2",
        "moves torch from CUDA 13 to CUDA 12: needs NVIDIA driver >= 525.60.13 where it runs (driver: unknown here; "
        "check with --target-driver)",
    )
    assert keep_aimet.notes[2] == (
        "not checked (facts unknown): Could not check the NVIDIA driver against CUDA 12; aimet-torch 1.x needs the "
        "system library liblapacke.so.3; aimet-torch 1.32.2-1.35.0 on Python 3.10 need glibc 2.34 (Ubuntu 22.04+); "
        "aimet-torch 1.32.1-1.35.0 (cp310) link libcublas.so.12, which is not loadable here"
    )
    assert len(keep_aimet.notes) == 3 and keep_aimet.avoids == () and keep_aimet.model_failures == ()
    assert keep_torch.changes == (Change("aimet-torch", "1.32.2", "2.37.0"),)
    assert keep_torch.lands_on == ("good-measured-aimet-2.37.0-torch-2.14.1-py310",)
    assert keep_torch.notes[0] == "changes: aimet-torch 1.32.2 → 2.37.0"
    assert keep_torch.notes[1].startswith(V1_TO_V2)
    assert keep_torch.notes[2:5] == (
        "new for models with bn-subclass: BatchNorm subclass from outside torch.nn is silently frozen by "
        "prepare_model() on the v2 QuantSim (bn-subclass-stats-frozen-v2)",
        "new for models with functional-bn: Functional F.batch_norm with running-stat buffers is silently frozen on "
        "the v2 QuantSim (functional-bn-stats-frozen-v2)",
        "new for models with functional-bn-without-stats: F.batch_norm without running statistics breaks the v2 "
        "QuantizationSimModel constructor (functional-bn-nostats-quantsim-attributeerror-v2)",
    )
    assert newest.constraints == (
        "--extra-index-url https://download.pytorch.org/whl/cu130", "aimet-torch==2.42.0", "torch==2.10.0+cu130",
        "torchvision==0.25.0+cu130",
    )  # fmt: skip
    assert newest.changes[1] == Change("torch", "2.14.1", "2.10.0+cu130")


def test_notes_for_a_move_that_changes_nothing_installed() -> None:
    values = {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "driver": "535.104.05"}
    (rec,) = recommend(evaluate(make_facts(**values), MATRIX), MATRIX)
    assert rec.notes == (
        "changes: torch 2.14.1 → 2.14.1+cu126, torchvision unknown → 0.29.1+cu126",
        "moves torch from CUDA 13 to CUDA 12: needs NVIDIA driver >= 525.60.13 where it runs (driver: 535.104.05; "
        "check with --target-driver)",
    )
    fresh = recommend(evaluate(make_facts(aimet_torch=Fact.absent(), torch=Fact.absent(), python="3.11.7"), MATRIX), MATRIX)
    assert fresh[0].changes == (Change("aimet-torch", None, "2.42.0"), Change("torch", None, "2.14.1"),
                                Change("torchvision", "unknown", "0.29.1"))  # fmt: skip
    assert fresh[0].notes[0] == "changes: aimet-torch (none) → 2.42.0, torch (none) → 2.14.1, torchvision unknown → 0.29.1"


def test_a_yanked_release_is_never_kept_or_offered() -> None:
    release = MATRIX.aimet_release(parse_version("2.42.0"))
    yanked = MATRIX._replace(aimet=tuple(a._replace(yanked="broken") if a is release else a for a in MATRIX.aimet))
    facts = make_facts(aimet_torch="2.42.0", torch="2.2.2", python="3.11.7", numpy="2.4.6")
    recs = recommend(evaluate(facts, yanked), yanked)
    assert [r.kind for r in recs] == ["newest", "keep-torch"]
    assert all("aimet-torch==2.42.0" not in r.constraints for r in recs)
    assert recs[0].summary == "install aimet-torch 2.41.0 with torch 2.14.1+cu126"


# --- set_with: a finding's version fix made whole ---------------------------------------------------------------

UNTESTED = {"aimet_torch": "2.5.0", "torch": "2.8.0", "python": "3.10.13", "numpy": "1.26.4"}
NUMPY_2 = {"aimet_torch": "1.32.2", "torch": "2.2.2", "python": "3.10.13", "numpy": "2.2.6"}


@pytest.mark.parametrize(
    ("values", "package", "spec", "expected"),
    [
        (UNTESTED, "aimet-torch", ">=2.10", 'rec.fix | the whole set: aimet-torch==2.10.0, torch==2.1.2, torchvision==0.16.2'
         f' | {PIP} "aimet-torch==2.10.0" "torch==2.1.2" "torchvision==0.16.2"'),
        (UNTESTED, "torch", "==2.1.*", 'rec.fix | the whole set: aimet-torch==2.5.0, torch==2.1.2, torchvision==0.16.2'
         f' | {PIP} "torch==2.1.2" "torchvision==0.16.2"'),
        (UNTESTED, "torchvision", ">=0.25", 'rec.fix | the whole set: aimet-torch==2.24.0, torch==2.10.0, '
         f'torchvision==0.25.0 | {PIP} "aimet-torch==2.24.0" "torch==2.10.0" "torchvision==0.25.0"'),
        (UNTESTED, "numpy", "<2", 'rec.fix | the whole set: aimet-torch==2.5.0, torch==2.1.2, torchvision==0.16.2'
         f' | {PIP} "torch==2.1.2" "torchvision==0.16.2"'),
        (UNTESTED, "numpy", ">=2", None),
        (UNTESTED, "pip", "==24.0", None),
        (UNTESTED, "aimet-torch", ">=9", None),
        (NUMPY_2, "numpy", "<1.24", 'rec.fix | the whole set: aimet-torch==1.32.2, torch==2.2.2, torchvision==0.17.2, '
         f'numpy<1.24,>=1.20.5 | {PIP} "torchvision==0.17.2" "numpy<1.24,>=1.20.5"'),
        (NUMPY_2, "numpy", ">=2", 'rec.fix | the whole set: aimet-torch==2.24.0, torch==2.1.2, torchvision==0.16.2'
         f' | {PIP} "aimet-torch==2.24.0" "torch==2.1.2" "torchvision==0.16.2"'),
        ({**NUMPY_2, "numpy": "1.23.5"}, "numpy", "<1.24", 'rec.fix | the whole set: aimet-torch==1.32.2, torch==2.2.2, '
         f'torchvision==0.17.2 | {PIP} "torchvision==0.17.2"'),
        # every release that allows the installed numpy keeps it, so no set moves numpy up
        ({**NUMPY_2, "numpy": "1.23.5"}, "numpy", ">=1.24", None),
        ({"aimet_torch": "2.42.0", "torch": Fact.absent(), "python": "3.11.7"}, "torchvision", ">=0.20",
         'rec.fix | the whole set: aimet-torch==2.42.0, torch==2.15.0, torchvision==0.29.2 | '
         f'{PIP} "torch==2.15.0" "torchvision==0.29.2"'),
        ({"aimet_torch": "2.42.0", "torch": "2.9.1", "python": "3.11.7"}, "torchvision", ">=0.20",
         'rec.fix | the whole set: aimet-torch==2.42.0, torch==2.8.0, torchvision==0.23.0 | '
         f'{PIP} "torch==2.8.0" "torchvision==0.23.0"'),
        ({"aimet_torch": "2.42.0", "torch": "2.13.0", "python": "3.10.13"}, "torchvision", ">=0.20",
         'rec.fix | the whole set: aimet-torch==2.42.0, torch==2.14.1, torchvision==0.29.1 | '
         f'{PIP} "torch==2.14.1" "torchvision==0.29.1"'),
        ({"aimet_torch": Fact.absent(), "torch": Fact.absent(), "python": "3.11.7"}, "torch", ">=2.12",
         'rec.fix | the whole set: aimet-torch==2.31.0, torch==2.12.1, torchvision==0.27.1 | '
         f'{PIP} "aimet-torch==2.31.0" "torch==2.12.1" "torchvision==0.27.1"'),
    ],
)  # fmt: skip
def test_set_with(values: dict[str, str | Fact], package: str, spec: str, expected: str | None) -> None:
    evaluation = evaluate(make_facts(**values), MATRIX)
    rec = set_with(evaluation, MATRIX, python="python", package=package, spec=spec)
    assert (line(rec) if rec else None) == expected


def test_set_with_shares_its_memo() -> None:
    evaluation = evaluate(make_facts(**UNTESTED), MATRIX)
    memo: Memo = {}
    first = set_with(evaluation, MATRIX, python="/env/bin/python", package="torch", spec="==2.1.*", memo=memo)
    assert memo and first is not None and first.commands[0].startswith("/env/bin/python -m pip install")
    again = set_with(evaluation, MATRIX, python="/env/bin/python", package="torch", spec="==2.1.*", memo=memo)
    assert again == first


# --- best_known_good: the set to pin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected", "constraints"),
    [
        ({"aimet_torch": "2.42.0", "torch": "2.14.1+cu126", "torchvision": "0.29.1+cu126", "python": "3.11.7",
          "numpy": "2.4.6"},
         'rec.current | the installed set is known-good: pin it | /env/bin/python -m pip install "aimet-torch==2.42.0" '
         f'"torch==2.14.1+cu126" "torchvision==0.29.1+cu126" "numpy==2.4.6" {CU126}',
         (CU126, "aimet-torch==2.42.0", "torch==2.14.1+cu126", "torchvision==0.29.1+cu126", "numpy==2.4.6")),
        ({"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7"},
         'rec.current | the installed set is known-good: pin it | /env/bin/python -m pip install "aimet-torch==2.42.0" '
         '"torch==2.14.1"', ("aimet-torch==2.42.0", "torch==2.14.1")),
        ({"aimet_torch": "2.42.0", "torch": "2.14.1+cpu", "python": "3.11.7"},
         'rec.current | the installed set is known-good: pin it | /env/bin/python -m pip install "aimet-torch==2.42.0" '
         '"torch==2.14.1+cpu"', ("aimet-torch==2.42.0", "torch==2.14.1+cpu")),
        ({"aimet_torch": "1.32.2", "torch": "2.2.2", "python": "3.11.7"},
         'rec.newest | install aimet-torch 2.42.0 with torch 2.14.1+cu126 | /env/bin/python -m pip install '
         f'"aimet-torch==2.42.0" "torch==2.14.1+cu126" "torchvision==0.29.1+cu126" {CU126}',
         (CU126, "aimet-torch==2.42.0", "torch==2.14.1+cu126", "torchvision==0.29.1+cu126")),
        ({"aimet_torch": "1.32.2", "torch": "2.2.2", "python": "3.7.1"}, None, None),
    ],
)  # fmt: skip
def test_best_known_good(values: dict[str, str], expected: str | None, constraints: tuple[str, ...] | None) -> None:
    rec = best_known_good(make_facts(**values), MATRIX, python="/env/bin/python")
    assert (line(rec) if rec else None) == expected
    assert (rec.constraints if rec else None) == constraints


def test_the_current_set_lands_where_the_evaluation_does() -> None:
    facts = make_facts(aimet_torch="2.42.0", torch="2.14.1", python="3.11.7")
    rec = best_known_good(facts, MATRIX)
    assert rec is not None and rec.lands_on == evaluate(facts, MATRIX).lands_on
    assert (rec.id, rec.kind, rec.changes, rec.notes) == ("rec.current", "current", (), ())
    assert rec.commands == ('python -m pip install "aimet-torch==2.42.0" "torch==2.14.1"',)


# --- failures of the user's model, and code fixes ----------------------------------------------------------------

BN_1X = {"aimet_torch": "1.32.2", "torch": "2.2.2", "python": "3.10.13", "numpy": "1.23.5", "glibc": "2.35"}
NEWEST_FOR_BN = ('rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
                 f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"')  # fmt: skip
KEEP_TORCH_FOR_BN = f'rec.keep-torch | upgrade aimet-torch to 2.0.0 (keep torch 2.2.2) | {PIP} "aimet-torch==2.0.0" "torchvision==0.17.2"'
BN_CODE = "rec.code.bn-subclass-qat-crash-v1"
SHARED_CODE = "rec.code.shared-conv-fold-keyerror-1.32.2"


def model_failure(values: Mapping[str, str | Fact], rule_id: str) -> Finding:
    """A failure of the user's model that the probe reproduced."""
    rule = MATRIX.rule(rule_id)
    assert rule is not None
    facts = evaluate(make_facts(**values), MATRIX).facts
    found = rule_finding(rule, evaluate_all(rule.when, facts), facts=facts)
    return found._replace(status=Status.FAIL, scope=Scope.MODEL)


@pytest.mark.parametrize(
    ("failing", "features", "expected"),
    [
        pytest.param(("bn-subclass-qat-crash-v1",), None, [NEWEST_FOR_BN, KEEP_TORCH_FOR_BN, BN_CODE],
                     id="moves-first-without-the-model"),
        pytest.param(("bn-subclass-qat-crash-v1",), {"bn-subclass"}, [BN_CODE, NEWEST_FOR_BN, KEEP_TORCH_FOR_BN],
                     id="code-first-when-no-move-clears-the-model"),
        pytest.param(("bn-subclass-qat-crash-v1", "shared-conv-fold-keyerror-1.32.2"), {"bn-subclass", "shared-conv-multi-bn"},
                     [BN_CODE, SHARED_CODE, NEWEST_FOR_BN, KEEP_TORCH_FOR_BN], id="code-fixes-by-pipeline-stage"),
        pytest.param(("shared-conv-fold-keyerror-1.32.2", "bn-subclass-qat-crash-v1"), None,
                     [NEWEST_FOR_BN, KEEP_TORCH_FOR_BN, BN_CODE, SHARED_CODE], id="earliest-stage-first"),
        pytest.param(("shared-conv-fold-keyerror-1.32.2",), None, [SHARED_CODE], id="no-version-fix-no-move"),
    ],
)  # fmt: skip
def test_model_failures(failing: tuple[str, ...], features: set[str] | None, expected: list[str]) -> None:
    found = tuple(model_failure(BN_1X, r) for r in failing)
    recs = recommend(evaluate(make_facts(**BN_1X), MATRIX), MATRIX, failing=found,
                     features=frozenset(features) if features is not None else None)  # fmt: skip
    assert [line(r) if r.kind != "code" else r.id for r in recs] == expected


def test_a_move_says_what_it_avoids_and_what_it_leaves() -> None:
    found = (model_failure(BN_1X, "bn-subclass-qat-crash-v1"),)
    evaluation = evaluate(make_facts(**BN_1X), MATRIX)
    newest = recommend(evaluation, MATRIX, failing=found)[0]
    assert newest.avoids == ("bn-subclass-qat-crash-v1",) and newest.model_failures == ("bn-subclass-stats-frozen-v2",)
    assert newest.notes[1] == "avoids: bn-subclass-qat-crash-v1"
    assert newest.notes[3] == (
        "still needs the code fix for bn-subclass: BatchNorm subclass from outside torch.nn is silently frozen by "
        "prepare_model() on the v2 QuantSim (bn-subclass-stats-frozen-v2)"
    )
    assert not any(n.startswith("new for models with bn-subclass") for n in newest.notes)
    with_model = recommend(evaluation, MATRIX, failing=found, features=frozenset({"bn-subclass"}))[1]
    assert with_model.notes[3] == (
        "adds a failure for your model: BatchNorm subclass from outside torch.nn is silently frozen by "
        "prepare_model() on the v2 QuantSim (bn-subclass-stats-frozen-v2)"
    )
    code = recommend(evaluation, MATRIX, failing=found)[-1]
    assert code.kind == "code" and code.summary.startswith("Before prepare_model(), replace every BatchNorm subclass")
    assert code.notes[0] == "for: BatchNorm subclass from outside torch.nn crashes the first QAT step on the legacy (v1) QuantSim"
    assert code.notes[1].startswith("from qatdoctor import fixes")


def test_a_failure_the_move_keeps_is_left_for_the_model() -> None:
    both = {"bn-subclass", "shared-conv-multi-bn"}
    found = tuple(model_failure(BN_1X, r) for r in ("bn-subclass-qat-crash-v1", "shared-conv-fold-keyerror-1.32.2"))
    recs = recommend(evaluate(make_facts(**BN_1X), MATRIX), MATRIX, failing=found, features=frozenset(both))
    newest = next(r for r in recs if r.kind == "newest")
    assert newest.model_failures == ("bn-subclass-stats-frozen-v2", "shared-conv-fold-corrupts-output")
    assert newest.notes[4] == (
        "leaves a failure for your model: Folding BN into a conv shared by several BNs silently changes the model's "
        "output (shared-conv-fold-corrupts-output)"
    )


def test_a_soft_failure_adds_moves_that_avoid_it() -> None:
    values = {"aimet_torch": "2.5.0", "torch": "2.1.2", "python": "3.10.13", "numpy": "1.26.4"}
    silu = model_failure(values, "silu-quantsim-valueerror-2.0.0")._replace(severity=Severity.WARNING)
    evaluation = evaluate(make_facts(**values), MATRIX)
    recs = recommend(evaluation, MATRIX, failing=(silu,))
    assert [line(r) for r in recs] == [
        f'rec.keep-torch | upgrade aimet-torch to 2.10.0 (keep torch 2.1.2) | {PIP} "aimet-torch==2.10.0" "torchvision==0.16.2"',
        'rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
        f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"',
    ]
    assert all(r.avoids == ("silu-quantsim-valueerror-2.0.0",) for r in recs)
    hard = recommend(evaluation, MATRIX, failing=(silu._replace(severity=Severity.ERROR),))
    assert [line(r) for r in hard] == [line(r) for r in recs]


@pytest.mark.parametrize(
    ("features", "left"),
    [(None, ()), (frozenset({"silu-activation"}), ()), (frozenset({"bn-subclass"}), ("bn-subclass-stats-frozen-v2",))],
    ids=["without-the-model", "the-model-has-only-the-avoided-construct", "the-model-has-another-construct"],
)
def test_moves_that_avoid_a_soft_failure_judge_the_users_model(features: frozenset[str] | None, left: tuple) -> None:
    """The moves added for a soft (warning) failure say what they leave for the user's model, like the others."""
    values = {"aimet_torch": "2.5.0", "torch": "2.1.2", "python": "3.10.13", "numpy": "1.26.4"}
    silu = model_failure(values, "silu-quantsim-valueerror-2.0.0")._replace(severity=Severity.WARNING)
    recs = recommend(evaluate(make_facts(**values), MATRIX), MATRIX, failing=(silu,), features=features)
    assert [r.kind for r in recs] == ["keep-torch", "newest"] and all(r.model_failures == left for r in recs)
    assert all(any(n.startswith("leaves a failure for your model") for n in r.notes) is bool(left) for r in recs)


def test_a_code_fix_outside_the_matrix_comes_after_the_matrix_ones() -> None:
    from qatdoctor.records import Fix

    custom = Finding("probe.custom", "Custom failure", Severity.ERROR, "s", origin="probe", scope=Scope.MODEL,
                     fixes=(Fix("code", "Change the model.", code="model = change(model)"),))  # fmt: skip
    bn = model_failure(BN_1X, "bn-subclass-qat-crash-v1")
    recs = recommend(evaluate(make_facts(**BN_1X), MATRIX), MATRIX, failing=(custom, bn))
    code = [r for r in recs if r.kind == "code"]
    assert [r.id for r in code] == [BN_CODE, "rec.code.probe.custom"]
    assert code[1].summary == "Change the model." and code[1].notes == ("for: Custom failure", "model = change(model)")


def test_a_numpy_pin_a_failing_rule_prescribes_is_planned() -> None:
    # a release that does not bound numpy keeps the installed numpy 2, which torch 2.2 cannot load: the move
    # plans the rule's own pin instead
    release = MATRIX.aimet_release(parse_version("2.0.0"))
    unbounded = MATRIX._replace(aimet=tuple(a._replace(numpy=None) if a is release else a for a in MATRIX.aimet))
    facts = make_facts(aimet_torch="2.0.0", torch="2.4.1", python="3.10.13", numpy="2.4.6")
    recs = recommend(evaluate(facts, unbounded), unbounded)
    keep = next(r for r in recs if r.kind == "keep-aimet")
    assert keep.constraints == ("aimet-torch==2.0.0", "torch==2.2.2", "torchvision==0.17.2", "numpy<2")
    assert Change("numpy", "2.4.6", "<2") in keep.changes


UNTESTED_PAIR = {"aimet_torch": "2.5.0", "torch": "2.8.0", "python": "3.10.13", "numpy": "1.26.4"}
KEEP_2_5 = f'rec.keep-aimet | pin torch==2.1.2 (keep aimet-torch 2.5.0) | {PIP} "torch==2.1.2" "torchvision==0.16.2"'
NEWEST_2_42 = ('rec.newest | install aimet-torch 2.42.0 with torch 2.10.0 | '
               f'{PIP} "aimet-torch==2.42.0" "torch==2.10.0" "torchvision==0.25.0"')  # fmt: skip


@pytest.mark.parametrize(
    ("severity", "features", "expected"),
    [
        # a failing warning does not rule out the moves that fix the environment; it adds moves that avoid it
        (Severity.WARNING, None, [(KEEP_2_5, (), ()), (NEWEST_2_42, (), ())]),
        # with the model examined, the move that leaves its failure goes last
        (Severity.WARNING, {"silu-activation"},
         [(NEWEST_2_42, (), ()), (KEEP_2_5, ("silu-quantsim-valueerror-2.0.0",), ())]),
        # a failing error rules out every move that keeps it
        (Severity.ERROR, None, [(NEWEST_2_42, (), ("silu-quantsim-valueerror-2.0.0",))]),
    ],
)  # fmt: skip
def test_moves_for_a_model_failure_on_an_untested_pair(
    severity: Severity, features: set[str] | None, expected: list[tuple[str, tuple[str, ...], tuple[str, ...]]]
) -> None:
    silu = model_failure(UNTESTED_PAIR, "silu-quantsim-valueerror-2.0.0")._replace(severity=severity)
    evaluation = evaluate(make_facts(**UNTESTED_PAIR), MATRIX)
    recs = recommend(evaluation, MATRIX, failing=(silu,), features=frozenset(features) if features else None)
    assert [(line(r), r.model_failures, r.avoids) for r in recs] == expected


def test_code_fixes_in_pipeline_order_and_for_failing_warnings() -> None:
    evaluation = evaluate(make_facts(**BN_1X), MATRIX)
    late = model_failure(BN_1X, "efficient-conv-bn-eval-drops-bn")  # breaks at stage 7, listed first
    early = model_failure(BN_1X, "shared-conv-fold-keyerror-1.32.2")  # breaks at the fold
    assert [r.id for r in recommend(evaluation, MATRIX, failing=(late, early))] == [
        SHARED_CODE, "rec.code.efficient-conv-bn-eval-drops-bn"
    ]
    warning = model_failure(BN_1X, "bn-subclass-qat-crash-v1")._replace(severity=Severity.WARNING)
    assert [line(r) if r.kind != "code" else r.id for r in recommend(evaluation, MATRIX, failing=(warning,))] == [
        NEWEST_FOR_BN, KEEP_TORCH_FOR_BN, BN_CODE
    ]


def test_a_move_that_avoids_two_failures_names_both() -> None:
    found = tuple(model_failure(BN_1X, r) for r in ("bn-subclass-qat-crash-v1", "functional-bn-qat-crash-v1"))
    newest = recommend(evaluate(make_facts(**BN_1X), MATRIX), MATRIX, failing=found)[0]
    assert newest.avoids == ("bn-subclass-qat-crash-v1", "functional-bn-qat-crash-v1")
    assert newest.notes[1] == "avoids: bn-subclass-qat-crash-v1, functional-bn-qat-crash-v1"


def test_a_cuda_major_without_a_known_driver_floor() -> None:
    no_floors = MATRIX._replace(cuda=())
    values = {"aimet_torch": "1.32.2", "torch": "2.14.1", "torchvision": "0.29.1", "python": "3.10.13", "numpy": "1.23.5"}
    keep_aimet = recommend(evaluate(make_facts(**values), no_floors), no_floors)[0]
    assert keep_aimet.notes[1] == (
        "moves torch from CUDA 13 to CUDA 12: needs NVIDIA driver >= ? where it runs (driver: unknown here; "
        "check with --target-driver)"
    )


def test_the_gpus_are_held_fixed() -> None:
    from qatdoctor.records import Gpu

    values = {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6", "driver": "580.95"}
    pascal = make_facts(**values).with_gpus((Gpu("GTX 1080", "6.1"),))
    assert [line(r) for r in recommend(evaluate(pascal, MATRIX), MATRIX)] == [
        f'rec.keep-aimet | pin torch==2.6.0 (keep aimet-torch 2.42.0) | {PIP} "torch==2.6.0" "torchvision==0.21.0"'
    ]


@pytest.mark.parametrize(
    ("values", "index_url", "pins"),
    [
        ({"aimet_torch": "2.42.0", "torch": "2.14.1+cu126", "python": "3.11.7"}, CU126.split()[-1],
         ("aimet-torch==2.42.0", "torch==2.14.1+cu126")),
        ({"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7"}, None, ("aimet-torch==2.42.0", "torch==2.14.1")),
    ],
    ids=["a-pytorch-index-build", "a-pypi-build"],
)  # fmt: skip
def test_the_current_set_carries_its_pins_and_index(values: dict[str, str], index_url: str | None, pins: tuple) -> None:
    rec = best_known_good(make_facts(**values), MATRIX)
    assert rec is not None and rec.kind == "current"
    assert (rec.index_url, tuple(str(p) for p in rec.pins)) == (index_url, pins)


def test_a_move_to_a_pytorch_index_build_carries_its_index_and_a_code_fix_its_usage() -> None:
    values = {"aimet_torch": "2.42.0", "torch": "2.2.2", "python": "3.11.7", "numpy": "2.4.6"}
    recs = recommend(evaluate(make_facts(**values), MATRIX), MATRIX)
    newest = next(r for r in recs if r.kind == "newest")
    assert newest.index_url == CU126.split()[-1] and any("+cu126" in str(p) for p in newest.pins)
    assert all(r.index_url is None for r in recs if not any("+" in str(p) for p in r.pins))
    found = (model_failure(BN_1X, "bn-subclass-qat-crash-v1"),)
    code = recommend(evaluate(make_facts(**BN_1X), MATRIX), MATRIX, failing=found)[-1]
    fix = next(fx for fx in found[0].fixes if fx.kind == "code")
    assert code.kind == "code" and code.usage == fix.code and code.usage and code.notes[1] == fix.code
