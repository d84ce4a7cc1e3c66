"""The JSON contract (schema_version 1): reports to plain dicts, and saved reports back to facts/probe runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qatdoctor import __version__
from qatdoctor.errors import InputError
from qatdoctor.model import (
    ErrorInfo,
    Fact,
    Facts,
    FactState,
    Finding,
    Gpu,
    ProbeCase,
    ProbeRun,
    Recommendation,
    Report,
    StageResult,
    Status,
)

SCHEMA_VERSION = 1


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


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "title": finding.title,
        "severity": finding.severity.value,
        "status": finding.status.value,
        "origin": finding.origin,
        "summary": finding.summary,
        "evidence": list(finding.evidence),
        "fixes": [
            {
                "kind": fx.kind,
                "summary": fx.summary,
                "commands": list(fx.commands),
                **({"code": fx.code} if fx.code else {}),
            }
            for fx in finding.fixes
        ],
        "sources": [{"kind": s.kind, "ref": s.ref, **({"note": s.note} if s.note else {})} for s in finding.sources],
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
    }


def _error_to_dict(error: ErrorInfo | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "frames": list(error.frames)}


def probe_to_dict(probe: ProbeRun) -> dict[str, Any]:
    return {
        "state": probe.state,
        "reason": probe.reason,
        "api": probe.api,
        "exit_status": probe.exit_status,
        "import_error": _error_to_dict(probe.import_error),
        "versions": dict(probe.versions),
        "timings": dict(probe.timings),
        "stderr_tail": probe.stderr_tail,
        "cases": [
            {
                "model": case.model,
                "mode": case.mode,
                "description": case.description,
                "stages": [
                    {
                        "stage": s.stage,
                        "status": s.status.value,
                        "seconds": round(s.seconds, 4),
                        "error": _error_to_dict(s.error),
                        "check": s.check,
                        "measured": s.measured,
                        "reason": s.reason,
                    }
                    for s in case.stages
                ],
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
                stages=tuple(
                    StageResult(
                        stage=str(s["stage"]),
                        status=Status(s["status"]),
                        seconds=float(s.get("seconds") or 0.0),
                        error=_error_from_dict(s.get("error")),
                        check=_opt_str(s.get("check")),
                        measured=_opt_str(s.get("measured")),
                        reason=_opt_str(s.get("reason")),
                    )
                    for s in c["stages"]
                ),
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
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"report JSON: `probe` is malformed ({type(exc).__name__}: {exc})") from None


def _error_from_dict(data: Any) -> ErrorInfo | None:
    if not isinstance(data, Mapping):
        return None
    return ErrorInfo(str(data.get("type", "")), str(data.get("message", "")), tuple(map(str, data.get("frames") or ())))


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
