"""`qatdoctor check` with the real probe in the real reference environments (scripts/refenvs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from tests.conftest import reference_python

pytestmark = pytest.mark.integration
RUNNING_MEAN = "not differentiable with respect to argument 'running_mean'"


@cache
def check(env: str) -> tuple[int, dict[str, Any], str]:
    """One full `qatdoctor check --format json` per env, shared by the tests below."""
    python = reference_python(env)
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stderr


def stage(report: dict[str, Any], model: str, mode: str, name: str) -> dict[str, Any]:
    case = next(c for c in report["probe"]["cases"] if c["model"] == model and c["mode"] == mode)
    return next(s for s in case["stages"] if s["stage"] == name)


def finding(report: dict[str, Any], finding_id: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["id"] == finding_id)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_1_32_2_reproduces_the_qat_step_crash_in_both_modes(mode: str) -> None:
    code, report, _ = check("aimet-1.32.2")
    assert code == 1 and report["verdict"] == "problems"
    qat = stage(report, "bn_subclass", mode, "qat_step")
    assert qat["status"] == "fail" and qat["error"]["type"] == "RuntimeError"
    assert RUNNING_MEAN in qat["error"]["message"]


def test_1_32_2_baseline_passes_end_to_end() -> None:
    _, report, _ = check("aimet-1.32.2")
    for mode in ("train", "eval"):
        case = next(c for c in report["probe"]["cases"] if c["model"] == "baseline" and c["mode"] == mode)
        assert [s["status"] for s in case["stages"]] == ["pass"] * len(case["stages"]), case


def test_1_32_2_names_the_rule_and_recommends_bn_swap_and_upgrade() -> None:
    _, report, _ = check("aimet-1.32.2")
    crash = finding(report, "bn-subclass-qat-crash-v1")
    assert crash["status"] == "fail" and crash["severity"] == "error" and crash["origin"] == "probe"
    assert any("issues/3152" in s["ref"] for s in crash["sources"])
    recs = report["recommendations"]
    assert any(r["kind"] == "code" and "nn.BatchNorm2d" in json.dumps(r) for r in recs)
    upgrades = [r for r in recs for c in r["changes"] if c["package"] == "aimet-torch" and c["to"].startswith("2.")]
    assert upgrades, recs
    assert "does not help" in finding(report, "probe.eval-before-prepare")["title"]


def test_2_42_0_baseline_passes_and_bn_subclass_freezes_silently() -> None:
    code, report, _ = check("aimet-2.42.0")
    assert code == 1
    assert report["probe"]["api"] == "v2"
    for mode in ("train", "eval"):
        assert all(s["status"] == "pass" for s in next(
            c for c in report["probe"]["cases"] if c["model"] == "baseline" and c["mode"] == mode)["stages"])
        qat = stage(report, "bn_subclass", mode, "qat_step")
        assert qat["status"] == "silent-fail" and qat["check"] == "bn_stats_frozen" and qat["error"] is None
    frozen = finding(report, "bn-subclass-stats-frozen-v2")
    assert frozen["origin"] == "probe" and frozen["status"] == "fail"
    assert any(r["kind"] == "code" and "nn.BatchNorm2d" in json.dumps(r) for r in report["recommendations"])


def test_broken_env_is_an_import_failure_with_the_matching_rule() -> None:
    code, report, _ = check("broken-2.42.0-torch-2.2.2")
    assert code == 1
    assert report["probe"]["state"] == "import-failed"
    assert "_detect_fake_mode_from_gm" in report["probe"]["import_error"]["message"]
    rule = finding(report, "aimet-2.42-torch-2.2-import-error")
    assert rule["origin"] == "probe" and rule["status"] == "fail"
    assert any(r["kind"] == "keep-aimet" for r in report["recommendations"])


def test_probe_reports_per_stage_timings() -> None:
    _, report, _ = check("aimet-2.42.0")
    timings = report["probe"]["timings"]
    assert timings["total"] > 0 and any(k.startswith("stage.") for k in timings)
    assert report["timings"]["probe"] > 0
