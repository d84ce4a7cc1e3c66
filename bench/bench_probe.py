"""Full `qatdoctor check` (collector + real probe) against the bare `import torch, aimet_torch`, same env.

Target (issue: the probe): at most 1.5x the bare import. A second baseline imports the modules the
pipeline itself needs (prepare_model, QuantizationSimModel, fold) — in aimet-torch 1.x `aimet_torch` is a
namespace package, so the bare import loads almost nothing and the QuantSim import dominates. Also prints the
probe's own per-stage timings. Usage:
    .venv/bin/python bench/bench_probe.py [--env aimet-2.42.0 | --python PATH] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _timing import compare, ref_env_python

PIPELINE_IMPORT = (
    "import torch, aimet_torch; "
    "from aimet_torch.model_preparer import prepare_model; "
    "from aimet_torch.quantsim import QuantizationSimModel; "
    "from aimet_torch.batch_norm_fold import fold_all_batch_norms"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="aimet-2.42.0", help="reference environment name")
    parser.add_argument("--python", help="target interpreter instead of a reference env")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    python = args.python or ref_env_python(args.env)
    if python is None:
        raise SystemExit(f"{args.env} is not built: python3 scripts/refenvs.py build {args.env}")
    env = {"OMP_NUM_THREADS": "1"}
    # --no-cache: this measures the probe itself (bench_cache.py measures the cached path)
    check = [sys.executable, "-m", "qatdoctor", "check", "--python", python, "--format", "json", "--no-cache"]
    ratio = compare("qatdoctor check vs import torch, aimet_torch", check,
                    [python, "-c", "import torch, aimet_torch"], args.runs, env)  # fmt: skip
    print(f"  target    {'met' if ratio <= 1.5 else 'NOT met'} (<= 1.5x the bare import)")
    compare("qatdoctor check vs importing the pipeline modules", check, [python, "-c", PIPELINE_IMPORT], args.runs, env)
    done = subprocess.run(check, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    report = json.loads(done.stdout)
    timings = report["probe"]["timings"]
    print("probe timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(timings.items())))
    print("qatdoctor timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in report["timings"].items()))


if __name__ == "__main__":
    main()
