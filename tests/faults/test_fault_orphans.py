"""Descendants that leave the child's process group die with the run too (issue 25, "Own every descendant").

Three real escapes, each a sleeping grandchild whose pid the target writes to a file: a factory-style
`Popen(..., start_new_session=True)`, `setpgid(0, 0)` after a fork, and a `--python` wrapper that backgrounds
`setsid sleep …`; and one that escapes twice (an escaped shell that detaches a second sleep). Through the Runner
API (normal exit, timeout, Ctrl-C, `kill_all`) and through the CLI (normal exit, SIGINT, a scrubbed environment).
A sibling run's adopted process is left alone while that run still goes.
"""

from __future__ import annotations

import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faultkit import finish, qatdoctor, wait_for

from qatdoctor.environment import orphans, runner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the subreaper is Linux's")

ESCAPE = textwrap.dedent("""
    import os, subprocess, sys, time
    how, token, pidfile, then = sys.argv[1:5]
    if how == "new-session":
        pid = subprocess.Popen(["sleep", token], start_new_session=True).pid
    elif how == "setpgid":
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            os.execvp("sleep", ["sleep", token])
    elif how == "twice":
        script = f"setsid sleep {token} & echo $! >> {pidfile}; exec sleep {token}"
        pid = subprocess.Popen(["sh", "-c", script], start_new_session=True).pid
    elif how == "grandchild":  # detached through an intermediate that exits at once: adopted while we still run
        if os.fork() == 0:
            pid = subprocess.Popen(["sleep", token], start_new_session=True).pid
            with open(pidfile, "a") as out:
                out.write(f"{pid}\\n")
            os._exit(0)
        os.wait()
        pid = None
    if pid is not None:
        with open(pidfile, "a") as out:
            out.write(f"{pid}\\n")
    if then == "hang":
        time.sleep(600)
    elif then.startswith("wait-for:"):
        while not os.path.exists(then[9:]):
            time.sleep(0.02)
""")

WRAPPER = """#!/bin/sh
# A --python wrapper that leaves a detached sleep behind on every call, then runs the real interpreter.
{prefix}setsid sleep {token} >/dev/null 2>&1 &
echo $! >> {pidfile}
case "$1" in
  *_probe.py) exec "{python}" "{escape}" {probe} {token} {pidfile} {then} ;;
esac
exec "{python}" "$@"
"""


def _pids(pidfile: Path) -> list[int]:
    return [int(line) for line in pidfile.read_text().split()] if pidfile.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _all_dead(pids: list[int], timeout: float = 5.0) -> bool:
    return wait_for(lambda: not any(_alive(pid) for pid in pids), timeout)


def _escape(tmp_path: Path) -> Path:
    script = tmp_path / "escape.py"
    script.write_text(ESCAPE)
    return script


def _wrapper(tmp_path: Path, token: str, *, probe: str = "new-session", then: str = "exit", scrub: bool = False) -> Path:
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(
        WRAPPER.format(
            prefix="env -i " if scrub else "",
            token=token,
            pidfile=tmp_path / "pids",
            python=sys.executable,
            escape=_escape(tmp_path),
            probe=probe,
            then=then,
        )
    )
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize("how", ["new-session", "setpgid", "twice"])
def test_a_child_that_left_the_group_dies_when_the_run_ends(tmp_path: Path, token: str, how: str) -> None:
    pidfile = tmp_path / "pids"
    done = runner.run([sys.executable, str(_escape(tmp_path)), how, token, str(pidfile), "exit"], timeout=30)
    assert done.ok, done.stderr
    pids = _pids(pidfile)
    assert pids
    assert _all_dead(pids), [pid for pid in pids if _alive(pid)]
    assert not set(pids) & set(orphans.children()), "killed and reaped, not left a zombie"


def test_a_setsid_wrapper_around_the_interpreter_leaves_nothing(tmp_path: Path, token: str) -> None:
    wrapper = _wrapper(tmp_path, token)
    done = runner.run([str(wrapper), "-c", "print('hello')"], timeout=30)
    assert done.ok and done.stdout == "hello\n", done.stderr
    pids = _pids(tmp_path / "pids")
    assert len(pids) == 1
    assert _all_dead(pids)


@pytest.mark.parametrize("how", ["new-session", "setpgid", "twice"])
def test_escapes_die_on_timeout_interrupt_and_kill_all(tmp_path: Path, token: str, how: str) -> None:
    escape = str(_escape(tmp_path))
    timed = tmp_path / "timed"
    done = runner.run([sys.executable, escape, how, token, str(timed), "hang"], timeout=1.5)
    assert done.timed_out
    assert _all_dead(_pids(timed))

    interrupted = tmp_path / "interrupted"

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        with pytest.raises(KeyboardInterrupt):
            runner.run([sys.executable, escape, how, token, str(interrupted), "hang"], timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert _pids(interrupted) and _all_dead(_pids(interrupted))

    stopped = tmp_path / "stopped"
    pending = runner.start([sys.executable, escape, how, token, str(stopped), "hang"], timeout=60)
    assert wait_for(lambda: len(_pids(stopped)) >= (2 if how == "twice" else 1))
    runner.kill_all(grace=0.5)
    assert pending.wait().interrupted
    assert _all_dead(_pids(stopped))
    assert runner.live_children() == []


def test_a_live_runs_adopted_process_outlives_a_sibling_run_and_dies_with_its_own(tmp_path: Path, token: str) -> None:
    pidfile, release = tmp_path / "pids", tmp_path / "release"
    escape = str(_escape(tmp_path))
    pending = runner.start([sys.executable, escape, "grandchild", token, str(pidfile), f"wait-for:{release}"], timeout=60)
    assert wait_for(lambda: _pids(pidfile))
    (orphan,) = _pids(pidfile)
    # its parent exited: it is ours now (the subreaper), and the run it came from still goes
    assert wait_for(lambda: orphan in orphans.children()), Path(f"/proc/{orphan}/stat").read_text()
    assert runner.run(["true"], timeout=30).ok  # a sibling run ends and is swept
    time.sleep(0.2)
    assert _alive(orphan), "the sweep after a sibling killed a process of a run still going"
    release.touch()
    assert pending.wait().ok
    assert _all_dead([orphan])


def test_cli_check_leaves_no_escaped_process(tmp_path: Path, token: str) -> None:
    """The wrapper detaches a sleep on every call (collector, probe) and the probe's 'interpreter' escapes too."""
    wrapper = _wrapper(tmp_path, token, probe="setpgid")
    rc, _, err = finish(qatdoctor(["check", "--python", str(wrapper), "--no-cache"]), timeout=60)
    assert "Traceback" not in err, err
    pids = _pids(tmp_path / "pids")
    assert len(pids) >= 3, (rc, err)  # collector's wrapper, probe's wrapper, the probe's own escape
    assert _all_dead(pids), [pid for pid in pids if _alive(pid)]


@pytest.mark.parametrize(
    ("sig", "scrub"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["sigint", "sigterm", "sigint-scrubbed-environment"],
)
def test_cli_interrupted_during_the_probe_leaves_no_escaped_process(
    tmp_path: Path, token: str, sig: signal.Signals, scrub: bool
) -> None:
    wrapper = _wrapper(tmp_path, token, probe="twice", then="hang", scrub=scrub)
    proc = qatdoctor(["check", "--python", str(wrapper), "--no-cache"])
    # collector's detached sleep, probe wrapper's, the probe's escaped shell and its own detached sleep
    assert wait_for(lambda: len(_pids(tmp_path / "pids")) >= 4), (proc.poll(), _pids(tmp_path / "pids"))
    proc.send_signal(sig)
    rc, _, err = finish(proc, timeout=30)
    assert rc == 128 + sig, err
    pids = _pids(tmp_path / "pids")
    assert _all_dead(pids), [pid for pid in pids if _alive(pid)]


FACTORY = """
import os, subprocess, torch

def build():
    # a model factory that starts a helper in its own session, and forks one that moves to its own group
    with open({pidfile!r}, "a") as out:
        out.write(f"{{subprocess.Popen(['sleep', {token!r}], start_new_session=True).pid}}\\n")
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)
            os.execvp("sleep", ["sleep", {token!r}])
        out.write(f"{{pid}}\\n")
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()), torch.randn(1, 3, 16, 16)
"""


@pytest.mark.integration
def test_cli_check_with_a_model_factory_that_escapes_leaves_nothing(tmp_path: Path, token: str) -> None:
    python = Path.home() / ".cache" / "qatdoctor" / "envs" / "aimet-2.42.0" / "bin" / "python"
    if not python.exists():
        pytest.skip("aimet-2.42.0 reference environment not built")
    pidfile = tmp_path / "pids"
    factory = tmp_path / "factory.py"
    factory.write_text(FACTORY.format(pidfile=str(pidfile), token=token))
    args = ["check", "--python", str(python), "--model", f"{factory}:build", "--models", "baseline"]
    rc, out, err = finish(qatdoctor(args, env={"OMP_NUM_THREADS": "1"}), timeout=300)
    assert "Traceback" not in err, err
    pids = _pids(pidfile)
    assert len(pids) >= 2, (rc, out[-2000:], err[-2000:])
    assert _all_dead(pids), [pid for pid in pids if _alive(pid)]
