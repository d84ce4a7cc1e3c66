"""The human report: rich tables on a terminal, the same content as plain ASCII when piped."""

from __future__ import annotations

import io
import shutil

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from qatdoctor.knowledge.vocab import FACT_ORDER
from qatdoctor.records import (
    FAILED,
    Finding,
    ModelRun,
    ProbeRun,
    Recommendation,
    Report,
    Scope,
    Severity,
    Status,
    Verdict,
    finding_order,
    reason_text,
    told,
)
from qatdoctor.render.doctor import chosen_by, summary_line
from qatdoctor.render.doctor import home as _home

VERDICT_STYLE = {Verdict.OK: "bold green", Verdict.PROBLEMS: "bold red", Verdict.UNKNOWN: "bold yellow"}
STATUS_WORD = {
    Status.PASS: ("PASS", "green"),
    Status.FAIL: ("FAIL", "red"),
    Status.SILENT_FAIL: ("SILENT-FAIL", "red"),
    Status.UNKNOWN: ("UNKNOWN", "yellow"),
    Status.SKIPPED: ("SKIPPED", "dim"),
    Status.NOT_APPLICABLE: ("N/A", "dim"),
}
SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def render(report: Report, *, styled: bool = False, verbose: int = 1) -> str:
    """The full report as text (`-v`; `-vv` adds timings and the raw errors); `styled` adds colour and boxes."""
    buffer = io.StringIO()
    # Piped output is never hard-wrapped (grep-able, copy-pasteable); only tables need a width.
    width = shutil.get_terminal_size((100, 24)).columns if styled else 140
    console = Console(
        soft_wrap=not styled,
        file=buffer, width=width, force_terminal=styled, no_color=not styled, highlight=False, emoji=False,
        color_system="standard" if styled else None,
    )  # fmt: skip
    table_box = box.ROUNDED if styled else box.ASCII
    verdict_style = VERDICT_STYLE[report.verdict]
    console.print(f"[bold]qatdoctor {report.command}[/] — {escape(_home(report.target))}{escape(chosen_by(report))}")
    console.print(
        f"verdict: [{verdict_style}]{report.verdict.value.upper()}[/]   "
        f"(matrix {report.matrix.version}, updated {report.matrix.updated})"
    )
    likely = [f for f in report.findings if f.scope is Scope.CAVEAT and f.likely]
    if likely and report.verdict is Verdict.UNKNOWN:
        constructs = ", ".join(dict.fromkeys(f.construct or f.id for f in likely))
        console.print(
            f"[yellow]run with --model path/to/file.py:build_model to know: caveats for {escape(constructs)} "
            "likely apply to the models trained here[/]"
        )
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    if report.extracted is not None:
        _extracted(console, report, table_box)
    _facts(console, report, table_box)
    environment = tuple(f for f in report.findings if f.scope is Scope.ENVIRONMENT)
    _findings(console, environment, "Findings")
    model = report.probe.model if report.probe is not None else None
    about_model = tuple(f for f in report.findings if f.scope is Scope.MODEL)
    if model is not None:
        _model(console, model, about_model, table_box)
    elif about_model:  # explain: the pasted log shows the user's model failing
        _findings(console, about_model, "Findings about your model")
    _caveats(console, tuple(f for f in report.findings if f.scope is Scope.CAVEAT))
    if report.recommendations:
        _recommendations(console, report.recommendations)
    if report.probe is not None:
        _probe(console, report.probe, table_box, raw=verbose >= 2)
    if verbose >= 2 and report.timings:
        console.print("[dim]timings: " + escape(", ".join(f"{k} {v:.3f}s" for k, v in report.timings.items())) + "[/]")
    console.print(f"\nverdict: [{verdict_style}]{report.verdict.value.upper()}[/] — {escape(summary_line(report))}")
    return buffer.getvalue()


def _extracted(console: Console, report: Report, table_box: box.Box) -> None:
    assert report.extracted is not None
    console.print("\n[bold]Versions stated in the input[/]")
    if not report.extracted:
        console.print("  (none found)")
    for name, value in report.extracted.items():
        console.print(f"  {name:<14} {escape(value)}")


def _facts(console: Console, report: Report, table_box: box.Box) -> None:
    if report.extracted is not None:
        return
    table = Table("fact", "value", "", box=table_box, show_header=False, pad_edge=False)
    names = [n for n in FACT_ORDER if n in report.facts.values] + sorted(
        n for n in report.facts.values if n not in FACT_ORDER and not n.startswith(("python-", "env:", "aimet-b"))
    )
    for name in names:
        fact = report.facts.get(name)
        style = "" if fact.is_known else ("yellow" if fact.state.value == "unknown" else "dim")
        note = fact.detail or ("" if fact.origin == "collected" else fact.origin)
        table.add_row(
            name, f"[{style}]{escape(fact.describe())}[/]" if style else escape(fact.describe()), escape(note)
        )
    gpus = report.facts.gpus
    gpu_text = (
        f"unknown: {report.facts.gpus_reason}" if gpus is None
        else ", ".join(f"{g.name} (cc {g.compute_capability})" for g in gpus) or "none"
    )  # fmt: skip
    table.add_row("gpus", escape(gpu_text), "")
    console.print("\n[bold]Environment[/]")
    console.print(table)


def _indented(console: Console, markup: str, indent: int = 6) -> None:
    """A paragraph under a heading: wrapped with a hanging indent on a terminal, one long line when piped."""
    if console.soft_wrap:
        console.print(" " * indent + markup)
    else:
        console.print(Padding(markup, (0, 0, 0, indent), expand=False))


def _word(finding: Finding) -> tuple[str, str]:
    """The status word: FAIL only for what fails the verdict; a failed warning is WARN; a caveat never fails."""
    if finding.scope is Scope.CAVEAT:
        return ("LIKELY", "yellow") if finding.likely else ("CAVEAT", "cyan")
    if finding.status in FAILED and finding.severity is not Severity.ERROR:
        return "WARN", "yellow"
    return STATUS_WORD[finding.status]


def _findings(console: Console, findings: tuple[Finding, ...], heading: str) -> None:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[_word(finding)[0].lower()] = counts.get(_word(finding)[0].lower(), 0) + 1
    shown = ", ".join(f"{n} {word}" for word, n in counts.items())
    console.print(f"\n[bold]{heading}[/] ({shown or 'none'})")
    for finding in sorted(findings, key=finding_order):
        _finding(console, finding)


def _finding(console: Console, finding: Finding) -> None:
    word, style = _word(finding)
    head = f"  [{style}]{word:<11}[/] [{SEVERITY_STYLE[finding.severity]}]{finding.severity.value:<7}[/] "
    console.print(head + f"[bold]{escape(finding.title)}[/] [dim]({escape(finding.id)})[/]")
    if finding.status in (Status.UNKNOWN, Status.NOT_APPLICABLE) and finding.origin in ("requirements", "matrix") \
            and finding.scope is not Scope.CAVEAT:
        # undecided checks: one line saying what is missing is enough
        why = reason_text(finding.reasons[0]) if finding.reasons else finding.summary.split(").", 1)[0]
        _indented(console, f"[dim]{escape(why[:200])}[/]")
        return
    if finding.likely:
        _indented(console, f"[yellow]likely applies: {escape(finding.likely)}[/]")
    _indented(console, escape(told(finding)))
    if finding.layers:
        _indented(console, f"layers ({len(finding.layers)}): {escape(_shown(finding.layers))}")
    for line in finding.evidence[:4]:
        _indented(console, f"[dim]evidence: {escape(line)}[/]")
    for fix in finding.fixes:
        _indented(console, f"fix ({fix.kind}): {escape(fix.summary)}")
        if fix.lands_on:
            _indented(console, f"[dim]lands on {escape(fix.lands_on)}[/]", 8)
        for command in fix.commands:
            console.print(f"        $ {escape(_home(command))}", soft_wrap=True)
    if finding.sources:
        refs = ", ".join(s.ref for s in finding.sources[:4])
        _indented(console, f"[dim]sources: {escape(refs)}[/]")


def _shown(names: tuple[str, ...], most: int = 6) -> str:
    more = len(names) - most
    return ", ".join(names[:most]) + (f", … (+{more} more)" if more > 0 else "")


def _caveats(console: Console, caveats: tuple[Finding, ...]) -> None:
    """Knowledge about constructs, for a model qatdoctor has not seen: never a failure."""
    if not caveats:
        return
    constructs = ", ".join(dict.fromkeys(f.construct or "?" for f in caveats))
    console.print(f"\n[bold]Caveats for models containing[/] {escape(constructs)} "
                  "[dim](not about this environment; --model checks your model)[/]")  # fmt: skip
    for finding in sorted(caveats, key=lambda f: (f.likely is None, finding_order(f))):
        word, style = _word(finding)
        head = f"  [{style}]{word:<11}[/] [{SEVERITY_STYLE[finding.severity]}]{finding.severity.value:<7}[/] "
        console.print(head + f"[bold]{escape(finding.title)}[/] [dim]({escape(finding.id)})[/]")
        if finding.likely:
            _indented(console, f"[yellow]likely applies: {escape(finding.likely)}[/]")
        if finding.origin == "probe":
            _indented(console, "[dim]reproduced here by the probe's stand-in model[/]")
        fix = next((fx for fx in finding.fixes if fx.kind == "code"), finding.fixes[0] if finding.fixes else None)
        if fix is not None:
            _indented(console, f"fix ({fix.kind}): {escape(fix.summary)}")
    console.print("  [dim](details: --format json or markdown)[/]")


def _model(console: Console, run: ModelRun, findings: tuple[Finding, ...], table_box: box.Box) -> None:
    """The user's model: what it is, which constructs it has, each stage, and the findings about it."""
    named = f" ({escape(run.class_name)})" if run.class_name else ""
    console.print(f"\n[bold]Your model[/]: {escape(run.spec)}{named}")
    if run.ran:
        shapes = ", ".join("×".join(map(str, s)) for s in run.input_shapes)
        console.print(f"  {run.modules} modules, {run.parameters:,} parameters; input {shapes or '?'}")
        found = {cid: hit for cid, hit in run.constructs.items() if hit.total}
        for cid, hit in found.items():
            classes = ", ".join(f"{name} ×{n}" for name, n in hit.classes.items())
            console.print(f"  {escape(cid)}: {hit.total} ({escape(classes or _shown(hit.layers, 3))})")
        if not found:
            console.print("  none of the constructs the matrix knows")
        for error in run.scan_errors:
            console.print(f"  [yellow]scan: {escape(error)}[/]")
        runs = [("as given", run), *((("fixed", run.fixed),) if run.fixed is not None else ())]
        table = Table(box=table_box)
        for column in ("model", *dict.fromkeys(s.stage for _, r in runs for s in r.stages)):
            table.add_column(column, no_wrap=True)
        stages = [c.header for c in table.columns][1:]
        for label, r in runs:
            cells = {s.stage: _cell(s.status) for s in r.stages}
            table.add_row(label, *(cells.get(stage, "") for stage in stages))
        console.print(table)
        for label, r in runs:
            for fold_name, fold in r.fold.items():
                if fold is not None and fold.pairs is not None:
                    rel = f", output change {fold.relative:.2g} of its scale" if fold.relative is not None else ""
                    left = f", {len(fold.unfolded)} BN left" if fold.unfolded else ""
                    console.print(f"  [dim]{label}: fold {fold_name}: {fold.pairs} pairs{left}{rel}[/]")
    shown = tuple(f for f in findings if f.status is not Status.NOT_APPLICABLE)
    _findings(console, shown, "Findings about your model")
    absent = [f for f in findings if f.status is Status.NOT_APPLICABLE]
    if absent:
        constructs = ", ".join(dict.fromkeys(f.construct or f.id for f in absent))
        console.print(f"  [dim]N/A         {len(absent)} rules about constructs your model does not have "
                      f"({escape(constructs)})[/]")  # fmt: skip


def _recommendations(console: Console, recs: tuple[Recommendation, ...]) -> None:
    console.print("\n[bold]Recommendations[/]")
    for number, rec in enumerate(recs, 1):
        console.print(f"  {number}. [bold]{escape(rec.summary)}[/]  [dim]({rec.kind})[/]")
        for command in rec.commands:
            console.print(f"     $ {escape(_home(command))}", soft_wrap=True)
        if rec.lands_on:
            console.print("     [dim]known-good: " + escape("; ".join(rec.lands_on)) + "[/]")
        for note in rec.notes:
            for line in note.splitlines():
                console.print(f"     {escape(line)}", soft_wrap=True)


def _cell(status: Status) -> str:
    word, style = STATUS_WORD[status]
    return f"[{style}]{word.lower()}[/]"


def _probe(console: Console, probe: ProbeRun, table_box: box.Box, *, raw: bool = False) -> None:
    console.print(f"\n[bold]Probe[/]: {escape(probe.state)}" + (f" — {escape(probe.reason)}" if probe.reason else ""))
    if probe.api:
        console.print(f"  API: {escape(probe.api)}")
    if probe.import_error is not None:
        console.print(f"  [red]{escape(probe.import_error.type)}: {escape(probe.import_error.message)}[/]")
    if not probe.cases:
        if probe.stderr_tail:
            console.print("  stderr tail:")
            for line in probe.stderr_tail.splitlines()[-8:]:
                console.print(f"    {escape(line)}")
        return
    stages = list(dict.fromkeys(s.stage for case in probe.cases for s in case.stages))
    table = Table(box=table_box)
    for column in ("model", "mode", *stages):
        table.add_column(column, no_wrap=True)
    for case in probe.cases:
        cells = {s.stage: _cell(s.status) for s in case.stages}
        table.add_row(case.model, case.mode, *(cells.get(stage, "") for stage in stages))
    console.print(table)
    for case in probe.cases:
        for stage in case.stages:
            if stage.status in (*FAILED, Status.UNKNOWN):
                detail = (
                    f"{stage.error.type}: {stage.error.message}" if stage.error
                    else f"{stage.check}: {stage.measured}" if stage.check else stage.reason or ""
                )  # fmt: skip
                shown = detail if raw else detail[:300]
                console.print(f"  {case.model}/{case.mode}/{stage.stage}: {escape(shown)}")
                if raw and stage.error is not None:
                    for frame in stage.error.frames:
                        console.print(f"      [dim]{escape(frame)}[/]")
    if probe.timings and raw:
        shown = ", ".join(f"{k} {v:.2f}s" for k, v in probe.timings.items())
        console.print(f"  [dim]timings: {escape(shown)}[/]")
