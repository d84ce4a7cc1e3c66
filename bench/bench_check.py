"""`qatdoctor check --no-probe` against `python -m torch.utils.collect_env` in the same environment.

Target (issue: core): qatdoctor at most 5 % of collect_env's time. Usage:
    .venv/bin/python bench/bench_check.py [--python ENV_PYTHON] [--runs 7]
"""

from __future__ import annotations

import argparse
import sys

from _timing import compare, ref_env_python


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


if __name__ == "__main__":
    main()
