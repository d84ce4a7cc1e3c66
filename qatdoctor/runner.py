"""The one way qatdoctor starts other programs: with a timeout, never raising on failure.

Every layer that runs a subprocess takes a `Runner`, so tests inject recorded outputs instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol


@dataclass(frozen=True)
class Completed:
    """How a subprocess ended. `returncode` is None when it could not start or was killed by the timeout."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    start_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe_exit(self) -> str:
        """`exit status 1`, `killed by SIGSEGV`, `timed out after 30s`, or why it could not start."""
        if self.start_error is not None:
            return f"could not start: {self.start_error}"
        if self.timed_out:
            return f"timed out after {self.seconds:.0f}s"
        if self.returncode is not None and self.returncode < 0:
            try:
                return f"killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.stderr.rstrip().splitlines()[-lines:])


class Runner(Protocol):
    """Runs argv with a timeout; `on_stderr_line` sees stderr as it arrives (progress)."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
    ) -> Completed: ...


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: str | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> Completed:
    """Run argv to completion or timeout; the whole process group is killed on timeout."""
    return start(argv, timeout=timeout, env=env, cwd=cwd, stdin=stdin, on_stderr_line=on_stderr_line).wait()


class Pending:
    """A started process; `wait()` collects it (or kills it at its deadline) exactly once."""

    def __init__(
        self,
        argv: tuple[str, ...],
        proc: subprocess.Popen[str] | None,
        timeout: float,
        on_stderr_line: Callable[[str], None] | None = None,
        start_error: str | None = None,
    ) -> None:
        self.argv, self.proc, self.timeout, self.start_error = argv, proc, timeout, start_error
        self.started = time.monotonic()
        self._out: list[str] = []
        self._err: list[str] = []
        self._pumps: list[threading.Thread] = []
        self._done: Completed | None = None
        if proc is not None:
            assert proc.stdout is not None and proc.stderr is not None
            for stream, sink, on_line in ((proc.stdout, self._out, None), (proc.stderr, self._err, on_stderr_line)):
                pump = threading.Thread(target=_pump, args=(stream, sink, on_line), daemon=True)
                pump.start()
                self._pumps.append(pump)

    def wait(self) -> Completed:
        if self._done is not None:
            return self._done
        if self.proc is None:
            self._done = Completed(self.argv, None, "", "", 0.0, start_error=self.start_error)
            return self._done
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, self.started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(self.proc)
            self.proc.wait()
        for pump in self._pumps:
            pump.join(timeout=5)
        self._done = Completed(
            argv=self.argv,
            returncode=None if timed_out else self.proc.returncode,
            stdout="".join(self._out),
            stderr="".join(self._err),
            seconds=time.monotonic() - self.started,
            timed_out=timed_out,
        )
        return self._done


def start(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: str | None = None,
    on_stderr_line: Callable[[str], None] | None = None,
) -> Pending:
    """Start argv in its own process group; its output is read in the background."""
    args = tuple(argv)
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return Pending(args, None, timeout, start_error=exc.strerror or str(exc))
    pending = Pending(args, proc, timeout, on_stderr_line)
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(stdin)
            proc.stdin.close()
    return pending


def _pump(stream: IO[str], sink: list[str], on_line: Callable[[str], None] | None) -> None:
    for line in stream:
        sink.append(line)
        if on_line is not None:
            on_line(line.rstrip("\n"))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
