"""`qatdoctor check --model` against a plain script that imports AIMET and runs the same stages on the same model.

Target (issue: diagnose the user's own model): at most 1.3x the plain script (bench/_plain_pipeline.py), in the
same run, interleaved. qatdoctor's side also collects facts, runs the seven stand-ins, scans the model and runs its
silent checks. Usage (models need the overlay envs from scripts/refenvs.py):
    .venv/bin/python bench/bench_model.py [--env aimet-2.42.0-models] [--model examples/models/rtmdet_tiny.py:build]
                                          [--runs 3]
"""

from __future__ import annotations

import argparse
import sys

from _timing import ROOT, compare, ref_env_python

DEFAULT_MODELS = ("examples/models/rtmdet_tiny.py:build", "examples/models/torchvision_models.py:resnet18")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="aimet-2.42.0-models", help="reference environment name")
    parser.add_argument("--python", help="target interpreter instead of a reference env")
    parser.add_argument("--model", action="append", help="model spec (repeatable; default: RTMDet-tiny, resnet18)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = args.python or ref_env_python(args.env)
    if python is None:
        raise SystemExit(f"{args.env} is not built: python3 scripts/refenvs.py build {args.env}")
    env = {"OMP_NUM_THREADS": "1"}
    for spec in args.model or DEFAULT_MODELS:
        path = str(ROOT / spec) if (ROOT / spec.rpartition(":")[0]).exists() else spec
        check = [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--model", path, "--format", "json"]
        plain = [python, str(ROOT / "bench" / "_plain_pipeline.py"), path]
        ratio = compare(f"check --model {spec} vs a plain AIMET script", check, plain, args.runs, env)
        print(f"  target    {'met' if ratio <= 1.3 else 'NOT met'} (<= 1.3x the plain script)")


if __name__ == "__main__":
    main()
