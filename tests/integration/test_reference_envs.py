"""`qatdoctor check` with the real probe in the real reference environments (scripts/refenvs.py), without and with
the user's own model: real RTMDet-tiny (mmdet 3.3.0), torchvision, timm and mmengine models in the overlay envs
(`aimet-*-models`: the reference env plus model libraries installed with its own pins as constraints)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_python

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUNNING_MEAN = "not differentiable with respect to argument 'running_mean'"
RTMDET = str(ROOT / "examples" / "models" / "rtmdet_tiny.py")


@cache
def check(env: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """One full `qatdoctor check --format json` per env and arguments, shared by the tests below."""
    python = reference_python(env)
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json", *args],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout), done.stderr


def stage(report: dict[str, Any], model: str, mode: str, name: str) -> dict[str, Any]:
    case = next(c for c in report["probe"]["cases"] if c["model"] == model and c["mode"] == mode)
    return next(s for s in case["stages"] if s["stage"] == name)


def finding(report: dict[str, Any], finding_id: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["id"] == finding_id)


def model_stage(report: dict[str, Any], name: str, run: str = "as given") -> dict[str, Any]:
    model = report["probe"]["model"] if run == "as given" else report["probe"]["model"]["fixed"]
    return next(s for s in model["stages"] if s["stage"] == name)


# --- without --model: the verdict is about the environment; constructs are caveats ---------------------------


@pytest.mark.parametrize("env", ["aimet-1.32.2", "aimet-2.42.0"])
def test_a_known_good_environment_without_model_libraries_is_ok(env: str) -> None:
    code, report, stderr = check(env)
    assert (code, report["verdict"]) == (0, "ok"), [(f["id"], f["status"], f["scope"]) for f in report["findings"]]
    assert "@qatdoctor-probe" not in stderr
    for mode in ("train", "eval"):
        case = next(c for c in report["probe"]["cases"] if c["model"] == "baseline" and c["mode"] == mode)
        assert [s["status"] for s in case["stages"]] == ["pass"] * len(case["stages"]), case
    caveats = [f for f in report["findings"] if f["scope"] == "caveat"]
    assert caveats and all(f["status"] != "fail" and f["likely"] is None for f in caveats)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_1_32_2_stand_in_reproduces_the_qat_step_crash_as_a_caveat(mode: str) -> None:
    _, report, _ = check("aimet-1.32.2")
    qat = stage(report, "bn_subclass", mode, "qat_step")
    assert qat["status"] == "fail" and qat["error"]["type"] == "RuntimeError" and RUNNING_MEAN in qat["error"]["message"]
    crash = finding(report, "bn-subclass-qat-crash-v1")
    assert (crash["scope"], crash["origin"], crash["construct"]) == ("caveat", "probe", "bn-subclass")
    assert any("issues/3152" in s["ref"] for s in crash["sources"])
    assert "does not help" in finding(report, "probe.eval-before-prepare")["title"]


def test_2_42_0_stand_in_freezes_silently_as_a_caveat() -> None:
    _, report, _ = check("aimet-2.42.0")
    assert report["probe"]["api"] == "v2"
    for mode in ("train", "eval"):
        qat = stage(report, "bn_subclass", mode, "qat_step")
        assert qat["status"] == "silent-fail" and qat["check"] == "bn_stats_frozen" and qat["error"] is None
    assert finding(report, "bn-subclass-stats-frozen-v2")["scope"] == "caveat"


def test_an_environment_holding_mmengine_is_unknown_until_the_model_is_seen() -> None:
    code, report, _ = check("aimet-1.32.2-models")
    assert (code, report["verdict"]) == (0, "unknown")
    likely = {f["id"]: f["likely"] for f in report["findings"] if f["likely"]}
    assert "bn-subclass-qat-crash-v1" in likely and "mmengine 0.10.7" in likely["bn-subclass-qat-crash-v1"]
    assert report["facts"]["mmcv"]["value"] == "2.1.0", "mmcv-lite provides mmcv"


def test_broken_env_is_an_import_failure_with_the_matching_rule() -> None:
    code, report, _ = check("broken-2.42.0-torch-2.2.2")
    assert code == 1
    assert report["probe"]["state"] == "import-failed"
    assert "_detect_fake_mode_from_gm" in report["probe"]["import_error"]["message"]
    rule = finding(report, "aimet-2.42-torch-2.2-import-error")
    assert rule["origin"] == "probe" and rule["status"] == "fail" and rule["scope"] == "environment"
    assert any(r["kind"] == "keep-aimet" for r in report["recommendations"])


def test_probe_reports_per_stage_timings() -> None:
    _, report, _ = check("aimet-2.42.0", "--no-cache")
    timings = report["probe"]["timings"]
    assert timings["total"] > 0 and any(k.startswith("stage.") for k in timings)
    assert report["timings"]["probe"] > 0


# --- with --model: real third-party models -------------------------------------------------------------------


def test_rtmdet_on_the_3152_stack_crashes_names_its_layers_and_ranks_the_bn_swap_first() -> None:
    code, report, _ = check("aimet-1.32.2-models", "--model", f"{RTMDET}:build")
    assert (code, report["verdict"]) == (1, "problems")
    model = report["probe"]["model"]
    assert model["status"] == "ran" and model["scan"]["constructs"]["bn-subclass"]["count"] == 76
    assert model["scan"]["constructs"]["bn-subclass"]["classes"] == {"mmengine.model.utils._BatchNormXd": 76}
    qat = model_stage(report, "qat_step")
    assert qat["status"] == "fail" and RUNNING_MEAN in qat["error"]["message"]
    crash = finding(report, "bn-subclass-qat-crash-v1")
    assert (crash["scope"], crash["status"], crash["severity"]) == ("model", "fail", "error")
    assert crash["layers"][0].startswith("backbone.stem.") and len(crash["layers"]) == 76
    # The real model's fold raises where the stand-in only drifts (real-models.md), and the matrix knows it.
    fold = model_stage(report, "fold")
    assert fold["status"] == "fail" and fold["error"]["type"] == "KeyError"
    assert finding(report, "shared-conv-fold-keyerror-1.32.2")["status"] == "fail"
    assert not [f for f in report["findings"] if f["scope"] == "caveat"]
    assert not [f for f in report["findings"] if f["id"].startswith("model.unexplained")]
    recs = report["recommendations"]
    assert recs[0]["kind"] == "code" and "make_qat_safe" in json.dumps(recs[0])
    moves = [r for r in recs if r["kind"] != "code"]
    assert moves and all("bn-subclass-stats-frozen-v2" in r["model_failures"] for r in moves)
    silu = [i for i, r in enumerate(moves) if "silu-quantsim-valueerror-2.0.0" in r["model_failures"]]
    assert not silu or min(silu) > 0, "2.0-2.9 (SiLU) never ranks first"


def test_rtmdet_on_2_42_0_freezes_and_the_fix_makes_every_running_stat_update() -> None:
    code, report, _ = check("aimet-2.42.0-models", "--model", f"{RTMDET}:build", "--with-fixes")
    assert code == 1
    model = report["probe"]["model"]
    qat = model_stage(report, "qat_step")
    assert qat["status"] == "silent-fail" and qat["check"] == "bn_stats_frozen"
    assert (model["bn"]["buffers"], model["bn"]["changed"]) == (152, 0)
    frozen = finding(report, "bn-subclass-stats-frozen-v2")
    assert frozen["status"] == "fail" and len(frozen["layers"]) == 76
    fixed = model["fixed"]
    assert fixed["fixes"]["output_check"]["status"] == "pass" and len(fixed["fixes"]["swapped"]) == 76
    assert (fixed["bn"]["buffers"], fixed["bn"]["changed"]) == (152, 152)
    assert model_stage(report, "qat_step", "fixed")["status"] == "pass"
    assert model_stage(report, "fold_prepared", "fixed")["status"] == "pass"
    # Folding the ORIGINAL model still changes the output (the SepBN head's shared convs): its own code fix.
    shared = finding(report, "shared-conv-fold-corrupts-output")
    assert shared["status"] == "fail" and shared["origin"] == "probe"


def test_rtmdet_with_efficient_conv_bn_eval_has_its_construct_found() -> None:
    _, report, _ = check("aimet-1.32.2-models", "--model", f"{RTMDET}:build_efficient_conv_bn_eval")
    hit = report["probe"]["model"]["scan"]["constructs"]["mmcv-efficient-conv-bn-eval"]
    assert hit["count"] == 76
    assert finding(report, "efficient-conv-bn-eval-drops-bn")["status"] == "fail"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_classifiers_pass_on_2_42_0(name: str) -> None:
    spec = f"{ROOT / 'examples' / 'models' / 'torchvision_models.py'}:{name}"
    code, report, _ = check("aimet-2.42.0", "--model", spec)
    assert (code, report["verdict"]) == (0, "ok"), [(f["id"], f["status"]) for f in report["findings"]]
    assert [s["status"] for s in report["probe"]["model"]["stages"]] == ["pass"] * 6
    assert finding(report, "model.pipeline")["status"] == "pass"


def test_real_mmengine_batchnormxd_is_found_and_freezes_on_2_42_0() -> None:
    spec = f"{ROOT / 'examples' / 'models' / 'mmengine_syncbn.py'}:build"
    _, report, _ = check("aimet-2.42.0-models", "--model", spec)
    hit = report["probe"]["model"]["scan"]["constructs"]["bn-subclass"]
    assert hit["classes"] == {"mmengine.model.utils._BatchNormXd": 4}
    assert finding(report, "bn-subclass-stats-frozen-v2")["status"] == "fail"


def test_timm_norm_act_layers_are_swapped_keeping_their_activation() -> None:
    spec = f"{ROOT / 'examples' / 'models' / 'timm_models.py'}:mobilenetv3_small_050"
    _, report, _ = check("aimet-2.42.0-models", "--model", spec, "--with-fixes")
    model = report["probe"]["model"]
    assert any("BatchNormAct2d" in cls for cls in model["scan"]["constructs"]["bn-subclass"]["classes"])
    swapped = model["fixed"]["fixes"]["swapped"]
    assert swapped and all(s["to"].startswith("torch.nn.Sequential") or "BatchNorm" in s["to"] for s in swapped)
    assert any("act=" in s["to"] for s in swapped), swapped[:3]
    assert model["fixed"]["fixes"]["output_check"]["status"] == "pass"
    assert model_stage(report, "qat_step", "fixed")["status"] == "pass"


def test_a_factory_that_raises_is_a_finding_not_a_traceback() -> None:
    spec = f"{ROOT / 'tests' / 'data' / 'models' / 'broken.py'}:raises"
    code, report, stderr = check("aimet-2.42.0", "--model", spec)
    assert code == 1 and "Traceback" not in stderr
    failed = next(f for f in report["findings"] if f["id"].startswith("model."))
    assert failed["status"] == "fail" and failed["scope"] == "model"


@pytest.mark.parametrize("env", ["aimet-1.32.2", "aimet-2.42.0", "broken-2.42.0-torch-2.2.2", "aimet-1.32.2-models"])
def test_the_report_fits_a_github_issue_and_replays(env: str, tmp_path: Path) -> None:
    python = reference_python(env)
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "-q", "report", "--python", python],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.stdout.startswith("### qatdoctor report:") and "Traceback" not in done.stderr
    assert len(done.stdout) <= 60_000, len(done.stdout)
    assert "<details>" in done.stdout
    bundle = tmp_path / "issue.md"
    bundle.write_text(done.stdout)
    replay = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "report", "--from-report", str(bundle), "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(replay.stdout)["facts"]["aimet-torch"]["value"], replay.stderr
