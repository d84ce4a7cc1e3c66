"""Probe results → evidence and findings. The stand-ins' evidence about each rule goes to the judge (a reproduced
rule becomes an error, a prediction the probe did not reproduce is said so); a failure no rule explains is still a
failure, of unknown cause."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.evaluate import rule_evidence
from qatdoctor.diagnose.judge import Evidence, StandIns
from qatdoctor.diagnose.judge import rule_finding as judged
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


class StandInView(NamedTuple):
    """What the stand-ins showed: the failures each rule explains (in the order first seen), and the rest."""

    probe: ProbeRun
    explained: Mapping[str, tuple[Observation, ...]]
    unexplained: tuple[Observation, ...]

    def about(self, rule: Rule) -> StandIns:
        """The stand-ins' evidence about one rule: what reproduced it, and how often its outcomes ran and passed."""
        items = self.explained.get(rule.id, ())
        ran = [s for spec in rule.probes for s in _stages(self.probe, spec)] if rule.kind == "bad" else []
        return StandIns(
            reproduced=bool(items),
            seen=tuple(o.describe() for o in items),
            exercised=len(ran),
            all_passed=not any(s.status in FAILED for s in ran),
        )


def gather(probe: ProbeRun, facts: Facts, matrix: Matrix) -> StandInView:
    """Every failed stage, sorted into the rules that explain it and the failures none explains."""
    explained: dict[str, list[Observation]] = {}
    unexplained: list[Observation] = []
    for item in observations(probe):
        explaining = [r.id for r in matrix.rules if _explains(r, item, facts)]
        for rule_id in explaining:
            explained.setdefault(rule_id, []).append(item)
        if not explaining:
            unexplained.append(item)
    return StandInView(probe, {k: tuple(v) for k, v in explained.items()}, tuple(unexplained))


Judged = tuple[list[Finding], dict[str, Evidence]]


def probe_findings(
    probe: ProbeRun, facts: Facts, matrix: Matrix, static: Sequence[Finding], *, python: str = "python"
) -> list[Finding]:
    """Merge the probe into the static findings; returns the full, new list."""
    return stand_in_findings(probe, facts, matrix, static, python=python)[0]


def stand_in_findings(
    probe: ProbeRun | None, facts: Facts, matrix: Matrix, static: Sequence[Finding], *, python: str = "python"
) -> Judged:
    """The findings with the stand-ins' evidence judged in, and the evidence about each rule they come from."""
    if probe is None:
        return list(static), {}
    view = None
    if not _nothing_to_probe(probe, static):
        view = gather(probe, facts, matrix)
    evidence: dict[str, Evidence] = {}

    def judged_rule(rule_id: str) -> Finding | None:
        rule = matrix.rule(rule_id)
        assert rule is not None
        items = view.explained.get(rule_id, ()) if view is not None else ()
        stand_ins = view.about(rule) if view is not None else None
        evidence[rule_id] = rule_evidence(
            rule, evaluate_all(rule.when, facts), facts, matrix, stand_ins=stand_ins, headline=headline(items)
        )
        return judged(evidence[rule_id], python)

    explained = view.explained if view is not None else {}
    merged = [judged_rule(f.id) if _of_bad_rule(f, matrix) else f for f in static if f.id not in explained]
    merged += [judged_rule(rule_id) for rule_id in explained]
    if view is None and probe.state in ("crashed", "timeout"):
        merged.append(_died(probe))
    if view is not None:
        merged += _unexplained(list(view.unexplained), matrix)
        merged += _eval_mode_note(view.probe)
    return [f for f in merged if f is not None], evidence


def _nothing_to_probe(probe: ProbeRun, static: Sequence[Finding]) -> bool:
    """A probe that died before the stand-ins ran, or found no AIMET to import because none is installed (the
    missing package is the finding, not an unexplained failure)."""
    if probe.state in ("crashed", "timeout") and probe.model is None:
        return True
    missing = any(f.id in ("env.aimet-torch-missing", "env.torch-missing") for f in static)
    return probe.state == "import-failed" and missing


def _of_bad_rule(finding: Finding, matrix: Matrix) -> bool:
    rule = matrix.rule(finding.id)
    return finding.origin == "matrix" and rule is not None and rule.kind == "bad"


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
