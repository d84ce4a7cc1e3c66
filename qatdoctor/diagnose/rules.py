"""Matching the matrix's [[rule]] entries against facts, and turning rules into findings."""

from __future__ import annotations

from dataclasses import dataclass

from qatdoctor.diagnose.conditions import Outcome, evaluate_all
from qatdoctor.diagnose.judge import Evidence, StandIns, fix_from_rule
from qatdoctor.diagnose.judge import rule_finding as judged
from qatdoctor.knowledge.entries import Matrix, Rule
from qatdoctor.records import Facts, Finding

__all__ = ["RuleMatch", "fix_from_rule", "match_rules", "rule_finding"]


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
    """The judge's finding for a matched (or undecided) rule, from the facts alone or, `confirmed`, with the
    probe's stand-in reproducing it (`extra_evidence`: what it showed); otherwise `extra_evidence` is what a pasted
    log showed (explain)."""
    stand_ins = StandIns(reproduced=True, seen=extra_evidence) if confirmed else None
    log = () if confirmed else extra_evidence
    found = judged(Evidence(rule, outcome, facts, stand_ins=stand_ins, log=log, headline=headline), python)
    assert found is not None  # only a caveat whose construct cannot occur is dropped
    return found
