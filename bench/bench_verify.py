"""Per-cell cost of `verify`/`sweep` (build a fresh env, probe it, delete it) with uv against venv + pip.

Both installers build the same cell into a fresh throwaway env; one untimed warm-up per installer fills its
cache first, so the timed runs measure warm-cache installs. Usage:
    .venv/bin/python bench/bench_verify.py [--aimet 2.42.0] [--torch 2.14.1] [--python 3.11] [--runs 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from qatdoctor.knowledge.load import load
from qatdoctor.lab.cellplan import plan_cell
from qatdoctor.lab.cellrun import run_cell
from qatdoctor.lab.envbuild import default_root, find_uv

INSTALLERS = ("uv", "pip")


def one_cell(installer: str, args: argparse.Namespace, root: Path) -> tuple[float, float, float]:
    """(build, probe, total) seconds of one fresh cell; total includes collecting facts and deleting the env."""
    plan = plan_cell(load(), args.aimet, args.torch, args.python)
    started = time.perf_counter()
    run = run_cell(plan, root, installer=installer, throwaway=True, raise_build_errors=True, probe_timeout=600)
    total = time.perf_counter() - started
    if run.probe is None or run.probe.state != "ran":
        raise SystemExit(f"benchmark cell did not probe cleanly with {installer}: {run.probe}")
    return run.build_seconds, run.probe_seconds, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aimet", default="2.42.0")
    parser.add_argument("--torch", default="2.14.1")
    parser.add_argument("--python", default="3.11")
    parser.add_argument("--runs", type=int, default=2, help="timed runs per installer (after one warm-up each)")
    parser.add_argument("--root", type=Path, default=None, help="where the throwaway envs go")
    args = parser.parse_args()
    if find_uv() is None:
        raise SystemExit("uv is not installed: pip install uv")
    root = args.root or default_root() / "bench"
    for installer in INSTALLERS:  # warm the caches, untimed
        print(f"warm-up: {installer} ...", file=sys.stderr, flush=True)
        one_cell(installer, args, root)
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in INSTALLERS}
    for _ in range(args.runs):  # interleaved, so drift hits both alike
        for installer in INSTALLERS:
            times[installer].append(one_cell(installer, args, root))
    cell = f"aimet-torch {args.aimet} + torch {args.torch} on Python {args.python}"
    print(f"per-cell cost (fresh env, warm cache, probe with OMP_NUM_THREADS=1): {cell}; {args.runs} runs, medians")
    print(f"  {'installer':<10}{'build s':>10}{'probe s':>10}{'cell s':>10}")
    medians = {}
    for installer in INSTALLERS:
        build, probe, total = (statistics.median(t[i] for t in times[installer]) for i in range(3))
        medians[installer] = (build, total)
        print(f"  {installer:<10}{build:>10.1f}{probe:>10.1f}{total:>10.1f}")
    (uv_build, uv_total), (pip_build, pip_total) = medians["uv"], medians["pip"]
    print(f"  ratio uv/pip: build {uv_build / pip_build:.0%}, whole cell {uv_total / pip_total:.0%}")


if __name__ == "__main__":
    main()
