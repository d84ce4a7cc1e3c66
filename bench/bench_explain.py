"""`qatdoctor explain` throughput and memory on a large synthetic training log.

Target (issue: explain): at least 50 MB/s, with peak memory that does not grow with the input. Usage:
    .venv/bin/python bench/bench_explain.py [--mb 256] [--runs 3]

The log (written to a temporary file, removed afterwards) is QAT training output with colour codes, CRLF
pieces, warnings and unrelated tracebacks, a pip list near the start, and two known errors: one split
across a 1 MiB read boundary and one at the very end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qatdoctor.core import load_matrix  # noqa: E402
from qatdoctor.explain import explain_stream  # noqa: E402
from qatdoctor.explain.reader import CHUNK  # noqa: E402

MB = 1 << 20
PIP_LIST = (
    "Package      Version\n------------ -----------\naimet-torch  1.32.2\ntorch        2.2.2+cu121\nnumpy  1.23.5\n"
)
CRASH = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/envs/qat/lib/python3.10/site-packages/aimet_torch/elementwise_ops.py", line 61, in forward\n'
    "    return self.op(*args, **kwargs)\n"
    "RuntimeError: The function 'native_batch_norm' is not differentiable with respect to argument\n"
    "'running_mean'. This input cannot have requires_grad True.\n"
)
LAPACKE = "ImportError: liblapacke.so.3: cannot open shared object file: No such file or directory\n"
UNRELATED = (
    "Traceback (most recent call last):\n"
    '  File "/opt/conda/envs/qat/lib/python3.10/site-packages/torch/utils/data/dataloader.py", line 1328, in next\n'
    "    idx, data = self._get_data()\n"
    "RuntimeError: DataLoader worker (pid 4242) is killed by signal: Killed.\n"
)


def _block(rng: random.Random, size: int) -> str:
    """About `size` characters of training log."""
    lines: list[str] = []
    total = 0
    step = rng.randrange(10_000)
    while total < size:
        step += 1
        roll = rng.random()
        if roll < 0.90:
            stamp = f"2025-03-0{rng.randrange(1, 9)} 12:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
            line = (
                f"{stamp},{rng.randrange(1000):03d} - train - INFO - epoch {step // 1000} step {step}"
                f" loss={rng.random():.4f} lr={rng.random() / 1e3:.2e} grad_norm={rng.random() * 10:.3f}"
                f" throughput={rng.randrange(100, 900)} img/s"
            )
        elif roll < 0.95:
            line = (
                "\x1b[33m/opt/conda/envs/qat/lib/python3.10/site-packages/torch/nn/modules/module.py:1511: "
                "UserWarning: To copy construct from a tensor, it is recommended to use sourceTensor.clone()\x1b[0m"
            )
        elif roll < 0.99:
            layer = f"backbone.stage{rng.randrange(4)}.conv{rng.randrange(9)}"
            line = f"Quant - INFO - Computing encodings for layer {layer}\r"
        else:
            line = UNRELATED.rstrip("\n")
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def write_log(path: Path, size_mb: int, seed: int = 0) -> int:
    """Write the synthetic log; returns its size in bytes."""
    rng = random.Random(seed)
    blocks = [_block(rng, MB).encode() for _ in range(8)]
    written = 0
    with path.open("wb") as out:
        out.write(PIP_LIST.encode())
        written += len(PIP_LIST)
        index = 0
        while written < size_mb * MB:
            block = blocks[index % len(blocks)]
            out.write(block)
            written += len(block)
            index += 1
            if index == size_mb // 2:  # a known error straddling a read boundary
                pad = (-written) % CHUNK
                filler = b"." * max(0, pad - len(CRASH) // 2) + b"\n"
                out.write(filler + CRASH.encode())
                written += len(filler) + len(CRASH)
        out.write(LAPACKE.encode())
        written += len(LAPACKE)
    return written


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / MB


def scan(path: Path, runs: int) -> None:
    """Child process: time explain on the file and report memory, as one JSON line."""
    matrix = load_matrix(None)
    result: dict[str, object] = {"before": rss_mb(), "seconds": [], "cpu": []}
    for _ in range(runs):
        with path.open("rb") as stream:
            started, cpu = time.perf_counter(), time.process_time()
            report = explain_stream(stream, matrix, target=str(path))
            result["seconds"].append(time.perf_counter() - started)  # type: ignore[attr-defined]
            result["cpu"].append(time.process_time() - cpu)  # type: ignore[attr-defined]
    result["peak"] = peak_rss_mb()
    with path.open("rb") as stream:  # Python-heap peak of one more pass (traced, so slower), from a file
        tracemalloc.start()
        explain_stream(stream, matrix, target=str(path))
        result["heap"] = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    result["versions"] = {k: v for k, v in (report.extracted or {}).items() if not k.endswith(".evidence")}
    result["found"] = [f.id for f in report.findings if f.origin == "log"]
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=256, help="size of the synthetic log in MiB (default 256)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scan", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan is not None:
        scan(args.scan, args.runs)
        return
    with tempfile.TemporaryDirectory(prefix="qatdoctor-bench-") as tmp:
        path = Path(tmp) / "train.log"
        size = write_log(path, args.mb)
        # a fresh process, so the peak RSS is the scan's and not the generator's
        done = subprocess.run(
            [sys.executable, __file__, "--scan", str(path), "--runs", str(args.runs)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    result = json.loads(done.stdout)
    seconds = result["seconds"]
    median = statistics.median(seconds)
    rate = size / MB / median
    print(f"qatdoctor explain on a {size / MB:.0f} MiB synthetic log ({args.runs} runs)")
    print(f"  median    {median:.2f} s   ({', '.join(f'{s:.2f}' for s in seconds)})")
    cpu_rate = size / MB / statistics.median(result["cpu"])
    print(f"  rate      {rate:.0f} MiB/s   target {'met' if rate >= 50 else 'NOT met'} (>= 50)")
    print(f"  CPU rate  {cpu_rate:.0f} MiB/s of process CPU time (what the rate is on an otherwise idle machine)")
    print(f"  load      {os.getloadavg()[0]:.1f} (1-min load average; {os.cpu_count()} CPUs)")
    print(f"  peak RSS  {result['peak']:.0f} MiB (RSS before scanning {result['before']:.0f} MiB)")
    print(f"  heap peak {result['heap']:.1f} MiB of Python objects while scanning (tracemalloc)")
    print(f"  matched   {', '.join(result['found']) or 'nothing'}")
    print(f"  versions  {', '.join(f'{k}={v}' for k, v in result['versions'].items())}")


if __name__ == "__main__":
    main()
