"""The one way qatdoctor starts other programs, and the one owner of what they leave behind.

Every layer that runs a subprocess takes a `Runner`, so tests inject recorded outputs instead. The real
runner here also owns every child for the life of the process:

- each child starts in its own session (so its process group is its pid): a timeout, an exception in the
  waiting thread (Ctrl-C is a KeyboardInterrupt there) and `shutdown()` send SIGTERM to the whole group, wait
  `GRACE` seconds, then SIGKILL it; a child that ends normally has whatever it left running in its group
  killed too, so nothing qatdoctor started outlives it;
- scratch directories made with `scratch_dir()`/`own()` are removed when their owner is done with them, or by
  `shutdown()` at the latest, after the children that might write into them are gone;
- what a child prints is kept up to `STDOUT_LIMIT`/`STDERR_LIMIT` characters (head and tail, with a line saying
  how much was cut), so a target that floods its output cannot grow qatdoctor's memory;
- descendants that left the child's process group (`setsid`, `setpgid`, `start_new_session=True`) are caught too
  (see `orphans.py`): on Linux qatdoctor is a child subreaper, so they are reparented to it when their parent
  dies, and when a run ends every adopted process traced to it (by session, or by the `QATDOCTOR_RUN` tag in its
  environment) is killed and reaped; adopted processes of runs still going are left alone.

`python -m qatdoctor` (`__main__.launch`) turns SIGTERM/SIGHUP into `Terminated` and always ends in `shutdown()`.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from qatdoctor.environment import orphans

GRACE = 2.0  # seconds between SIGTERM and SIGKILL
STDOUT_LIMIT = 8 << 20  # characters of a child's stdout kept (half head, half tail); a probe result is ~20 KB
STDERR_LIMIT = 1 << 20
PIECE = 1 << 16  # bytes read at once; also the longest line handed to `on_stderr_line` (longer ones are split)
CUT_MARK = "\n[… qatdoctor: {cut} characters of {stream} cut here …]\n"
SHUTTING_DOWN = "qatdoctor is shutting down"

_lock = threading.Lock()
_live: dict[int, subprocess.Popen[bytes]] = {}  # pid (= process group) -> child, until reaped
_owned: dict[Path, None] = {}  # scratch paths to remove at shutdown (insertion-ordered set)
_tags: dict[int, str] = {}  # pid of a live child -> the QATDOCTOR_RUN tag its environment carries
_sessions: dict[int, str] = {}  # session of every child started (= its pid) -> its tag, live or not
_counter = 0
_stopped: set[int] = set()  # pids of children killed because qatdoctor was stopping (kill_all)
_closing = False


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C (finally blocks run), then exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


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
    start_errno: int | None = None  # the OSError's errno when it could not start (e.g. ENOEXEC, ENOENT)
    stdout_cut: int = 0  # characters dropped from the middle of stdout (see STDOUT_LIMIT)
    stderr_cut: int = 0
    interrupted: bool = False  # qatdoctor itself was stopped (Ctrl-C, SIGTERM, shutdown) and killed the child

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def signal(self) -> int | None:
        """The signal that ended the child, or None (also when qatdoctor sent it: a timeout, an interruption)."""
        if self.timed_out or self.interrupted or self.returncode is None or self.returncode >= 0:
            return None
        return -self.returncode

    @property
    def signal_name(self) -> str | None:
        """`SIGSEGV`, or `signal 77` for a number Python has no name for; None when no signal ended it."""
        number = self.signal
        if number is None:
            return None
        try:
            return signal.Signals(number).name
        except ValueError:
            return f"signal {number}"

    @property
    def exit_code(self) -> int | None:
        """The status the child exited with (0 included); None when a signal, a timeout, an interruption or a
        start failure ended it."""
        if self.timed_out or self.interrupted or self.returncode is None or self.returncode < 0:
            return None
        return self.returncode

    @property
    def truncated(self) -> bool:
        return bool(self.stdout_cut or self.stderr_cut)

    def describe_exit(self) -> str:
        """A rendering of the fields: `exit status 1`, `killed by SIGSEGV`, `timed out after 30s`, why it could
        not start. Code decides on the fields, never on this text."""
        if self.start_error is not None:
            return f"could not start: {self.start_error}"
        if self.timed_out:
            return f"timed out after {self.seconds:.0f}s"
        if self.interrupted:
            return "stopped: qatdoctor was interrupted"
        if self.signal_name is not None:
            return f"killed by {self.signal_name}"
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


class Capture:
    """Text kept from one stream: the first and the last `limit // 2` characters, and how many were dropped."""

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head: list[str] = []
        self.head_size = 0
        self.tail: deque[str] = deque()
        self.tail_size = 0
        self.cut = 0

    def add(self, piece: str) -> None:
        if self.head_size < self.half:
            taken = piece[: self.half - self.head_size]
            self.head.append(taken)
            self.head_size += len(taken)
            piece = piece[len(taken) :]
            if not piece:
                return
        self.tail.append(piece)
        self.tail_size += len(piece)
        while len(self.tail) > 1 and self.tail_size - len(self.tail[0]) >= self.half:
            dropped = self.tail.popleft()
            self.tail_size -= len(dropped)
            self.cut += len(dropped)

    def text(self, stream: str) -> str:
        head, tail = "".join(self.head), "".join(self.tail)
        return head + CUT_MARK.format(cut=self.cut, stream=stream) + tail if self.cut else head + tail


class Pending:
    """A started process; `wait()` collects it (or kills it at its deadline) exactly once."""

    def __init__(
        self,
        argv: tuple[str, ...],
        proc: subprocess.Popen[bytes] | None,
        timeout: float,
        on_stderr_line: Callable[[str], None] | None = None,
        start_error: str | None = None,
        start_errno: int | None = None,
    ) -> None:
        self.argv, self.proc, self.timeout, self.start_error = argv, proc, timeout, start_error
        self.start_errno = start_errno
        self.started = time.monotonic()
        self._out = Capture(STDOUT_LIMIT)
        self._err = Capture(STDERR_LIMIT)
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
            self._done = Completed(
                self.argv, None, "", "", 0.0, start_error=self.start_error, start_errno=self.start_errno
            )
            return self._done
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, self.started + self.timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            terminate(self.proc)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: the child goes first, then what it left
            terminate(self.proc)
            sweep()
            raise
        else:
            _signal_group(self.proc.pid, signal.SIGKILL)  # whatever it left running in its group
            _forget(self.proc)
        sweep()  # and what left the group, before the pumps wait for pipes an escaped process may hold
        for pump in self._pumps:
            pump.join(timeout=5)
        if not any(pump.is_alive() for pump in self._pumps):
            for stream in (self.proc.stdout, self.proc.stderr):
                with contextlib.suppress(OSError, AttributeError):
                    stream.close()  # type: ignore[union-attr]
        self._done = Completed(
            argv=self.argv,
            returncode=None if timed_out else self.proc.returncode,
            stdout=self._out.text("stdout"),
            stderr=self._err.text("stderr"),
            seconds=time.monotonic() - self.started,
            timed_out=timed_out,
            stdout_cut=self._out.cut,
            stderr_cut=self._err.cut,
            interrupted=not timed_out and _was_stopped(self.proc.pid),
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
    """Start argv in its own session and process group, its environment tagged with `QATDOCTOR_RUN`; its output
    is read in the background."""
    global _counter
    args = tuple(argv)
    orphans.become_subreaper()
    with _lock:  # a shutdown snapshot never misses a child started concurrently
        if _closing:
            return Pending(args, None, timeout, start_error=SHUTTING_DOWN)
        _counter += 1
        tag = f"{os.getpid()}.{_counter}"
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**(os.environ if env is None else env), orphans.TAG_ENV: tag},
                cwd=cwd,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:
            message = getattr(exc, "strerror", None) or str(exc)
            return Pending(args, None, timeout, start_error=message, start_errno=getattr(exc, "errno", None))
        _live[proc.pid] = proc
        _stopped.discard(proc.pid)  # a reused pid
        _tags[proc.pid] = tag
        _sessions[proc.pid] = tag
    pending = Pending(args, proc, timeout, on_stderr_line)
    if stdin is not None and proc.stdin is not None:
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.write(stdin.encode("utf-8", errors="replace"))
            proc.stdin.close()
    return pending


def _pump(stream: IO[bytes], sink: Capture, on_line: Callable[[str], None] | None) -> None:
    """Read a pipe to its end in pieces: UTF-8 with replacement, CR LF and lone CR as LF (as text mode would)."""
    shield_thread()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    read = getattr(stream, "read1", stream.read)
    held_cr = False
    partial = ""
    with contextlib.suppress(OSError, ValueError):
        while True:
            data = read(PIECE)
            text = decoder.decode(data, final=not data)
            if held_cr:
                text = "\r" + text
            held_cr = bool(data) and text.endswith("\r")
            if held_cr:
                text = text[:-1]
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                sink.add(text)
                if on_line is not None:
                    partial = _lines(partial + text, on_line)
            if not data:
                break
    if on_line is not None and partial:
        on_line(partial)


def _lines(text: str, on_line: Callable[[str], None]) -> str:
    """Hand each complete line to `on_line`; return the unfinished rest (a line over PIECE goes out in parts)."""
    start = 0
    while (end := text.find("\n", start)) != -1:
        on_line(text[start:end])
        start = end + 1
    rest = text[start:]
    while len(rest) > PIECE:
        on_line(rest[:PIECE])
        rest = rest[PIECE:]
    return rest


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _forget(proc: subprocess.Popen[bytes]) -> None:
    with _lock:
        _live.pop(proc.pid, None)
        _tags.pop(proc.pid, None)


def _was_stopped(pid: int) -> bool:
    with _lock:
        return pid in _stopped


def sweep(*, everything: bool = False) -> int:
    """Kill and reap the adopted processes of runs that ended (with `everything`: every adopted process outside
    qatdoctor's own session, tagged or not); how many there were. A no-op where there is no subreaper."""

    def select() -> list[orphans.Adopted]:
        with _lock:  # no run starts while its would-be orphans are told apart from it
            found = orphans.adopted(set(_live))
            return orphans.victims(found, live_tags=set(_tags.values()), sessions=_sessions, everything=everything)

    return orphans.sweep(select)


def terminate(proc: subprocess.Popen[bytes], grace: float = GRACE) -> None:
    """SIGTERM to the child's process group, up to `grace` seconds for it to go, then SIGKILL; reaped."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)  # the leader, or grandchildren that outlived it
    with contextlib.suppress(ChildProcessError):
        proc.wait()
    _forget(proc)


def live_children() -> list[int]:
    """Pids of the children started and not reaped yet (tests, diagnostics)."""
    with _lock:
        return list(_live)


def kill_all(grace: float = GRACE, *, everything: bool = False) -> int:
    """Terminate every live child's process group (SIGTERM, shared grace period, SIGKILL), then what they left
    outside their groups; how many children there were."""
    with _lock:
        procs = list(_live.values())
        _stopped.update(proc.pid for proc in procs)
    for proc in procs:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            proc.wait()
        _forget(proc)
    sweep(everything=everything)
    return len(procs)


@contextlib.contextmanager
def stopping(grace: float = GRACE) -> Iterator[None]:
    """Kill every child and refuse new ones until the block ends (e.g. while worker threads drain)."""
    global _closing
    with _lock:
        was, _closing = _closing, True
    try:
        kill_all(grace)
        yield
    finally:
        with _lock:
            _closing = was


def shutdown(grace: float = GRACE, *, everything: bool = False) -> None:
    """The last thing qatdoctor does: no new children, every child's group killed and what it left elsewhere,
    every scratch path removed. `everything` (the CLI, whose only children are its runs): every adopted process
    outside qatdoctor's session goes, even one that scrubbed its environment."""
    global _closing
    with _lock:
        _closing = True
    kill_all(grace, everything=everything)
    with _lock:
        paths = list(_owned)
        _owned.clear()
    for path in paths:
        _remove(path)


atexit.register(shutdown)  # library use and tests; `launch` calls it itself before os._exit


def own(path: Path) -> Path:
    """Register a path for removal at shutdown (a scratch dir, a throwaway env being built)."""
    with _lock:
        _owned[Path(path)] = None
    return path


def disown(path: Path, *, remove: bool = True) -> None:
    """The owner is done with `path`: remove it (unless `remove=False`, e.g. `--keep`) and stop tracking it."""
    if remove:
        _remove(Path(path))
    with _lock:
        _owned.pop(Path(path), None)


def owned_paths() -> list[Path]:
    with _lock:
        return list(_owned)


def make_scratch(prefix: str, parent: Path | str | None = None) -> Path:
    """A new directory (`tempfile.mkdtemp`), already registered for removal at shutdown."""
    import tempfile

    return own(Path(tempfile.mkdtemp(prefix=prefix, dir=parent)))


@contextlib.contextmanager
def scratch_dir(prefix: str, parent: Path | str | None = None) -> Iterator[Path]:
    """A temporary directory removed when the block ends, or at shutdown if the block never ends."""
    path = make_scratch(prefix, parent)
    try:
        yield path
    finally:
        disown(path)


def _remove(path: Path) -> None:
    import shutil

    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


INTERRUPTS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def shield_thread() -> None:
    """First thing in every worker thread: Ctrl-C, SIGTERM and SIGHUP are delivered to the main thread only.

    The kernel hands a process signal to any thread that does not block it; Python runs the handler in the main
    thread only when that thread next runs bytecode, so a main thread blocked in `join()` would not notice it
    until the worker finished (a hung probe: never)."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP raise `Terminated` in the main thread, so cleanup runs as it does for Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or not settable
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, handler)


def ignore_interrupts() -> None:
    """While the last cleanup runs: another Ctrl-C or SIGTERM must not cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(sig, signal.SIG_IGN)
