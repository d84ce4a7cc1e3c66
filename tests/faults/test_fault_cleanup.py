"""Every child qatdoctor starts dies with it, on every exit path, and every scratch directory goes too.

Real processes and real signals: a fake target that hangs (and forks a grandchild), qatdoctor interrupted with
SIGINT / SIGTERM, an error exit while the probe still runs, a bad option while the prefetched collector runs,
and `verify` interrupted while its (fake) pip is still writing into the throwaway environment.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from faultkit import fake_target, finish, gone, qatdoctor, survivors, wait_for

from qatdoctor.environment import runner


def _scratch(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("qatdoctor-*"))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_check_kills_collector_probe_and_grandchildren(
    tmp_path: Path, token: str, sig: signal.Signals, code: int
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    target = fake_target(tmp_path, token, collector="real", probe="hang")
    proc = qatdoctor(["check", "--python", str(target), "--no-cache"], env={"TMPDIR": str(tmp)})
    # the probe (and its grandchild) started: two sleeps
    assert wait_for(lambda: len(survivors(token)) >= 2), survivors(token)
    assert _scratch(tmp), "the probe's scratch directory exists while it runs"
    started = time.monotonic()
    proc.send_signal(sig)
    rc, _, err = finish(proc, timeout=30)
    assert rc == code, err
    assert time.monotonic() - started < runner.GRACE + 5
    assert gone(token), survivors(token)
    assert _scratch(tmp) == []
    assert "Traceback" not in err


def test_error_exit_kills_the_probe_still_running(tmp_path: Path, token: str) -> None:
    """`check` exits 5 on a target whose collector prints garbage, while that target's probe hangs."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    target = fake_target(tmp_path, token, collector="garbage", probe="hang")
    rc, _, err = finish(qatdoctor(["check", "--python", str(target)], env={"TMPDIR": str(tmp)}), timeout=30)
    assert rc == 5, err
    assert "Traceback" not in err
    assert gone(token), survivors(token)
    assert _scratch(tmp) == []


def test_bad_option_kills_the_prefetched_collector(tmp_path: Path, token: str) -> None:
    target = fake_target(tmp_path, token)
    proc = qatdoctor(["check", "--python", str(target), "--no-such-option"])
    rc, _, err = finish(proc, timeout=30)
    assert rc == 2, err
    assert gone(token), survivors(token)


def test_bad_matrix_kills_the_prefetched_collector(tmp_path: Path, token: str) -> None:
    target = fake_target(tmp_path, token)
    bad = tmp_path / "m.toml"
    bad.write_text("not = [toml")
    proc = qatdoctor(["check", "--no-probe", "--python", str(target), "--matrix", str(bad)])
    rc, _, err = finish(proc, timeout=30)
    assert rc == 4, err
    assert gone(token), survivors(token)


def test_normal_exit_kills_what_the_target_left_running(tmp_path: Path, token: str) -> None:
    """A target that answers and leaves a detached grandchild in its process group: the group is killed."""
    target = fake_target(tmp_path, token, collector="garbage", probe="garbage")
    rc, _, err = finish(qatdoctor(["check", "--no-probe", "--python", str(target)]), timeout=30)
    assert rc == 5, err  # 'not json' is no collector output
    assert gone(token), survivors(token)


FAKE_PIP_PYTHON = """#!/bin/sh
# A stand-in interpreter: answers the version probe, makes "venvs", and runs a pip that never finishes.
if [ "$1" = "-c" ]; then echo 3.11.9; exit 0; fi
if [ "$1" = "-I" ]; then exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  d="$3"; mkdir -p "$d/bin"; cp "$0" "$d/bin/python"; echo "home = /x" > "$d/pyvenv.cfg"; exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  prefix=$(dirname "$(dirname "$0")")
  sleep TOKEN &
  i=0
  while [ $i -lt 3000 ]; do mkdir -p "$prefix/lib/site-packages/pkg$i"; i=$((i+1)); sleep 0.05; done
  exit 0
fi
exit 1
"""


def test_interrupted_verify_leaves_no_pip_and_no_throwaway_env(tmp_path: Path, token: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3.11"
    fake.write_text(FAKE_PIP_PYTHON.replace("TOKEN", token))
    fake.chmod(0o755)
    envs = tmp_path / "envs"
    env = {"QATDOCTOR_ENVS": str(envs), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    args = ["verify", "-a", "aimet-torch=2.42.0", "-a", "torch=2.14.1", "-a", "python=3.11", "--reproduce"]
    proc = qatdoctor([*args, "--installer", "pip"], env=env)
    throwaway = envs / "verify"
    assert wait_for(lambda: survivors(token) and list(throwaway.glob("tmp-*/*/lib/site-packages/pkg3"))), (
        proc.poll(),
        survivors(token),
    )
    proc.send_signal(signal.SIGINT)
    rc, _, err = finish(proc, timeout=30)
    assert rc == 130, err
    assert gone(token), survivors(token)
    time.sleep(0.5)  # a surviving pip would be recreating the env now
    assert list(throwaway.glob("tmp-*")) == []
    assert "Traceback" not in err
