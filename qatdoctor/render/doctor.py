"""The default human view, as flutter doctor and expo-doctor taught users: one line per check group with
✓ / ✗ / ! / ?, under a failing line its findings (each once, with the fix), the recommendations, and the verdict
last. `-v` switches to the full report (render/text.py): every finding, the facts table and the probe table."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from qatdoctor.knowledge.vocab import GPU, LIBRARY_PREFIX
from qatdoctor.records import FAILED, Finding, Recommendation, Report, Scope, Severity, Status, Verdict, finding_order

WIDTH = 100  # piped output wraps here; a terminal uses its own width
MARK = {"pass": ("✓", "green"), "fail": ("✗", "red"), "warn": ("!", "yellow"), "unknown": ("?", "yellow"),
        "n/a": ("-", "dim")}  # fmt: skip
VERDICT_STYLE = {Verdict.OK: "bold green", Verdict.PROBLEMS: "bold red", Verdict.UNKNOWN: "bold yellow"}
MAX_SHOWN = 4  # layers / evidence lines under a finding


class Group(NamedTuple):
    """One line of the doctor view: a check group, what it says, and the findings that decide its mark."""

    key: str
    label: str
    findings: tuple[Finding, ...]
    # The best mark the group can get whatever its findings say: "n/a" when nothing was examined (no probe run,
    # no torch to have a CUDA build), "fail" when the examination itself failed (the probe could not import AIMET).
    at_best: str = "pass"


def render(report: Report, *, styled: bool = False) -> str:
    """The doctor view of a report."""
    buffer = io.StringIO()
    width = shutil.get_terminal_size((WIDTH, 24)).columns if styled else WIDTH
    console = Console(
        file=buffer, width=width, force_terminal=styled, no_color=not styled, highlight=False, emoji=False,
        color_system="standard" if styled else None,
    )  # fmt: skip
    console.print(f"[bold]qatdoctor {report.command}[/] — {escape(home(report.target))}{escape(chosen_by(report))}  "
                  f"[dim](matrix {report.matrix.version})[/]")  # fmt: skip
    likely = [f for f in report.findings if f.scope is Scope.CAVEAT and f.likely]
    if likely and report.verdict is Verdict.UNKNOWN:
        names = ", ".join(dict.fromkeys(f.construct or f.id for f in likely))
        console.print(f"[yellow]run with --model path/to/file.py:build_model to know: the caveats for {escape(names)} "
                      "likely apply to the models trained here[/]")  # fmt: skip
    console.print()
    numbers = {rec.id: n for n, rec in enumerate(report.recommendations, 1)}
    for group in groups(report):
        _group(console, group, numbers, report.recommendations)
    caveats = [f for f in report.findings if f.scope is Scope.CAVEAT]
    if caveats:
        _caveats(console, caveats)
    if report.recommendations:
        _recommendations(console, report.recommendations)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    console.print(f"\nverdict: [{VERDICT_STYLE[report.verdict]}]{report.verdict.value.upper()}[/] — "
                  f"{escape(summary_line(report))}")  # fmt: skip
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def chosen_by(report: Report) -> str:
    """` (active virtualenv)` and the like: why this interpreter, when `--python` did not name it."""
    return f" ({report.target_why})" if report.target_why else ""


# --- the groups ---------------------------------------------------------------------------------------------------


def groups(report: Report) -> list[Group]:
    """The check groups in order; every environment finding belongs to exactly one."""
    facts = report.facts
    env = [f for f in report.findings if f.scope is Scope.ENVIRONMENT]
    sorted_out: dict[str, list[Finding]] = {key: [] for key in GROUP_KEYS}
    for finding in env:
        sorted_out[_group_of(finding)].append(finding)
    value = facts.value
    python = f"Python {value('python') or '?'}" + (f" (glibc {value('glibc')})" if value("glibc") else "")
    api = f" ({value('aimet-api')} API)" if value("aimet-api") else ""
    aimet = value("aimet-torch")
    torch = value("torch")
    stack = (
        f"aimet-torch {aimet}{api} with torch {torch or 'absent'}" if aimet
        else f"aimet-torch absent, torch {torch or 'absent'}"
    ) + "".join(f", {n} {value(n)}" for n in ("torchvision", "numpy") if value(n))  # fmt: skip
    driver = value("driver")
    cuda = f"CUDA {value('cuda')}" if value("cuda") else "CUDA: CPU build" if torch else "CUDA: no torch to check"
    gpus = facts.gpus
    gpu = ", ".join(g.name for g in gpus) if gpus else "no GPU here"
    libs = [n.removeprefix("lib:") for n in facts.values if n.startswith("lib:")]
    out = [
        Group("python", python, tuple(sorted_out["python"])),
        Group("stack", stack, tuple(sorted_out["stack"])),
        Group("cuda", f"{cuda} · driver {driver or 'none here'} · {gpu}", tuple(sorted_out["cuda"]),
              "pass" if torch else "n/a"),
        Group("libs", _libs_label(libs, aimet), tuple(sorted_out["libs"]), "pass" if libs and aimet else "n/a"),
        Group("probe", _probe_label(report), tuple(sorted_out["probe"]), _probe_at_best(report)),
    ]  # fmt: skip
    model = report.probe.model if report.probe is not None else None
    about_model = tuple(f for f in report.findings if f.scope is Scope.MODEL)
    if model is not None or about_model:
        out.append(Group("model", _model_label(report), about_model,
                         "fail" if model is not None and not model.ran else "pass"))  # fmt: skip
    out.append(Group("coverage", f"Matrix {report.matrix.version} coverage", tuple(sorted_out["coverage"])))
    return out


GROUP_KEYS = ("python", "stack", "cuda", "libs", "probe", "coverage")
# where a finding about a platform fact goes (library facts: "libs"); the most specific group wins
_FACT_GROUP = {"driver": "cuda", "cuda": "cuda", GPU: "cuda", "python": "python", "glibc": "python"}
_PRECEDENCE = ("libs", "cuda", "python")


def _group_of(finding: Finding) -> str:
    if finding.origin in ("coverage", "probe"):
        return finding.origin
    if finding.origin == "expectation":
        return "cuda"
    about = {"libs" if f.startswith(LIBRARY_PREFIX) else _FACT_GROUP.get(f, "stack") for f in finding.about}
    return next((group for group in _PRECEDENCE if group in about), "stack")


def _libs_label(libs: list[str], aimet: str | None) -> str:
    if not libs:
        return "System libraries: none checked"
    return f"System libraries: {', '.join(libs)}" + ("" if aimet else " (no aimet-torch to need them)")


def _probe_at_best(report: Report) -> str:
    probe = report.probe
    if probe is None or (probe.state == "import-failed" and not report.facts.value("aimet-torch")):
        return "n/a"
    return "pass" if probe.state == "ran" else "fail"


def _probe_label(report: Report) -> str:
    probe = report.probe
    if probe is None:
        return "Probe: not run (--no-probe)"
    if probe.state == "import-failed":
        if not report.facts.value("aimet-torch"):
            return "Probe: not run (aimet-torch is not installed)"
        return "Probe: import of aimet_torch failed"
    if probe.state in ("crashed", "timeout"):
        return f"Probe: {probe.state} — {probe.reason or ''}".rstrip(" —")
    cases = len(probe.cases)
    failed = sum(1 for c in probe.cases if any(s.status in FAILED for s in c.stages))
    baseline = all(s.status is Status.PASS for c in probe.cases if c.model == "baseline" for s in c.stages)
    where = "baseline passes" if baseline else "baseline FAILS"
    settled = "your model settles them" if probe.model is not None and probe.model.ran else "caveats below"
    return f"Probe: {cases} stand-in cases on {probe.api or '?'} API, {where}" + (
        f"; {failed} construct cases fail ({settled})" if failed and baseline else ""
    )


def _model_label(report: Report) -> str:
    model = report.probe.model if report.probe is not None else None
    if model is None:
        return "Your model (from the input)"
    if not model.ran:
        return f"Your model {model.spec}: {model.status}"
    found = ", ".join(f"{cid} ×{hit.total}" for cid, hit in model.constructs.items() if hit.total)
    stages = " · ".join(f"{s.stage} {s.status.value}" for s in model.stages)
    return f"Your model {model.class_name or model.spec}: {found or 'no known construct'}\n    {stages}"


_WORSE = ("pass", "n/a", "unknown", "warn", "fail")  # a group shows the worse of its findings' mark and its at_best


def group_mark(group: Group) -> str:
    """The mark a group line shows: never ✓ over something that failed or was not examined."""
    return max(mark(group.findings), group.at_best, key=_WORSE.index)


def mark(findings: Iterable[Finding]) -> str:
    """The group's mark: ✗ if an error fails, ! if a warning fails, ? if something that matters is unknown."""
    findings = list(findings)
    if any(f.failed and f.severity is Severity.ERROR for f in findings):
        return "fail"
    if any(f.failed for f in findings):
        return "warn"
    if any(f.counts_unknown for f in findings):
        return "unknown"
    if findings and all(f.status is Status.NOT_APPLICABLE for f in findings):
        return "n/a"
    return "pass"


def _group(console: Console, group: Group, numbers: dict[str, int], recs: tuple[Recommendation, ...]) -> None:
    state = group_mark(group)
    symbol, style = MARK[state]
    first, *rest = group.label.split("\n")
    _wrapped(console, escape(first), 0, f"[{style}]{symbol}[/]")
    for line in rest:
        _wrapped(console, f"[dim]{escape(line.strip())}[/]", 2)
    shown = [f for f in sorted(group.findings, key=finding_order) if f.failed or f.counts_unknown]
    for finding in shown:
        _finding(console, finding, numbers, recs)


def _finding(console: Console, finding: Finding, numbers: dict[str, int], recs: tuple[Recommendation, ...]) -> None:
    symbol, style = MARK["fail" if finding.failed and finding.severity is Severity.ERROR
                        else "warn" if finding.failed else "unknown"]  # fmt: skip
    _wrapped(console, f"{escape(finding.title)} [dim]({escape(finding.id)})[/]", 2, f"[{style}]{symbol}[/]")
    if finding.layers:
        more = len(finding.layers) - MAX_SHOWN
        names = ", ".join(finding.layers[:MAX_SHOWN]) + (f", … (+{more})" if more > 0 else "")
        _wrapped(console, f"[dim]{len(finding.layers)} layers: {escape(names)}[/]", 4)
    detail = finding.headline
    if detail:
        shown = detail if len(detail) <= 160 else detail[:157] + "…"
        _wrapped(console, f"[dim]{escape(shown)}[/]", 4)
    if finding.likely:
        _wrapped(console, f"[yellow]likely: {escape(finding.likely)}[/]", 4)
    fix = _fix_line(finding, numbers, recs)
    if fix:
        _wrapped(console, f"fix: {fix}", 4)


def _fix_line(finding: Finding, numbers: dict[str, int], recs: tuple[Recommendation, ...]) -> str | None:
    code = next((r for r in recs if r.id == f"rec.code.{finding.id}"), None)
    if code is not None:
        return f"recommendation {numbers[code.id]} (code)"
    for fix in finding.fixes:
        if fix.lands_on:
            return escape(fix.lands_on)
        if fix.commands:
            return f"{escape(fix.summary)}  $ {escape(home(fix.commands[0]))}"
        if fix.kind != "code":
            return escape(fix.summary)
    return escape(finding.fixes[0].summary) if finding.fixes else None


def _caveats(console: Console, caveats: list[Finding]) -> None:
    console.print(
        "\n[bold]Caveats[/] [dim](not failures: --model checks your model; †: the stand-in reproduced it here)[/]"
    )
    for finding in sorted(caveats, key=lambda f: (f.likely is None, finding_order(f))):
        symbol, style = MARK["unknown"] if finding.likely else ("†" if finding.origin == "probe" else "·", "cyan")
        _wrapped(console, escape(finding.title), 0, f"[{style}]{symbol}[/]")
        if finding.likely:
            _wrapped(console, f"[yellow]likely: {escape(finding.likely)}[/]", 2)


def _recommendations(console: Console, recs: tuple[Recommendation, ...]) -> None:
    console.print("\n[bold]Recommendations[/]")
    for number, rec in enumerate(recs, 1):
        _wrapped(console, f"[bold]{escape(rec.summary)}[/] [dim]({rec.kind})[/]", 0, f"{number}.")
        for command in rec.commands:
            console.print(f"     $ {escape(home(command))}", soft_wrap=True)  # one line: copy-pasteable
        if rec.usage:
            usage = [line for line in rec.usage.splitlines() if line.strip() and not line.startswith("#")]
            for line in usage[:4]:
                console.print(f"     {escape(line)}", soft_wrap=True)
        if rec.model_failures:
            _wrapped(console, f"[yellow]still fails for your model: {escape(', '.join(rec.model_failures))}[/]", 5)
        if rec.cuda_move is not None:
            _wrapped(console, f"[yellow]{escape(rec.cuda_move.describe())}[/]", 5)
        if rec.api_move is not None:
            _wrapped(console, f"[dim]{escape(rec.api_move.label)}: your QuantSim code needs porting (-v)[/]", 5)


# --- helpers ------------------------------------------------------------------------------------------------------


def _wrapped(console: Console, markup: str, indent: int, mark: str | None = None) -> None:
    """A paragraph at `indent`, wrapped with a hanging indent after its `mark` (✗, ·, 1. …)."""
    if mark is None:
        console.print(Padding(markup, (0, 0, 0, indent), expand=False))
        return
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(mark, markup)
    console.print(Padding(grid, (0, 0, 0, indent), expand=False))


def home(text: str) -> str:
    """Display only: the home directory as `~` (JSON keeps the runnable absolute path)."""
    root = str(Path.home()).rstrip("/")
    return text.replace(root + "/", "~/") if root and root != "/" else text


def summary_line(report: Report) -> str:
    """`N problems, M caveats, K unknown` — the counts behind the verdict."""
    problems = sum(1 for f in report.findings if f.failed and f.severity is Severity.ERROR)
    warnings = sum(1 for f in report.findings if f.failed and f.severity is not Severity.ERROR)
    caveats = sum(1 for f in report.findings if f.scope is Scope.CAVEAT)
    unknown = sum(1 for f in report.findings if f.counts_unknown)
    parts = [f"{problems} {'problem' if problems == 1 else 'problems'}"]
    if warnings:
        parts.append(f"{warnings} {'warning' if warnings == 1 else 'warnings'}")
    parts += [f"{caveats} {'caveat' if caveats == 1 else 'caveats'}", f"{unknown} unknown"]
    return ", ".join(parts)
