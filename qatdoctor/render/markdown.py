"""The report as GitHub-flavoured markdown (issue-ready)."""

from __future__ import annotations

import json

from qatdoctor.jsonio import BUNDLE_FENCE, BUNDLE_FENCE_END, report_to_dict
from qatdoctor.records import FAILED, Finding, Report, Scope, Severity, Status, finding_order
from qatdoctor.text import first_line


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def bundle(report: Report) -> str:
    """`qatdoctor report`'s bundle: the markdown, then the whole report as JSON (what a replay reads)."""
    # compact (one line): a GitHub issue body holds 65,536 characters
    saved = json.dumps(report_to_dict(report), separators=(",", ":"), ensure_ascii=False)
    return (
        render(report)
        + "\n<details><summary>qatdoctor JSON (replay with <code>qatdoctor report --from-report FILE</code>)"
        + f"</summary>\n\n{BUNDLE_FENCE}{saved}{BUNDLE_FENCE_END}\n</details>\n"
    )


def render(report: Report) -> str:
    """Markdown with the verdict, facts, findings, recommendations and the probe table."""
    lines = [
        f"### qatdoctor {report.command}: **{report.verdict.value.upper()}**",
        "",
        f"- target: `{report.target}`",
        f"- matrix: {report.matrix.version} (updated {report.matrix.updated}, sha256 `{report.matrix.sha256[:12]}`)",
    ]
    lines += [f"- note: {note}" for note in report.notes]
    if report.extracted is not None:
        lines += ["", "#### Versions stated in the input", ""]
        lines += [f"- {k}: `{v}`" for k, v in report.extracted.items()] or ["- (none found)"]
    else:
        lines += ["", "#### Environment", "", "| fact | value |", "|---|---|"]
        for name, fact in sorted(report.facts.values.items()):
            lines.append(f"| {name} | {_cell(fact.describe())} |")
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
            lines.append(f"`{model.spec}` ({model.class_name or model.status}): "
                         + ", ".join(f"{s.stage} {s.status.value}" for s in model.stages))  # fmt: skip
            lines.append("")
        quiet = [f for f in findings if f.status in (Status.PASS, Status.NOT_APPLICABLE)]
        for f in sorted((f for f in findings if f not in quiet), key=finding_order):
            lines += _finding(f)
        if quiet:  # in the JSON below in full
            lines.append(f"- {len(quiet)} passing or not applicable: " + ", ".join(f"`{f.id}`" for f in quiet))
    if report.recommendations:
        lines += ["", "#### Recommendations", ""]
        for number, rec in enumerate(report.recommendations, 1):
            lines.append(f"{number}. {rec.summary} ({rec.kind})")
            if rec.commands:
                lines += ["   ```sh", *(f"   {c}" for c in rec.commands), "   ```"]
            lines += [f"   - {first_line(note)}" for note in rec.notes if first_line(note)]
    if report.probe is not None:
        probe = report.probe
        lines += ["", f"#### Probe: {probe.state}" + (f" ({probe.reason})" if probe.reason else ""), ""]
        if probe.import_error:
            lines.append(f"`{probe.import_error.type}: {_cell(probe.import_error.message)}`")
        stages = list(dict.fromkeys(s.stage for c in probe.cases for s in c.stages))
        if stages:
            lines += ["| model | mode | " + " | ".join(stages) + " |", "|---|---|" + "---|" * len(stages)]
            for case in probe.cases:
                cells = {s.stage: s.status.value for s in case.stages}
                lines.append(f"| {case.model} | {case.mode} | " + " | ".join(cells.get(s, "") for s in stages) + " |")
            lines.append("")
            for case in probe.cases:
                for s in case.stages:
                    if s.status in FAILED:
                        what = f"{s.error.type}: {s.error.message}" if s.error else f"{s.check}: {s.measured}"
                        lines.append(f"- `{case.model}/{case.mode}/{s.stage}`: {_cell(what[:300])}")
        if probe.timings:
            lines.append("- timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in probe.timings.items()))
    if report.timings:
        lines += ["", "<sub>timings: " + ", ".join(f"{k} {v:.3f}s" for k, v in report.timings.items()) + "</sub>"]
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
    lines = [f"- **{_word(f)}** ({f.severity.value}) {f.title} `{f.id}`"]
    if f.likely:
        lines.append(f"  - likely applies: {f.likely}")
    if f.layers:
        more = f", … (+{len(f.layers) - 6} more)" if len(f.layers) > 6 else ""
        lines.append(f"  - layers ({len(f.layers)}): " + ", ".join(f"`{name}`" for name in f.layers[:6]) + more)
    details = [f"  {f.summary}", ""]
    details += [f"  - evidence: {_cell(e)}" for e in f.evidence[:6]]
    details += [f"  - fix ({fix.kind}): {fix.summary}" + "".join(f" `{c}`" for c in fix.commands) for fix in f.fixes]
    if f.sources:
        details.append("  - sources: " + ", ".join(s.ref for s in f.sources))
    lines += ["  <details><summary>details</summary>", "", *details, "", "  </details>"]
    return lines
