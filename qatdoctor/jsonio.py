"""The JSON contract (schema_version 1): reports to plain dicts, and saved reports back to facts/probe runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qatdoctor import __version__
from qatdoctor.errors import InputError
from qatdoctor.records import (
    ConstructHit,
    ErrorInfo,
    Fact,
    Facts,
    FactState,
    Finding,
    FoldOutcome,
    Gpu,
    ModelRun,
    ProbeCase,
    ProbeRun,
    Reason,
    Recommendation,
    Report,
    StageResult,
    Status,
    told,
)

SCHEMA_VERSION = 1
# A report bundle (`qatdoctor report`, markdown) carries the whole report in one fenced JSON block, its last;
# a replay reads that block only, never the markdown around it.
BUNDLE_FENCE = "```json\n"
BUNDLE_FENCE_END = "\n```"


def fact_to_dict(fact: Fact) -> dict[str, Any]:
    out: dict[str, Any] = {"state": fact.state.value, "value": fact.value, "origin": fact.origin}
    if fact.reason is not None:
        out["reason"] = fact.reason
    if fact.detail is not None:
        out["detail"] = fact.detail
    return out


def facts_to_dict(facts: Facts) -> dict[str, Any]:
    out = {name: fact_to_dict(fact) for name, fact in sorted(facts.values.items())}
    if facts.gpus is None:
        out["gpus"] = {"state": "unknown", "value": None, "reason": facts.gpus_reason or "not collected"}
    else:
        out["gpus"] = {
            "state": "known" if facts.gpus else "absent",
            "value": [{"name": g.name, "compute_capability": g.compute_capability} for g in facts.gpus],
        }
    return out


def reason_to_dict(reason: Reason) -> dict[str, Any]:
    """`{"code": "model-passed", "construct": …, "stages": [...]}`: the code and the parameters it has."""
    params = {"construct": reason.construct, "stages": list(reason.stages), "needs": list(reason.needs),
              "runs": reason.runs, "line": reason.line, "how": reason.how, "rule_range": reason.rule_range,
              "matched": list(reason.matched)}  # fmt: skip
    return {"code": reason.code.value, **{k: v for k, v in params.items() if v not in (None, [])}}


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "title": finding.title,
        "severity": finding.severity.value,
        "status": finding.status.value,
        "origin": finding.origin,
        "summary": told(finding),
        # why it has its status: the judge's reason codes and their parameters (the summary words them)
        "reasons": [reason_to_dict(r) for r in finding.reasons],
        "evidence": list(finding.evidence),
        "fixes": [
            {
                "kind": fx.kind,
                "summary": fx.summary,
                "commands": list(fx.commands),
                **({"code": fx.code} if fx.code else {}),
                **({"package": fx.package, "spec": fx.spec, "lands_on": fx.lands_on} if fx.package else {}),
            }
            for fx in finding.fixes
        ],
        "sources": [{"kind": s.kind, "ref": s.ref, **({"note": s.note} if s.note else {})} for s in finding.sources],
        "scope": finding.scope.value,
        "construct": finding.construct,
        "layers": list(finding.layers),
        "likely": finding.likely,
        "basis": finding.basis,
        # the versions it was measured on (each once); their evidence records: `qatdoctor matrix show ID`
        "measured_on": [
            dict(versions) for versions in dict.fromkeys(tuple(sorted(m.versions.items())) for m in finding.measured_on)
        ],
    }


def recommendation_to_dict(rec: Recommendation) -> dict[str, Any]:
    return {
        "id": rec.id,
        "kind": rec.kind,
        "summary": rec.summary,
        "changes": [{"package": c.package, "from": c.current, "to": c.target} for c in rec.changes],
        "commands": list(rec.commands),
        "constraints": list(rec.constraints),
        "lands_on": list(rec.lands_on),
        "notes": list(rec.notes),
        "model_failures": list(rec.model_failures),
        "avoids": list(rec.avoids),
    }


def _error_to_dict(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "frames": list(error.frames)}


def _stage_to_dict(s: StageResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stage": s.stage,
        "status": s.status.value,
        "seconds": round(s.seconds, 4),
        "error": _error_to_dict(s.error),
        "check": s.check,
        "measured": s.measured,
        "reason": s.reason,
    }
    if s.layers:
        out["layers"] = list(s.layers)
    return out


def model_to_dict(run: ModelRun) -> dict[str, Any]:
    """The user's model run, in the shape the probe script writes it (`"model"` of the probe object)."""
    return {
        "spec": run.spec,
        "status": run.status,
        "error": _error_to_dict(run.error),
        "reason": run.reason,
        "class": run.class_name,
        "modules": run.modules,
        "parameters": run.parameters,
        "stage": run.ended_at,
        "input": {"shapes": [list(s) for s in run.input_shapes], "source": run.input_source},
        "scan": {
            "constructs": {
                cid: {"count": hit.total, "layers": list(hit.layers), "classes": dict(hit.classes),
                      **({"feeds": {k: list(v) for k, v in hit.feeds.items()}} if hit.feeds else {})}
                for cid, hit in run.constructs.items()
            },
            "errors": list(run.scan_errors),
        },
        "stages": [_stage_to_dict(s) for s in run.stages],
        "fold": {name: (fold._asdict() | {"unfolded": list(fold.unfolded)}) if fold else None
                 for name, fold in run.fold.items()},
        "bn": {"buffers": run.bn_buffers, "changed": run.bn_changed, "frozen_layers": list(run.frozen_layers)},
        "timings": dict(run.timings),
        "fixed": _fixed_to_dict(run),
    }  # fmt: skip


def _fixed_to_dict(run: ModelRun) -> dict[str, Any] | None:
    if run.fixed is None:
        return None
    return {**model_to_dict(run.fixed), "fixes": dict(run.fixes or {})}


def probe_to_dict(probe: ProbeRun) -> dict[str, Any]:
    return {
        "model": model_to_dict(probe.model) if probe.model is not None else None,
        "state": probe.state,
        "reason": probe.reason,
        "api": probe.api,
        "exit_status": probe.exit_status,
        "import_error": _error_to_dict(probe.import_error),
        "versions": dict(probe.versions),
        "timings": dict(probe.timings),
        "stderr_tail": probe.stderr_tail,
        "probe_error": _error_to_dict(probe.probe_error),
        "notes": list(probe.notes),
        "quantsim_module": probe.quantsim_module,
        "api_requested": probe.api_requested,
        "cases": [
            {
                "model": case.model,
                "mode": case.mode,
                "description": case.description,
                "stages": [_stage_to_dict(s) for s in case.stages],
            }
            for case in probe.cases
        ],
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole report as the documented JSON object."""
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "qatdoctor_version": __version__,
        "command": report.command,
        "verdict": report.verdict.value,
        "target": report.target,
        "target_why": report.target_why,
        "matrix": {
            "path": report.matrix.path,
            "version": report.matrix.version,
            "updated": report.matrix.updated,
            "sha256": report.matrix.sha256,
        },
        "facts": facts_to_dict(report.facts),
        "findings": [finding_to_dict(f) for f in report.findings],
        "recommendations": [recommendation_to_dict(r) for r in report.recommendations],
        "probe": probe_to_dict(report.probe) if report.probe is not None else None,
        "timings": {k: round(v, 4) for k, v in report.timings.items()},
        "notes": list(report.notes),
    }
    if report.extracted is not None:
        out["extracted"] = dict(report.extracted)
    return out


# ---- reading a saved report back (`report --from-report`) ---------------------------------------------


def facts_from_dict(data: Mapping[str, Any]) -> Facts:
    """Facts from a report's `facts` object; raise InputError when it is not one."""
    if not isinstance(data, Mapping):
        raise InputError("report JSON: `facts` must be an object")
    values: dict[str, Fact] = {}
    gpus: tuple[Gpu, ...] | None = None
    gpus_reason: str | None = "not in the report"
    for name, raw in data.items():
        if not isinstance(raw, Mapping) or raw.get("state") not in {s.value for s in FactState}:
            raise InputError(f"report JSON: fact {name!r} is malformed")
        if name == "gpus":
            if raw["state"] == "unknown":
                gpus_reason = str(raw.get("reason") or "unknown")
                continue
            items = raw.get("value") or []
            if not isinstance(items, list):
                raise InputError("report JSON: `gpus.value` must be a list")
            gpus = tuple(
                Gpu(str(g.get("name", "GPU")), g.get("compute_capability")) for g in items if isinstance(g, Mapping)
            )
            gpus_reason = None
            continue
        values[name] = Fact(
            state=FactState(raw["state"]),
            value=_opt_str(raw.get("value")),
            reason=_opt_str(raw.get("reason")),
            origin=str(raw.get("origin") or "report"),
            detail=_opt_str(raw.get("detail")),
        )
    return Facts(values, gpus, gpus_reason)


def probe_from_dict(data: Mapping[str, Any] | None) -> ProbeRun | None:
    """A probe run from a report's `probe` object (None stays None)."""
    if data is None:
        return None
    if not isinstance(data, Mapping) or not isinstance(data.get("cases", []), list):
        raise InputError("report JSON: `probe` is malformed")
    try:
        cases = tuple(
            ProbeCase(
                model=str(c["model"]),
                mode=str(c["mode"]),
                description=str(c.get("description", "")),
                stages=tuple(_stage_from_dict(s) for s in c["stages"]),
            )
            for c in data.get("cases", [])
        )
        return ProbeRun(
            state=str(data["state"]),
            api=_opt_str(data.get("api")),
            cases=cases,
            import_error=_error_from_dict(data.get("import_error")),
            exit_status=_opt_str(data.get("exit_status")),
            stderr_tail=_opt_str(data.get("stderr_tail")),
            versions={str(k): str(v) for k, v in (data.get("versions") or {}).items()},
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
            reason=_opt_str(data.get("reason")),
            model=model_from_dict(data.get("model")),
            probe_error=_error_from_dict(data.get("probe_error")),
            notes=tuple(map(str, data.get("notes") or ())),
            quantsim_module=_opt_str(data.get("quantsim_module")),
            api_requested=_opt_str(data.get("api_requested")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"report JSON: `probe` is malformed ({type(exc).__name__}: {exc})") from None


def _stage_from_dict(s: Mapping[str, Any]) -> StageResult:
    return StageResult(
        stage=str(s["stage"]),
        status=Status(s["status"]),
        seconds=float(s.get("seconds") or 0.0),
        error=_error_from_dict(s.get("error")),
        check=_opt_str(s.get("check")),
        measured=_opt_str(s.get("measured")),
        reason=_opt_str(s.get("reason")),
        layers=tuple(map(str, s.get("layers") or ())),
    )


def model_from_dict(data: Any, *, spec: str | None = None) -> ModelRun | None:
    """The probe's `"model"` object (the user's model run) as data; raises KeyError/TypeError/ValueError. `spec`:
    the fixed rerun's (`model.fixed` carries none of its own)."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError("`model` must be an object")
    scan = data.get("scan") or {}
    bn = data.get("bn") or {}
    fixed = data.get("fixed")
    return ModelRun(
        spec=spec if spec is not None else str(data["spec"]),
        status=str(data["status"]) if spec is None else str(data.get("status") or "ran"),
        error=_error_from_dict(data.get("error")),
        reason=_opt_str(data.get("reason")),
        class_name=_opt_str(data.get("class")),
        modules=int(data.get("modules") or 0),
        parameters=int(data.get("parameters") or 0),
        input_shapes=tuple(tuple(int(d) for d in shape) for shape in (data.get("input") or {}).get("shapes") or ()),
        input_source=_opt_str((data.get("input") or {}).get("source")),
        ended_at=_opt_str(data.get("stage")),
        constructs={
            str(cid): ConstructHit(
                total=int(hit.get("count") or 0),
                layers=tuple(map(str, hit.get("layers") or ())),
                classes={str(k): int(v) for k, v in (hit.get("classes") or {}).items()},
                feeds={str(k): tuple(map(str, v)) for k, v in (hit.get("feeds") or {}).items()},
            )
            for cid, hit in (scan.get("constructs") or {}).items()
        },
        scan_errors=tuple(map(str, scan.get("errors") or ())),
        stages=tuple(_stage_from_dict(s) for s in data.get("stages") or ()),
        fold={str(k): _fold_from_dict(v) for k, v in (data.get("fold") or {}).items()},
        bn_buffers=_opt_int(bn.get("buffers")),
        bn_changed=_opt_int(bn.get("changed")),
        frozen_layers=tuple(map(str, bn.get("frozen_layers") or ())),
        timings={str(k): float(v) for k, v in (data.get("timings") or {}).items() if isinstance(v, (int, float))},
        fixes=dict(fixed["fixes"]) if isinstance(fixed, Mapping) and isinstance(fixed.get("fixes"), Mapping) else None,
        fixed=model_from_dict(fixed, spec=str(data["spec"])) if isinstance(fixed, Mapping) else None,
    )


def _fold_from_dict(data: Any) -> FoldOutcome | None:
    if not isinstance(data, Mapping):
        return None
    return FoldOutcome(
        pairs=_opt_int(data.get("pairs")),
        unfolded=tuple(map(str, data.get("unfolded") or ())),
        max_abs_diff=_opt_float(data.get("max_abs_diff")),
        output_scale=_opt_float(data.get("output_scale")),
        relative=_opt_float(data.get("relative")),
        randomized_stats=_opt_int(data.get("randomized_stats")),
    )


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _error_from_dict(data: Any) -> ErrorInfo | None:
    if not isinstance(data, Mapping):
        return None
    return ErrorInfo(str(data.get("type", "")), str(data.get("message", "")), tuple(map(str, data.get("frames") or ())))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
