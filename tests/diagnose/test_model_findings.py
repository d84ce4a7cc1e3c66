"""The verdict about this environment and the user's model (`--model`), on recorded facts and stand-in probes.

The model runs here are the shapes the probe script reports (qatdoctor/environment/_probe.py, `"model"`), with the
outcomes measured on real RTMDet-tiny (shared/evidence/real-models.md); the integration tests run them for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qatdoctor import core
from qatdoctor.environment.probe import from_payload
from qatdoctor.jsonio import facts_from_dict
from qatdoctor.knowledge.load import load
from qatdoctor.records import (
    ConstructHit,
    ErrorInfo,
    Fact,
    Facts,
    ModelRun,
    ProbeRun,
    Report,
    Scope,
    Severity,
    StageResult,
    Status,
    Verdict,
    told,
)

DATA = Path(__file__).resolve().parents[1] / "data"
NATIVE_BN = ErrorInfo(
    "RuntimeError",
    "The function 'native_batch_norm' is not differentiable with respect to argument 'running_mean'. "
    "This input cannot have requires_grad True.",
)
SILU = ErrorInfo("ValueError", "not enough values to unpack (expected at least 2, got 1)")
STEM = ("backbone.stem.0.bn", "backbone.stem.1.bn", "backbone.stem.2.bn")
P, F, S, K = Status.PASS, Status.FAIL, Status.SILENT_FAIL, Status.SKIPPED


def facts(env: str, **extra: str) -> Facts:
    recorded = facts_from_dict(json.loads((DATA / "verify" / f"{env}.facts.json").read_text()))
    return recorded.with_values({name: Fact.known(value) for name, value in extra.items()})


def stand_ins(env: str) -> ProbeRun:
    return from_payload(json.loads((DATA / "probe" / f"{env}.json").read_text()))


def stage(name: str, status: Status, error: ErrorInfo | None = None, check: str | None = None,
          layers: tuple[str, ...] = ()) -> StageResult:  # fmt: skip
    return StageResult(name, status, error=error, check=check, measured="measured" if check else None, layers=layers)


def model_run(constructs: dict[str, tuple[str, ...]], *stages: StageResult, status: str = "ran") -> ModelRun:
    return ModelRun(
        "rtmdet_tiny.py:build",
        status,
        class_name="RTMDetWrapper",
        modules=300,
        constructs={c: ConstructHit(len(layers), layers) for c, layers in constructs.items()},
        stages=stages,
    )


def diagnose(env: str, run: ModelRun | None, **extra: str) -> Report:
    probe = stand_ins(env)._replace(model=run)
    return core.diagnose(facts(env, **extra), load(), command="check", target=env, probe=probe)


# RTMDet-tiny as measured: 76 _BatchNormXd, SiLU everywhere, a shared conv per SepBN level.
RTMDET = {"bn-subclass": STEM, "silu-activation": ("backbone.stem.0.activate",),
          "shared-conv-multi-bn": ("bbox_head.rtm_cls.0",)}  # fmt: skip
RTMDET_1_32_2 = model_run(
    RTMDET,
    stage("prepare", S, check="training_false_baked", layers=STEM),
    stage("quantsim", P),
    stage("compute_encodings", P),
    stage("qat_step", F, error=NATIVE_BN),
    stage("fold", F, error=ErrorInfo("KeyError", "'1'", ("aimet_torch/meta/connectedgraph.py:593 in _process",))),
    stage("fold_prepared", P),
)
RTMDET_2_42_0 = model_run(
    RTMDET,
    stage("prepare", S, check="training_false_baked", layers=STEM),
    stage("quantsim", P),
    stage("compute_encodings", P),
    stage("qat_step", S, check="bn_stats_frozen", layers=STEM),
    stage("fold", S, check="fold_output_changed"),
    stage("fold_prepared", P),
)
RESNET = model_run({}, *(stage(s, P) for s in ("prepare", "quantsim", "compute_encodings", "qat_step", "fold")))


def by_id(report: Report) -> dict[str, object]:
    return {f.id: f for f in report.findings}


@pytest.mark.parametrize(
    ("env", "run", "extra", "verdict"),
    [
        pytest.param("aimet-1.32.2", None, {}, Verdict.OK, id="1.32.2-no-model-known-good-is-ok"),
        pytest.param("aimet-2.42.0", None, {}, Verdict.OK, id="2.42.0-no-model-known-good-is-ok"),
        pytest.param("aimet-1.32.2", None, {"mmengine": "0.10.7"}, Verdict.UNKNOWN, id="mmengine-installed-is-unknown"),
        pytest.param("aimet-2.42.0", None, {"timm": "1.0.15"}, Verdict.UNKNOWN, id="timm-installed-is-unknown"),
        pytest.param("aimet-1.32.2", RTMDET_1_32_2, {"mmengine": "0.10.7"}, Verdict.PROBLEMS, id="rtmdet-on-1.32.2"),
        pytest.param("aimet-2.42.0", RTMDET_2_42_0, {}, Verdict.PROBLEMS, id="rtmdet-on-2.42.0"),
        pytest.param("aimet-2.42.0", RESNET, {"mmengine": "0.10.7"}, Verdict.OK, id="clean-model-settles-the-caveats"),
    ],
)  # fmt: skip
def test_the_verdict_is_about_this_environment_and_this_model(
    env: str, run: ModelRun | None, extra: dict[str, str], verdict: Verdict
) -> None:
    report = diagnose(env, run, **extra)
    assert report.verdict is verdict, [(f.id, f.scope.value, f.status.value) for f in report.findings]
    # No OK or UNKNOWN above a failure that counts; caveats never fail.
    failing = [f for f in report.findings if f.failed and f.severity is Severity.ERROR]
    assert bool(failing) == (verdict is Verdict.PROBLEMS)
    assert all(f.status is not Status.FAIL for f in report.findings if f.scope is Scope.CAVEAT)
    if run is not None:
        assert not [f for f in report.findings if f.scope is Scope.CAVEAT], "the model settles every caveat"


def test_without_a_model_construct_knowledge_is_caveats_with_stand_in_evidence() -> None:
    report = diagnose("aimet-1.32.2", None)
    crash = by_id(report)["bn-subclass-qat-crash-v1"]
    assert crash.scope is Scope.CAVEAT and crash.origin == "probe" and crash.likely is None  # type: ignore[attr-defined]
    assert any("bn_subclass/train qat_step" in e for e in crash.evidence)  # type: ignore[attr-defined]
    assert not report.recommendations, "caveats never drive version moves"


def test_likely_caveats_name_the_package_that_produces_the_construct() -> None:
    report = diagnose("aimet-1.32.2", None, mmengine="0.10.7")
    likely = {f.id: f.likely for f in report.findings if f.likely}
    assert set(likely) == {"bn-subclass-qat-crash-v1"}
    assert "mmengine 0.10.7" in likely["bn-subclass-qat-crash-v1"] and "_BatchNormXd" in likely["bn-subclass-qat-crash-v1"]


def test_caveats_of_an_absent_package_are_not_shown() -> None:
    ids = {f.id for f in diagnose("aimet-2.42.0", None).findings}
    assert "efficient-conv-bn-eval-drops-bn" not in ids  # mmcv is absent: the construct cannot occur
    ids = {f.id for f in diagnose("aimet-2.42.0", None, mmcv="2.1.0").findings}
    assert "efficient-conv-bn-eval-drops-bn" in ids


def test_rtmdet_on_1_32_2_names_its_layers_and_ranks_the_bn_swap_first() -> None:
    report = diagnose("aimet-1.32.2", RTMDET_1_32_2, mmengine="0.10.7")
    found = by_id(report)
    crash = found["bn-subclass-qat-crash-v1"]
    assert (crash.scope, crash.status, crash.severity) == (Scope.MODEL, Status.FAIL, Severity.ERROR)  # type: ignore[attr-defined]
    assert crash.layers[:3] == STEM  # type: ignore[attr-defined]
    assert any("native_batch_norm" in e for e in crash.evidence)  # type: ignore[attr-defined]
    # The real model's fold raises on 1.32.2 where the stand-in only drifts: the matrix knows it from RTMDet.
    assert found["shared-conv-fold-keyerror-1.32.2"].status is Status.FAIL  # type: ignore[attr-defined]
    # Constructs RTMDet does not have are not applicable, and say so.
    assert found["functional-bn-qat-crash-v1"].status is Status.NOT_APPLICABLE  # type: ignore[attr-defined]
    assert not [f for f in report.findings if f.id.startswith("model.unexplained")]
    # No version clears the BN-subclass failure (2.x freezes it): the code fix comes first.
    first = report.recommendations[0]
    assert first.kind == "code" and "make_qat_safe" in "\n".join(first.notes)
    moves = [r for r in report.recommendations if r.kind != "code"]
    assert moves and all("bn-subclass-stats-frozen-v2" in r.model_failures for r in moves)
    # A move that adds the SiLU failure (2.0-2.9) never ranks above one that does not.
    silu = [i for i, r in enumerate(moves) if "silu-quantsim-valueerror-2.0.0" in r.model_failures]
    clean = [i for i, r in enumerate(moves) if "silu-quantsim-valueerror-2.0.0" not in r.model_failures]
    assert not silu or not clean or max(clean) < min(silu)
    # Moving 1.x code to 2.x needs porting to the v2 API, and says so.
    assert all(any("v1 → v2 QuantSim API" in n for n in r.notes) for r in moves)


def test_rtmdet_on_2_42_0_is_the_freeze_and_only_a_code_fix() -> None:
    report = diagnose("aimet-2.42.0", RTMDET_2_42_0)
    frozen = by_id(report)["bn-subclass-stats-frozen-v2"]
    assert frozen.status is Status.FAIL and frozen.layers[:3] == STEM  # type: ignore[attr-defined]
    assert [r.kind for r in report.recommendations][:1] == ["code"]


def test_a_construct_the_run_did_not_reproduce_passes_with_its_layers() -> None:
    run = model_run({"shared-conv-multi-bn": ("head.conv",)},
                    *(stage(s, P) for s in ("prepare", "quantsim", "compute_encodings", "qat_step", "fold")))  # fmt: skip
    finding = by_id(diagnose("aimet-2.42.0", run))["shared-conv-fold-corrupts-output"]
    assert finding.status is Status.PASS and finding.layers == ("head.conv",)  # type: ignore[attr-defined]
    assert "not reproduced" in told(finding)  # type: ignore[arg-type]


def test_an_unexplained_failure_of_the_model_is_a_problem_with_its_layers() -> None:
    run = model_run({}, stage("prepare", P), stage("quantsim", F, error=ErrorInfo("TypeError", "odd op")),
                    stage("compute_encodings", K), stage("qat_step", K))  # fmt: skip
    report = diagnose("aimet-2.42.0", run)
    assert report.verdict is Verdict.PROBLEMS
    assert by_id(report)["model.unexplained.quantsim"].scope is Scope.MODEL  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", ["factory-failed", "bad-spec", "bad-input", "crashed"])
def test_a_model_that_cannot_be_examined_is_a_problem_and_the_caveats_stay(status: str) -> None:
    run = ModelRun("m.py:build", status, error=ErrorInfo("ModuleNotFoundError", "No module named 'mmdet'"))
    report = diagnose("aimet-1.32.2", run)
    failed = by_id(report)[f"model.{status}"]
    assert failed.status is Status.FAIL and failed.severity is Severity.ERROR  # type: ignore[attr-defined]
    assert report.verdict is Verdict.PROBLEMS
    assert any(f.scope is Scope.CAVEAT for f in report.findings)


def test_a_silu_model_on_2_0_0_fails_at_quantsim_and_an_upgrade_clears_it() -> None:
    facts_200 = facts("aimet-2.0.0-torch-2.2.2-py310")
    run = model_run({"silu-activation": ("act",)}, stage("prepare", P), stage("quantsim", F, error=SILU),
                    stage("compute_encodings", K), stage("qat_step", K), stage("fold", P))  # fmt: skip
    probe = ProbeRun("ran", api="v2", model=run)
    report = core.diagnose(facts_200, load(), command="check", target="2.0.0", probe=probe)
    silu = by_id(report)["silu-quantsim-valueerror-2.0.0"]
    assert silu.status is Status.FAIL and silu.layers == ("act",)  # type: ignore[attr-defined]
    first = report.recommendations[0]
    assert first.kind != "code" and not first.model_failures, first


@pytest.mark.parametrize(
    ("env", "run", "finding_id", "headline"),
    [
        pytest.param("aimet-1.32.2", RTMDET_1_32_2, "bn-subclass-qat-crash-v1",
                     f"qat_step: RuntimeError: {NATIVE_BN.message}", id="the-reproduced-error"),
        pytest.param("aimet-1.32.2", RTMDET_1_32_2, "shared-conv-fold-keyerror-1.32.2", "fold: KeyError: '1'",
                     id="an-error-without-layers"),
        pytest.param("aimet-2.42.0", RTMDET_2_42_0, "bn-subclass-stats-frozen-v2",
                     "prepare: training_false_baked: measured", id="a-silent-failure-its-first-stage"),
        pytest.param("aimet-1.32.2", model_run(RTMDET, stage("prepare", S, check="training_false_baked"),
                                               stage("quantsim", F, error=SILU)),
                     "model.unexplained.quantsim", f"quantsim: ValueError: {SILU.message}", id="unexplained"),
    ],
)  # fmt: skip
def test_a_model_finding_leads_with_what_shows_it(env: str, run: ModelRun, finding_id: str, headline: str) -> None:
    found = by_id(diagnose(env, run))[finding_id]
    assert getattr(found, "headline", None) == headline, found
