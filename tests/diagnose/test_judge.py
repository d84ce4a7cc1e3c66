"""The judge on a decision table written here: evidence about one small rule in, status/severity/scope/reasons out."""

from __future__ import annotations

import pytest

from qatdoctor.diagnose.conditions import Outcome
from qatdoctor.diagnose.judge import TABLE, Evidence, Logged, OnModel, StandIns, judge, rule_finding
from qatdoctor.knowledge.entries import ProbeMatch, Rule
from qatdoctor.knowledge.load import _condition
from qatdoctor.records import Reason, Scope, Severity, Source, Status, Why, reason_text, told

E, M, C = Scope.ENVIRONMENT, Scope.MODEL, Scope.CAVEAT
PASS, FAIL, UNKNOWN, N_A = Status.PASS, Status.FAIL, Status.UNKNOWN, Status.NOT_APPLICABLE
ERR, WARN, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
YES, UNDECIDED = Outcome(True, ("aimet-torch 2.42.0 in >=2.0",)), Outcome(None, (), ("driver unknown: x",))


SOURCES = (Source("issue", "quic/aimet#1"),)


def rule(kind: str = "bad", scope: str = "environment", severity: str = "error", probes: bool = True) -> Rule:
    return Rule(
        id="r", kind=kind, severity=severity, title="Title", summary="Summary.",
        when=(_condition("aimet-torch", ">=2.0"), _condition("driver", ">=525")), sources=SOURCES,
        scope=scope, model_feature="bn-subclass" if scope == "model" else None,
        probes=(ProbeMatch("bn_subclass", "qat_step", "fail"),) if probes else (),
    )  # fmt: skip


def model(**seen: object) -> OnModel:
    base = OnModel(has_construct=True, construct="BN subclass", scan="scan: 2 layers with BN subclass: a, b",
                   layers=("a", "b"))  # fmt: skip
    return base._replace(**seen)


REPRODUCED = StandIns(reproduced=True, seen=("bn_subclass/train qat_step: RuntimeError: boom",))
PASSED = StandIns(exercised=2, all_passed=True)
RAN_AND_FAILED = StandIns(exercised=2, all_passed=False)
NOT_RUN = StandIns(exercised=0, all_passed=True)
MODEL_RULE = rule(scope="model")


def logged(in_range: bool | None, names_aimet: bool = True, aimet_rule: bool = True) -> Logged:
    return Logged(3, "message matches", in_range, "aimet-torch >=2.0", names_aimet, aimet_rule)


LOG = (Why.LOG_SHOWS,)
OUT, NO_AIMET, ON_MESSAGE = logged(False), logged(None, names_aimet=False), logged(None)

# evidence in → the row that decides, status, severity, scope, origin, reason codes out
MODEL_CODE = rule()._replace(cause="model-code")
FRAMED = Logged(3, "message matches", True, "any version", True, False, 'File "m.py", line 8, in forward', 7)

CASES = [
    ("log-model-code", Evidence(MODEL_CODE, YES, logged=FRAMED), FAIL, ERR, M, "log",
     (*LOG, Why.LOG_MODEL_CODE, Why.LOG_USER_FRAME)),
    ("log-model-code", Evidence(MODEL_CODE._replace(severity="warning"), YES, logged=OUT), FAIL, WARN, M, "log",
     (*LOG, Why.LOG_MODEL_CODE)),  # no user frame seen; outside the stated range still says model code
    ("log-out-caveat", Evidence(MODEL_RULE, YES, logged=OUT), UNKNOWN, WARN, C, "log", (*LOG, Why.LOG_OUTSIDE_RANGE)),
    ("log-out", Evidence(rule(severity="info"), YES, logged=OUT), UNKNOWN, WARN, E, "log",
     (*LOG, Why.LOG_OUTSIDE_RANGE)),
    ("log-no-aimet-caveat", Evidence(MODEL_RULE, YES, logged=NO_AIMET), UNKNOWN, WARN, C, "log",
     (*LOG, Why.LOG_NOT_AIMET)),
    ("log-no-aimet", Evidence(rule(), YES, logged=NO_AIMET), UNKNOWN, WARN, E, "log", (*LOG, Why.LOG_NOT_AIMET)),
    ("log-model-applies", Evidence(rule(scope="model", severity="warning"), YES, logged=logged(True)), FAIL, WARN, M,
     "log",
     (*LOG, Why.LOG_APPLIES, Why.LOG_MODEL_CONTAINS)),
    ("log-applies", Evidence(rule(severity="warning"), YES, logged=logged(True, names_aimet=False)), FAIL, WARN, E,
     "log", (*LOG, Why.LOG_APPLIES)),
    ("log-model-message", Evidence(rule(scope="model", severity="info"), YES, logged=ON_MESSAGE), FAIL, INFO, M, "log",
     (*LOG, Why.LOG_ON_MESSAGE, Why.LOG_MODEL_CONTAINS)),
    ("log-message", Evidence(rule(), YES, logged=ON_MESSAGE), FAIL, ERR, E, "log", (*LOG, Why.LOG_ON_MESSAGE)),
    ("log-message", Evidence(rule(), YES, logged=logged(None, names_aimet=False, aimet_rule=False)), FAIL, ERR, E,
     "log", (*LOG, Why.LOG_ON_MESSAGE)),
    ("known-good", Evidence(rule(kind="good", severity="info"), YES), PASS, INFO, E, "matrix", ()),
    ("known-good", Evidence(rule(kind="good", scope="model"), YES), PASS, ERR, E, "matrix", ()),
    ("model-lacks", Evidence(MODEL_RULE, YES, model=model(has_construct=False)), N_A, INFO, M, "matrix",
     (Why.MODEL_LACKS,)),
    ("model-lacks", Evidence(MODEL_RULE, YES, stand_ins=REPRODUCED, model=model(has_construct=False)), N_A, INFO, M,
     "probe", (Why.MODEL_LACKS,)),
    ("model-reproduced", Evidence(MODEL_RULE, YES, model=model(reproduced=("qat_step: boom",))), FAIL, ERR, M,
     "probe", (Why.MODEL_REPRODUCED,)),
    ("model-reproduced", Evidence(rule(scope="model", severity="info"), UNDECIDED, model=model(reproduced=("x",))),
     FAIL, WARN, M, "probe", (Why.MODEL_REPRODUCED,)),
    ("model-once-fixed", Evidence(MODEL_RULE, YES, model=model(with_fixes=("qat_step: boom",), ran=("qat_step",))),
     FAIL, ERR, M, "probe", (Why.MODEL_ONCE_FIXED,)),
    ("model-passed", Evidence(MODEL_RULE, YES, model=model(ran=("qat_step",), ran_passed=True)), PASS, INFO, M,
     "matrix", (Why.MODEL_PASSED,)),
    ("model-blocked", Evidence(MODEL_RULE, YES, model=model(ran=("qat_step",), ran_passed=False)), UNKNOWN, INFO, M,
     "matrix", (Why.MODEL_BLOCKED,)),
    ("model-not-reached", Evidence(rule(scope="model", severity="info"), YES, model=model()), FAIL, WARN, M,
     "matrix", (Why.MODEL_NOT_SHOWN,)),
    ("model-scan-only", Evidence(rule(scope="model", severity="warning"), YES, model=model(probed=False)), FAIL,
     WARN, M, "matrix", (Why.MODEL_CANNOT_SHOW,)),
    ("cannot-occur", Evidence(MODEL_RULE, YES, stand_ins=REPRODUCED, can_occur=False), None, None, None, None, None),
    ("caveat-reproduced", Evidence(MODEL_RULE, UNDECIDED, stand_ins=REPRODUCED), UNKNOWN, ERR, C, "probe",
     (Why.STAND_IN_REPRODUCED, Why.UNDECIDED)),
    ("caveat", Evidence(MODEL_RULE, YES, stand_ins=PASSED), UNKNOWN, ERR, C, "matrix", ()),
    ("caveat", Evidence(rule(scope="model", severity="warning"), UNDECIDED), UNKNOWN, WARN, C, "matrix",
     (Why.UNDECIDED,)),
    ("probe-reproduced", Evidence(rule(severity="warning"), YES, stand_ins=REPRODUCED), FAIL, ERR, E, "probe", ()),
    ("probe-reproduced", Evidence(rule(severity="info"), UNDECIDED, stand_ins=REPRODUCED), FAIL, ERR, E, "probe",
     (Why.UNDECIDED,)),
    ("undecided", Evidence(rule(severity="warning"), UNDECIDED, stand_ins=PASSED), UNKNOWN, WARN, E, "matrix",
     (Why.UNDECIDED,)),
    ("not-reproduced", Evidence(rule(), YES, stand_ins=PASSED), FAIL, WARN, E, "matrix", (Why.NOT_REPRODUCED,)),
    ("not-reproduced", Evidence(rule(severity="warning"), YES, stand_ins=PASSED), FAIL, INFO, E, "matrix",
     (Why.NOT_REPRODUCED,)),
    ("matched", Evidence(rule(severity="warning"), YES), FAIL, WARN, E, "matrix", ()),
    ("matched", Evidence(rule(), YES, stand_ins=RAN_AND_FAILED), FAIL, ERR, E, "matrix", ()),
    ("matched", Evidence(rule(), YES, stand_ins=NOT_RUN), FAIL, ERR, E, "matrix", ()),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "evidence", "status", "severity", "scope", "origin", "reasons"),
    CASES,
    ids=[f"{c[0]}-{n}" for n, c in enumerate(CASES)],
)
def test_the_decision_table(
    case: str,
    evidence: Evidence,
    status: Status | None,
    severity: Severity | None,
    scope: Scope | None,
    origin: str | None,
    reasons: tuple[Why, ...] | None,
) -> None:
    decided = judge(evidence)
    if scope is None:
        assert decided is None
        assert next(r for r in TABLE if r.holds(evidence)).case == case
        return
    assert decided is not None
    got = (decided.case, decided.status, decided.severity, decided.scope, decided.origin)
    assert got == (case, status, severity, scope, origin)
    assert tuple(r.code for r in decided.reasons) == reasons


def test_every_row_of_the_table_is_tested() -> None:
    assert {c[0] for c in CASES} == {row.case for row in TABLE}


# --- reasons as data, worded by the renderers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (Reason(Why.UNDECIDED, needs=("a: unknown", "b: unknown")), "Could not decide (needs a: unknown; b: unknown)."),
        (Reason(Why.NOT_REPRODUCED, runs=3),
         "The matrix predicts this, but the probe did not reproduce it here (3 stage runs passed)."),
        (Reason(Why.MODEL_LACKS, construct="SiLU"), "Your model has no SiLU: this does not apply to it."),
        (Reason(Why.MODEL_PASSED, construct="SiLU", stages=("fold", "quantsim")),
         "Your model has SiLU, but its run passed fold, quantsim here: not reproduced."),
        (Reason(Why.LOG_SHOWS, line=7, how="pattern matches"), "The input shows this error (line 7, pattern matches)."),
        (Reason(Why.LOG_APPLIES, matched=("a in >=1", "b in <2")), "It applies to the stated environment: a in >=1; b in <2."),
        (Reason(Why.LOG_ON_MESSAGE, rule_range="torch >=2"),
         "The input does not state everything the rule depends on (torch >=2), so this rests on the message alone."),
        (Reason(Why.MODEL_BLOCKED, construct="SiLU", stages=("quantsim",)),
         "Your model has SiLU, but quantsim failed in another way first, so this could not be checked (see the "
         "other findings)."),
    ],
)  # fmt: skip
def test_a_reason_reads_with_its_parameters(reason: Reason, text: str) -> None:
    assert reason_text(reason) == text


def test_the_reasons_carry_their_parameters_and_the_summary_stays_the_rules() -> None:
    found = rule_finding(Evidence(rule(), YES, stand_ins=PASSED._replace(exercised=4)))
    assert found is not None and found.not_reproduced
    assert found.summary == "Summary." and found.reasons == (Reason(Why.NOT_REPRODUCED, runs=4),)
    assert told(found).startswith("The matrix predicts this, but the probe did not reproduce it here (4 stage")
    passed = rule_finding(Evidence(MODEL_RULE, YES, model=model(ran=("qat_step", "fold"), ran_passed=True)))
    assert passed is not None
    assert passed.reasons == (Reason(Why.MODEL_PASSED, construct="BN subclass", stages=("qat_step", "fold")),)
    undecided = rule_finding(Evidence(MODEL_RULE, UNDECIDED))
    assert undecided is not None and undecided.reasons == (Reason(Why.UNDECIDED, needs=("driver unknown: x",)),)


# --- what a finding about the model shows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seen", "evidence", "layers", "headline"),
    [
        (model(has_construct=False, scan="scan: no bn-subclass in Net"), ("scan: no bn-subclass in Net",), (), None),
        (model(reproduced=("qat_step: boom",), headline="qat_step: boom"),
         ("scan: 2 layers with BN subclass: a, b", "qat_step: boom", "aimet-torch 2.42.0 in >=2.0",
          "inferred from code or other facts; not measured by qatdoctor"), ("a", "b"), "qat_step: boom"),
        (model(with_fixes=("qat_step: boom",), headline="ignored"),
         ("scan: 2 layers with BN subclass: a, b", "with fixes: qat_step: boom"), ("a", "b"), None),
        (model(ran=("qat_step",), ran_failures=("qat_step: other",), headline="qat_step: other"),
         ("scan: 2 layers with BN subclass: a, b", "qat_step: other"), ("a", "b"), "qat_step: other"),
        (model(ran=("qat_step",), ran_passed=True, headline="ignored"), ("scan: 2 layers with BN subclass: a, b",),
         ("a", "b"), None),
    ],
)  # fmt: skip
def test_a_finding_about_the_model_shows_the_scan_and_its_stages(
    seen: OnModel, evidence: tuple[str, ...], layers: tuple[str, ...], headline: str | None
) -> None:
    found = rule_finding(Evidence(MODEL_RULE, YES, model=seen, likely="mmengine is installed"))
    assert found is not None
    assert (found.evidence, found.layers, found.headline, found.likely) == (evidence, layers, headline, None)


def test_a_caveat_carries_its_likely_context_and_the_stand_ins_evidence() -> None:
    found = rule_finding(Evidence(MODEL_RULE, YES, stand_ins=REPRODUCED, likely="mmengine is installed",
                                  headline="bn_subclass/train qat_step: RuntimeError: boom"))  # fmt: skip
    assert found is not None and found.scope is C and found.likely == "mmengine is installed"
    assert found.evidence[:2] == ("aimet-torch 2.42.0 in >=2.0", "bn_subclass/train qat_step: RuntimeError: boom")
    assert found.basis == "measured" and found.evidence[-1].startswith("measured here: the probe reproduced it (")
    assert found.headline == "bn_subclass/train qat_step: RuntimeError: boom"
    plain = rule_finding(Evidence(rule(), YES, likely="ignored"))
    assert plain is not None and plain.likely is None and plain.headline is None


def test_a_log_the_versions_do_not_support_offers_no_fix() -> None:
    from qatdoctor.knowledge.entries import RuleFix

    fixed = rule()._replace(fixes=(RuleFix("code", "swap", (), "model = swap(model)"),))
    outside = rule_finding(Evidence(fixed, YES, logged=OUT, log=("line 3: boom",)))
    shows = rule_finding(Evidence(fixed, YES, logged=ON_MESSAGE, log=("line 3: boom",)))
    assert outside is not None and shows is not None
    assert outside.fixes == () and [f.summary for f in shows.fixes] == ["swap"]
    assert shows.evidence[:2] == ("aimet-torch 2.42.0 in >=2.0", "line 3: boom") and shows.likely is None
    assert told(outside).startswith("The input shows this error (line 3, message matches). But the stated versions")
    assert outside.reasons == (Reason(Why.LOG_SHOWS, line=3, how="message matches"),
                               Reason(Why.LOG_OUTSIDE_RANGE, rule_range="aimet-torch >=2.0"))  # fmt: skip
