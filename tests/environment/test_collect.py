"""`collect()`: resolving the target interpreter and turning every way a run can fail into one TargetError line."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from qatdoctor.environment.collect import CollectError, TargetError, collect, collector_path, resolve_python
from qatdoctor.environment.runner import Completed
from qatdoctor.knowledge.vocab import PACKAGES

DATA = Path(__file__).parent.parent / "data" / "collector"
PYTHON27 = Path("/root/.pyenv/versions/2.7.18/bin/python2.7")
PYTHON37 = Path("/root/.pyenv/versions/3.7.16/bin/python3.7")


class FakeRunner:
    """Returns one recorded `Completed` and remembers how it was called."""

    def __init__(self, completed: Completed) -> None:
        self.completed = completed
        self.calls: list[tuple[tuple[str, ...], float, Mapping[str, str] | None]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
    ) -> Completed:
        self.calls.append((tuple(argv), timeout, env))
        return self.completed


def completed(
    returncode: int | None = 0,
    stdout: str = "",
    stderr: str = "",
    *,
    timed_out: bool = False,
    start_error: str | None = None,
    start_errno: int | None = None,
) -> Completed:
    argv = ("python", "_collector.py")
    return Completed(argv, returncode, stdout, stderr, 0.1, timed_out, start_error, start_errno)


def test_collector_path_is_the_shipped_script() -> None:
    path = collector_path()
    assert path.name == "_collector.py"
    assert path.is_file()


def test_collect_runs_the_collector_in_the_target_with_the_environment() -> None:
    runner = FakeRunner(completed(stdout=(DATA / "gpu-h100-aimet-2.0.0.json").read_text(encoding="utf-8")))
    facts = collect(sys.executable, runner=runner, timeout=12.0)
    assert facts.value("aimet-torch") == "2.0.0"
    ((argv, timeout, env),) = runner.calls
    assert argv[:3] == (sys.executable, str(collector_path()), "--request")
    assert json.loads(argv[3]) == {"packages": list(PACKAGES), "libraries": ["liblapacke.so.3", "libcublas.so.12"]}
    assert timeout == 12.0
    assert env == dict(os.environ)


def _activated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fake venv made the active one, as `source bin/activate` does (environment/active.py picks it)."""
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.symlink_to(sys.executable)
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path))
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    return str(python)


def test_collect_defaults_to_the_active_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _activated(tmp_path, monkeypatch)
    runner = FakeRunner(completed(stdout=(DATA / "dev-venv-py311.json").read_text(encoding="utf-8")))
    collect(runner=runner)
    assert runner.calls[0][0][0] == python


def test_collect_tolerates_output_printed_before_the_json() -> None:
    recorded = (DATA / "cpu-torch.json").read_text(encoding="utf-8").replace("\n", " ")
    runner = FakeRunner(completed(stdout="sitecustomize says hello\n" + recorded + "\n"))
    assert collect(sys.executable, runner=runner).value("torch") == "2.1.2+cpu"


@pytest.mark.parametrize(
    ("result", "message"),
    [
        pytest.param(completed(None, timed_out=True), "did not answer within 30s", id="timeout"),
        pytest.param(completed(-11), "crashed (killed by SIGSEGV)", id="sigsegv"),
        pytest.param(
            completed(1, stderr='  File "_collector.py", line 69\n    def f(x: int):\nSyntaxError: invalid syntax\n'),
            "target Python is too old: qatdoctor needs 3.8+ in the target "
            "(it cannot parse the collector: SyntaxError: invalid syntax)",
            id="python2-syntax-error",
        ),
        pytest.param(
            completed(3, stderr="qatdoctor collector: Python 3.7.16 is too old: qatdoctor needs 3.8+ in the target\n"),
            "too old: qatdoctor needs 3.8+ in the target (found Python 3.7.16)",
            id="python37-refused",
        ),
        pytest.param(
            completed(1, stderr="Traceback (most recent call last):\nMemoryError\n"),
            "failed (exit status 1): MemoryError",
            id="exit-1",
        ),
        pytest.param(
            completed(stdout="<html>not json</html>"), "printed something that is not JSON: <html>", id="garbage"
        ),
        pytest.param(completed(stdout="x" * 200), "not JSON: " + "x" * 80, id="garbage-cut-at-80"),
        pytest.param(completed(stdout=""), "printed nothing", id="empty-stdout"),
        pytest.param(
            completed(None, start_error="Exec format error", start_errno=errno.ENOEXEC),
            "is not a Python interpreter (Exec format error)",
            id="exec-format-error",
        ),
        pytest.param(
            completed(None, start_error="No such file or directory", start_errno=errno.ENOENT),
            "could not start: No such file or directory",
            id="could-not-start",
        ),
    ],
)
def test_failed_runs_become_one_line_target_errors(result: Completed, message: str) -> None:
    with pytest.raises(TargetError) as raised:
        collect(sys.executable, runner=FakeRunner(result))
    assert message in str(raised.value)
    assert str(raised.value).startswith(sys.executable)
    assert "\n" not in str(raised.value)


def test_json_that_is_not_a_collector_payload_is_a_collect_error() -> None:
    with pytest.raises(CollectError, match="expected 1"):
        collect(sys.executable, runner=FakeRunner(completed(stdout='{"hello": 1}')))


# --- resolving the target, before anything runs -------------------------------------------------------


def test_resolve_none_is_the_active_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = _activated(tmp_path, monkeypatch)
    assert resolve_python(None) == python


def test_resolve_bare_name_uses_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "python3.99"
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_python("python3.99") == str(fake)


def test_resolve_venv_directory_is_its_bin_python(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    assert resolve_python(str(tmp_path)) == str(tmp_path / "bin" / "python")  # the symlink, not its target


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda tmp: str(tmp / "nope" / "python"), "does not exist", id="missing-path"),
        pytest.param(lambda tmp: "python-qatdoctor-missing", "does not exist (not found on PATH)", id="missing-name"),
        pytest.param(lambda tmp: str(tmp), "is a directory without bin/python", id="plain-directory"),
        pytest.param(lambda tmp: _file(tmp / "python", 0o644), "is not executable", id="not-executable"),
    ],
)
def test_resolve_refuses_unusable_targets(tmp_path: Path, make: Callable[[Path], str], message: str) -> None:
    runner = FakeRunner(completed())
    with pytest.raises(TargetError, match=re.escape(message)):
        collect(make(tmp_path), runner=runner)
    assert runner.calls == []  # nothing was run


def _file(path: Path, mode: int) -> str:
    path.write_text("print('hi')\n", encoding="utf-8")
    path.chmod(mode)
    return str(path)


# --- real targets that are not (usable) Python interpreters, through the real runner -------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("/bin/echo", "printed something that is not JSON: " + str(collector_path()), id="echo"),
        pytest.param("/bin/false", "failed (exit status 1)", id="false"),
    ],
)
def test_real_non_python_executables(target: str, message: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} is not on this machine")
    with pytest.raises(TargetError) as raised:
        collect(target, timeout=10)
    assert message in str(raised.value)


def test_real_executable_that_is_no_program(tmp_path: Path) -> None:
    junk = Path(_file(tmp_path / "python", 0o755))
    junk.write_bytes(b"\x00\x01\x02 not an ELF")
    with pytest.raises(TargetError, match="is not a Python interpreter"):
        collect(str(junk), timeout=10)


@pytest.mark.parametrize(
    ("python", "found"),
    [
        pytest.param(PYTHON27, "SyntaxError", id="python-2.7"),
        pytest.param(PYTHON37, "found Python 3.7", id="python-3.7"),
    ],
)
def test_real_old_pythons_are_refused_clearly(python: Path, found: str) -> None:
    if not python.exists():
        pytest.skip(f"{python} is not installed (pyenv)")
    with pytest.raises(TargetError) as raised:
        collect(str(python), timeout=20)
    assert "too old: qatdoctor needs 3.8+ in the target" in str(raised.value)
    assert found in str(raised.value)


def test_real_collect_of_this_interpreter() -> None:
    facts = collect(timeout=30)
    assert facts.value("python") == ".".join(str(part) for part in sys.version_info[:3])
    assert facts.value("platform") is not None
