"""Evidence files: probe runs with their exact versions, the provenance of probe-sourced matrix entries.

Format (`qatdoctor_evidence` 1): `{"qatdoctor_evidence": 1, "created", "qatdoctor_version", "host": {...},
"cells": [{"id", "versions", "api", "outcome", "install", "probe", "summary"}]}`. `probe` is the same
object as a report's `probe`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qatdoctor import __version__
from qatdoctor.errors import InputError
from qatdoctor.jsonio import probe_from_dict, probe_to_dict
from qatdoctor.knowledge.vocab import CELL_FACTS
from qatdoctor.records import FAILED, Facts, ProbeRun

FORMAT = 1


@dataclass(frozen=True)
class Cell:
    """One environment and what the probe found in it."""

    id: str
    versions: Mapping[str, str]
    api: str | None
    outcome: str
    probe: ProbeRun | None
    install: Mapping[str, Any]
    summary: Mapping[str, str]


def outcome_of(probe: ProbeRun | None, install_error: str | None = None) -> str:
    """ok / problems / import-failed / crashed / timeout / install-failed."""
    if install_error is not None or probe is None:
        return "install-failed"
    if probe.state != "ran":
        return probe.state
    failed = any(s.status in FAILED for case in probe.cases for s in case.stages)
    return "problems" if failed else "ok"


def summarize(probe: ProbeRun | None) -> dict[str, str]:
    """model → the first failing stage per mode, e.g. 'qat_step fail (RuntimeError)'; '*' for import/crash."""
    if probe is None:
        return {}
    if probe.state != "ran":
        error = probe.import_error
        what = f"{error.type}: {error.message[:160]}" if error else str(probe.reason)
        return {"*": f"{probe.state}: {what}"}
    out: dict[str, str] = {}
    for case in probe.cases:
        bad = [s for s in case.stages if s.status in FAILED]
        text = "; ".join(f"{s.stage} {s.status.value} ({s.error.type if s.error else s.check})" for s in bad) or "pass"
        key = case.model
        out[key] = text if key not in out or out[key] == text else f"{out[key]} | {case.mode}: {text}"
    return out


def cell_id(versions: Mapping[str, str]) -> str:
    """`aimet-2.42.0-torch-2.14.1-py311` from the versions (local tags dropped)."""
    python = versions.get("python", "")
    minor = "".join(python.split(".")[:2])
    aimet = versions.get("aimet-torch", "none").split("+")[0]
    torch = versions.get("torch", "none").split("+")[0]
    return re.sub(r"[^a-z0-9.-]", "-", f"aimet-{aimet}-torch-{torch}-py{minor}".lower())


def make_cell(
    facts: Facts,
    probe: ProbeRun | None,
    *,
    install: Mapping[str, Any] | None = None,
    install_error: str | None = None,
) -> Cell:
    """A cell from collected facts and a probe run (or an install failure)."""
    versions = {k: v for k in CELL_FACTS if (v := facts.value(k))}
    if probe is not None:
        versions.update({k: v for k, v in probe.versions.items() if k in CELL_FACTS and v})
    return Cell(
        id=cell_id(versions),
        versions=versions,
        api=probe.api if probe else None,
        outcome=outcome_of(probe, install_error),
        probe=probe,
        install={**(install or {}), **({"error": install_error} if install_error else {})},
        summary=summarize(probe),
    )


def cell_to_dict(cell: Cell) -> dict[str, Any]:
    return {
        "id": cell.id,
        "versions": dict(cell.versions),
        "api": cell.api,
        "outcome": cell.outcome,
        "install": dict(cell.install),
        "summary": dict(cell.summary),
        "probe": probe_to_dict(cell.probe) if cell.probe else None,
    }


def write(
    path: Path, cells: Sequence[Cell], host: Mapping[str, str], *, extra: Mapping[str, Any] | None = None
) -> None:
    """Write an evidence file (only `path` is touched); `extra` adds top-level keys (a sweep's grid, skips)."""
    payload = {
        "qatdoctor_evidence": FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "qatdoctor_version": __version__,
        "host": dict(host),
        **{k: v for k, v in (extra or {}).items() if k not in ("qatdoctor_evidence", "cells", "host")},
        "cells": [cell_to_dict(c) for c in cells],
    }
    from qatdoctor import atomic
    from qatdoctor.transform.redact import redact_data

    payload = redact_data(payload, names=False)  # evidence is committed: no home paths or credentials in it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(payload, indent=2) + "\n")  # complete or untouched, no `.tmp` left
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None


def host_of(facts: Facts) -> dict[str, str]:
    """Where the evidence was measured (no host names, no paths)."""
    gpus = facts.gpus
    return {
        "platform": facts.value("platform") or "unknown",
        "os": facts.value("os") or "unknown",
        "glibc": facts.value("glibc") or "unknown",
        "accelerator": ", ".join(f"{g.name} (cc {g.compute_capability})" for g in gpus) if gpus else "CPU only",
    }


def read(path: Path) -> tuple[dict[str, Any], list[Cell]]:
    """An evidence file's header and cells; InputError for anything that is not one."""
    from qatdoctor import bounded

    payload = bounded.read_json(path, what="evidence file")  # bounded size and nesting; InputError otherwise
    if not isinstance(payload, dict) or payload.get("qatdoctor_evidence") != FORMAT:
        raise InputError(f"{path} is not a qatdoctor evidence file (format {FORMAT})")
    listed = payload.get("cells") or []
    if not isinstance(listed, list):
        raise InputError(f"{path}: `cells` must be a list")
    cells = []
    for index, raw in enumerate(listed):
        try:
            cells.append(
                Cell(
                    id=str(raw["id"]),
                    versions={str(k): str(v) for k, v in raw["versions"].items()},
                    api=None if raw.get("api") is None else str(raw["api"]),
                    outcome=str(raw["outcome"]),
                    probe=probe_from_dict(raw.get("probe")),
                    install=dict(raw.get("install") or {}),
                    summary={str(k): str(v) for k, v in (raw.get("summary") or {}).items()},
                )
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise InputError(f"{path}: cell {index} is malformed ({type(error).__name__}: {error})") from None
    return payload, cells
