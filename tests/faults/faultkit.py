"""Helpers for the fault-injection suite: real qatdoctor processes, fake targets that misbehave, and checks that
nothing they started survives (no orphan process, no scratch directory)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def survivors(token: str) -> list[int]:
    """Pids of live processes whose command line carries `token` (our fakes run `sleep TOKEN`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
            if token.encode() in argv and state != "Z":
                found.append(int(entry.name))
    return found


def gone(token: str, timeout: float = 3.0) -> bool:
    """Every process carrying `token` has died (a SIGKILL takes a moment to be delivered)."""
    return wait_for(lambda: not survivors(token), timeout)


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def new_token() -> str:
    return str(random.randrange(10**8, 10**9))


def kill_survivors(token: str) -> None:
    for pid in survivors(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def fake_target(directory: Path, token: str, *, collector: str = "hang", probe: str = "hang") -> Path:
    """A 'Python' that misbehaves per script: hang (with a grandchild), garbage (and a detached grandchild)."""
    script = directory / "fakepython"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  *_collector.py) mode={collector} ;;\n"
        f"  *_probe.py) mode={probe} ;;\n"
        "  *) mode=garbage ;;\n"
        "esac\n"
        'case "$mode" in\n'
        f"  hang) sleep {token} & sleep {token}; wait ;;\n"
        f"  garbage) (sleep {token} >/dev/null 2>&1 &); echo 'not json'; exit 0 ;;\n"
        f"  flood) (sleep {token} >/dev/null 2>&1 &); exec yes flood ;;\n"
        f'  real) exec "{sys.executable}" "$@" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return script


def _interruptible() -> None:
    """Ctrl-C back for the child: a suite started in the background by a shell without job control inherits
    SIGINT ignored, and qatdoctor keeps an inherited SIG_IGN (as `nohup` expects), so the SIGINT cases would hang."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def qatdoctor(args: Sequence[str], env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
    """`python -m qatdoctor ARGS` as a real process (its own launch, signal handling and cleanup)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env.pop("QATDOCTOR_DEBUG", None)
    options: dict[str, object] = {
        "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "stdin": subprocess.DEVNULL,
        "preexec_fn": _interruptible,
    }  # fmt: skip
    options.update(kwargs)
    return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "qatdoctor", *args], text=True, env=full_env, **options
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"qatdoctor did not finish within {timeout}s:\n{err[-2000:]}")
    return proc.returncode, out, err


def measured(
    args: Sequence[str], *, timeout: float = 120.0, memory: int = 2 << 30
) -> tuple[int, str, str, int]:
    """`python -m qatdoctor ARGS` under an address-space cap of `memory` bytes (so a regression costs a
    MemoryError, not the shared machine's RAM): (exit code, stdout, stderr, peak RSS in MiB of that process)."""
    import resource
    import tempfile

    def limited() -> None:
        _interruptible()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = qatdoctor(args, stdout=out, stderr=err, preexec_fn=limited)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                err.seek(0)
                pytest.fail(f"qatdoctor did not finish within {timeout}s:\n{err.read()[-2000:]}")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), usage.ru_maxrss // 1024
