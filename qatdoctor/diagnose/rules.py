"""Matching the matrix's [[rule]] entries against facts, and turning rules into findings."""

from __future__ import annotations

from dataclasses import dataclass

from qatdoctor.diagnose.conditions import Outcome, evaluate_all
from qatdoctor.knowledge.entries import Matrix, Rule, RuleFix
from qatdoctor.records import Facts, Finding, Fix, Scope, Severity, Status


@dataclass(frozen=True)
class RuleMatch:
    """A rule and how it evaluated against the facts."""

    rule: Rule
    outcome: Outcome


def match_rules(facts: Facts, matrix: Matrix) -> list[RuleMatch]:
    """Every non-triage rule that matched (True) or could not be decided (None)."""
    matches = []
    for rule in matrix.rules:
        if rule.triage_only:
            continue
        outcome = evaluate_all(rule.when, facts)
        if outcome.value is not False:
            matches.append(RuleMatch(rule, outcome))
    return matches


PYTHON_PLACEHOLDER = "{python}"


def fix_from_rule(fix: RuleFix, python: str = "python") -> Fix:
    """A matrix fix as a finding fix. A version fix carries its package and range and no command yet: the
    diagnosis turns it into the whole set it lands on (core.concrete_fixes). Matrix commands name the target
    interpreter as `{python}`."""
    commands = tuple(c.replace(PYTHON_PLACEHOLDER, python) for c in fix.commands)
    if fix.kind in ("upgrade", "pin") and fix.package and fix.spec is not None:
        return Fix(fix.kind, fix.summary, commands, fix.code, fix.package, str(fix.spec))
    return Fix(kind=fix.kind, summary=fix.summary, commands=commands, code=fix.code)


def rule_finding(
    rule: Rule,
    outcome: Outcome,
    *,
    confirmed: bool = False,
    python: str = "python",
    extra_evidence: tuple[str, ...] = (),
    headline: str | None = None,
    facts: Facts | None = None,
) -> Finding:
    """The finding for a matched (or undecided) rule.

    A model-scoped rule is a caveat: it is about models containing its construct, which qatdoctor has not seen
    here, so its status is unknown and it never counts against the verdict (`--model` turns it into a finding
    about the user's model). `confirmed`: the probe's stand-in model reproduced it in this environment.
    Its basis says whether `facts` are versions the rule was measured on, or extrapolated from others.
    """
    basis, basis_line = rule.basis_for(facts)
    if confirmed:
        basis, basis_line = "measured", f"measured here: the probe reproduced it ({basis_line})"
    severity = Severity(rule.severity)
    summary = rule.summary
    if rule.kind == "good":
        status = Status.PASS
    elif outcome.value is None:
        status = Status.UNKNOWN
        summary = f"Could not decide (needs {'; '.join(outcome.missing)}). {summary}"
    else:
        status = Status.FAIL
    scope = Scope.ENVIRONMENT
    if rule.scope == "model" and rule.kind == "bad":
        scope, status = Scope.CAVEAT, Status.UNKNOWN
        if confirmed:
            summary = f"The probe's stand-in model reproduced this in this environment. {summary}"
    evidence = (*outcome.matched, *outcome.missing, *extra_evidence, basis_line)
    return Finding(
        id=rule.id,
        title=rule.title,
        severity=severity,
        status=status,
        origin="matrix",
        summary=summary,
        fixes=tuple(fix_from_rule(f, python) for f in rule.fixes),
        sources=rule.sources,
        evidence=evidence,
        scope=scope,
        construct=rule.model_feature if rule.scope == "model" else None,
        basis=basis,
        measured_on=rule.measured_on,
        about=tuple(dict.fromkeys(c.fact for c in rule.when)),
        headline=headline or next(iter(outcome.missing), None),
    )
