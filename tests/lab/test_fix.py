"""`qatdoctor fix`: the previous set is saved and restored exactly, a failed install is rolled back, an environment
qatdoctor cannot restore (conda's torch) is refused, and nothing changes without verify's proof or consent.

The apply/undo cycle runs real pip in a real throwaway venv on a small package, `six` (PyPI, ~10 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.environment.runner import Completed
from qatdoctor.exitcodes import ExitCode
from qatdoctor.lab import fix
from qatdoctor.records import (
    Change,
    Facts,
    Finding,
    MatrixInfo,
    Recommendation,
    Report,
    Scope,
    Severity,
    Status,
    Verdict,
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("fixenv")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    python = str(home / "venv" / "bin" / "python")
    done = subprocess.run([python, "-m", "pip", "install", "-q", "six==1.16.0"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"cannot install six from PyPI for the fix test: {done.stderr[-500:]}")
    return python


def installed(python: str) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout
    return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


def rec(python: str, *pins: str) -> Recommendation:
    command = " ".join([python, "-m", "pip", "install", *(f'"{p}"' for p in pins)])
    return Recommendation("rec.newest", "newest", "test move", (Change("six", "1.16.0", "1.17.0"),), (command,))


def test_apply_then_undo_restores_the_exact_set(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    backup = fix.apply(rec(venv, "six==1.17.0", "packaging==24.1"), venv, tmp_path)
    after = installed(venv)
    assert after["six"] == "1.17.0" and after["packaging"] == "24.1"
    assert json.loads(backup.path.read_text())["freeze"] == [f"{k}=={v}" for k, v in before.items()]
    fix.restore(fix.latest_backup(tmp_path, venv))
    assert installed(venv) == before, "six back to 1.16.0, packaging (added by the fix) removed"


def test_a_failed_install_is_rolled_back(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    with pytest.raises(fix.InstallFailed, match="pip install failed") as caught:
        fix.apply(rec(venv, "six==1.17.0", "no-such-package-qatdoctor-test==1.0"), venv, tmp_path)
    assert caught.value.hint is not None and "restored" in caught.value.hint
    assert installed(venv) == before


def test_a_conda_managed_torch_is_refused(tmp_path: Path) -> None:
    answer = json.dumps({"prefix": "/opt/conda/envs/qat", "conda": True, "torch": "conda", "aimet-torch": None})

    def runner(argv: Any, **kwargs: Any) -> Completed:
        assert "pip" not in argv, "nothing is installed or frozen before the check"
        return Completed(tuple(argv), 0, answer + "\n", "", 0.1)

    with pytest.raises(fix.FixError, match="installed by conda"):
        fix.apply(rec("/opt/conda/envs/qat/bin/python", "torch==2.2.2"), "/opt/conda/envs/qat/bin/python", tmp_path,
                  runner=runner)  # fmt: skip
    assert not list(tmp_path.rglob("*.json")), "no backup: nothing was going to change"


def test_only_the_recommendations_own_command_for_this_interpreter_runs(tmp_path: Path) -> None:
    with pytest.raises(fix.FixError, match="not a pip install in /env/bin/python"):
        fix.command_argv(rec("/other/bin/python", "torch==2.2.2"), "/env/bin/python")


def test_undo_without_a_saved_set_says_so(tmp_path: Path) -> None:
    with pytest.raises(fix.FixError, match="nothing to undo"):
        fix.latest_backup(tmp_path, "/env/bin/python")


def test_cli_undo_needs_consent_off_a_terminal_and_restores_with_yes(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    fix.apply(rec(venv, "six==1.17.0"), venv, tmp_path)  # what `qatdoctor fix` saves before it changes anything
    env = {"NO_COLOR": "1", "QATDOCTOR_ENVS": str(tmp_path / "envs")}  # backups live beside the envs
    refused = CliRunner().invoke(app, ["fix", "--undo", "--python", venv], env=env)
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.stderr
    assert installed(venv)["six"] == "1.17.0", "nothing restored without consent"
    done = CliRunner().invoke(app, ["fix", "--undo", "--yes", "--python", venv], env=env)
    assert done.exit_code == ExitCode.OK, done.stderr
    assert installed(venv) == before


def _report(*findings: Finding) -> Report:
    return Report("check", Verdict.OK, Facts(), findings, (), MatrixInfo("m", "v", "d", "s"), "t")


def test_an_applied_set_worse_than_verified_is_a_regression() -> None:
    """Measured on the 1.32.2 overlay env: `pip install aimet-torch==2.0.0` in place kept 1.32.2's protobuf
    and `import aimet_torch` failed, though verify's fresh env of the same pins imported fine."""
    import_failed = Finding("probe.unexplained.any.import", "Probe: import of aimet_torch fails", Severity.ERROR, "")
    silu = Finding("silu-quantsim-valueerror-2.0.0", "SiLU", Severity.ERROR, "", scope=Scope.MODEL)
    caveat = Finding("x", "caveat", Severity.ERROR, "", status=Status.UNKNOWN, scope=Scope.CAVEAT)
    assert fix.regressions(_report(silu), _report(silu, import_failed)) == [
        "Probe: import of aimet_torch fails (probe.unexplained.any.import)"
    ]
    assert fix.regressions(_report(silu), _report(silu, caveat)) == [], "model failures and caveats were proved"
    assert fix.regressions(_report(import_failed), _report(import_failed)) == []
