"""The one judge: the evidence gathered about a matrix rule in, its finding's status, severity and scope out.

`judge` reads `TABLE` top to bottom; the first row whose case holds decides. The reasons it gives are data
(`records.Reason`); the renderers word them (`records.told`). Nothing else sets or rewrites a rule finding's status.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

from qatdoctor.diagnose.conditions import Outcome
from qatdoctor.knowledge.entries import Rule, RuleFix
from qatdoctor.records import Facts, Finding, Fix, Reason, Scope, Severity, Status, Why

PYTHON_PLACEHOLDER = "{python}"


class StandIns(NamedTuple):
    """What the probe's stand-in models showed about one rule."""

    reproduced: bool = False  # a stand-in failed the way the rule names
    seen: tuple[str, ...] = ()  # those failures, described
    exercised: int = 0  # stage runs of the outcomes the rule names that ran
    all_passed: bool = False  # ... and every one of them passed


class OnModel(NamedTuple):
    """What the user's model (`--model`, examined) showed about one model-scope rule."""

    has_construct: bool
    construct: str  # the construct's title
    scan: str  # the scan's line: where the construct is, or that it is not
    probed: bool = True  # the rule names stage outcomes its run can show
    reproduced: tuple[str, ...] = ()  # the model's stages that failed as the rule names, described
    with_fixes: tuple[str, ...] = ()  # the same, on the model with qatdoctor.fixes applied
    ran: tuple[str, ...] = ()  # the stages the rule names that ran (sorted names)
    ran_passed: bool = False  # ... and every one passed
    ran_failures: tuple[str, ...] = ()  # ... the ones that did not, described
    layers: tuple[str, ...] = ()
    headline: str | None = None  # the line that shows it best (reproduced, else a failure that blocked it)


class Logged(NamedTuple):
    """What a pasted log showed about one rule (explain): its signature matched, and how the stated versions stand."""

    line: int
    how: str  # how strictly the signature matched
    in_range: bool | None  # the stated versions: inside the rule's range, outside it, or not all stated
    rule_range: str  # the rule's range, in words
    names_aimet: bool  # the input (or the lines around the match) mentions AIMET
    aimet_rule: bool  # the rule is about an AIMET version
    frame: str | None = None  # the user's own frame it is raised from, with its input line in `frame_line`
    frame_line: int | None = None


class Evidence(NamedTuple):
    """Everything known about one rule here: the facts, the stand-ins, the user's model and a pasted log."""

    rule: Rule
    outcome: Outcome
    facts: Facts | None = None
    stand_ins: StandIns | None = None
    model: OnModel | None = None
    can_occur: bool = True  # False: the construct's only source is absent here
    likely: str | None = None  # an installed package that produces the construct
    log: tuple[str, ...] = ()  # lines a pasted log showed
    headline: str | None = None  # the observation that shows it best
    logged: Logged | None = None  # a pasted log matched the rule's signature (explain)


class Sev(enum.Enum):
    """A row's severity: the rule's, a fixed one, or the rule's adjusted."""

    RULE = "rule"
    INFO = "info"
    WARN = "warning"
    ERROR = "error"
    RAISE = "raise"  # the rule's, an info raised to a warning
    LOWER = "lower"  # error → warning, anything else → info


class Row(NamedTuple):
    """One row of the decision table; `scope` None drops the finding; `origin` None: "probe" when a stand-in
    reproduced the rule, else "matrix"; `fixes` False: the rule's fixes are not offered."""

    case: str
    holds: Callable[[Evidence], bool]
    scope: Scope | None
    status: Status
    severity: Sev
    reason: Why | None
    origin: str | None = None
    fixes: bool = True


def _bad(e: Evidence) -> bool:
    return e.rule.kind == "bad"


def _on_model(e: Evidence) -> bool:
    return _bad(e) and e.rule.scope == "model" and e.model is not None


def _model(e: Evidence) -> OnModel:
    assert e.model is not None
    return e.model


def _caveat(e: Evidence) -> bool:
    return _bad(e) and e.rule.scope == "model" and e.model is None


def _reproduced(e: Evidence) -> bool:
    return e.stand_ins is not None and e.stand_ins.reproduced


def _stand_ins_passed(e: Evidence) -> bool:
    return e.stand_ins is not None and e.stand_ins.exercised > 0 and e.stand_ins.all_passed


def _good(e: Evidence) -> bool:
    return e.rule.kind == "good"


def _lacks(e: Evidence) -> bool:
    return _on_model(e) and not _model(e).has_construct


def _has(e: Evidence) -> bool:
    return _on_model(e) and _model(e).has_construct


def _model_reproduced(e: Evidence) -> bool:
    return _has(e) and bool(_model(e).reproduced)


def _once_fixed(e: Evidence) -> bool:
    return _has(e) and bool(_model(e).with_fixes)


def _stages_ran(e: Evidence) -> bool:
    return _has(e) and _model(e).probed and bool(_model(e).ran)


def _stages_passed(e: Evidence) -> bool:
    return _stages_ran(e) and _model(e).ran_passed


def _shows_stages(e: Evidence) -> bool:
    return _has(e) and _model(e).probed


def _cannot_occur(e: Evidence) -> bool:
    return _caveat(e) and not e.can_occur


def _caveat_reproduced(e: Evidence) -> bool:
    return _caveat(e) and _reproduced(e)


def _undecided(e: Evidence) -> bool:
    return e.outcome.value is None


def _always(e: Evidence) -> bool:
    return True


def _logged(e: Evidence) -> bool:
    return e.logged is not None


def _log_model_code(e: Evidence) -> bool:
    return e.logged is not None and e.rule.cause == "model-code"


def _log_outside(e: Evidence) -> bool:
    return e.logged is not None and e.logged.in_range is False


def _log_not_aimet(e: Evidence) -> bool:
    log = e.logged
    return log is not None and log.in_range is None and log.aimet_rule and not log.names_aimet


def _log_applies(e: Evidence) -> bool:
    return e.logged is not None and e.logged.in_range is True


def _of_model(e: Evidence) -> bool:
    return e.rule.scope == "model"


def _log_outside_m(e: Evidence) -> bool:
    return _log_outside(e) and _of_model(e)


def _log_not_aimet_m(e: Evidence) -> bool:
    return _log_not_aimet(e) and _of_model(e)


def _log_applies_m(e: Evidence) -> bool:
    return _log_applies(e) and _of_model(e)


def _logged_m(e: Evidence) -> bool:
    return _logged(e) and _of_model(e)


_E, _M, _C = Scope.ENVIRONMENT, Scope.MODEL, Scope.CAVEAT
PASS, FAIL, UNKNOWN, N_A = Status.PASS, Status.FAIL, Status.UNKNOWN, Status.NOT_APPLICABLE

TABLE: tuple[Row, ...] = (
    # case                     holds when          scope status   severity   reason                   origin   fixes
    Row("log-model-code",      _log_model_code,    _M,   FAIL,    Sev.RULE,  Why.LOG_MODEL_CODE,      "log"),
    Row("log-out-caveat",      _log_outside_m,     _C,   UNKNOWN, Sev.WARN,  Why.LOG_OUTSIDE_RANGE,   "log",   False),
    Row("log-out",             _log_outside,       _E,   UNKNOWN, Sev.WARN,  Why.LOG_OUTSIDE_RANGE,   "log",   False),
    Row("log-no-aimet-caveat", _log_not_aimet_m,   _C,   UNKNOWN, Sev.WARN,  Why.LOG_NOT_AIMET,       "log",   False),
    Row("log-no-aimet",        _log_not_aimet,     _E,   UNKNOWN, Sev.WARN,  Why.LOG_NOT_AIMET,       "log",   False),
    Row("log-model-applies",   _log_applies_m,     _M,   FAIL,    Sev.RULE,  Why.LOG_APPLIES,         "log"),
    Row("log-applies",         _log_applies,       _E,   FAIL,    Sev.RULE,  Why.LOG_APPLIES,         "log"),
    Row("log-model-message",   _logged_m,          _M,   FAIL,    Sev.RULE,  Why.LOG_ON_MESSAGE,      "log"),
    Row("log-message",         _logged,            _E,   FAIL,    Sev.RULE,  Why.LOG_ON_MESSAGE,      "log"),
    Row("known-good",          _good,              _E,   PASS,    Sev.RULE,  None),
    Row("model-lacks",         _lacks,             _M,   N_A,     Sev.INFO,  Why.MODEL_LACKS),
    Row("model-reproduced",    _model_reproduced,  _M,   FAIL,    Sev.RAISE, Why.MODEL_REPRODUCED,    "probe"),
    Row("model-once-fixed",    _once_fixed,        _M,   FAIL,    Sev.RAISE, Why.MODEL_ONCE_FIXED,    "probe"),
    Row("model-passed",        _stages_passed,     _M,   PASS,    Sev.INFO,  Why.MODEL_PASSED),
    Row("model-blocked",       _stages_ran,        _M,   UNKNOWN, Sev.INFO,  Why.MODEL_BLOCKED),
    Row("model-not-reached",   _shows_stages,      _M,   FAIL,    Sev.RAISE, Why.MODEL_NOT_SHOWN),
    Row("model-scan-only",     _has,               _M,   FAIL,    Sev.RAISE, Why.MODEL_CANNOT_SHOW),
    Row("cannot-occur",        _cannot_occur,      None, UNKNOWN, Sev.RULE,  None),
    Row("caveat-reproduced",   _caveat_reproduced, _C,   UNKNOWN, Sev.RULE,  Why.STAND_IN_REPRODUCED),
    Row("caveat",              _caveat,            _C,   UNKNOWN, Sev.RULE,  None),
    Row("probe-reproduced",    _reproduced,        _E,   FAIL,    Sev.ERROR, None),
    Row("undecided",           _undecided,         _E,   UNKNOWN, Sev.RULE,  None),
    Row("not-reproduced",      _stand_ins_passed,  _E,   FAIL,    Sev.LOWER, Why.NOT_REPRODUCED),
    Row("matched",             _always,            _E,   FAIL,    Sev.RULE,  None),
)  # fmt: skip


class Judgement(NamedTuple):
    """What the judge decided, and by which row."""

    case: str
    scope: Scope
    status: Status
    severity: Severity
    origin: str
    reasons: tuple[Reason, ...]
    fixes: bool = True


def judge(e: Evidence) -> Judgement | None:
    """The first row of `TABLE` that holds, applied; None when the finding is not shown here."""
    row = next(r for r in TABLE if r.holds(e))
    if row.scope is None:
        return None
    reasons: tuple[Reason, ...] = (_reason(row.reason, e),) if row.reason is not None else ()
    if e.outcome.value is None and row.scope is not Scope.MODEL:  # the model's run speaks instead of the facts
        reasons += (Reason(Why.UNDECIDED, needs=e.outcome.missing),)
    if e.logged is not None:
        reasons = (Reason(Why.LOG_SHOWS, line=e.logged.line, how=e.logged.how), *reasons)
        if row.reason is Why.LOG_MODEL_CODE and e.logged.frame is not None:
            reasons += (Reason(Why.LOG_USER_FRAME, frame=e.logged.frame, line=e.logged.frame_line),)
        elif row.status is Status.FAIL and e.rule.scope == "model":
            reasons += (Reason(Why.LOG_MODEL_CONTAINS, construct=e.rule.model_feature),)
    origin = row.origin or ("probe" if _reproduced(e) else "matrix")
    severity = _severity(row.severity, e.rule)
    return Judgement(row.case, row.scope, row.status, severity, origin, reasons, row.fixes)


def _severity(how: Sev, rule: Rule) -> Severity:
    stated = Severity(rule.severity)
    if how is Sev.RULE:
        return stated
    if how is Sev.RAISE:
        return Severity.WARNING if stated is Severity.INFO else stated
    if how is Sev.LOWER:
        return Severity.WARNING if stated is Severity.ERROR else Severity.INFO
    return Severity(how.value)


def _reason(code: Why, e: Evidence) -> Reason:
    if code is Why.NOT_REPRODUCED:
        return Reason(code, runs=e.stand_ins.exercised if e.stand_ins else 0)
    if e.logged is not None:
        matched = e.outcome.matched if code is Why.LOG_APPLIES else ()
        return Reason(code, rule_range=e.logged.rule_range, matched=matched)
    if e.model is None:
        return Reason(code)
    stages = e.model.ran if code in (Why.MODEL_PASSED, Why.MODEL_BLOCKED) else ()
    return Reason(code, construct=e.model.construct, stages=stages)


def rule_finding(e: Evidence, python: str = "python") -> Finding | None:
    """The finding the judge's decision makes of this evidence (None: not shown here)."""
    decided = judge(e)
    if decided is None:
        return None
    rule, outcome = e.rule, e.outcome
    basis, basis_line = rule.basis_for(e.facts)
    if _reproduced(e):
        basis, basis_line = "measured", f"measured here: the probe reproduced it ({basis_line})"
    seen = e.stand_ins.seen if e.stand_ins is not None else ()
    evidence = (*outcome.matched, *outcome.missing, *e.log, *seen, basis_line)
    found = Finding(
        id=rule.id,
        title=rule.title,
        severity=decided.severity,
        status=decided.status,
        origin=decided.origin,
        summary=rule.summary,
        fixes=tuple(fix_from_rule(f, python) for f in rule.fixes) if decided.fixes else (),
        sources=rule.sources,
        evidence=evidence,
        scope=decided.scope,
        construct=rule.model_feature if rule.scope == "model" else None,
        likely=e.likely if decided.scope is Scope.CAVEAT else None,
        basis=basis,
        measured_on=rule.measured_on,
        not_reproduced=any(r.code is Why.NOT_REPRODUCED for r in decided.reasons),
        about=tuple(dict.fromkeys(c.fact for c in rule.when)),
        headline=e.headline or next(iter(outcome.missing), None),
        reasons=decided.reasons,
    )
    return _about_model(found, e.model, decided.reasons[0].code) if e.model is not None else found


def _about_model(found: Finding, model: OnModel | None, why: Why) -> Finding:
    """A finding about the user's model shows the scan and the model's stages, not the facts' evidence."""
    assert model is not None
    shown = {
        Why.MODEL_LACKS: (),
        Why.MODEL_REPRODUCED: (*model.reproduced, *found.evidence),
        Why.MODEL_ONCE_FIXED: tuple(f"with fixes: {line}" for line in model.with_fixes),
        Why.MODEL_BLOCKED: model.ran_failures,
    }.get(why, ())
    headline = model.headline if why in (Why.MODEL_REPRODUCED, Why.MODEL_BLOCKED) else None
    return found._replace(
        evidence=(model.scan, *shown),
        layers=model.layers if why is not Why.MODEL_LACKS else (),
        headline=headline,
    )


def fix_from_rule(fix: RuleFix, python: str = "python") -> Fix:
    """A matrix fix as a finding fix. A version fix carries its package and range and no command yet: the
    diagnosis turns it into the whole set it lands on (core.concrete_fixes). Matrix commands name the target
    interpreter as `{python}`."""
    commands = tuple(c.replace(PYTHON_PLACEHOLDER, python) for c in fix.commands)
    if fix.kind in ("upgrade", "pin") and fix.package and fix.spec is not None:
        return Fix(fix.kind, fix.summary, commands, fix.code, fix.package, str(fix.spec))
    return Fix(kind=fix.kind, summary=fix.summary, commands=commands, code=fix.code)
