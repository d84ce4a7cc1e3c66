"""`qatdoctor fix` (lab/apply.py): the previous set is saved and restored exactly, a failed install is rolled
back, an environment qatdoctor cannot restore (conda's torch) is refused, and nothing changes without verify's
proof or consent.

The apply/undo cycle runs real pip in real throwaway venvs on small packages (`six`, `idna`; ~5 s a pip run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode
from qatdoctor.lab import apply, restore
from qatdoctor.lab.backup import BackupError, latest
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

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fixenv") / "venv"
    uv = Path(sys.executable).parent / "uv"
    make = [str(uv), "venv", "-q", "--seed", str(home)] if uv.exists() else [sys.executable, "-m", "venv", str(home)]
    subprocess.run(make, check=True)
    done = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", "six==1.16.0"],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.fail(f"cannot install six from the index for the fix test: {done.stderr[-500:]}")
    return home


@pytest.fixture
def venv(template: Path, tmp_path: Path) -> str:
    """A copy of the template for one test (a venv runs from a copy: `python -m pip`)."""
    return str(Path(shutil.copytree(template, tmp_path / "venv", symlinks=True)) / "bin" / "python")


def installed(python: str) -> dict[str, str]:
    out = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True).stdout
    return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


def rec(python: str, *pins: str) -> Recommendation:
    command = " ".join([python, "-m", "pip", "install", *(f'"{p}"' for p in pins)])
    return Recommendation("rec.newest", "newest", "test move", (Change("six", "1.16.0", "1.17.0"),), (command,))


def test_apply_then_undo_restores_the_exact_set(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    backup = apply.apply(rec(venv, "six==1.17.0", "idna==3.6"), venv, tmp_path)
    assert installed(venv) == {**before, "six": "1.17.0", "idna": "3.6"}
    content = json.loads(backup.path.read_text())["content"]
    assert content["saved"] == [f"{k}=={v}" for k, v in before.items()]
    assert content["installed"] == ["idna==3.6", "six==1.17.0"], "what the fix installed, with its versions"
    assert content["interpreter"]["path"] == venv and content["interpreter"]["prefix"] == str(Path(venv).parents[1])
    plan = restore.plan_undo(tmp_path, venv)
    assert [e.requirement for e in plan.reinstall] == ["six==1.16.0"] and plan.remove == ("idna",)
    restore.execute(plan)
    assert installed(venv) == before, "six back to 1.16.0, idna (added by the fix) removed"


def test_a_failed_install_is_rolled_back(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    with pytest.raises(apply.InstallFailed, match="pip install failed") as caught:
        apply.apply(rec(venv, "six==1.17.0", "no-such-package-qatdoctor-test==1.0"), venv, tmp_path)
    assert caught.value.hint is not None and "restored" in caught.value.hint
    assert installed(venv) == before


def test_a_conda_managed_torch_is_refused(venv: str, tmp_path: Path) -> None:
    prefix = Path(venv).parents[1]
    (prefix / "conda-meta").mkdir()
    info = prefix / SITE / "torch-2.2.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.2.2\n")
    (info / "INSTALLER").write_text("conda\n")
    before = installed(venv)
    with pytest.raises(restore.ChangeError, match="installed by conda"):
        apply.apply(rec(venv, "six==1.17.0"), venv, tmp_path / "root")
    assert not (tmp_path / "root").exists(), "no backup: nothing was going to change"
    assert installed(venv) == before


def test_only_the_recommendations_own_command_for_this_interpreter_runs() -> None:
    with pytest.raises(restore.ChangeError, match="not a pip install in /env/bin/python"):
        apply.command_argv(rec("/other/bin/python", "torch==2.2.2"), "/env/bin/python")


def test_undo_without_a_saved_set_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="nothing to undo"):
        latest(tmp_path, "/env/bin/python")


def test_cli_undo_needs_consent_off_a_terminal_and_restores_with_yes(venv: str, tmp_path: Path) -> None:
    before = installed(venv)
    apply.apply(rec(venv, "six==1.17.0"), venv, tmp_path)  # what `qatdoctor fix` saves before it changes anything
    env = {"NO_COLOR": "1", "QATDOCTOR_ENVS": str(tmp_path / "envs")}  # backups live beside the envs
    refused = CliRunner().invoke(app, ["fix", "--undo", "--python", venv], env=env)
    assert refused.exit_code == ExitCode.USAGE and "--yes" in refused.stderr
    assert "put back six==1.16.0" in refused.stderr, "the plan is shown before asking"
    assert installed(venv)["six"] == "1.17.0", "nothing restored without consent"
    done = CliRunner().invoke(app, ["fix", "--undo", "--yes", "--python", venv], env=env)
    assert done.exit_code == ExitCode.OK, done.stderr
    assert installed(venv) == before
    again = CliRunner().invoke(app, ["fix", "--undo", "--yes", "--python", venv], env=env)
    assert again.exit_code == ExitCode.OK and "nothing of the fix" in again.stdout, "a second undo changes nothing"


def _report(*findings: Finding) -> Report:
    return Report("check", Verdict.OK, Facts(), findings, (), MatrixInfo("m", "v", "d", "s"), "t")


def test_an_applied_set_worse_than_verified_is_a_regression() -> None:
    """Measured on the 1.32.2 overlay env: `pip install aimet-torch==2.0.0` in place kept 1.32.2's protobuf
    and `import aimet_torch` failed, though verify's fresh env of the same pins imported fine."""
    import_failed = Finding("probe.unexplained.any.import", "Probe: import of aimet_torch fails", Severity.ERROR, "")
    silu = Finding("silu-quantsim-valueerror-2.0.0", "SiLU", Severity.ERROR, "", scope=Scope.MODEL)
    caveat = Finding("x", "caveat", Severity.ERROR, "", status=Status.UNKNOWN, scope=Scope.CAVEAT)
    assert apply.regressions(_report(silu), _report(silu, import_failed)) == [
        "Probe: import of aimet_torch fails (probe.unexplained.any.import)"
    ]
    assert apply.regressions(_report(silu), _report(silu, caveat)) == [], "model failures and caveats were proved"
    assert apply.regressions(_report(import_failed), _report(import_failed)) == []
