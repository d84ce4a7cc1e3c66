"""The grid as one self-contained web page: inline CSS and JS, the data for every filter value embedded as JSON.

The page filters client-side: each cell carries its evaluated outcome for every Python minor and every CUDA build
a driver tier picks, plus the Python minor that reads best per build, so the browser only looks values up.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from qatdoctor import __version__
from qatdoctor.authoring.grid import (
    CHECK_TITLES,
    LEGEND,
    PROPOSED_NOTE,
    DriverMark,
    Evaluator,
    Filters,
    Outcome,
    Row,
    State,
    columns_of,
    driver_tiers,
    python_minors,
    rows_of,
)
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import EVIDENCE_PREFIX
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.recommend.commands import CUDA_INDEX

ASSETS = Path(__file__).with_name("grid_page")
MARKS = {DriverMark.OK: "", DriverMark.VARIANT: "~", DriverMark.TOO_OLD: "^", None: ""}


def page_data(matrix: Matrix, evaluator: Evaluator | None = None, initial: Filters | None = None) -> dict[str, Any]:
    """Everything the page shows, compact: outcomes are shared, cells point at them."""
    evaluator = evaluator or Evaluator(matrix)
    rows, columns, tiers = rows_of(matrix), columns_of(matrix), driver_tiers(matrix)
    outcomes: dict[Outcome, int] = {}
    cols: list[dict[str, Any]] = []
    for column in columns:
        picks = [evaluator.build_for(column.series, tier.driver) for tier in tiers]
        slots = list(dict.fromkeys([None, *(variant for variant, _ in picks)]))
        series = evaluator.series(column.series)
        cols.append({
            "s": column.series, "t": column.torch, "tv": column.torchvision, "cuda": column.pypi_cuda,
            "py": list(python_minors(series)), "slots": slots,
            "tiers": [[slots.index(variant), MARKS[mark]] for variant, mark in picks],
            "floor": evaluator.driver_floor(column.series),
            **({"p": 1} if column.proposed else {}),
        })  # fmt: skip
    pythons = sorted({p for c in cols for p in c["py"]}, key=lambda p: int(p.split(".")[1]))
    cells: list[list[Any]] = []
    for row in rows:
        for column, col in zip(columns, cols, strict=True):
            entries: list[int] = []
            best: list[int] = []
            override = [column.torch, column.torchvision]
            for slot, variant in enumerate(col["slots"]):
                for python in evaluator.pythons(row.version, column.series):
                    plan = evaluator.plan(row.version, column.series, python, variant)
                    override = [plan.torch, plan.torchvision]
                    entries += [pythons.index(python), slot, outcomes.setdefault(plan.outcome, len(outcomes))]
                chosen = evaluator.best(row.version, column.series, variant).python
                best.append(pythons.index(chosen) if chosen else -1)
            cells.append([best, entries, *([override] if override[0] != column.torch else [])])
    referenced = {x for o in outcomes for x in (*o.rules, *o.caveats, *o.warnings, *o.undecided)}
    evidence_ids = {e for o in outcomes for e in o.evidence} | {
        s.ref[len(EVIDENCE_PREFIX) :]
        for r in matrix.rules
        if r.id in referenced
        for s in r.sources
        if s.ref.startswith(EVIDENCE_PREFIX)
    }
    initial = initial or Filters()
    return {
        "meta": {
            "matrix": matrix.matrix_version,
            "updated": matrix.updated.isoformat(),
            "sha256": matrix.sha256[:12],
            "qatdoctor": __version__,
            "index": CUDA_INDEX,
        },
        "legend": {state.value: text for state, text in LEGEND.items()},
        "pythons": pythons,
        "tiers": [[t.label, t.driver] for t in tiers],
        "rows": [_row(matrix, r) for r in rows],
        "proposed": PROPOSED_NOTE,
        "cols": cols,
        "cells": cells,
        "outcomes": [_outcome(o) for o in outcomes],
        "rules": {r.id: _rule(r) for r in matrix.rules if r.id in referenced},
        "checks": CHECK_TITLES,
        "evidence": {e.id: _evidence(e) for e in matrix.evidence if e.id in evidence_ids},
        "constructs": [{"id": c.id, "title": c.title} for c in matrix.constructs],
        "init": {"python": initial.python, "driver": initial.driver, "construct": initial.construct},
    }


def _row(matrix: Matrix, row: Row) -> dict[str, Any]:
    proposed = {"p": 1} if row.proposed else {}
    return {"v": row.version, "line": row.line, "rp": row.requires_python, **_pins(matrix, row.version), **proposed}


def _pins(matrix: Matrix, version: str) -> dict[str, str]:
    release = matrix.aimet_release(parse_version(version))
    assert release is not None, version
    pins = {"torch": release.torch, "torchvision": release.torchvision, "numpy": release.numpy}
    return {key: str(spec) for key, spec in pins.items() if spec is not None and str(spec)}


def _outcome(o: Outcome) -> list[Any]:
    return [
        o.state.value, o.reason, o.decided_by, list(o.rules), list(o.checks), list(o.declared), list(o.evidence),
        list(o.caveats), list(o.warnings), list(o.undecided), o.note, o.basis,
    ]  # fmt: skip


def _rule(rule: Any) -> dict[str, Any]:
    return {
        "title": rule.title, "kind": rule.kind, "severity": rule.severity, "construct": rule.model_feature,
        "summary": rule.summary, "when": ", ".join(f"{c.fact} {c.raw}" for c in rule.when),
        "sources": [[s.kind, s.ref, s.note or ""] for s in rule.sources],
        "fixes": [f.summary for f in rule.fixes],
    }  # fmt: skip


def _evidence(record: Any) -> dict[str, Any]:
    return {
        "date": record.date.isoformat(), "platform": record.platform, "outcome": record.outcome,
        "summary": record.summary, "file": record.file, "versions": dict(record.versions),
    }  # fmt: skip


def render(matrix: Matrix, initial: Filters | None = None, evaluator: Evaluator | None = None) -> str:
    """The page: the data as JSON in a script element (`<` escaped), the styles and the script inline."""
    data = json.dumps(page_data(matrix, evaluator, initial), separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    title = f"aimet-torch × torch compatibility grid (matrix {matrix.matrix_version})"
    parts = {
        "title": html.escape(title),
        "states": html.escape(", ".join(s.value for s in State)),
        "css": (ASSETS / "page.css").read_text(encoding="utf-8"),
        "js": (ASSETS / "page.js").read_text(encoding="utf-8"),
        "data": data,
    }
    template = (ASSETS / "page.html").read_text(encoding="utf-8")
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], template)  # one pass: nothing inserted is re-read


def write(path: Path, matrix: Matrix, initial: Filters | None = None) -> int:
    """Write the page (`atomic`: a regular file replaced atomically, a device or FIFO written through); its size."""
    from qatdoctor import atomic

    text = render(matrix, initial).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path, text, new_mode=0o644)  # a published page is world-readable
    return len(text)
