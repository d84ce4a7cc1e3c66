"""The user's own model (`--model`) → findings: caveats become verdicts about this model, with its layers.

A model-scope rule applies when the scan finds its construct in the model; it is reproduced when the model's run
shows the outcome the rule names. A construct the model does not contain makes
the rule not applicable. Failures of the model's run that no rule explains are failures of unknown cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from qatdoctor.diagnose.judge import Evidence, OnModel
from qatdoctor.diagnose.judge import rule_finding as judged
from qatdoctor.knowledge.entries import Matrix, ProbeMatch, Rule
from qatdoctor.knowledge.signatures import error_matches
from qatdoctor.records import (
    FAILED,
    NOT_RUN,
    Finding,
    ModelRun,
    Scope,
    Severity,
    StageResult,
    Status,
)

MAX_LAYERS_SHOWN = 6


def model_findings(
    run: ModelRun,
    findings: Sequence[Finding],
    matrix: Matrix,
    evidence: Mapping[str, Evidence],
    *,
    python: str = "python",
) -> list[Finding]:
    """Judge the caveats in `findings` again with what the user's model showed (`evidence`: what was known about
    each rule before); add what its run showed."""
    if not run.ran:
        return [*findings, _not_examined(run)]
    present = {cid for cid, hit in run.constructs.items() if hit.total}
    explained: set[str] = set()
    out: list[Finding] = []
    about: list[tuple[int, Finding]] = []
    for finding in findings:
        rule = matrix.rule(finding.id)
        if finding.scope is not Scope.CAVEAT:
            out.append(finding)
        elif rule is None or finding.construct is None:  # an unexplained stand-in failure: the model's run says more
            continue
        else:
            seen = on_model(rule, run, present, matrix)
            explained.update(seen.explained)
            judged_here = judged(evidence[rule.id]._replace(model=seen.evidence), python)
            if judged_here is not None:
                about.append((matrix.first_stage(rule), judged_here))
    out += [f for _, f in sorted(about, key=lambda pair: pair[0])]  # in pipeline order: the first break first
    out += _unexplained(run, explained)
    out += _fixed(run, matrix, {f.id for f in findings if f.scope is Scope.CAVEAT})
    return out


class Seen(NamedTuple):
    """The model's evidence about one rule, and the stages it explains."""

    evidence: OnModel
    explained: tuple[str, ...]


def on_model(rule: Rule, run: ModelRun, present: set[str], matrix: Matrix) -> Seen:
    """What the user's model showed about a model-scope rule: its construct (the scan), and its stages."""
    feature = rule.model_feature or ""
    construct = matrix.construct(feature)
    title = construct.title if construct is not None else feature
    if feature not in present:
        return Seen(OnModel(False, title, f"scan: no {feature} in {run.class_name or 'the model'}"), ())
    # An outcome only counts for a rule whose construct the model has (a baked BN can be a subclass or an
    # F.batch_norm call: the scan tells which).
    reproduced = [s for s in run.stages if _explains(rule, s, matrix)]
    hit = run.constructs.get(feature)
    layers = tuple(dict.fromkeys((*(hit.layers if hit else ()), *(n for s in reproduced for n in s.layers))))
    where = f"{hit.total} {_plural(hit.total, 'layer')}" if hit else "the run"
    fixed = [s for s in (run.fixed.stages if run.fixed else ()) if _explains(rule, s, matrix)]
    ran = [s for s in run.stages if s.stage in {p.stage for p in rule.probes} and s.status not in NOT_RUN]
    failures = [s for s in ran if s.status is not Status.PASS]
    seen = OnModel(
        has_construct=True,
        construct=title,
        scan=f"scan: {where} with {title}: {shown(layers)}",
        probed=bool(rule.probes),
        reproduced=tuple(describe(s) for s in reproduced),
        with_fixes=tuple(describe(s) for s in fixed),
        ran=tuple(sorted({s.stage for s in ran})),
        ran_passed=not failures,
        ran_failures=tuple(describe(s) for s in failures),
        layers=layers,
        headline=_headline(reproduced or failures),
    )
    return Seen(seen, tuple(s.stage for s in reproduced))


def _explains(rule: Rule, stage: StageResult, matrix: Matrix) -> bool:
    """The rule names this outcome for its construct (a stand-in's spec stands for the construct it carries)."""
    if rule.kind != "bad" or stage.status not in FAILED:
        return False
    if not any(_matches(spec, stage, rule, matrix) for spec in rule.probes):
        return False
    return error_matches(rule.signatures, stage.error)


def _matches(spec: ProbeMatch, stage: StageResult, rule: Rule, matrix: Matrix) -> bool:
    carried = matrix.construct_of_stand_in(spec.model)
    about = spec.model == "*" or (carried is not None and carried.id == rule.model_feature)
    return (
        about
        and spec.stage == stage.stage
        and spec.status == stage.status.value
        and (spec.check is None or spec.check == stage.check)
    )


def _unexplained(run: ModelRun, explained: set[str]) -> list[Finding]:
    out = []
    for stage in run.failed_stages():
        if stage.stage in explained:
            continue
        silent = stage.status is Status.SILENT_FAIL
        out.append(
            Finding(
                id=f"model.unexplained.{stage.stage}",
                title=f"Your model {'fails silently' if silent else 'fails'} at {stage.stage} — cause unknown "
                "(no matrix entry matches)",
                severity=Severity.ERROR,
                status=Status.FAIL,
                origin="probe",
                summary="Your model's run through the real AIMET pipeline failed here, and no matrix rule "
                "explains it. The error is shown as seen; please report it with `qatdoctor report`.",
                evidence=(describe(stage),),
                headline=describe(stage),
                scope=Scope.MODEL,
                layers=stage.layers,
            )
        )
    if not out and not explained:
        stages = ", ".join(s.stage for s in run.stages)
        out.append(
            Finding(
                id="model.pipeline",
                title=f"Your model ({run.class_name or run.spec}) passes every stage",
                severity=Severity.INFO,
                status=Status.PASS,
                origin="probe",
                summary=f"The real AIMET pipeline ran on your model here: {stages}.",
                scope=Scope.MODEL,
            )
        )
    return out


def _fixed(run: ModelRun, matrix: Matrix, applicable: set[str]) -> list[Finding]:
    """`--with-fixes`: the same pipeline on the fixed model, before → after."""
    if run.fixed is None:
        return []
    before = {s.stage: s for s in run.stages}
    after = run.fixed
    changes = {
        s.stage: f"{s.stage}: {before[s.stage].status.value if s.stage in before else '-'} → {s.status.value}"
        for s in after.stages
    }
    swapped = _listed(run.fixes, "swapped")
    refused = _listed(run.fixes, "refused")
    still = list(after.failed_stages())
    evidence = [*changes.values()]
    if swapped:
        evidence.append(f"swapped {len(swapped)} {_plural(len(swapped), 'layer')}: {shown(swapped)}")
    if refused:
        evidence.append(f"refused {len(refused)} {_plural(len(refused), 'swap')}: {shown(refused)}")
    if after.bn_buffers:
        evidence.append(f"QAT step updated {after.bn_changed} of {after.bn_buffers} BatchNorm buffers")
    ok = after.ran and not still
    present = {cid for cid, hit in after.constructs.items() if hit.total}
    for stage in still:
        rules = [
            r.id
            for r in matrix.rules
            if r.id in applicable and r.model_feature in present and _explains(r, stage, matrix)
        ]
        if rules:
            evidence.append(f"{stage.stage} still fails: {', '.join(rules)} (its own fix above)")
    return [
        Finding(
            id="model.with-fixes",
            title="With qatdoctor.fixes applied, your model "
            + ("passes every stage" if ok else f"still fails at {', '.join(s.stage for s in still) or 'build'}"),
            severity=Severity.INFO if ok else Severity.WARNING,
            status=Status.PASS if ok else Status.FAIL,
            origin="probe",
            summary="The pipeline ran again on a fresh model from your factory with "
            "`qatdoctor.fixes.make_qat_safe(model, example_input)` applied first.",
            evidence=tuple(evidence),
            headline=next((changes[s.stage] for s in still), None),
            scope=Scope.MODEL,
            layers=tuple(swapped),
        )
    ]


def _listed(report: object, key: str) -> list[str]:
    items = report.get(key) if isinstance(report, dict) else None
    return [str(i.get("layer")) for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _not_examined(run: ModelRun) -> Finding:
    """The model did not run through the pipeline (its spec, factory or input failed; it raised, was interrupted,
    crashed or hung somewhere; the run stopped early): a failure about the model, at the place it stopped."""
    what = {
        "bad-spec": "could not be loaded",
        "factory-failed": "factory failed",
        "bad-input": "has no example input",
        "crashed": "crashed the process",
        "timeout": "did not finish within the probe's time limit",
        "interrupted": "was interrupted",
        "failed": "could not be run",
        "incomplete": "did not run through every stage",
    }.get(run.status, run.status)
    loading = run.status in ("bad-spec", "factory-failed", "bad-input")  # the title says where already
    where = f" during {run.ended_at}" if run.ended_at and not loading else ""
    error = run.error.first_line(300) if run.error else None
    return Finding(
        id=f"model.{run.status}",
        title=f"Your model {what}{where}: {error or run.reason or run.spec}",
        severity=Severity.ERROR,
        status=Status.FAIL,
        origin="probe",
        summary=f"qatdoctor could not examine {run.spec} in the target environment, so the caveats below stay "
        "caveats. Fix the factory (it runs in the target interpreter, with its file's directory on sys.path), "
        "or pass --input-shape when it returns only a module."
        + (" A larger --probe-timeout helps when it is only slow." if run.status == "timeout" else ""),
        evidence=tuple(x for x in (run.reason, *(run.error.frames if run.error else ())) if x),
        headline=run.reason,
        scope=Scope.MODEL,
    )


def _headline(stages: Sequence[StageResult]) -> str | None:
    """The stage that shows a failure best: the first with an error, else the first."""
    shown = next((s for s in stages if s.error is not None), next(iter(stages), None))
    return describe(shown) if shown is not None else None


def describe(stage: StageResult) -> str:
    """One line for a stage of the user's model: the error, or the check and what it measured."""
    if stage.error is not None:
        text = f"{stage.stage}: {stage.error.first_line(240)}"
    else:
        text = f"{stage.stage}: {stage.check or stage.status.value}: {stage.measured or stage.reason or ''}".rstrip()
    return text + (f" ({shown(stage.layers)})" if stage.layers and stage.error is not None else "")


def shown(names: Iterable[str]) -> str:
    """The first few layer names and how many more."""
    names = list(names)
    more = len(names) - MAX_LAYERS_SHOWN
    return ", ".join(names[:MAX_LAYERS_SHOWN]) + (f", … (+{more} more)" if more > 0 else "")


def _plural(count: int, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"
