"""The runner owns every child: bounded capture, group kills on timeout / interrupt / normal exit, scratch dirs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faultkit import gone, survivors

from qatdoctor.environment import runner
from qatdoctor.environment.runner import Capture, run, start


def test_capture_keeps_head_and_tail_and_says_what_was_cut() -> None:
    capture = Capture(20)
    for piece in ("0123456789", "abcdefghij", "ABCDEFGHIJ", "klmnopqrst"):
        capture.add(piece)
    text = capture.text("stdout")
    assert text.startswith("0123456789") and text.endswith("klmnopqrst")
    assert capture.cut == 20 and "20 characters of stdout cut" in text
    small = Capture(100)
    small.add("short")
    assert small.text("stdout") == "short" and small.cut == 0


def test_output_is_decoded_with_universal_newlines() -> None:
    done = run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'a\\r\\nb\\rc\\xff\\n')"], timeout=30)
    assert done.stdout == "a\nb\nc\ufffd\n"


def test_stderr_lines_reach_the_callback_as_they_arrive() -> None:
    lines: list[str] = []
    run([sys.executable, "-c", "import sys; sys.stderr.write('one\\ntwo\\r\\nthree')"], timeout=30,
        on_stderr_line=lines.append)  # fmt: skip
    assert lines == ["one", "two", "three"]


def test_a_flooding_child_costs_bounded_memory(tmp_path: Path) -> None:
    """300 MB on stdout: the runner keeps STDOUT_LIMIT characters and its peak RSS grows by well under 100 MB."""
    script = textwrap.dedent("""
        import json, resource, sys
        from qatdoctor.environment.runner import run
        child = "import sys\\nblock = ('x' * 99 + '\\\\n') * 10486\\nfor _ in range(300): sys.stdout.write(block)\\n"
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        done = run([sys.executable, "-c", child], timeout=120)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"growth_mb": (after - before) / 1024, "kept": len(done.stdout), "cut": done.stdout_cut}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["cut"] > 250_000_000
    assert result["kept"] < runner.STDOUT_LIMIT + runner.PIECE + 1000
    assert result["growth_mb"] < 100, result


def test_timeout_kills_the_whole_group(token: str) -> None:
    started = time.monotonic()
    done = run(["sh", "-c", f"sleep {token} & sleep {token}"], timeout=0.5)
    assert done.timed_out and done.returncode is None
    assert time.monotonic() - started < runner.GRACE + 3
    assert gone(token), survivors(token)
    assert runner.live_children() == []


def test_normal_exit_kills_what_the_child_left_in_its_group(token: str) -> None:
    done = run(["sh", "-c", f"(sleep {token} >/dev/null 2>&1 &); echo done"], timeout=30)
    assert done.ok and done.stdout == "done\n"
    assert gone(token), survivors(token)


def test_an_interrupt_while_waiting_kills_the_child_first(token: str) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            run(["sh", "-c", f"sleep {token} & sleep {token}"], timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert gone(token), survivors(token)
    assert runner.live_children() == []


def test_stopping_kills_children_and_refuses_new_ones_until_it_ends(token: str) -> None:
    pending = start(["sh", "-c", f"sleep {token}"], timeout=60)
    with runner.stopping(grace=1):
        assert gone(token), survivors(token)
        refused = run(["true"], timeout=5)
        assert refused.start_error == runner.SHUTTING_DOWN
    assert pending.wait().returncode is not None
    assert run(["true"], timeout=5).ok


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(token: str) -> None:
    pending = start(["sh", "-c", f"trap '' TERM; sleep {token} & wait"], timeout=60)
    time.sleep(0.3)
    started = time.monotonic()
    runner.kill_all(grace=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert gone(token), survivors(token)
    assert pending.wait().returncode is not None


def test_scratch_dirs_are_removed_by_their_owner_or_at_shutdown(tmp_path: Path) -> None:
    with runner.scratch_dir("qatdoctor-test-", tmp_path) as scratch:
        (scratch / "file").write_text("x")
    assert not scratch.exists()
    # shutdown is final (no child may start afterwards), so it runs in a process of its own
    script = textwrap.dedent(f"""
        from pathlib import Path
        from qatdoctor.environment import runner
        kept = runner.make_scratch("left-", {str(tmp_path)!r})
        (kept / "f").write_text("x")
        runner.shutdown()
        print(kept.exists(), runner.run(["true"], timeout=5).start_error)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", runner.SHUTTING_DOWN.split()[0], *runner.SHUTTING_DOWN.split()[1:]]
    assert list(tmp_path.glob("left-*")) == []


def test_a_missing_program_is_a_start_error_not_an_exception() -> None:
    done = run(["/nonexistent/program"], timeout=5)
    assert done.start_error and not done.ok and "could not start" in done.describe_exit()


def test_terminated_is_raised_by_sigterm_in_the_main_thread() -> None:
    script = textwrap.dedent("""
        import os, signal, sys
        from qatdoctor.environment import runner
        runner.install_signal_handlers()
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()
        except runner.Terminated as stop:
            print(stop.signum)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() == str(int(signal.SIGTERM))
    assert os.environ  # (the test process itself keeps its default handlers)


def test_worker_threads_leave_interrupts_to_the_main_thread() -> None:
    """A signal the kernel hands to a worker thread would wait until the main thread runs bytecode again: a main
    thread joining a hung probe would never see Ctrl-C. Workers block them; the main thread does not."""
    from qatdoctor import core

    def mask(options: object) -> set[int]:
        return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}

    blocked = core._background(mask, core.Options())()
    assert {int(s) for s in runner.INTERRUPTS} <= blocked
    assert not {int(s) for s in runner.INTERRUPTS} & {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}
