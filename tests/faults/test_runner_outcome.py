"""The runner's outcome is data: how a real child ended is in fields, and the prose is only their rendering."""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path

import pytest
from faultkit import wait_for

from qatdoctor.environment import runner
from qatdoctor.environment.probe import run_probe


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("argv", "timeout", "fields", "prose"),
    [
        (_py("raise SystemExit(3)"), 30, {"exit_code": 3, "signal": None, "timed_out": False}, "exit status 3"),
        (
            _py("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
            30,
            {"exit_code": None, "signal": signal.SIGSEGV, "signal_name": "SIGSEGV"},
            "killed by SIGSEGV",
        ),
        (_py("import time; time.sleep(30)"), 0.5, {"timed_out": True, "signal": None, "exit_code": None}, "timed out"),
        (["/nonexistent/qatdoctor-python"], 30, {"start_errno": errno.ENOENT, "exit_code": None}, "could not start"),
        (
            _py(f"import sys; sys.stdout.write('x' * {2 * runner.STDOUT_LIMIT})"),
            60,
            {"truncated": True, "exit_code": 0},
            "exit status 0",
        ),
    ],
    ids=["exit-3", "sigsegv", "timeout", "missing", "flood"],
)
def test_how_a_child_ended_is_in_fields(argv: list[str], timeout: float, fields: dict[str, object], prose: str) -> None:
    done = runner.run(argv, timeout=timeout)
    assert {name: getattr(done, name) for name in fields} == fields
    assert done.describe_exit().startswith(prose)


def test_a_file_that_is_no_program_is_enoexec(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_bytes(b"\x7fELF not really")
    fake.chmod(0o755)
    done = runner.run([str(fake)], timeout=30)
    assert done.start_errno == errno.ENOEXEC


def test_a_child_qatdoctor_stopped_is_interrupted_not_killed_by_its_environment() -> None:
    pending = runner.start(_py("import time; time.sleep(60)"), timeout=60)
    assert wait_for(lambda: runner.live_children())
    runner.kill_all(grace=0.5)
    done = pending.wait()
    assert done.interrupted and done.signal is None
    probe = run_probe(sys.executable, runner=lambda argv, **options: done, timeout=60, progress=lambda line: None)
    assert "killed by SIGTERM" not in (probe.reason or "") + str(probe.exit_status), probe
