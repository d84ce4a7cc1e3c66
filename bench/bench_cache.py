"""A second `qatdoctor check` of an unchanged environment (cached stand-in probe) against the first (probe run).

Target (issue: an instant second check): the second check takes <= 1 s. Both run side by side, interleaved:
`--no-cache` forces the probe every time, the other run hits the cache the first run wrote. With
`--baseline DIR` (a checkout of another qatdoctor, e.g. `git archive BASE | tar -x -C DIR`) only the cached
check is timed, this tree's and DIR's interleaved, each with its own filled cache (what a cache change costs).
Usage:
    .venv/bin/python bench/bench_cache.py [--env aimet-2.42.0 | --python PATH] [--runs 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from _timing import ROOT, ref_env_python, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="aimet-2.42.0", help="reference environment name")
    parser.add_argument("--python", help="target interpreter instead of a reference env")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="another qatdoctor checkout: compare cached checks with it")
    args = parser.parse_args()
    python = args.python or ref_env_python(args.env)
    if python is None:
        raise SystemExit(f"{args.env} is not built: python3 scripts/refenvs.py build {args.env}")
    if args.baseline:
        cached_against_baseline(python, args.baseline, args.runs)
        return
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "QATDOCTOR_CACHE": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed from a wheel: bytecode cached
        check = [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json"]
        time_command(check, env)  # fills the cache
        first, second = [], []
        for _ in range(args.runs):
            first.append(time_command([*check, "--no-cache"], env))
            second.append(time_command(check, env))
    f, s = statistics.median(first), statistics.median(second)
    print(f"second check vs first: {args.runs} interleaved runs each, medians")
    print(f"  first (probe runs)     {f:8.3f} s")
    print(f"  second (cached probe)  {s:8.3f} s   (min {min(second):.3f} s)")
    print(f"  ratio                  {s / f:8.1%}")
    print(f"  target    {'met' if s <= 1.0 else 'NOT met'} (second check <= 1 s)")


def cached_against_baseline(python: str, baseline: str, runs: int) -> None:
    """The cached check of this tree against the one of `baseline`, interleaved, each on its own cache."""
    with tempfile.TemporaryDirectory() as mine, tempfile.TemporaryDirectory() as theirs:
        check = [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json"]
        envs = {}
        for name, tree, cache in (("this tree", str(ROOT), mine), ("baseline", baseline, theirs)):
            env = {**os.environ, "OMP_NUM_THREADS": "1", "QATDOCTOR_CACHE": cache, "PYTHONPATH": tree}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            time_command(check, env)  # fills the cache (the probe runs)
            time_command(check, env)  # and the page cache
            envs[name] = env
        times: dict[str, list[float]] = {name: [] for name in envs}
        for _ in range(runs):
            for name, env in envs.items():
                times[name].append(time_command(check, env))
    print(f"cached check, this tree vs baseline ({baseline}): {runs} interleaved runs each, medians")
    for name, values in times.items():
        print(f"  {name:10} {statistics.median(values):8.3f} s   (min {min(values):.3f} s)")
    ratio = statistics.median(times["this tree"]) / statistics.median(times["baseline"])
    print(f"  ratio      {ratio:8.1%}")


if __name__ == "__main__":
    main()
