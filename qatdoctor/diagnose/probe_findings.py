"""Probe results → findings. Probe evidence outranks the matrix: a reproduced rule becomes an error, an
unexplained failure is still a failure, and a prediction the probe did not reproduce is said so."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.rules import rule_finding
from qatdoctor.knowledge.entries import Matrix, ProbeMatch, Rule
from qatdoctor.knowledge.signatures import error_matches
from qatdoctor.records import (
    FAILED,
    NOT_RUN,
    ErrorInfo,
    Facts,
    Finding,
    ProbeCase,
    ProbeRun,
    Scope,
    Severity,
    StageResult,
    Status,
)

UNEXPLAINED_IMPORT = "probe.unexplained.any.import"  # the failed import no rule explains


@dataclass(frozen=True)
class Observation:
    """One failed probe stage (or the failed import)."""

    model: str
    mode: str
    stage: str
    status: Status
    error: ErrorInfo | None = None
    check: str | None = None
    measured: str | None = None

    def describe(self) -> str:
        where = "import" if self.stage == "import" else f"{self.model}/{self.mode} {self.stage}"
        if self.error is not None:
            return f"{where}: {self.error.first_line(240)}"
        return f"{where}: {self.check}: {self.measured}"


def headline(items: Sequence[Observation]) -> str | None:
    """The observation that shows a failure best: the first with an error, else the first."""
    shown = next((o for o in items if o.error is not None), next(iter(items), None))
    return shown.describe() if shown is not None else None


def observations(probe: ProbeRun) -> list[Observation]:
    """Every failed stage, plus the import failure."""
    out = []
    if probe.state == "import-failed":
        out.append(Observation("*", "-", "import", Status.FAIL, error=probe.import_error))
    for case in probe.cases:
        for stage in case.stages:
            if stage.status in FAILED:
                out.append(
                    Observation(
                        case.model, case.mode, stage.stage, stage.status, stage.error, stage.check, stage.measured
                    )
                )
    return out


def _probe_matches(spec: ProbeMatch, seen: Observation) -> bool:
    return (
        spec.model in ("*", seen.model)
        and spec.stage == seen.stage
        and spec.status == seen.status.value
        and (spec.check is None or spec.check == seen.check)
    )


def _explains(rule: Rule, seen: Observation, facts: Facts) -> bool:
    """The rule applies to these facts (or cannot be ruled out), names this outcome, and its signature fits."""
    if rule.kind != "bad" or evaluate_all(rule.when, facts).value is False:
        return False
    if not any(_probe_matches(spec, seen) for spec in rule.probes):
        return False
    return error_matches(rule.signatures, seen.error)


def probe_findings(
    probe: ProbeRun, facts: Facts, matrix: Matrix, static: Sequence[Finding], *, python: str = "python"
) -> list[Finding]:
    """Merge the probe into the static findings; returns the full, new list."""
    if probe.state in ("crashed", "timeout") and probe.model is None:
        return [*static, _died(probe)]
    if probe.state == "import-failed" and any(f.id in ("env.aimet-torch-missing", "env.torch-missing") for f in static):
        return list(static)  # nothing to import: the missing package is the finding, not an unexplained failure
    seen = observations(probe)
    explained: dict[str, list[Observation]] = {}
    unexplained: list[Observation] = []
    for item in seen:
        explaining = [r.id for r in matrix.rules if _explains(r, item, facts)]
        for rule_id in explaining:
            explained.setdefault(rule_id, []).append(item)
        if not explaining:
            unexplained.append(item)
    confirmed: dict[str, Finding] = {}
    for rule_id, items in explained.items():
        rule = matrix.rule(rule_id)
        assert rule is not None
        evidence = tuple(o.describe() for o in items)
        outcome = evaluate_all(rule.when, facts)
        confirmed[rule_id] = rule_finding(
            rule, outcome, confirmed=True, python=python, extra_evidence=evidence, headline=headline(items), facts=facts
        )
    merged = [_not_reproduced(f, probe, matrix) for f in static if f.id not in confirmed]
    merged += [_as_confirmed(f) for f in confirmed.values()]
    merged += _unexplained(unexplained, matrix)
    merged += _eval_mode_note(probe)
    return merged


def _as_confirmed(finding: Finding) -> Finding:
    """Reproduced here: an environment rule fails; a model-scope one stays a caveat, now with probe evidence."""
    if finding.scope is Scope.CAVEAT:
        return finding._replace(origin="probe")
    return finding._replace(severity=Severity.ERROR, status=Status.FAIL, origin="probe")


def _not_reproduced(finding: Finding, probe: ProbeRun, matrix: Matrix) -> Finding:
    """A matrix prediction whose probe outcome was exercised and passed: keep it, but say the probe disagrees."""
    rule = matrix.rule(finding.id)
    if rule is None or rule.kind != "bad" or not rule.probes or finding.status is not Status.FAIL:
        return finding
    ran = [s for spec in rule.probes for s in _stages(probe, spec)]
    if not ran or any(s.status in FAILED for s in ran):
        return finding
    return finding._replace(
        severity=Severity.INFO if finding.severity is not Severity.ERROR else Severity.WARNING,
        summary=f"The matrix predicts this, but the probe did not reproduce it here ({len(ran)} stage runs "
        f"passed). {finding.summary}",
        not_reproduced=True,
    )


def _stages(probe: ProbeRun, spec: ProbeMatch) -> Iterable[StageResult]:
    if spec.stage == "import":
        if probe.state in ("ran", "import-failed"):
            yield StageResult("import", Status.FAIL if probe.state == "import-failed" else Status.PASS)
        return
    for case in probe.cases:
        if spec.model in ("*", case.model):
            stage = case.stage(spec.stage)
            if stage is not None and stage.status not in NOT_RUN:
                yield stage


def _unexplained(items: list[Observation], matrix: Matrix) -> list[Finding]:
    """Failures no matrix rule explains: real failures of unknown cause (never dropped, never guessed).

    The baseline model and the import speak for the environment; a stand-in for a construct only for models
    that contain it, so its unexplained failure is a caveat about that construct."""
    groups: dict[tuple[str, str, str], list[Observation]] = {}
    for item in items:
        groups.setdefault((item.model, item.stage, item.status.value), []).append(item)
    out = []
    for (model, stage, status), group in groups.items():
        construct = matrix.construct_of_stand_in(model)
        what = "import of aimet_torch" if stage == "import" else f"{model} at {stage}"
        if construct is not None:
            what = f"the stand-in for {construct.title} ({model}) at {stage}"
        out.append(
            Finding(
                id=f"probe.unexplained.{model if model != '*' else 'any'}.{stage}",
                title=f"Probe: {what} {'fails' if status == 'fail' else 'fails silently'} — cause unknown "
                "(no matrix entry matches)",
                severity=Severity.ERROR,
                status=Status.UNKNOWN if construct is not None else Status.FAIL,
                origin="probe",
                summary="The probe reproduced a failure in this environment that the matrix does not know. "
                "The error is shown as seen; please report it with `qatdoctor report`.",
                evidence=tuple(o.describe() for o in group),
                headline=headline(group),
                scope=Scope.CAVEAT if construct is not None else Scope.ENVIRONMENT,
                construct=construct.id if construct is not None else None,
                stand_in=model if model != "*" else None,
            )
        )
    return out


def _died(probe: ProbeRun) -> Finding:
    """A probe that segfaulted, died or hung is a finding about the environment, with what it left behind."""
    hung = probe.state == "timeout"
    evidence = tuple(f"stderr: {line}" for line in (probe.stderr_tail or "").strip().splitlines()[-5:])
    return Finding(
        id="probe.timeout" if hung else "probe.crashed",
        title=f"The probe {'hung' if hung else 'died'}: {probe.reason}",
        severity=Severity.ERROR,
        status=Status.UNKNOWN if hung else Status.FAIL,
        origin="probe",
        summary=(
            "No result within the time limit; rerun with a larger --probe-timeout, or look for a hang in CUDA "
            "initialisation or a deadlock."
            if hung
            else f"The target interpreter {_how_it_ended(probe.exit_status)} while running tiny models through AIMET; "
            "a crash in a native extension (torch/AIMET) or a mismatched binary is the usual cause."
        ),
        evidence=evidence,
        headline=next((line for line in evidence if "Error" in line), next(iter(evidence), None)),
    )


def _how_it_ended(exit_status: str | None) -> str:
    """`was killed by SIGSEGV`, `ended with exit status 1`, `could not start: …`; never `None`."""
    if not exit_status:
        return "stopped without a usable result"
    if exit_status.startswith("killed by"):
        return f"was {exit_status}"
    if exit_status.startswith(("could not start", "timed out")):
        return exit_status
    return f"ended with {exit_status}"


def _eval_mode_note(probe: ProbeRun) -> list[Finding]:
    """Answer plainly whether model.eval() before prepare_model() changed anything (the #3152 advice)."""
    by_model: dict[str, dict[str, ProbeCase]] = {}
    for case in probe.cases:
        by_model.setdefault(case.model, {})[case.mode] = case
    same, differs = [], []
    for model, modes in by_model.items():
        train, evaluation = modes.get("train"), modes.get("eval")
        if train is None or evaluation is None:
            continue
        failing = any(s.status in FAILED for s in (*train.stages, *evaluation.stages))
        if not failing:
            continue
        if _outcomes(train) == _outcomes(evaluation):
            same.append(model)
        else:
            differs.append(model)
    if not same and not differs:
        return []
    parts = []
    if same:
        parts.append(f"no difference for {', '.join(same)} (the same failures in train and eval mode)")
    if differs:
        parts.append(f"different outcomes for {', '.join(differs)}")
    return [
        Finding(
            id="probe.eval-before-prepare",
            title="Calling model.eval() before prepare_model() "
            + ("does not help" if same and not differs else "changes the outcome for some models"),
            severity=Severity.INFO,
            status=Status.PASS,
            origin="probe",
            summary="The probe ran every model in train and in eval mode before prepare_model(): "
            + "; ".join(parts)
            + ".",
        )
    ]


def _outcomes(case: ProbeCase) -> list[tuple[str, str, str | None, str | None]]:
    return [(s.stage, s.status.value, s.error.type if s.error else None, s.check) for s in case.stages]
