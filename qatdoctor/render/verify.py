"""`qatdoctor verify` output: text, markdown, and JSON (the built side's report plus a `verify` object)."""

from __future__ import annotations

import io
import json
from typing import Any

from qatdoctor.jsonio import probe_to_dict, recommendation_to_dict, report_to_dict
from qatdoctor.knowledge.vocab import CELL_FACTS, CHOICE_FACTS
from qatdoctor.lab.verify import VerifyResult
from qatdoctor.lab.verify_compare import CaseDiff, Entry, StageDiff, stage_names
from qatdoctor.records import FAILED, Report
from qatdoctor.render import Format, shown
from qatdoctor.render.inert import code, prose
from qatdoctor.text import first_line
from qatdoctor.transform.redact import redact_secrets_data

# the set a cell names, with the QuantSim API after aimet-torch
VERSION_FACTS = (CELL_FACTS[0], *CHOICE_FACTS, *CELL_FACTS[1:])


def render(result: VerifyResult, fmt: Format, *, styled: bool = False) -> str:
    """The verification in the requested format: credentials redacted in each, terminal control stripped in text."""
    if fmt is Format.json:
        return json.dumps(to_dict(redact_secrets_data(result)), indent=2) + "\n"
    if fmt is Format.markdown:
        return _markdown(redact_secrets_data(result))  # inert.py strips control from each value
    return _text(shown(result), styled=styled)


def headline(result: VerifyResult) -> str:
    c = result.comparison
    counts = f"{len(c.fixed)} fixed, {len(c.remaining)} remaining, {len(c.new)} new"
    if result.recommendation is None:
        return f"REPRODUCED: verdict {result.after.verdict.value} ({counts})"
    if result.fixes:
        model_level = [e.id for e in c.new_errors]
        caveat = f"; new model-level failures: {', '.join(model_level)}" if model_level else ""
        return f"FIXES what it targeted ({counts}{caveat})"
    why = []
    if c.unfixed_targets:
        why.append("still failing: " + ", ".join(c.unfixed_targets))
    if c.new_blocking:
        why.append("new environment errors: " + ", ".join(e.id for e in c.new_blocking))
    return f"DOES NOT FIX it ({counts}; {'; '.join(why)})"


def to_dict(result: VerifyResult) -> dict[str, Any]:
    """The built side's report, command `verify`, with the comparison under `verify`."""
    out = report_to_dict(result.after)
    c, run = result.comparison, result.run
    out["verify"] = {
        "mode": result.mode,
        "result": "reproduced" if result.recommendation is None else ("fixed" if result.fixes else "not-fixed"),
        "recommendation": recommendation_to_dict(result.recommendation) if result.recommendation else None,
        "before": _side(result.before, c.failing_before),
        "after": _side(result.after, c.failing_after),
        "targeted": list(c.targeted),
        "fixed": [_entry(e) for e in c.fixed],
        "remaining": [_entry(e) for e in c.remaining],
        "new": [_entry(e) for e in c.new],
        "env": {
            "installer": run.installer,
            "seconds": round(run.build_seconds, 1),
            "probe_seconds": round(run.probe_seconds, 1),
            "python": result.plan.python,
            "requirements": list(result.plan.requirements()),
            "kept": str(run.kept) if run.kept else None,
        },
    }
    return out


def _side(report: Report, failing_ids: tuple[str, ...]) -> dict[str, Any]:
    return {
        "target": report.target,
        "verdict": report.verdict.value,
        "versions": {k: v for k in VERSION_FACTS if (v := report.facts.value(k))},
        "failing": list(failing_ids),
        "probe": probe_to_dict(report.probe) if report.probe else None,
    }


def _entry(e: Entry) -> dict[str, Any]:
    return {"id": e.id, "title": e.title, "severity": e.severity, "scope": e.scope, "before": e.before,
            "after": e.after, "was": list(e.was), "note": e.note}  # fmt: skip


def _cell(diff: StageDiff) -> str:
    if diff.before is None or diff.before == diff.after:
        return diff.after or "-"
    return f"{diff.before} → {diff.after or '-'}"


def _lines(result: VerifyResult) -> list[str]:
    """The comparison as plain lines (shared by text and markdown)."""
    c = result.comparison
    lines = []
    for title, entries in (("Fixed", c.fixed), ("Remaining", c.remaining), ("New", c.new)):
        lines.append(f"{title} ({len(entries)})")
        for e in entries:
            states = f"→ {e.after}" if e.was else f"{e.before or 'ok'} → {e.after or 'gone'}"
            lines.append(f"  {e.id} [{e.severity}, {e.scope}, {states}]: {e.title}")
            if e.was:
                lines.append(f"      was: {', '.join(e.was)}")
            if e.note:
                lines.append(f"      {e.note[:220]}")
    return lines


def _header(result: VerifyResult) -> list[str]:
    run, rec = result.run, result.recommendation
    lines = [f"before: {result.before.target}"]
    if rec is not None:
        lines.append(f"recommendation: {rec.summary} ({rec.kind})")
    kept = f"kept at {run.kept}" if run.kept else "removed"
    lines.append(f"built:  {result.plan.describe()}")
    lines.append(f"        {run.installer}, build {run.build_seconds:.0f}s, probe {run.probe_seconds:.0f}s, {kept}")
    c = result.comparison
    lines.append(f"import: {c.import_before or 'not probed'} → {c.import_after or 'not probed'}")
    return lines


def _text(result: VerifyResult, *, styled: bool) -> str:
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=styled, no_color=not styled, highlight=False,
                      emoji=False, color_system="standard" if styled else None)  # fmt: skip
    console.print(f"[bold]qatdoctor verify[/] — {escape(headline(result))}", soft_wrap=True)
    for line in [*_header(result), "", *_lines(result)]:
        console.print(escape(line), soft_wrap=True)
    cases = result.comparison.cases
    if cases:
        stages = stage_names(cases)
        table = Table("model", "mode", *stages, box=box.ROUNDED if styled else box.ASCII,
                      title="probe: before → after", title_justify="left")  # fmt: skip
        for case in cases:
            table.add_row(case.model, case.mode, *(_stage_cell(case, s) for s in stages))
        console.print()
        console.print(table)
    for detail in _after_details(result.after):
        console.print(escape(detail), soft_wrap=True)
    return buffer.getvalue()


def _stage_cell(case: CaseDiff, stage: str) -> str:
    diff = next((d for d in case.stages if d.stage == stage), None)
    return _cell(diff) if diff else ""


def _after_details(report: Report) -> list[str]:
    """The built side's failing stages with their errors or checks, one line per model/stage/outcome."""
    probe = report.probe
    if probe is None:
        return []
    out = []
    if probe.import_error is not None:
        out.append(f"after: import: {probe.import_error.type}: {probe.import_error.message[:240]}")
    seen: dict[tuple[str, str, str], list[str]] = {}
    for case in probe.cases:
        for s in case.stages:
            if s.status in FAILED:
                what = f"{s.error.type}: {s.error.message}" if s.error else f"{s.check}: {s.measured}"
                seen.setdefault((case.model, s.stage, first_line(what, limit=200)), []).append(case.mode)
    for (model, stage, what), modes in seen.items():
        out.append(f"after: {model}/{','.join(modes)}/{stage}: {what}")
    return out


def _markdown(result: VerifyResult) -> str:
    lines = [f"### qatdoctor verify: **{prose(headline(result))}**", ""]
    lines += [f"- {prose(' '.join(line.split()))}" for line in _header(result)]
    lines += [""]
    for line in _lines(result):
        if line.startswith("      "):
            lines.append(f"  - {prose(line.strip())}")
        else:
            lines.append(f"- {prose(line.strip())}" if line.startswith("  ") else f"\n#### {prose(line)}\n")
    cases = result.comparison.cases
    if cases:
        stages = stage_names(cases)
        lines += ["", "#### Probe: before → after", "", "| model | mode | " + " | ".join(map(prose, stages)) + " |",
                  "|---|---|" + "---|" * len(stages)]  # fmt: skip
        lines += [f"| {prose(c.model)} | {prose(c.mode)} | " + " | ".join(prose(_stage_cell(c, s)) for s in stages)
                  + " |" for c in cases]  # fmt: skip
    details = _after_details(result.after)
    if details:
        lines += ["", *(f"- {code(d)}" for d in details)]
    return "\n".join(lines) + "\n"
