"""The report as GitHub-flavoured markdown (issue-ready). The structure is qatdoctor's; every value in it came
from outside (an environment, a model, a matrix, a saved report) and goes in through `inert` as text."""

from __future__ import annotations

from qatdoctor.jsonio import BUNDLE_FENCE, BUNDLE_FENCE_END, report_to_dict
from qatdoctor.records import FAILED, Finding, Report, Scope, Severity, Status, finding_order, told
from qatdoctor.render.inert import cell as _cell
from qatdoctor.render.inert import code, fence, json_line, prose
from qatdoctor.text import first_line
from qatdoctor.transform.redact import redact_secrets_data


def bundle(report: Report) -> str:
    """`qatdoctor report`'s bundle: the markdown, then the whole report as JSON (what a replay reads)."""
    report = redact_secrets_data(report)  # the caller redacts more (home, host, user); credentials always go
    # compact (one line, so nothing in it can close the fence): a GitHub issue body holds 65,536 characters
    saved = json_line(report_to_dict(report))
    return (
        render(report)
        + "\n<details><summary>qatdoctor JSON (replay with <code>qatdoctor report --from-report FILE</code>)"
        + f"</summary>\n\n{BUNDLE_FENCE}{saved}{BUNDLE_FENCE_END}\n</details>\n"
    )


def render(report: Report) -> str:
    """Markdown with the verdict, facts, findings, recommendations and the probe table."""
    report = redact_secrets_data(report)
    lines = [
        f"### qatdoctor {prose(report.command)}: **{report.verdict.value.upper()}**",
        "",
        f"- target: {code(report.target)}" + (f" ({prose(report.target_why)})" if report.target_why else ""),
        f"- matrix: {prose(report.matrix.version)} (updated {prose(report.matrix.updated)}, "
        f"sha256 {code(report.matrix.sha256[:12])})",
    ]
    lines += [f"- note: {prose(note)}" for note in report.notes]
    if report.extracted is not None:
        lines += ["", "#### Versions stated in the input", ""]
        lines += [f"- {prose(k)}: {code(v)}" for k, v in report.extracted.items()] or ["- (none found)"]
    else:
        lines += ["", "#### Environment", "", "| fact | value |", "|---|---|"]
        for name, fact in sorted(report.facts.values.items()):
            lines.append(f"| {_cell(name)} | {_cell(fact.describe())} |")
        gpus = report.facts.gpus
        shown = (
            f"unknown: {report.facts.gpus_reason}" if gpus is None
            else ", ".join(f"{g.name} (cc {g.compute_capability})" for g in gpus) or "none"
        )  # fmt: skip
        lines.append(f"| gpus | {_cell(shown)} |")
    sections = (
        ("Findings", Scope.ENVIRONMENT),
        ("Your model", Scope.MODEL),
        ("Caveats for models containing these constructs (never a failure: --model checks your model)", Scope.CAVEAT),
    )
    for heading, scope in sections:
        findings = [f for f in report.findings if f.scope is scope]
        if not findings and scope is not Scope.ENVIRONMENT:
            continue
        lines += ["", f"#### {heading} ({len(findings)})", ""]
        model = report.probe.model if report.probe is not None else None
        if scope is Scope.MODEL and model is not None:
            lines.append(f"{code(model.spec)} ({prose(model.class_name or model.status)}): "
                         + ", ".join(f"{prose(s.stage)} {s.status.value}" for s in model.stages))  # fmt: skip
            lines.append("")
        quiet = [f for f in findings if f.status in (Status.PASS, Status.NOT_APPLICABLE)]
        for f in sorted((f for f in findings if f not in quiet), key=finding_order):
            lines += _finding(f)
        if quiet:  # in the JSON below in full
            lines.append(f"- {len(quiet)} passing or not applicable: " + ", ".join(code(f.id) for f in quiet))
    if report.recommendations:
        lines += ["", "#### Recommendations", ""]
        for number, rec in enumerate(report.recommendations, 1):
            lines.append(f"{number}. {prose(rec.summary)} ({prose(rec.kind)})")
            if rec.commands:
                lines += fence(rec.commands, "sh", "   ")
            lines += [f"   - {prose(first_line(note))}" for note in rec.notes if first_line(note)]
    if report.probe is not None:
        probe = report.probe
        lines += ["", f"#### Probe: {prose(probe.state)}" + (f" ({prose(probe.reason)})" if probe.reason else ""), ""]
        if probe.import_error:
            lines.append(code(f"{probe.import_error.type}: {probe.import_error.message}"))
        stages = list(dict.fromkeys(s.stage for c in probe.cases for s in c.stages))
        if stages:
            lines += ["| model | mode | " + " | ".join(_cell(s) for s in stages) + " |",
                      "|---|---|" + "---|" * len(stages)]  # fmt: skip
            for case in probe.cases:
                cells = {s.stage: s.status.value for s in case.stages}
                lines.append(f"| {_cell(case.model)} | {_cell(case.mode)} | "
                             + " | ".join(cells.get(s, "") for s in stages) + " |")  # fmt: skip
            lines.append("")
            for case in probe.cases:
                for s in case.stages:
                    if s.status in FAILED:
                        what = f"{s.error.type}: {s.error.message}" if s.error else f"{s.check}: {s.measured}"
                        lines.append(f"- {code(f'{case.model}/{case.mode}/{s.stage}')}: {prose(what[:300])}")
        if probe.timings:
            lines.append("- timings: " + ", ".join(f"{prose(k)} {v:.2f}s" for k, v in probe.timings.items()))
    if report.timings:
        timings = ", ".join(f"{prose(k)} {v:.3f}s" for k, v in report.timings.items())
        lines += ["", f"<sub>timings: {timings}</sub>"]
    return "\n".join(lines) + "\n"


def _word(f: Finding) -> str:
    """FAIL only for what fails the verdict (a failed warning is WARN); a caveat is never a failure."""
    if f.scope is Scope.CAVEAT:
        return "LIKELY" if f.likely else "CAVEAT"
    if f.status in FAILED and f.severity is not Severity.ERROR:
        return "WARN"
    return f.status.value.upper()


def _finding(f: Finding) -> list[str]:
    """The headline in the list; what a maintainer reads only when needed folded into <details>."""
    lines = [f"- **{_word(f)}** ({f.severity.value}) {prose(f.title)} {code(f.id)}"]
    if f.likely:
        lines.append(f"  - likely applies: {prose(f.likely)}")
    if f.layers:
        more = f", … (+{len(f.layers) - 6} more)" if len(f.layers) > 6 else ""
        lines.append(f"  - layers ({len(f.layers)}): " + ", ".join(code(name) for name in f.layers[:6]) + more)
    # nothing from outside can close the <details> below: each value is one line, escaped or in a code span
    details = [f"  {prose(told(f))}", ""]
    details += [f"  - evidence: {prose(e)}" for e in f.evidence[:6]]
    details += [f"  - fix ({prose(fix.kind)}): {prose(fix.summary)}" + "".join(f" {code(c)}" for c in fix.commands)
                for fix in f.fixes]  # fmt: skip
    if f.sources:
        details.append("  - sources: " + ", ".join(prose(s.ref) for s in f.sources))
    lines += ["  <details><summary>details</summary>", "", *details, "", "  </details>"]
    return lines
