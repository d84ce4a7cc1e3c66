"""Progress on stderr: one live line on a terminal (no thread, cleared before anything else), plain lines in logs."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

SCRIPT = """
import threading
from qatdoctor import console
console.progress("collecting facts")
console.progress("probe: baseline train prepare")
assert threading.active_count() == 1, threading.enumerate()
console.say("a log line")
console.progress("probe: done")
console.end_progress()
console.end_progress()
"""


def _stderr(tty: bool) -> bytes:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if not tty:
        done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, env=env, timeout=60, check=True)
        return done.stderr
    primary, secondary = pty.openpty()
    child = subprocess.Popen([sys.executable, "-c", SCRIPT], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=secondary, env=env)  # fmt: skip
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert child.wait(timeout=60) == 0
    return b"".join(chunks)


def test_a_terminal_gets_one_live_line_redrawn_in_place_and_cleared() -> None:
    out = _stderr(tty=True)
    erase = b"\r\x1b[2K"
    assert out.startswith(erase + b"qatdoctor [") and b"collecting facts" in out
    assert out.count(erase) == 5  # three progress redraws, one before the log line, one at the end (once)
    assert b"a log line" in out and out.endswith(erase)
    assert b"\n" not in out.replace(b"\r\n", b"\n").split(b"a log line")[0]  # no progress line was left standing


def test_logs_get_plain_lines_without_escapes() -> None:
    lines = _stderr(tty=False).decode().splitlines()
    assert [line.split("] ", 1)[-1] for line in lines] == [
        "collecting facts", "probe: baseline train prepare", "a log line", "probe: done"]
    assert all("\x1b" not in line for line in lines)
