"""Matrix [[rule]] entries against facts: which rules match, and the finding each one becomes."""

from __future__ import annotations

import pytest

from qatdoctor.core import load_matrix
from qatdoctor.diagnose.conditions import Outcome
from qatdoctor.diagnose.rules import fix_from_rule, match_rules, rule_finding
from qatdoctor.knowledge.entries import Rule, RuleFix
from qatdoctor.knowledge.load import _condition
from qatdoctor.knowledge.versions import parse_specifier
from qatdoctor.records import Fact, Facts, Measurement, Reason, Scope, Severity, Source, Status, Why, told

MATRIX = load_matrix(None)
SOURCE = (Source("issue", "quic/aimet#1", "a report"),)


def rule(rule_id: str = "r", **changes: object) -> Rule:
    base = Rule(
        id=rule_id,
        kind="bad",
        severity="error",
        title="Title",
        summary="Summary.",
        when=(_condition("aimet-torch", ">=2.0"), _condition("driver", ">=525")),
        sources=SOURCE,
    )
    return base._replace(**changes)


def facts(**values: str | Fact) -> Facts:
    return Facts({k.replace("_", "-"): v if isinstance(v, Fact) else Fact.known(v) for k, v in values.items()})


# --- which rules match -----------------------------------------------------------------------------------------


def test_match_rules_keeps_matched_and_undecided_and_skips_triage() -> None:
    matched = rule("matched", when=(_condition("aimet-torch", ">=2.0"),))
    undecided = rule("undecided", when=(_condition("driver", ">=525"),))
    unmatched = rule("unmatched", when=(_condition("aimet-torch", "<2.0"),))
    triage = rule("triage", when=(_condition("aimet-torch", ">=2.0"),), triage_only=True)
    matrix = MATRIX._replace(rules=(matched, undecided, unmatched, triage))
    found = [(m.rule.id, m.outcome.value) for m in match_rules(facts(aimet_torch="2.42.0"), matrix)]
    assert found == [("matched", True), ("undecided", None)]


def test_match_rules_on_the_real_matrix() -> None:
    the_facts = facts(aimet_torch="2.42.0", torch="2.2.2", python="3.11.7", aimet_api="v2")
    by_id = {m.rule.id: m.outcome.value for m in match_rules(the_facts, MATRIX)}
    assert by_id["aimet-2.42-torch-2.2-import-error"] is True
    assert "aimet-2.0.0-torch-2.14-import-error" not in by_id
    assert "torch-fusion-only-for-eval" not in by_id  # triage only: for logs, never for an environment
    assert by_id["torch-2.2-numpy-2"] is None  # numpy not collected


# --- the finding a rule becomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "scope", "outcome", "status", "finding_scope"),
    [
        ("bad", "environment", Outcome(True, ("a",)), Status.FAIL, Scope.ENVIRONMENT),
        ("bad", "environment", Outcome(None, ("a",), ("b",)), Status.UNKNOWN, Scope.ENVIRONMENT),
        ("good", "environment", Outcome(True, ("a",)), Status.PASS, Scope.ENVIRONMENT),
        ("good", "environment", Outcome(None, (), ("b",)), Status.PASS, Scope.ENVIRONMENT),
        ("bad", "model", Outcome(True, ("a",)), Status.UNKNOWN, Scope.CAVEAT),
        ("good", "model", Outcome(True, ("a",)), Status.PASS, Scope.ENVIRONMENT),
    ],
)
def test_rule_finding_status_and_scope(
    kind: str, scope: str, outcome: Outcome, status: Status, finding_scope: Scope
) -> None:
    found = rule_finding(rule(kind=kind, scope=scope, model_feature="bn-subclass"), outcome)
    assert (found.status, found.scope) == (status, finding_scope)
    assert found.construct == ("bn-subclass" if scope == "model" else None)


def test_an_undecided_finding_says_what_it_needs() -> None:
    found = rule_finding(rule(), Outcome(None, ("aimet-torch 2.42.0 in >=2.0",), ("driver unknown: x", "cuda unknown: y")))
    assert told(found) == "Could not decide (needs driver unknown: x; cuda unknown: y). Summary."
    assert found.summary == "Summary." and found.reasons == (Reason(Why.UNDECIDED, needs=found.evidence[1:3]),)
    decided = rule_finding(rule(), Outcome(True, ("aimet-torch 2.42.0 in >=2.0",)))
    assert decided.summary == "Summary."
    assert found.headline == "driver unknown: x" and decided.headline is None
    shown = rule_finding(rule(), Outcome(None, (), ("driver unknown: x",)), headline="qat_step: RuntimeError: boom")
    assert shown.headline == "qat_step: RuntimeError: boom"
    assert found.about == ("aimet-torch", "driver")


def test_a_finding_carries_the_rule() -> None:
    fixes = (RuleFix("code", "swap", (), "model = swap(model)"),)
    found = rule_finding(
        rule(severity="warning", fixes=fixes, basis="reported"),
        Outcome(None, ("matched line",), ("missing line",)),
        extra_evidence=("extra line",),
    )
    assert (found.id, found.title, found.origin, found.severity) == ("r", "Title", "matrix", Severity.WARNING)
    assert found.sources == SOURCE
    assert found.evidence == ("matched line", "missing line", "extra line",
                              "reported in an issue; not measured by qatdoctor")  # fmt: skip
    assert found.basis == "reported" and found.measured_on == ()
    assert [(f.kind, f.summary, f.code) for f in found.fixes] == [("code", "swap", "model = swap(model)")]


def test_measured_and_extrapolated_basis() -> None:
    cell = Measurement({"aimet-torch": "2.42.0"}, "probe-x")
    measured = rule(basis="measured", measured_on=(cell,))
    here = rule_finding(measured, Outcome(True), facts=facts(aimet_torch="2.42.0"))
    assert here.basis == "measured" and here.measured_on == (cell,)
    assert here.evidence[-1].startswith("measured on ") and "probe-x" in here.evidence[-1]
    elsewhere = rule_finding(measured, Outcome(True), facts=facts(aimet_torch="2.41.0"))
    assert elsewhere.basis == "extrapolated"
    confirmed = rule_finding(measured, Outcome(True), facts=facts(aimet_torch="2.41.0"), confirmed=True)
    assert confirmed.basis == "measured"
    assert confirmed.evidence[-1] == f"measured here: the probe reproduced it ({elsewhere.evidence[-1]})"
    assert confirmed.summary == "Summary."  # an environment rule's summary is not about the stand-in model


def test_a_confirmed_caveat_says_the_probe_reproduced_it() -> None:
    caveat = rule(scope="model", model_feature="silu-activation")
    confirmed = rule_finding(caveat, Outcome(True), confirmed=True)
    assert told(confirmed) == "The probe's stand-in model reproduced this in this environment. Summary."
    assert confirmed.scope is Scope.CAVEAT and confirmed.status is Status.UNKNOWN
    assert told(rule_finding(caveat, Outcome(True))) == "Summary."


def test_fix_commands_name_the_target_python() -> None:
    fixes = (RuleFix("install", "reinstall", ("{python} -m pip install x", "echo {python}")),)
    found = rule_finding(rule(fixes=fixes), Outcome(True), python="/env/bin/python3")
    assert found.fixes[0].commands == ("/env/bin/python3 -m pip install x", "echo /env/bin/python3")
    default = rule_finding(rule(fixes=fixes), Outcome(True))
    assert default.fixes[0].commands == ("python -m pip install x", "echo python")
    assert fix_from_rule(fixes[0]).commands == ("python -m pip install x", "echo python")


@pytest.mark.parametrize(
    ("fix", "package", "spec"),
    [
        (RuleFix("upgrade", "newer", (), None, "aimet-torch", parse_specifier(">=2.30")), "aimet-torch", ">=2.30"),
        (RuleFix("pin", "pin", (), None, "numpy", parse_specifier("<2")), "numpy", "<2"),
        (RuleFix("pin", "pin", (), "np.float_ = np.float64", "numpy", parse_specifier("<2")), "numpy", "<2"),
        (RuleFix("upgrade", "newer", (), None, None, parse_specifier(">=2.30")), None, None),
        (RuleFix("pin", "pin", (), None, "numpy", None), None, None),
        (RuleFix("system", "apt", (), None, "liblapacke", parse_specifier(">=1")), None, None),
        (RuleFix("install", "install", (), None, "aimet-torch", parse_specifier(">=2")), None, None),
    ],
)
def test_fix_from_rule(fix: RuleFix, package: str | None, spec: str | None) -> None:
    made = fix_from_rule(fix, "py")
    assert (made.kind, made.summary, made.package, made.spec) == (fix.kind, fix.summary, package, spec)
    assert made.code == fix.code and made.commands == ()
