"""`qatdoctor sweep`: the probe over an aimet-torch × torch × Python grid, written as an evidence file.

Each cell is built (cached by its pins under `$QATDOCTOR_ENVS/sweep/`), probed with one intra-op thread,
recorded, and deleted unless `--keep-envs`; the evidence file is rewritten after every cell, so an
interrupted sweep keeps what it measured. `--emit-ci-matrix` prints the same grid as a GitHub Actions
`strategy.matrix` (one cell per job) instead; each job's evidence merges back with `matrix merge-evidence`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatdoctor import core
from qatdoctor.environment import runner
from qatdoctor.environment.probe import DEFAULT_TIMEOUT
from qatdoctor.errors import InputError
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.lab import evidence
from qatdoctor.lab.cellplan import CellPlan
from qatdoctor.lab.cellrun import CellRun, Tools, run_cell
from qatdoctor.lab.envbuild import EnvBuildError, PythonNotFoundError, default_root, find_python
from qatdoctor.lab.sweep_grid import Grid, Skipped, expand, parse_pythons, resolve_aimet, resolve_torch


@dataclass(frozen=True)
class SweepOptions:
    """What `qatdoctor sweep` takes."""

    aimet: str
    torch: str
    python: str | None = None
    jobs: int = 1
    installer: str = "auto"
    keep_envs: bool = False
    output: Path | None = None
    extra: tuple[str, ...] = ()
    matrix: Path | None = None
    probe_timeout: float = DEFAULT_TIMEOUT
    models: tuple[str, ...] = ()
    root: Path | None = None
    tools: Tools = field(default_factory=Tools)
    progress: Callable[[str], None] = field(default=lambda line: None)


@dataclass(frozen=True)
class SweepResult:
    """The cells run (in grid order), the cells skipped, and where the evidence went."""

    runs: tuple[CellRun, ...]
    cells: tuple[evidence.Cell, ...]
    skipped: tuple[Skipped, ...]
    output: Path
    seconds: float

    @property
    def failed_builds(self) -> tuple[CellRun, ...]:
        return tuple(r for r in self.runs if r.error is not None)


def plan_grid(options: SweepOptions, matrix: Matrix, *, local: bool = True) -> Grid:
    """Resolve the ranges against the matrix; `local` also requires the Python minor to exist here."""
    aimets, aimet_warnings = resolve_aimet(options.aimet, matrix)
    torches, torch_warnings = resolve_torch(options.torch, matrix)
    pythons = parse_pythons(options.python)
    found: dict[str, bool] = {}

    def available(minor: str) -> bool:
        if not local:
            return True
        if minor not in found:
            try:
                find_python(minor, options.tools.runner)
                found[minor] = True
            except PythonNotFoundError:
                found[minor] = False
        return found[minor]

    grid = expand(matrix, aimets, torches, pythons, extra=options.extra, available=available)
    warnings = (*aimet_warnings, *torch_warnings, *grid.warnings)
    return Grid(grid.plans, grid.skipped, warnings)


def ci_matrix(options: SweepOptions) -> tuple[dict[str, Any], Grid]:
    """The GitHub Actions `strategy.matrix` for the grid: `{"include": [{aimet, torch, python, id}, ...]}`."""
    matrix = core.load_matrix(options.matrix)
    grid = plan_grid(options, matrix, local=False)
    include = [{"aimet": p.aimet, "torch": p.torch, "python": p.python, "id": p.id} for p in grid.plans]
    return {"include": include}, grid


def run_sweep(options: SweepOptions) -> SweepResult:
    """Run every installable cell (up to `jobs` at a time) and write the evidence file."""
    if options.jobs < 1:
        raise InputError("--jobs must be at least 1")
    matrix = core.load_matrix(options.matrix)
    grid = plan_grid(options, matrix)
    for warning in grid.warnings:
        options.progress(f"warning: {warning}")
    for skip in grid.skipped:
        options.progress(f"skipping {skip.id}: {'; '.join(skip.reasons)}")
    if not grid.plans:
        raise EnvBuildError("nothing to run: every cell of the grid is uninstallable here (see the reasons above)")
    output = options.output or Path(f"sweep-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
    started = time.perf_counter()
    writer = _EvidenceWriter(output, grid, options)
    runs: dict[str, CellRun] = {}
    with ThreadPoolExecutor(
        max_workers=options.jobs, thread_name_prefix="sweep", initializer=runner.shield_thread
    ) as pool:
        futures = {pool.submit(_one, plan, options): plan for plan in grid.plans}
        try:
            for future in as_completed(futures):
                run = future.result()
                runs[run.plan.id] = run
                writer.add(run)
                options.progress(f"[{run.plan.id}] {_outcome(writer.cells[run.plan.id])}")
        except BaseException:  # Ctrl-C, SIGTERM: stop every cell's children first, then let the workers drain
            with runner.stopping():
                pool.shutdown(wait=True, cancel_futures=True)
            raise
    ordered = tuple(runs[p.id] for p in grid.plans)
    return SweepResult(
        ordered, tuple(writer.cells[p.id] for p in grid.plans), grid.skipped, output, time.perf_counter() - started
    )


def _one(plan: CellPlan, options: SweepOptions) -> CellRun:
    def log(line: str) -> None:
        options.progress(f"[{plan.id}] {line}")

    log(f"start: {plan.describe()}")
    try:
        return run_cell(
            plan,
            (options.root or default_root()) / "sweep",
            tools=options.tools,
            installer=options.installer,
            keep=options.keep_envs,
            probe_timeout=options.probe_timeout,
            models=options.models,
            log=log,
        )
    except OSError as error:
        return CellRun(plan, plan.facts(), None, options.installer, error=f"{type(error).__name__}: {error}")


def to_cell(run: CellRun) -> evidence.Cell:
    """The evidence cell for one run (an install failure is a cell too, with its error)."""
    return evidence.make_cell(run.facts, run.probe, install=run.install_record(), install_error=run.error)


def _outcome(cell: evidence.Cell) -> str:
    failing = sorted(k for k, v in cell.summary.items() if v != "pass")
    if cell.outcome == "install-failed":
        return f"install-failed: {cell.install.get('error', '')}"
    return cell.outcome + (f" (failing: {', '.join(failing)})" if failing else "")


class _EvidenceWriter:
    """Rewrites the evidence file after each cell (thread-safe), so partial sweeps keep their results."""

    def __init__(self, path: Path, grid: Grid, options: SweepOptions) -> None:
        self.path, self.grid, self.options = path, grid, options
        self.cells: dict[str, evidence.Cell] = {}
        self.host: dict[str, str] | None = None
        self.lock = threading.Lock()

    def add(self, run: CellRun) -> None:
        with self.lock:
            self.cells[run.plan.id] = to_cell(run)
            if self.host is None and run.probe is not None:
                self.host = evidence.host_of(run.facts)
            ordered = [self.cells[p.id] for p in self.grid.plans if p.id in self.cells]
            evidence.write(self.path, ordered, self.host or _this_host(), extra=self._extra())

    def _extra(self) -> dict[str, Any]:
        o = self.options
        return {
            "sweep": {"aimet": o.aimet, "torch": o.torch, "python": o.python or "auto", "installer": o.installer,
                      "jobs": o.jobs, "extra": list(o.extra)},
            "skipped": [{"id": s.id, "versions": {"aimet-torch": s.aimet, "torch": s.torch, "python": s.python},
                         "reasons": list(s.reasons)} for s in self.grid.skipped],
        }  # fmt: skip


def _this_host() -> dict[str, str]:
    from qatdoctor.environment.collect import collect

    return evidence.host_of(collect(None))


def render_text(result: SweepResult) -> str:
    """One line per cell, then the skipped cells with their reasons."""
    rows = [("cell", "outcome", "installer", "build s", "probe s", "detail")]
    for run, cell in zip(result.runs, result.cells, strict=True):
        failing = "; ".join(f"{k}: {v}" for k, v in cell.summary.items() if v != "pass")
        detail = run.error or failing or "every probe model passed"
        rows.append((cell.id, cell.outcome, run.installer, f"{run.build_seconds:.0f}", f"{run.probe_seconds:.0f}",
                     detail[:160]))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:5])) + "  " + r[5] for r in rows]
    for skip in result.skipped:
        lines.append(f"{skip.id.ljust(widths[0])}  skipped  {'; '.join(skip.reasons)}")
    lines.append(f"evidence: {result.output} ({len(result.cells)} cells, {result.seconds:.0f}s)")
    lines.append(f"merge it: qatdoctor matrix merge-evidence {result.output}")
    return "\n".join(lines) + "\n"


def to_dict(result: SweepResult) -> dict[str, Any]:
    """The sweep summary as JSON (the evidence file holds the full probe tables)."""
    return {
        "output": str(result.output),
        "seconds": round(result.seconds, 1),
        "cells": [
            {"id": c.id, "outcome": c.outcome, "versions": dict(c.versions), "summary": dict(c.summary),
             "installer": r.installer, "build_seconds": round(r.build_seconds, 1),
             "probe_seconds": round(r.probe_seconds, 1), "error": r.error}
            for r, c in zip(result.runs, result.cells, strict=True)
        ],
        "skipped": [{"id": s.id, "reasons": list(s.reasons)} for s in result.skipped],
    }  # fmt: skip
