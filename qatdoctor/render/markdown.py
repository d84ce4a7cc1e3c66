"""The report as GitHub-flavoured markdown (issue-ready)."""

from __future__ import annotations

from qatdoctor.model import Report, Status, finding_order


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


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
    lines += ["", f"#### Findings ({len(report.findings)})", ""]
    for f in sorted(report.findings, key=finding_order):
        lines.append(f"- **{f.status.value.upper()}** ({f.severity.value}) {f.title} `{f.id}`")
        lines.append(f"  - {f.summary}")
        for fix in f.fixes:
            lines.append(f"  - fix ({fix.kind}): {fix.summary}" + "".join(f" `{c}`" for c in fix.commands))
        if f.sources:
            lines.append("  - sources: " + ", ".join(s.ref for s in f.sources))
    if report.recommendations:
        lines += ["", "#### Recommendations", ""]
        for number, rec in enumerate(report.recommendations, 1):
            lines.append(f"{number}. {rec.summary} ({rec.kind})")
            if rec.commands:
                lines += ["   ```sh", *(f"   {c}" for c in rec.commands), "   ```"]
            lines += [f"   - {note.splitlines()[0]}" for note in rec.notes if note]
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
                    if s.status in (Status.FAIL, Status.SILENT_FAIL):
                        what = f"{s.error.type}: {s.error.message}" if s.error else f"{s.check}: {s.measured}"
                        lines.append(f"- `{case.model}/{case.mode}/{s.stage}`: {_cell(what[:300])}")
        if probe.timings:
            lines.append("- timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in probe.timings.items()))
    if report.timings:
        lines += ["", "<sub>timings: " + ", ".join(f"{k} {v:.3f}s" for k, v in report.timings.items()) + "</sub>"]
    return "\n".join(lines) + "\n"
