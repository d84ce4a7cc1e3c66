"""The GitHub Action (action.yml) runs its steps from scripts/gh-action.sh: this runs them as a workflow would, on
the real reference environments, and checks that the job fails exactly when `qatdoctor check` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, reference_python

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
SCRIPT = '"$GITHUB_ACTION_PATH/scripts/gh-action.sh"'


def test_the_action_runs_the_tested_script_with_every_input() -> None:
    steps = ACTION["runs"]["steps"]
    assert ACTION["runs"]["using"] == "composite"
    assert [s["run"] for s in steps] == [f"bash {SCRIPT} install", f"bash {SCRIPT} check"]
    env = steps[1]["env"]
    for name in ACTION["inputs"]:
        key = "INPUT_" + name.upper().replace("-", "_")
        assert env[key] == "${{ inputs." + name + " }}", name
    assert set(env) == {"INPUT_" + n.upper().replace("-", "_") for n in ACTION["inputs"]}
    for output in ACTION["outputs"].values():
        assert output["value"].startswith("${{ steps.check.outputs.")


@cache
def _installed(runner_temp: str) -> Path:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gh-action.sh"), "install"], env=_env(Path(runner_temp)),
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(runner_temp) / "qatdoctor" / "venv" / "bin" / "qatdoctor"


def _env(runner_temp: Path, **inputs: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "VIRTUAL_ENV"))}
    env.update(RUNNER_TEMP=str(runner_temp), GITHUB_ACTION_PATH=str(ROOT), OMP_NUM_THREADS="1")
    env.update({"INPUT_" + k.upper(): v for k, v in inputs.items()})
    return env


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner-temp")


# (reference env, inputs, the verdict the JSON report must carry)
CASES = [
    ("aimet-2.42.0", {}, "ok"),
    ("broken-2.42.0-torch-2.2.2", {}, "problems"),
    ("aimet-2.42.0-models", {"strict": "true"}, "unknown"),  # mmengine makes a caveat likely: exit 3
    ("aimet-2.42.0-models", {"strict": "false"}, "unknown"),  # the same without --strict: exit 0
]


@pytest.mark.integration
@pytest.mark.parametrize(("env_name", "inputs", "verdict"), CASES)
def test_the_job_fails_by_qatdoctors_exit_code(
    runner_temp: Path, tmp_path: Path, env_name: str, inputs: dict[str, str], verdict: str
) -> None:
    qatdoctor = _installed(str(runner_temp))
    python = reference_python(env_name)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    env = _env(runner_temp, python=python, **inputs)
    env.update(GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs))
    job = subprocess.run(["bash", str(ROOT / "scripts" / "gh-action.sh"), "check"], env=env, capture_output=True,
                         text=True, timeout=900, check=False)  # fmt: skip
    direct = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json",
         *(["--strict"] if inputs.get("strict") == "true" else [])],
        capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert job.returncode == direct.returncode, (job.stderr[-3000:], direct.stderr[-2000:])
    assert json.loads(direct.stdout)["verdict"] == verdict
    said = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (said["verdict"], said["exit-code"]) == (verdict, str(job.returncode))
    assert json.loads(Path(said["report"]).read_text())["verdict"] == verdict
    assert summary.read_text().startswith("### qatdoctor report") and f"**{verdict.upper()}**" in summary.read_text()
    assert qatdoctor.exists()
