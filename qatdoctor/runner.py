"""The one way qatdoctor starts other programs: with a timeout, never raising on failure.

Every layer that runs a subprocess takes a `Runner`, so tests inject recorded outputs instead.
"""

from __future__ import annotations

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
    args = tuple(argv)
    started = time.monotonic()
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
        return Completed(args, None, "", "", 0.0, start_error=exc.strerror or str(exc))

    out_chunks: list[str] = []
    err_chunks: list[str] = []

    def pump(stream: IO[str], sink: list[str], on_line: Callable[[str], None] | None) -> None:
        for line in stream:
            sink.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))

    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=pump, args=(proc.stdout, out_chunks, None), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err_chunks, on_stderr_line), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    if stdin is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        proc.wait()
    for thread in pumps:
        thread.join(timeout=5)
    return Completed(
        argv=args,
        returncode=None if timed_out else proc.returncode,
        stdout="".join(out_chunks),
        stderr="".join(err_chunks),
        seconds=time.monotonic() - started,
        timed_out=timed_out,
    )


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
