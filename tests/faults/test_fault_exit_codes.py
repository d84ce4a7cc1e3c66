"""Every error path has its documented exit code, one message line and no traceback (docs/guide.md "Exit codes").

Each case runs `python -m qatdoctor` as a real process: the launcher's own handling (closed or full output,
signals, the final cleanup) is part of what is tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faultkit import fake_target, finish, qatdoctor
from typer.testing import CliRunner

from qatdoctor import core
from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode

GOOD = ["-a", "aimet-torch=2.42.0", "-a", "torch=2.14.1+cu130", "-a", "python=3.11", "-a", "numpy=1.26.4",
        "-a", "glibc=2.35", "-a", "driver=580.95", "-a", "aimet-api=v2", "-a", "gpu=none"]  # fmt: skip
BAD = ["-a", "aimet-torch=2.42.0", "-a", "torch=2.2.2"]
UNKNOWN = ["-a", "aimet-torch=2.0.0", "-a", "torch=2.2.2", "-a", "python=3.10"]


def run(args: list[str], env: dict[str, str] | None = None, **kwargs: object) -> tuple[int, str, str]:
    return finish(qatdoctor(args, env=env, **kwargs), timeout=120)


def assert_clean(err: str) -> None:
    assert "Traceback" not in err, err
    assert "internal error" not in err, err


def test_0_ok() -> None:
    rc, out, err = run(["resolve", *GOOD, "-f", "json"])
    assert rc == ExitCode.OK, err
    assert json.loads(out)["verdict"] in ("ok", "unknown")
    assert_clean(err)


def test_1_problems() -> None:
    rc, out, err = run(["resolve", *BAD, "-f", "json"])
    assert rc == ExitCode.PROBLEMS, err
    assert json.loads(out)["verdict"] == "problems"
    assert_clean(err)


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--no-such-option"],
        ["check", "--probe-timeout", "nan"],
        ["check", "--probe-timeout", "inf"],
        ["check", "--probe-timeout", "0"],
        ["verify", "--installer", "bogus", *BAD],
        ["sweep", "--aimet", "2.42.0", "--torch", "2.14.1", "--installer", "bogus"],
        ["resolve", "-f", "yaml", *BAD],
        ["no-such-command"],
    ],
    ids=["unknown-option", "timeout-nan", "timeout-inf", "timeout-zero", "installer-verify", "installer-sweep",
         "format", "command"],
)
def test_2_usage(args: list[str]) -> None:
    rc, _, err = run(args)
    assert rc == ExitCode.USAGE, err
    assert_clean(err)


def test_3_unknown_with_strict() -> None:
    rc, out, err = run(["resolve", "--strict", *UNKNOWN, "-f", "json"])
    assert json.loads(out)["verdict"] == "unknown"
    assert rc == ExitCode.UNKNOWN, err
    assert_clean(err)


@pytest.mark.parametrize("content", ["not = [toml", "schema_version = 1\n", ""], ids=["syntax", "schema", "empty"])
def test_4_invalid_matrix(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text(content)
    rc, _, err = run(["resolve", *BAD, "--matrix", str(bad)])
    assert rc == ExitCode.MATRIX_INVALID, err
    assert_clean(err)
    assert err.count("\n") <= 25


@pytest.mark.parametrize("what", ["missing", "not-python", "garbage"])
def test_5_target_unusable(tmp_path: Path, token: str, what: str) -> None:
    if what == "missing":
        target = str(tmp_path / "nope" / "python")
    elif what == "not-python":
        path = tmp_path / "data.txt"
        path.write_text("hello")
        path.chmod(0o755)
        target = str(path)
    else:
        target = str(fake_target(tmp_path, token, collector="garbage", probe="garbage"))
    rc, _, err = run(["check", "--no-probe", "--python", target])
    assert rc == ExitCode.TARGET_UNUSABLE, err
    assert_clean(err)


@pytest.mark.parametrize(
    "args",
    [
        ["resolve", "-a", "torch=" + "1" * 5000],
        ["resolve", "-a", "torch=2.2.2", "-a", "torch=2.3.0"],
        ["resolve", "-a", "nonsense=1"],
        ["resolve", "-a", "torch=not-a-version"],
        ["explain", "/nonexistent/file.log"],
        ["report", "--from-report", "/nonexistent/report.json"],
    ],
    ids=["5000-digits", "duplicate-assume", "unknown-name", "bad-version", "missing-file", "missing-report"],
)
def test_6_bad_input(args: list[str]) -> None:
    rc, _, err = run(args)
    assert rc == ExitCode.BAD_INPUT, err
    assert_clean(err)


def test_6_explain_with_stdin_closed() -> None:
    """`qatdoctor explain - <&-`: one line, exit 6."""
    proc = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "explain", "-"], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, close_fds=True, preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    assert "stdin" in proc.stderr
    assert_clean(proc.stderr)


@pytest.mark.parametrize("command", [["resolve", *BAD, "-f", "json"], ["resolve", *GOOD], ["matrix", "list"]])
def test_6_output_to_a_full_device(command: list[str]) -> None:
    """`… > /dev/full`: the write fails; one line and exit 6, never a traceback or a 'problems' exit."""
    with open("/dev/full", "w") as full:  # noqa: PTH123
        rc, _, err = run(command, stdout=full)  # type: ignore[arg-type]
    assert rc == ExitCode.BAD_INPUT, err
    assert "No space left on device" in err
    assert_clean(err)


def test_6_output_closed() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "resolve", *BAD], capture_output=False, stdout=None, stderr=subprocess.PIPE,
        text=True, timeout=60, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
    assert_clean(proc.stderr)


@pytest.mark.parametrize("kind", ["file", "unwritable"])
def test_7_envs_root_unusable(tmp_path: Path, kind: str) -> None:
    if kind == "file":
        root = tmp_path / "envs"
        root.write_text("not a directory")
    else:
        root = Path("/proc/qatdoctor-envs")  # a read-only filesystem, even for root
    args = ["verify", "-a", "aimet-torch=2.42.0", "-a", "torch=2.14.1", "-a", "python=3.11", "--reproduce"]
    rc, _, err = run(args, env={"QATDOCTOR_ENVS": str(root)})
    assert rc == ExitCode.ENV_BUILD_FAILED, err
    assert "QATDOCTOR_ENVS" in err
    assert_clean(err)


def test_70_internal_error_is_one_line_and_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(options: core.Options) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(core, "run_resolve", broken)
    monkeypatch.delenv("QATDOCTOR_DEBUG", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["resolve", *BAD])
    assert result.exit_code == ExitCode.INTERNAL
    assert "internal error: RuntimeError: a bug" in result.stderr and "Traceback" not in result.stderr
    debug = runner.invoke(app, ["resolve", *BAD, "--debug"])
    assert debug.exit_code == ExitCode.INTERNAL and "Traceback" in debug.stderr


def test_every_documented_code_is_tested_here() -> None:
    names = {name.split("_")[1] for name in globals() if name.startswith("test_") and name.split("_")[1].isdigit()}
    assert {str(int(code)) for code in ExitCode} <= names
