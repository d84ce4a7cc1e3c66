"""Matrix entries from evidence cells: measured known-good rules and import-failure rules, with provenance.

Only environment-level entries are written automatically: a cell whose baseline passes becomes a
`good-measured-<cell>` rule (when no known-good entry covers it yet), a cell whose import fails or whose
probe dies becomes an `import-failure-<cell>` rule (when no existing rule explains it). Model-level
failures no rule explains are returned for a human to curate, never turned into rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import tomlkit
from tomlkit.container import Container
from tomlkit.items import AoT, Array, InlineTable, KeyType, SingleKey, Table, Trivia, Whitespace

from qatdoctor.diagnose.evaluate import Evaluation, evaluate
from qatdoctor.diagnose.probe_findings import UNEXPLAINED_IMPORT, probe_findings
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.versions import try_parse_version
from qatdoctor.lab.evidence import Cell
from qatdoctor.records import Fact, Facts, Finding, Severity, Status
from qatdoctor.text import first_line

_TRAILING_PATH = re.compile(r"\s*\([^()]*\.py\)\s*$")


@dataclass(frozen=True)
class Generated:
    """What one cell contributes beyond its [[evidence]] record."""

    rules: tuple[tuple[str, Table], ...] = ()
    curate: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """Where a cell was measured, as the record states it."""

    record: str
    date: str
    platform: str
    file: str


def inline(values: Mapping[str, str], *, quoted: bool = True) -> InlineTable:
    """An inline table in the matrix's style: `{ "key" = "value", ... }` (keys quoted unless `quoted=False`)."""
    table = InlineTable(Container(), Trivia(), new=False)  # not "new": tomlkit keeps the spacing set here
    for name, value in values.items():
        table.append(SingleKey(name, KeyType.Basic) if quoted else name, tomlkit.string(value))
    if values:
        next(iter(table.value.body))[1].trivia.indent = " "
        table.append(None, tomlkit.ws(" "))
    return table


def entry(values: Mapping[str, object]) -> Table:
    """A `[[table]]` entry with these keys in this order (items as given, plain values through tomlkit)."""
    table = tomlkit.table()
    for name, value in values.items():
        table.append(name, value)
    return table


def entries(*values: Mapping[str, str]) -> AoT:
    """Sub-tables of an entry (`[[rule.signature]]`, ...), each after a blank line."""
    return AoT([entry(v) for v in values])


def probe_sources(record: str) -> Array:
    """`sources = [ { kind = "probe", ref = "evidence:<record>" } ]`, one source a line."""
    source = inline({"kind": "probe", "ref": f"evidence:{record}"}, quoted=False)
    return Array([Whitespace("\n  "), source, Whitespace("\n")], Trivia())


def cell_facts(cell: Cell) -> Facts:
    """The cell's versions (and API) as facts."""
    values = {k: Fact.known(v, origin="evidence") for k, v in cell.versions.items()}
    if cell.api:
        values["aimet-api"] = Fact.known(cell.api, origin="evidence")
    return Facts(values)


def generate(cell: Cell, matrix: Matrix, where: Provenance) -> Generated:
    """Rules (id, tomlkit table) and curation notes for one cell, judged against `matrix`."""
    if cell.probe is None or "aimet-torch" not in cell.versions or "torch" not in cell.versions:
        return Generated()
    facts = cell_facts(cell)
    evaluation = evaluate(facts, matrix)
    findings = probe_findings(cell.probe, evaluation.facts, matrix, evaluation.findings)
    curate = [f"{cell.id}: {_curate_line(f)}" for f in findings if _needs_curation(f, matrix)]
    rules: list[tuple[str, Table]] = []
    if cell.outcome in ("ok", "problems") and _baseline_passes(cell):
        good, reason = _good_rule(cell, evaluation, matrix, where)
        if good is not None:
            rules.append(good)
        elif reason:
            curate.append(f"{cell.id}: {reason}")
    elif cell.outcome in ("import-failed", "crashed") and not _explained(cell, evaluation, findings, matrix):
        rules.append(_import_failure_rule(cell, where))
    return Generated(tuple(rules), tuple(curate))


def _needs_curation(finding: Finding, matrix: Matrix) -> bool:
    """Unexplained probe failures, and environment error rules the probe contradicted."""
    if finding.stand_in is not None:
        return True
    rule = matrix.rule(finding.id)
    return rule is not None and rule.scope == "environment" and rule.kind == "bad" and finding.not_reproduced


def _curate_line(finding: Finding) -> str:
    if finding.stand_in is not None:
        return f"unexplained probe failure ({finding.id}): {'; '.join(finding.evidence[:2])}"
    return f"the probe did not reproduce rule {finding.id} ({finding.title})"


def _baseline_passes(cell: Cell) -> bool:
    assert cell.probe is not None
    baseline = [c for c in cell.probe.cases if c.model == "baseline"]
    return bool(baseline) and all(s.status is Status.PASS for c in baseline for s in c.stages)


def _env_errors(evaluation: Evaluation, matrix: Matrix) -> list[Finding]:
    out = []
    for finding in evaluation.findings:
        rule = matrix.rule(finding.id)
        if rule is None or rule.kind != "bad" or rule.scope != "environment" or rule.triage_only:
            continue
        if finding.status is Status.FAIL and finding.severity is Severity.ERROR:
            out.append(finding)
    return out


def _good_rule(
    cell: Cell, evaluation: Evaluation, matrix: Matrix, where: Provenance
) -> tuple[tuple[str, Table] | None, str]:
    """The known-good rule for a clean cell; (None, why not) when one exists or a bad rule disagrees."""
    if evaluation.lands_on:
        return None, ""
    conflicting = _env_errors(evaluation, matrix)
    if conflicting:
        ids = ", ".join(f.id for f in conflicting)
        return None, f"the baseline passes, but environment rule(s) {ids} mark this combination bad"
    aimet, torch, python = cell.versions["aimet-torch"], _plain(cell.versions["torch"]), cell.versions.get("python")
    series, minor = _series(torch), _series(python or "")
    rule_id = f"good-measured-{cell.id}"
    title = f"aimet-torch {aimet} with torch {series} on Python {minor or 'any'} (measured)"
    when = [("aimet-torch", f"=={aimet}")]
    if cell.api:
        when.append(("aimet-api", cell.api))
    when.append(("torch", f"=={series}.*"))
    if minor:
        when.append(("python", f"=={minor}.*"))
    failing = sorted(k for k, v in cell.summary.items() if v != "pass")
    others = (
        f" Model-scoped failures in the same run (they have their own rules): {', '.join(failing)}."
        if failing
        else " Every probe model passed."
    )
    rule = entry({
        "id": rule_id,
        "kind": "good",
        "severity": "info",
        "title": title,
        "summary": f"qatdoctor probe ({where.date}, {where.platform}): `import aimet_torch` is clean and the baseline "
        f"Conv-BN model passes every stage with torch {torch}.",
        "details": f"Written by `qatdoctor matrix merge-evidence` from {where.file}. Only torch {torch} was run; the "
        f"rule covers the {series} series.{others}",
        "when": inline(dict(when)),
        "basis": "measured",
        "measured_on": measured_on(cell, where.record),
        "sources": probe_sources(where.record),
    })  # fmt: skip
    return (rule_id, rule), ""


def measured_on(cell: Cell, record: str) -> Array:
    """`measured_on = [...]` for a rule written from one cell: its aimet-torch, torch and Python minor."""
    versions = {"aimet-torch": cell.versions["aimet-torch"], "torch": _plain(cell.versions["torch"])}
    minor = _series(cell.versions.get("python", ""))
    if minor:
        versions["python"] = minor
    return Array([inline({**versions, "evidence": record})], Trivia())


def _explained(cell: Cell, evaluation: Evaluation, findings: Sequence[Finding], matrix: Matrix) -> bool:
    """Whether an existing rule already accounts for the failed import (or the crash)."""
    if cell.outcome == "import-failed":
        return not any(f.id == UNEXPLAINED_IMPORT for f in findings)
    return bool(_env_errors(evaluation, matrix))


def _import_failure_rule(cell: Cell, where: Provenance) -> tuple[str, Table]:
    assert cell.probe is not None
    aimet, torch, python = cell.versions["aimet-torch"], _plain(cell.versions["torch"]), cell.versions.get("python")
    series, minor = _series(torch), _series(python or "")
    error = cell.probe.import_error
    rule_id = f"import-failure-{cell.id}"
    if error is not None:
        message = _TRAILING_PATH.sub("", first_line(error.message))  # empty for `assert False`, a bare `raise X`
        what = f"`import aimet_torch` fails: {error.type}: {message or '(no message)'}"
        title = f"aimet-torch {aimet} cannot be imported with torch {series} (measured)"
    else:
        message, what = "", f"the probe died before any result ({cell.probe.reason or cell.outcome})"
        title = f"aimet-torch {aimet} with torch {series} crashes the probe (measured)"
    summary = f"With torch {torch} on Python {python or 'unknown'}, {what}."
    when = [("aimet-torch", f"=={aimet}"), ("torch", f"=={series}.*")]
    if minor:
        when.append(("python", f"=={minor}.*"))
    rule = entry({
        "id": rule_id,
        "kind": "bad",
        "severity": "error",
        "title": title,
        "summary": summary,
        "details": f"Written by `qatdoctor matrix merge-evidence` from {where.file} ({where.date}, {where.platform}). "
        "Only this cell was run: widen the torch/Python ranges by hand when more cells agree.",
        "when": inline(dict(when)),
        "covers": tomlkit.array(),
        "basis": "measured",
        "measured_on": measured_on(cell, where.record),
        "sources": probe_sources(where.record),
    })  # fmt: skip
    if error is not None:
        rule.append("signature", entries({"type": error.type, "text": message or error.type}))
        rule.append("probe", entries({"model": "*", "stage": "import", "status": "fail"}))
    return rule_id, rule


def _plain(version: str) -> str:
    parsed = try_parse_version(version)
    return str(parsed.comparable) if parsed else version


def _series(version: str) -> str:
    parsed = try_parse_version(version)
    return parsed.series if parsed else ""
