"""Two diagnoses of the same probe models side by side: what a version change fixed, left, and broke."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qatdoctor.knowledge.entries import Matrix, Rule
from qatdoctor.records import FAILED, Finding, ProbeRun, Recommendation, Report, Scope, Severity


@dataclass(frozen=True)
class Entry:
    """One failure and how it changed."""

    id: str
    title: str
    severity: str
    before: str | None
    after: str | None
    was: tuple[str, ...] = ()
    note: str | None = None
    scope: str = "environment"


@dataclass(frozen=True)
class StageDiff:
    """One probe stage of one case: its status on each side (None: not run there)."""

    stage: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class CaseDiff:
    """One probe case (model × mode) on both sides."""

    model: str
    mode: str
    stages: tuple[StageDiff, ...]


@dataclass(frozen=True)
class Comparison:
    """Fixed / remaining / new failures, what the recommendation set out to fix, and the probe-table diff."""

    fixed: tuple[Entry, ...]
    remaining: tuple[Entry, ...]
    new: tuple[Entry, ...]
    targeted: tuple[str, ...]
    cases: tuple[CaseDiff, ...]
    import_before: str | None
    import_after: str | None
    failing_before: tuple[str, ...] = ()
    failing_after: tuple[str, ...] = ()

    @property
    def unfixed_targets(self) -> tuple[str, ...]:
        fixed = {e.id for e in self.fixed}
        return tuple(t for t in self.targeted if t not in fixed)

    @property
    def new_errors(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.new if e.severity == Severity.ERROR.value)

    @property
    def new_blocking(self) -> tuple[Entry, ...]:
        """New environment-level errors (the import fails, the probe dies, an environment rule): these undo
        any fix. New model-level failures only matter to models with that feature and are reported."""
        return tuple(e for e in self.new_errors if e.scope == "environment")

    @property
    def fixes_targets(self) -> bool:
        return not self.unfixed_targets and not self.new_blocking


def failing(report: Report, matrix: Matrix) -> list[Finding]:
    """Error-level failures; without a probe also the model-scoped hazards (all a static side has)."""
    out = []
    for finding in report.findings:
        if finding.status not in FAILED:
            continue
        rule = matrix.rule(finding.id)
        hazard = report.probe is None and rule is not None and rule.scope == "model" and rule.kind == "bad"
        if finding.severity is Severity.ERROR or hazard:
            out.append(finding)
    return out


def compare(before: Report, after: Report, matrix: Matrix, rec: Recommendation | None) -> Comparison:
    """Classify every failure of either side (see docs/guide.md `verify`)."""
    was_failing = {f.id: f for f in failing(before, matrix)}
    now_failing = {f.id: f for f in failing(after, matrix)}
    announced = _announced(rec)
    fixed = [_entry(f, matrix, f.status.value, None) for fid, f in was_failing.items() if fid not in now_failing]
    remaining: list[Entry] = []
    new: list[Entry] = []
    for fid, f in now_failing.items():
        if fid in was_failing:
            remaining.append(_entry(f, matrix, was_failing[fid].status.value, f.status.value, note=_code_fix(f)))
            continue
        related = tuple(b.id for b in was_failing.values() if _related(b, f, matrix))
        if related or fid in announced:
            note = _code_fix(f) or ("announced by the recommendation" if fid in announced else None)
            remaining.append(_entry(f, matrix, None, f.status.value, was=related, note=note))
        else:
            new.append(_entry(f, matrix, None, f.status.value, note=_code_fix(f)))
    targeted = _targeted(was_failing.values(), matrix, rec)
    return Comparison(
        tuple(fixed),
        tuple(remaining),
        tuple(new),
        targeted,
        diff_cases(before.probe, after.probe),
        _import_state(before.probe),
        _import_state(after.probe),
        tuple(was_failing),
        tuple(now_failing),
    )


def _entry(
    f: Finding,
    matrix: Matrix,
    before: str | None,
    after: str | None,
    *,
    was: tuple[str, ...] = (),
    note: str | None = None,
) -> Entry:
    return Entry(f.id, f.title, f.severity.value, before, after, was, note, _scope(f, matrix))


def _scope(finding: Finding, matrix: Matrix) -> str:
    """model for the user's model, model-scoped rules and unexplained failures of one probe model; else
    environment."""
    if finding.scope is not Scope.ENVIRONMENT:
        return "model"
    rule = matrix.rule(finding.id)
    if rule is not None:
        return rule.scope
    return "model" if _probe_models(finding, matrix) else "environment"


def _code_fix(finding: Finding) -> str | None:
    code = next((fx.summary for fx in finding.fixes if fx.kind == "code"), None)
    return f"still needs the code fix: {code}" if code else None


def _announced(rec: Recommendation | None) -> set[str]:
    """Finding ids the recommendation said would still fail after the move (it said so before it was built)."""
    return set(rec.model_failures) if rec else set()


def _avoids(rec: Recommendation | None) -> set[str]:
    return set(rec.avoids) if rec else set()


def _related(one: Finding, other: Finding, matrix: Matrix) -> bool:
    """Two failures about the same construct: rules with the same model feature, or an unexplained failure
    of a probe model and a rule that names that model."""
    a, b = matrix.rule(one.id), matrix.rule(other.id)
    if a is not None and b is not None:
        return a.model_feature is not None and a.model_feature == b.model_feature
    return bool(_probe_models(one, matrix) & _probe_models(other, matrix))


def _probe_models(finding: Finding, matrix: Matrix) -> set[str]:
    """The probe models a failure is about: a model-scoped rule's, or the one in an unexplained-failure id."""
    rule = matrix.rule(finding.id)
    if rule is not None:
        return {p.model for p in rule.probes if p.model != "*"} if rule.scope == "model" else set()
    return {finding.stand_in} if finding.stand_in is not None else set()


def _targeted(was: Iterable[Finding], matrix: Matrix, rec: Recommendation | None) -> tuple[str, ...]:
    """What the recommendation set out to fix: what it says it avoids, and every environment-level error."""
    if rec is None:
        return ()
    avoids = _avoids(rec)
    out = []
    for finding in was:
        rule = matrix.rule(finding.id)
        if finding.id in avoids or (finding.severity is Severity.ERROR and _environmental(finding, rule)):
            out.append(finding.id)
    return tuple(out)


def _environmental(finding: Finding, rule: Rule | None) -> bool:
    """A failure a version change is meant to remove (not a model-level problem needing a code change)."""
    if rule is None:
        return finding.stand_in is None
    return rule.scope == "environment" or rule.has_version_fix()


def _import_state(probe: ProbeRun | None) -> str | None:
    if probe is None:
        return None
    if probe.state == "import-failed" and probe.import_error is not None:
        return f"fail ({probe.import_error.type})"
    return "pass" if probe.state == "ran" else probe.state


def diff_cases(before: ProbeRun | None, after: ProbeRun | None) -> tuple[CaseDiff, ...]:
    """The union of both probe tables, stage by stage."""
    sides = [_table(before), _table(after)]
    keys = list(dict.fromkeys([*sides[1], *sides[0]]))
    stages = list(dict.fromkeys(s for side in sides for case in side.values() for s in case))
    out = []
    for key in keys:
        b, a = sides[0].get(key, {}), sides[1].get(key, {})
        diffs = tuple(StageDiff(s, b.get(s), a.get(s)) for s in stages if s in b or s in a)
        out.append(CaseDiff(key[0], key[1], diffs))
    return tuple(out)


def _table(probe: ProbeRun | None) -> dict[tuple[str, str], dict[str, str]]:
    if probe is None:
        return {}
    return {(c.model, c.mode): {s.stage: s.status.value for s in c.stages} for c in probe.cases}


def stage_names(cases: Sequence[CaseDiff]) -> list[str]:
    return list(dict.fromkeys(s.stage for case in cases for s in case.stages))
