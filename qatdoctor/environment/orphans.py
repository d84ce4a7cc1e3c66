"""Descendants that left their run's process group: adopted (a child subreaper), traced to a run, killed, reaped.

A target can detach a process from the group the runner kills (`setsid`, `setpgid(0, 0)`, a factory's
`Popen(..., start_new_session=True)`). On Linux qatdoctor marks itself a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`), so when such a process's parent dies it becomes qatdoctor's child instead of
init's. `sweep` then finds qatdoctor's children that no run owns directly and traces each to the run it came from:
by its session (a run's session is its pid; `setpgid` keeps it) or by the `QATDOCTOR_RUN` tag the runner puts in
every run's environment (a new session keeps it). Those of runs that ended are killed with their process groups
and reaped, round after round (a killed process's own children are adopted in turn), for at most `SWEEP_SECONDS`.
Elsewhere (no prctl, no /proc) nothing is adopted and the runner's process-group killing is all there is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Set
from pathlib import Path
from typing import NamedTuple

TAG_ENV = "QATDOCTOR_RUN"
SWEEP_SECONDS = 3.0
PR_SET_CHILD_SUBREAPER = 36
_state: list[bool] = []  # [whether the prctl succeeded], once tried


class Adopted(NamedTuple):
    pid: int
    pgid: int
    sid: int
    zombie: bool
    tag: str | None  # the QATDOCTOR_RUN value in its environment (None: unreadable or absent)


def become_subreaper() -> bool:
    """Mark this process a child subreaper (Linux); whether it is one. Tried once."""
    if not _state:
        _state.append(_prctl_subreaper())
    return _state[0]


def _prctl_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children() -> list[int]:
    """Pids whose parent is this process (every thread's children list; a /proc scan where that is missing)."""
    found: set[int] = set()
    tasks = Path("/proc/self/task")
    listed = False
    with contextlib.suppress(OSError):
        for task in tasks.iterdir():
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in (task / "children").read_text().split())
                listed = True
    if listed:
        return sorted(found)
    me = os.getpid()
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None and info[0] == me:
                found.add(int(entry.name))
    return sorted(found)


def _stat(pid: int) -> tuple[int, int, int, str] | None:
    """(ppid, pgid, sid, state) from /proc/PID/stat, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[-1].split()
    try:
        return int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode("ascii", "replace")
    except (IndexError, ValueError):
        return None


def _tag(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    marker = TAG_ENV.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(marker):
            return item[len(marker) :].decode("ascii", "replace")
    return None


def adopted(protected: Set[int]) -> list[Adopted]:
    """This process's children other than `protected` (the runs it started and has not reaped)."""
    found = []
    for pid in children():
        if pid in protected or (info := _stat(pid)) is None:
            continue
        _, pgid, sid, state = info
        found.append(Adopted(pid, pgid, sid, state in ("Z", "X"), None if state == "Z" else _tag(pid)))
    return found


def _owner(proc: Adopted, sessions: Mapping[int, str]) -> str | None:
    """The tag of the run `proc` came from: its session's, else the one in its environment (ours only)."""
    if proc.sid in sessions:
        return sessions[proc.sid]
    if proc.tag is not None and proc.tag.startswith(f"{os.getpid()}."):
        return proc.tag
    return None


def victims(
    found: list[Adopted], *, live_tags: Set[str], sessions: Mapping[int, str], everything: bool
) -> list[Adopted]:
    """The adopted processes to kill: traced to a run that ended (or, with `everything`, not traced to a live
    one); never one in qatdoctor's own session (a run's descendants cannot join it: that is someone else's),
    nor one whose process group is a live run's (killing that group would kill the run)."""
    own_session = os.getsid(0)
    live_groups = {sid for sid, tag in sessions.items() if tag in live_tags}
    chosen = []
    for proc in found:
        owner = _owner(proc, sessions)
        if proc.sid == own_session or owner in live_tags or proc.pgid in live_groups:
            continue
        if owner is not None or everything:
            chosen.append(proc)
    return chosen


def sweep(select: Callable[[], list[Adopted]]) -> int:
    """Kill (SIGKILL, with its process group) and reap every process `select()` picks, and again for the
    children each one leaves, until it picks none or `SWEEP_SECONDS` pass; how many were killed. `select` runs
    under the caller's lock (it must see the runs as they are while it looks); safe from several threads."""
    if not (_state and _state[0]):
        return 0
    deadline = time.monotonic() + SWEEP_SECONDS
    own_group = os.getpgid(0)
    killed = 0
    while time.monotonic() < deadline:
        chosen = select()
        if not chosen:
            break
        for proc in chosen:
            if not proc.zombie:
                if proc.pgid != own_group:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pgid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(proc.pid, signal.SIGKILL)
                killed += 1
        for proc in chosen:
            _reap(proc.pid, deadline)
    return killed


def _reap(pid: int, deadline: float) -> None:
    """Wait for one adopted child (only that pid: another's exit status is never taken)."""
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped by another sweep
            return
        if done or time.monotonic() >= deadline:
            return
        time.sleep(0.005)
