"""`qatdoctor check --no-probe` against `python -m torch.utils.collect_env` in the same environment.

Target (issue: core): qatdoctor at most 5 % of collect_env's time. Then what the progress lines cost: the same
command with its stderr on a terminal (a pty), with progress and with `-q` (target: a few milliseconds). Usage:
    .venv/bin/python bench/bench_check.py [--python ENV_PYTHON] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import pty
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from _timing import compare, ref_env_python


def _on_a_terminal(argv: Sequence[str]) -> float:
    """Wall seconds of one run whose stderr is a pty (the live progress line's path)."""
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTHONDONTWRITEBYTECODE")}
    started = time.perf_counter()
    child = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=secondary, env=env)
    os.close(secondary)
    while True:
        try:
            if not os.read(primary, 65536):
                break
        except OSError:
            break
    child.wait()
    elapsed = time.perf_counter() - started
    os.close(primary)
    return elapsed


def progress_cost(argv: Sequence[str], runs: int) -> float:
    """Median seconds of `argv` with progress minus with `-q`, interleaved, stderr on a terminal."""
    loud, quiet = [sys.executable, "-m", "qatdoctor", *argv], [sys.executable, "-m", "qatdoctor", "-q", *argv]
    _on_a_terminal(loud), _on_a_terminal(quiet)
    with_progress, without = [], []
    for _ in range(runs):
        with_progress.append(_on_a_terminal(loud))
        without.append(_on_a_terminal(quiet))
    a, b = statistics.median(with_progress), statistics.median(without)
    print(f"progress on a terminal: {runs} interleaved runs each, medians")
    print(f"  with      {a:8.3f} s   qatdoctor {' '.join(argv)}")
    print(f"  -q        {b:8.3f} s")
    print(f"  cost      {(a - b) * 1000:8.1f} ms")
    return a - b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", help="target interpreter (default: the aimet-2.42.0 reference env)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    python = args.python or ref_env_python("aimet-2.42.0")
    if python is None:
        raise SystemExit("no target: build the reference envs (scripts/refenvs.py build) or pass --python")
    ratio = compare(
        "qatdoctor check --no-probe vs torch collect_env",
        [sys.executable, "-m", "qatdoctor", "check", "--no-probe", "--python", python, "--format", "json"],
        [python, "-m", "torch.utils.collect_env"],
        args.runs,
    )
    print(f"  target    {'met' if ratio <= 0.05 else 'NOT met'} (<= 5%)")
    cost = progress_cost(["check", "--no-probe", "--python", python], args.runs)
    print(f"  target    {'met' if cost <= 0.005 else 'NOT met'} (<= 5 ms)")


if __name__ == "__main__":
    main()
