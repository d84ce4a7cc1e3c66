"""The human report: rich tables on a terminal, the same content as plain ASCII when piped."""

from __future__ import annotations

import io
import shutil

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from qatdoctor.model import Finding, ProbeRun, Recommendation, Report, Severity, Status, Verdict, finding_order

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
FACT_ORDER = (
    "python", "platform", "os", "glibc", "aimet-torch", "aimet-api", "torch", "cuda", "torchvision", "numpy",
    "onnx", "mmengine", "mmcv", "aimet-onnx", "driver", "lib:liblapacke.so.3", "lib:libcublas.so.12",
)  # fmt: skip


def render(report: Report, *, styled: bool = False) -> str:
    """The report as text; `styled` adds colour and box drawing."""
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
    console.print(f"[bold]qatdoctor {report.command}[/] — {escape(report.target)}")
    console.print(
        f"verdict: [{verdict_style}]{report.verdict.value.upper()}[/]   "
        f"(matrix {report.matrix.version}, updated {report.matrix.updated})"
    )
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    if report.extracted is not None:
        _extracted(console, report, table_box)
    _facts(console, report, table_box)
    _findings(console, report.findings)
    if report.recommendations:
        _recommendations(console, report.recommendations)
    if report.probe is not None:
        _probe(console, report.probe, table_box)
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


def _findings(console: Console, findings: tuple[Finding, ...]) -> None:
    counts = {status: sum(1 for f in findings if f.status is status) for status in STATUS_WORD}
    shown = ", ".join(f"{n} {STATUS_WORD[s][0].lower()}" for s, n in counts.items() if n)
    console.print(f"\n[bold]Findings[/] ({shown or 'none'})")
    for finding in sorted(findings, key=finding_order):
        word, style = STATUS_WORD[finding.status]
        head = f"  [{style}]{word:<11}[/] [{SEVERITY_STYLE[finding.severity]}]{finding.severity.value:<7}[/] "
        console.print(head + f"[bold]{escape(finding.title)}[/] [dim]({escape(finding.id)})[/]")
        if finding.status is Status.UNKNOWN and finding.origin in ("requirements", "matrix"):
            # undecided checks: one line saying what is missing is enough
            _indented(console, f"[dim]{escape(finding.summary.split(').', 1)[0][:200])}[/]")
            continue
        _indented(console, escape(finding.summary))
        for line in finding.evidence[:4]:
            _indented(console, f"[dim]evidence: {escape(line)}[/]")
        for fix in finding.fixes:
            _indented(console, f"fix ({fix.kind}): {escape(fix.summary)}")
            for command in fix.commands:
                console.print(f"        $ {escape(command)}", soft_wrap=True)
        if finding.sources:
            refs = ", ".join(s.ref for s in finding.sources[:4])
            _indented(console, f"[dim]sources: {escape(refs)}[/]")


def _recommendations(console: Console, recs: tuple[Recommendation, ...]) -> None:
    console.print("\n[bold]Recommendations[/]")
    for number, rec in enumerate(recs, 1):
        console.print(f"  {number}. [bold]{escape(rec.summary)}[/]  [dim]({rec.kind})[/]")
        for command in rec.commands:
            console.print(f"     $ {escape(command)}", soft_wrap=True)
        if rec.lands_on:
            console.print("     [dim]known-good: " + escape("; ".join(rec.lands_on)) + "[/]")
        for note in rec.notes:
            for line in note.splitlines():
                console.print(f"     {escape(line)}", soft_wrap=True)


def _cell(status: Status) -> str:
    word, style = STATUS_WORD[status]
    return f"[{style}]{word.lower()}[/]"


def _probe(console: Console, probe: ProbeRun, table_box: box.Box) -> None:
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
            if stage.status in (Status.FAIL, Status.SILENT_FAIL, Status.UNKNOWN):
                detail = (
                    f"{stage.error.type}: {stage.error.message}" if stage.error
                    else f"{stage.check}: {stage.measured}" if stage.check else stage.reason or ""
                )  # fmt: skip
                console.print(f"  {case.model}/{case.mode}/{stage.stage}: {escape(detail[:300])}")
    if probe.timings:
        shown = ", ".join(f"{k} {v:.2f}s" for k, v in probe.timings.items())
        console.print(f"  [dim]timings: {escape(shown)}[/]")
