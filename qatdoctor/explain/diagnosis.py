"""Signature hits + stated versions → findings: what the log shows, and what the versions say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from packaging.specifiers import SpecifierSet

from qatdoctor.core import diagnose, matrix_info, pip_python
from qatdoctor.diagnose.conditions import Outcome, evaluate_all
from qatdoctor.diagnose.evaluate import derive_facts, verdict_of
from qatdoctor.diagnose.judge import Evidence, Logged
from qatdoctor.diagnose.judge import rule_finding as judged
from qatdoctor.explain.extract import HEAD, INFERRED, TAIL, Statement
from qatdoctor.explain.families import family_findings
from qatdoctor.explain.frames import Frame, frame_for
from qatdoctor.explain.scan import Hit
from qatdoctor.knowledge.entries import Matrix, Rule
from qatdoctor.knowledge.versions import in_range, try_parse_version
from qatdoctor.knowledge.vocab import VERSION_FACTS, library_fact
from qatdoctor.records import Fact, Facts, Finding, Report, Status, Verdict, finding_order

NOT_STATED = "not stated in the input"
AIMET_FACTS = ("aimet-torch", "aimet-api")


@dataclass(frozen=True)
class Scan:
    """Everything read from the input."""

    hits: Sequence[Hit]
    statements: Sequence[Statement]
    characters: int
    replaced: int
    mentions_aimet: bool
    versions_truncated: bool = False
    words: Mapping[str, int] = field(default_factory=dict)  # model-family words: the first line of each
    frames: Sequence[Frame] = ()  # the user's own traceback frames


@dataclass(frozen=True)
class Chosen:
    """The value used for one fact, and the other values the input also states for it."""

    statement: Statement
    conflicts: tuple[Statement, ...]

    def evidence(self) -> str:
        text = self.statement.where()
        for other in self.conflicts:
            text += f"; also stated as {other.value} on {other.where()}"
        return text


def choose(statements: Sequence[Statement]) -> dict[str, Chosen]:
    """Per fact the most trusted statement (structured > prose > inferred, then first), with conflicts."""
    by_name: dict[str, list[Statement]] = {}
    for statement in statements:
        by_name.setdefault(statement.name, []).append(statement)
    chosen: dict[str, Chosen] = {}
    for name, group in by_name.items():
        best = min(group, key=lambda s: (s.rank, s.line))
        same = [s for s in group if s.rank == best.rank and _consistent(s.value, best.value)]
        best = max(same, key=lambda s: (_specificity(s.value), -s.line))  # `3.10.14` over `3.10`
        conflicts = tuple(s for s in group if s is not best and not _consistent(s.value, best.value))
        chosen[name] = Chosen(best, conflicts)
    aimet = try_parse_version(chosen["aimet-torch"].statement.value) if "aimet-torch" in chosen else None
    api = {s.value for s in by_name.get("aimet-api", [])}
    if "aimet-api" in chosen and (len(api) > 1 or (aimet is not None and aimet.comparable.major < 2)):
        del chosen["aimet-api"]  # 1.x has only the legacy API; both APIs mentioned tells nothing
    return chosen


def _specificity(value: str) -> tuple[int, bool]:
    parsed = try_parse_version(value)
    return (len(parsed.version.release), parsed.local is not None) if parsed else (0, False)


def _consistent(a: str, b: str) -> bool:
    """`3.10` and `3.10.14`, `2.2.2` and `2.2.2+cu121`, `2.31` and `<2.32` agree; different releases do not."""
    if a.startswith("<") != b.startswith("<"):
        bound, value = (a, b) if a.startswith("<") else (b, a)
        parsed = try_parse_version(value)
        return parsed is not None and in_range(parsed, SpecifierSet(bound))
    left, right = try_parse_version(a), try_parse_version(b)
    if left is None or right is None:
        return a == b
    short, long = sorted((left.version.release, right.version.release), key=len)
    return long[: len(short)] == short


def stated_facts(chosen: dict[str, Chosen], matrix: Matrix) -> Facts:
    """Facts as `resolve` builds them: what the input states, everything else unknown ('not stated')."""
    values: dict[str, Fact] = {
        name: Fact.unknown(NOT_STATED, origin="stated")
        for name in (*VERSION_FACTS, *map(library_fact, matrix.checked_libraries()))
        if name != "cuda"
    }
    for name, pick in chosen.items():
        statement = pick.statement
        origin = "inferred" if statement.rank == INFERRED else "stated"
        if statement.value == "absent":
            values[name] = Fact.absent(f"the input shows: {statement.text}", origin=origin)
        else:
            values[name] = Fact.known(statement.value, origin=origin, detail=pick.evidence())
    facts = derive_facts(Facts(values, gpus=None, gpus_reason=NOT_STATED), matrix)
    if "cuda" not in facts.values:
        facts = facts.with_values({"cuda": Fact.unknown(NOT_STATED, origin="stated")})
    return facts


def log_findings(scan: Scan, facts: Facts, python: str) -> list[Finding]:
    """A finding per rule whose signature matched, strict-first; a rule the versions rule out comes last."""
    judged = [(hit, evaluate_all(hit.rule.when, facts)) for hit in scan.hits]
    supported = [hit for hit, outcome in judged if outcome.value is not False]
    # a message two rules share goes to the one the versions allow
    kept = [(h, o) for h, o in judged if o.value is not False or not any(h.overlaps(s) for s in supported)]
    kept.sort(key=lambda ho: (ho[1].value is False, ho[0].strictness, ho[1].value is None, ho[0].line))
    return [_log_finding(hit, outcome, scan, python, facts) for hit, outcome in kept]


def _log_finding(hit: Hit, outcome: Outcome, scan: Scan, python: str, facts: Facts | None = None) -> Finding:
    """What the log shows about the hit's rule, judged (diagnose/judge.py) with the stated versions' outcome."""
    rule = hit.rule
    frame = frame_for(scan.frames, hit.line) if rule.cause == "model-code" else None
    logged = Logged(
        line=hit.line,
        how=_STRICTNESS[hit.strictness],
        in_range=outcome.value,
        rule_range=_range(rule),
        names_aimet=scan.mentions_aimet or hit.near_aimet,
        aimet_rule=any(c.fact in AIMET_FACTS for c in rule.when),
        frame=frame.describe() if frame else None,
        frame_line=frame.line if frame else None,
    )
    # the log decides, not the facts: what the versions leave open is evidence
    shown = (f"line {hit.line}: {hit.evidence}", *((f"line {frame.line}: {frame.describe()}",) if frame else ()))
    evidence = Evidence(rule, Outcome(True, outcome.matched), facts, log=(*shown, *outcome.missing), logged=logged)
    found = judged(evidence, python)
    assert found is not None  # only a caveat whose construct cannot occur is dropped, and a log has no context
    return found


_STRICTNESS = {0: "exception type and message match", 1: "message matches", 2: "pattern matches"}


def _range(rule: Rule) -> str:
    return ", ".join(f"{c.fact} {c.raw}" for c in rule.when) or "any version"


def explain_report(scan: Scan, matrix: Matrix, *, target: str, timings: dict[str, float]) -> Report:
    """The report: log findings first (origin `log`), then what the stated versions imply (origin matrix etc.)."""
    chosen = choose(scan.statements)
    facts = stated_facts(chosen, matrix)
    from_log = log_findings(scan, facts, pip_python(facts))
    likely = family_findings(scan.words, matrix, facts, pip_python(facts), from_log)
    from_versions: list[Finding] = []
    undecided = 0
    if "aimet-torch" in chosen or "torch" in chosen:
        report = diagnose(facts, matrix, command="explain", target=target, extra_findings=from_log, timings=timings)
        # the log's findings as the diagnosis finished them: their version fixes made whole sets
        from_log = [f for f in report.findings if f.origin == "log"] or from_log
        logged = {f.id for f in from_log}
        from_versions = sorted(
            (f for f in report.findings if f.origin != "log" and f.id not in logged and _relevant(f, matrix)),
            key=finding_order,
        )
        undecided = sum(1 for f in report.findings if f.status is Status.UNKNOWN and f.origin in _CHECKS)
    else:
        report = Report(
            command="explain", verdict=Verdict.UNKNOWN, facts=facts, findings=(), recommendations=(),
            matrix=matrix_info(matrix), target=target, timings=timings,
        )  # fmt: skip
    findings = (*from_log, *likely, *from_versions)
    failed = any(f.origin == "log" and f.status is Status.FAIL for f in findings)
    verdict = Verdict.PROBLEMS if failed or verdict_of(findings) is Verdict.PROBLEMS else Verdict.UNKNOWN
    notes = _notes(scan, chosen, from_log, from_versions, undecided, likely)
    extracted: dict[str, str] = {}
    for name, pick in sorted(chosen.items(), key=lambda item: item[1].statement.line):
        extracted[name] = pick.statement.value
        extracted[f"{name}.evidence"] = pick.evidence()
    recommendations = report.recommendations if verdict is Verdict.PROBLEMS else ()  # nothing confirmed: no fix
    return report._replace(
        verdict=verdict, findings=findings, recommendations=recommendations, notes=tuple(notes),
        extracted=extracted,
    )  # fmt: skip


_CHECKS = ("matrix", "requirements")


def _relevant(finding: Finding, matrix: Matrix) -> bool:
    """Version findings worth showing in a triage: decided environment checks and coverage gaps.

    Not the undecided 'needs X' checks, and not model-scoped hazards: the input says nothing about the model
    unless its error matched (then the finding is a log finding).
    """
    if finding.id.startswith("env."):
        return False
    rule = matrix.rule(finding.id)
    if rule is not None and rule.scope == "model":
        return False
    return finding.status is not Status.UNKNOWN or finding.origin == "coverage"


def _notes(
    scan: Scan,
    chosen: dict[str, Chosen],
    from_log: Sequence[Finding],
    from_versions: Sequence[Finding],
    undecided: int,
    likely: Sequence[Finding] = (),
) -> list[str]:
    if scan.characters == 0:
        return ["empty input: nothing to explain"]
    notes: list[str] = []
    if scan.replaced > max(16, scan.characters // 100):
        share = 100 * scan.replaced // scan.characters
        notes.append(f"the input does not look like text ({share}% of it is not valid UTF-8)")
    if likely:
        notes.append("no known error signature matched; the model the input names makes the findings marked likely")
    if from_log and from_versions:
        notes.append("findings with origin 'log' were matched in the input; the others follow from the stated versions")
    elif from_versions:
        notes.append("no known error signature matched the input; the findings follow from the stated versions only")
    elif not from_log and not likely:
        notes.append("no known error signature matched, and the stated versions decide nothing: cause unknown")
    if any(f.origin == "log" and f.status is Status.UNKNOWN for f in from_log):
        notes.append("a matched message the versions or the context do not support is shown without a fix")
    if not chosen:
        notes.append("no versions found (add the output of `pip list` or `python -m torch.utils.collect_env`)")
    for name, pick in chosen.items():
        if pick.conflicts:
            others = ", ".join(f"{s.value} (line {s.line}, {s.source})" for s in pick.conflicts)
            notes.append(
                f"{name} is stated with different values: using {pick.statement.value} "
                f"(line {pick.statement.line}, {pick.statement.source}) over {others}"
            )
    if undecided:
        notes.append(f"{undecided} matrix checks need versions the input does not state (not shown)")
    if scan.versions_truncated:
        notes.append(f"versions were read from the first {HEAD >> 20} MiB and the last {TAIL >> 20} MiB of the input")
    return notes
