"""Shared timing helpers for the benchmarks: interleaved runs, medians, a side-by-side table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ref_env_python(name: str) -> str | None:
    """The interpreter of a reference environment, if it is built."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "refenvs.py"), "path", name],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None if done.returncode == 0 else None


def time_command(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run; a failing command is an error (a benchmark of a failure means nothing)."""
    started = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1 = qatdoctor found problems, still a complete run
        raise SystemExit(f"benchmark command failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}")
    return elapsed


def compare(
    name: str, subject: Sequence[str], baseline: Sequence[str], runs: int, env: dict[str, str] | None = None
) -> float:
    """Run both commands `runs` times, interleaved, and print medians and the ratio subject/baseline."""
    env = {**os.environ, **(env or {})}
    # As installed from a wheel (pip byte-compiles): a sandbox's PYTHONDONTWRITEBYTECODE would make every
    # run recompile qatdoctor's own sources and measure the compiler instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    time_command(subject, env), time_command(baseline, env)  # warm the page cache once
    subject_times, baseline_times = [], []
    for _ in range(runs):
        subject_times.append(time_command(subject, env))
        baseline_times.append(time_command(baseline, env))
    s, b = statistics.median(subject_times), statistics.median(baseline_times)
    print(f"{name}: {runs} interleaved runs each, medians")
    print(f"  subject   {s:8.3f} s   {' '.join(subject)}")
    print(f"  baseline  {b:8.3f} s   {' '.join(baseline)}")
    print(f"  ratio     {s / b:8.1%}   (min {min(subject_times):.3f} s vs {min(baseline_times):.3f} s)")
    return s / b
