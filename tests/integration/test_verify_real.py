"""`qatdoctor verify --model` end to end on the aimet-1.32.2 reference env: a real throwaway build of the first
recommendation (aimet-torch 2.42.0 + torch 2.10.0, the measured landing, from PyPI), two real probes with the
user's model. It downloads torch and aimet-torch (a few GB; uv's or pip's cache makes reruns fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import reference_python

pytestmark = pytest.mark.integration


def test_verify_on_the_1_32_2_stack_fixes_the_crash_and_names_what_remains(tmp_path: Path) -> None:
    python = reference_python("aimet-1.32.2")
    model = Path(__file__).resolve().parents[1] / "data" / "models" / "bn_subclass.py"
    envs = tmp_path / "envs"  # this run's own: nothing is shared with other runs of the suite
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "verify", "--python", python, "--model", f"{model}:build",
         "--format", "json"],
        capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, "OMP_NUM_THREADS": "1", "QATDOCTOR_ENVS": str(envs)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    v = json.loads(done.stdout)["verify"]
    assert v["result"] == "fixed" and v["mode"] == "recommendation"
    assert "bn-subclass-qat-crash-v1" in {e["id"] for e in v["fixed"]}
    frozen = next(e for e in v["remaining"] if e["id"] == "bn-subclass-stats-frozen-v2")
    assert frozen["was"] == ["bn-subclass-qat-crash-v1"] and "make_qat_safe" in frozen["note"]
    assert v["before"]["versions"]["aimet-torch"] == "1.32.2" and v["after"]["probe"]["state"] == "ran"
    assert v["after"]["probe"]["model"]["status"] == "ran", "the throwaway env was probed with the user's model too"
    assert v["env"]["kept"] is None
    assert not list((envs / "verify").glob("tmp-*")), "the throwaway env is removed"


def test_verify_without_a_model_on_a_known_good_env_has_nothing_to_do() -> None:
    python = reference_python("aimet-1.32.2")
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "verify", "--python", python],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 6 and "nothing to verify" in done.stderr and "--model" in done.stderr
