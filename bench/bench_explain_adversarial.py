"""`qatdoctor explain` on hostile input: throughput must stay >= 20 MiB/s whatever the text and the matrix.

Target (issue 11): at least 20 MiB/s on adversarial input. Usage:
    .venv/bin/python bench/bench_explain_adversarial.py [--mb 64] [--runs 3] [--kinds anchors,pip,...]

Inputs (each --mb MiB, generated in memory):
  anchors         every literal the scanner anchors on, densely, one line per repetition (each anchor would
                  otherwise cost a window around it)
  anchors-noline  the same without newlines (one huge line)
  pip             package-list rows for megabytes (the version extractor's per-line work)
  prose           "aimet-torch 1.32.2 torch 2.2.2 ..." repeated (prose version statements)
  ansi            colour escape sequences only
  types           exception type names (`RuntimeError:`) densely
  spaces          whitespace only
  quotes          e-mail quote markers (`> > >`) on every line
  redos-line      `Error: aaa…a` lines against a matrix with catastrophic-backtracking signatures added:
                  `((a+))+$`, `(a|aa)+$`, `\\w+\\w+\\w+\\w+\\w+!` (they hang Python's `re`; RE2 is linear)
The rate is MiB of input per second of process CPU time (what it is on an idle machine) and wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qatdoctor.core import load_matrix  # noqa: E402
from qatdoctor.explain import explain_stream  # noqa: E402
from qatdoctor.explain.scan import plan_gates  # noqa: E402
from qatdoctor.knowledge.entries import Matrix, Signature  # noqa: E402

MB = 1 << 20
KINDS = ("anchors", "anchors-noline", "pip", "prose", "ansi", "types", "spaces", "quotes", "redos-line")
EVIL = (r"((a+))+$", r"(a|aa)+$", r"\w+\w+\w+\w+\w+!")


def evil_matrix(matrix: Matrix) -> Matrix:
    """The matrix plus one rule per catastrophic-backtracking signature."""
    template = next(r for r in matrix.rules if r.kind == "bad" and r.signatures)
    extra = tuple(
        template._replace(id=f"evil-{i}", signatures=(Signature(text=None, regex=pattern, type=None, note=None),))
        for i, pattern in enumerate(EVIL)
    )
    return matrix._replace(rules=(*matrix.rules, *extra))


def make(kind: str, size: int, matrix: Matrix) -> bytes:
    gates = sorted(plan_gates(r for r in matrix.rules if r.kind == "bad" and r.signatures))
    unit = {
        "anchors": " ".join(gates) + "\n",
        "anchors-noline": " ".join(gates) + " ",
        "pip": "torch 2.2.2\naimet-torch 1.32.2\nnumpy==1.23.5\n",
        "prose": "aimet-torch 1.32.2 torch 2.2.2 CUDA 12.0 python3.10 numpy 1.23.5 Ubuntu 22.04 ",
        "ansi": "\x1b[33m\x1b[0m" * 100 + "\n",
        "types": "RuntimeError: ImportError: ModuleNotFoundError: " * 10 + "\n",
        "spaces": " \t" * 1000 + "\n",
        "quotes": "> > > > RuntimeError: x\n",
        "redos-line": "Error: " + "a" * 120 + "\n",
    }[kind]
    return (unit * (size // len(unit) + 1))[:size].encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=64, help="size of each input in MiB (default 64)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    matrix = load_matrix(None)
    evil = evil_matrix(matrix)
    print(f"qatdoctor explain on adversarial input ({args.mb} MiB each, {args.runs} runs, medians)")
    worst = float("inf")
    for kind in args.kinds.split(","):
        used = evil if kind == "redos-line" else matrix
        data = make(kind, args.mb * MB, used)
        walls, cpus = [], []
        for _ in range(args.runs):
            started, cpu = time.perf_counter(), time.process_time()
            explain_stream(io.BytesIO(data), used, target=kind)
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
        cpu_rate = len(data) / MB / statistics.median(cpus)
        wall_rate = len(data) / MB / statistics.median(walls)
        worst = min(worst, cpu_rate)
        print(f"  {kind:15s} {cpu_rate:7.1f} MiB/s CPU   {wall_rate:7.1f} MiB/s wall")
    print(f"  worst     {worst:.1f} MiB/s CPU   target {'met' if worst >= 20 else 'NOT met'} (>= 20)")
    print(f"  load      {os.getloadavg()[0]:.1f} (1-min load average; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
