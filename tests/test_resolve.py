"""The resolver on real combinations from the evidence: verdict, the finding that names it, and the way out.

Every row is a combination measured or reported in ../shared/evidence (the row id names its source).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor import core
from qatdoctor.records import Report, Scope, Status, Verdict
from tests.matrixkit import beyond

# A fully described Linux host without a GPU; rows override what they are about.
HOST = {
    "python": "3.10.13",
    "glibc": "2.35",
    "numpy": "1.23.5",
    "gpu": "none",
    "driver": "absent",
    "liblapacke": "present",
    "libcublas12": "present",
    "onnx": "absent",
    "mmengine": "absent",
    "mmcv": "absent",
    "aimet-onnx": "absent",
    "aimet-common": "absent",
}


@dataclass(frozen=True)
class Row:
    facts: dict[str, str]
    verdict: Verdict
    finding: str | None = None
    recommends: tuple[str, ...] = ()
    command_has: tuple[str, ...] = ()
    absent_findings: tuple[str, ...] = field(default=())
    caveats: tuple[str, ...] = ()
    likely: tuple[str, ...] = ()


def resolve(facts: dict[str, str]) -> Report:
    merged = {**HOST, **facts}
    return core.run_resolve(core.Options(assume=tuple(f"{k}={v}" for k, v in merged.items())))


ROWS = [
    # Without the user's model the BN-subclass crash is a caveat: the environment itself is the documented set.
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "cuda": "12.0"}, Verdict.OK, "bn-subclass-qat-crash-v1",
            caveats=("bn-subclass-qat-crash-v1", "functional-bn-qat-crash-v1")),
        id="aimet#3152-stack-caveats-only",
    ),
    # ... but the #3152 user's environment holds mmengine, whose Runner produces _BatchNormXd: unknown, not OK.
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "cuda": "12.0", "mmengine": "0.10.7"}, Verdict.UNKNOWN,
            "bn-subclass-qat-crash-v1", likely=("bn-subclass-qat-crash-v1",)),
        id="aimet#3152-stack-with-mmengine-likely",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "liblapacke": "absent"}, Verdict.PROBLEMS,
            "aimet-1x-liblapacke-missing", command_has=("apt-get install -y liblapacke",),
            absent_findings=("req.system-lib",)),
        id="aimet#3187-missing-liblapacke",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "glibc": "2.31"}, Verdict.PROBLEMS,
            "aimet-1.32.2-1.35-cp310-glibc-below-2.34"),
        id="aimet#3187-ubuntu-20.04-glibc",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.1.post1", "torch": "2.1.2", "glibc": "2.31"}, Verdict.PROBLEMS,
            "aimet-1.31.2-1.32.1-cp310-glibc-below-2.34"),
        id="aimet#3163-glibc-2.32",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.14.1", "torchvision": "0.29.1"}, Verdict.PROBLEMS, "req.torch",
            recommends=("keep-aimet",), command_has=('"torch==2.2.2"', '"torchvision==0.17.2"')),
        id="pypi-pin-torch-upgraded-past-1.32.2",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "python": "3.11.7"}, Verdict.PROBLEMS,
            "aimet-1x-python-3.11-plus-unsupported"),
        id="requires-python-1x-on-3.11",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.2.2", "python": "3.11.7", "numpy": "2.4.6"}, Verdict.PROBLEMS,
            "aimet-2.42-torch-2.2-import-error", recommends=("keep-aimet",), command_has=('"torch==2.5.1"',)),
        id="measured-2.42.0-with-torch-2.2.2",
    ),
    pytest.param(
        Row({"aimet-torch": "2.0.0", "torch": "2.14.1", "python": "3.11.7"}, Verdict.PROBLEMS,
            "aimet-2.0.0-torch-2.14-import-error"),
        id="measured-2.0.0-with-torch-2.14.1",
    ),
    pytest.param(
        Row({"aimet-torch": "2.10.0", "torch": "2.2.2", "aimet-api": "v1"}, Verdict.PROBLEMS,
            "aimet-v1-api-torch-mismatch-2.1-2.24"),
        id="measured-v1-guard-2.10.0-torch-2.2.2",
    ),
    pytest.param(
        Row({"aimet-torch": "2.0.0", "torch": "2.1.2", "aimet-api": "v1"}, Verdict.PROBLEMS,
            "aimet-v1-api-torch-mismatch-2.0.0"),
        id="measured-v1-guard-2.0.0-torch-2.1.2",
    ),
    pytest.param(
        Row({"aimet-torch": "2.0.0", "torch": "2.2.2", "python": "3.11.7", "aimet-api": "v1"}, Verdict.PROBLEMS,
            "aimet-v1-api-python-not-3.10"),
        id="measured-v1-guard-python-3.11",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "aimet-api": "v1"}, Verdict.PROBLEMS,
            "aimet-v1-api-removed-2.30"),
        id="v1-removed-in-2.30",
    ),
    pytest.param(
        Row({"aimet-torch": "2.17.0", "torch": "2.9.0", "numpy": "1.26.4"}, Verdict.PROBLEMS, "aimet-2.17-torch-2.9-cap",
            recommends=("keep-aimet",), command_has=('"torch==2.1.2"',)),
        id="pypi-2.17.0-torch-cap",
    ),
    pytest.param(
        Row({"aimet-torch": "2.20.0", "torch": "2.5.1", "python": "3.9.18"}, Verdict.PROBLEMS,
            "aimet-2.20-plus-python-below-3.10"),
        id="requires-python-2.20-on-3.9",
    ),
    pytest.param(
        Row({"aimet-torch": "1.32.2", "torch": "2.2.2", "numpy": "2.2.6"}, Verdict.PROBLEMS, "aimet-1x-numpy-2",
            command_has=('"numpy<1.24,>=1.20.5"',)),
        id="measured-numpy-2-pulled-into-1.32.2",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6"}, Verdict.OK,
            "good-aimet-2.42.0-torch-2.14.1-py311"),
        id="measured-known-good-2.42.0",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6",
             "driver": "535.104.05", "gpu": "9.0"}, Verdict.PROBLEMS, "req.driver",
            recommends=("keep-aimet",), command_has=("torch==2.14.1+cu126", "download.pytorch.org/whl/cu126")),
        id="driver-535-too-old-for-cu130-wheel",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", "numpy": "2.4.6",
             "driver": "580.95.05", "gpu": "6.1"}, Verdict.PROBLEMS, "req.gpu-arch"),
        id="pascal-gpu-not-in-cu130-wheel",
    ),
    pytest.param(
        Row({"aimet-torch": beyond(core.load_matrix(None)), "torch": "2.14.1", "python": "3.11.7"}, Verdict.UNKNOWN,
            "coverage.aimet-torch"),
        id="newer-than-matrix-is-outside-coverage",
    ),
    pytest.param(
        Row({"aimet-torch": "1.34.0.cu121", "torch": "2.1.2+cu121"}, Verdict.UNKNOWN, "coverage.aimet-torch",
            absent_findings=("req.torch",)),
        id="github-variant-not-judged-by-pypi-pins",
    ),
    pytest.param(
        Row({"aimet-torch": "2.42.0", "torch": "2.15.0", "torchvision": "0.29.2", "python": "3.11.7",
             "numpy": "2.4.6"}, Verdict.OK, "good-measured-aimet-2.42.0-torch-2.15.0-py311"),
        id="torch-2.15-measured-with-2.42.0",
    ),
    pytest.param(
        Row({"aimet-torch": "1.31.2", "torch": "1.13.1", "python": "3.8.18", "glibc": "2.31"}, Verdict.OK,
            "good-aimet-1.31.2-torch-1.13.1"),
        id="vendor-documented-1.31.2-torch-1.13.1",
    ),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS)
def test_resolve(row: Row) -> None:
    report = resolve(row.facts)
    ids = [f.id for f in report.findings]
    assert report.verdict is row.verdict, [(f.id, f.status.value, f.severity.value) for f in report.findings]
    if row.finding:
        assert row.finding in ids
    for absent in row.absent_findings:
        assert not any(f.id == absent and f.status is Status.FAIL for f in report.findings), absent
    kinds = [r.kind for r in report.recommendations]
    for kind in row.recommends:
        assert kind in kinds, kinds
    by_id = {f.id: f for f in report.findings}
    for caveat in (*row.caveats, *row.likely):
        assert by_id[caveat].scope is Scope.CAVEAT and by_id[caveat].status is not Status.FAIL, by_id[caveat]
    assert {f.id for f in report.findings if f.likely} == set(row.likely)
    if row.caveats and not row.recommends:  # caveats never drive version moves
        assert not report.recommendations, [r.summary for r in report.recommendations]
    text = "\n".join(
        [*(c for r in report.recommendations for c in r.commands), *(c for f in report.findings for x in f.fixes for c in x.commands)]
    )
    for needle in row.command_has:
        assert needle in text, text


def test_recommendations_never_exceed_the_target_python() -> None:
    """1.x recommendations on Python 3.11 are impossible: every move must install on 3.11."""
    report = resolve({"aimet-torch": "1.32.2", "torch": "2.2.2", "python": "3.11.7"})
    for rec in report.recommendations:
        for change in rec.changes:
            if change.package == "aimet-torch":
                assert not change.target.startswith("1."), rec


def _concrete(target: str) -> str:
    """A planned range (`numpy<2`) as the newest of a few real releases inside it."""
    if target[:1] not in "<>=!~":
        return target
    releases = ["2.4.6", "2.2.6", "1.26.4", "1.23.5"]
    return next(v for v in releases if SpecifierSet(target).contains(v))


def test_recommended_sets_are_themselves_clean() -> None:
    """Re-resolving a recommended set gives no error: recommendations never contradict the matrix."""
    report = resolve({"aimet-torch": "2.42.0", "torch": "2.2.2", "python": "3.11.7", "numpy": "2.4.6"})
    for rec in report.recommendations:
        if rec.kind == "code":
            continue
        planned = {c.package: _concrete(c.target) for c in rec.changes}
        again = resolve({"aimet-torch": "2.42.0", "torch": "2.2.2", "python": "3.11.7", "numpy": "2.4.6", **planned})
        assert again.verdict is not Verdict.PROBLEMS, (rec.summary, [f.id for f in again.findings])
