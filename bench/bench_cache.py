"""A second `qatdoctor check` of an unchanged environment (cached stand-in probe) against the first (probe run).

Target (issue: an instant second check): the second check takes <= 1 s. Both run side by side, interleaved:
`--no-cache` forces the probe every time, the other run hits the cache the first run wrote. Usage:
    .venv/bin/python bench/bench_cache.py [--env aimet-2.42.0 | --python PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from _timing import ref_env_python, time_command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="aimet-2.42.0", help="reference environment name")
    parser.add_argument("--python", help="target interpreter instead of a reference env")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = args.python or ref_env_python(args.env)
    if python is None:
        raise SystemExit(f"{args.env} is not built: python3 scripts/refenvs.py build {args.env}")
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


if __name__ == "__main__":
    main()
