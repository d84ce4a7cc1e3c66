"""Reports built from what a hostile environment or model could say: real probe and collector payloads (the
reference environments' own, in tests/data) with text planted in every field the target writes freely, then
parsed and judged by the real host code (`facts_from_dict`, `probe.from_payload`, `core.diagnose`)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from qatdoctor import core
from qatdoctor.environment.probe import from_payload
from qatdoctor.jsonio import facts_from_dict
from qatdoctor.knowledge.load import load
from qatdoctor.records import Report

DATA = Path(__file__).resolve().parents[1] / "data"
# what the target writes as free text: error types and messages, frames, layer and class names, reasons, details,
# measurements, the model's spec; a stage error is planted on the user's model's QAT step
FREE_TEXT = {"message", "type", "reason", "detail", "measured", "description", "spec", "class", "frames", "layers",
             "unfolded", "path", "where"}  # fmt: skip


def planted(value: Any, text: str, key: str = "") -> Any:
    """`value` with `text` added to each free-text string (and list of strings) the target wrote."""
    if isinstance(value, dict):
        return {k: planted(v, text, k) for k, v in value.items()}
    if isinstance(value, list):
        return [planted(v, text, key) for v in value]
    if isinstance(value, str) and key in FREE_TEXT:
        return f"{value} {text}"
    return value


@cache  # a Report is immutable: built once per text
def hostile_report(text: str, env: str = "aimet-1.32.2", *, target: str | None = None) -> Report:
    """The 3152 stack with the user's BN-subclass model, every free-text field of its payloads carrying `text`,
    the model's QAT step failing with an exception whose type, message and frames carry it too."""
    facts = json.loads((DATA / "verify" / f"{env}.facts.json").read_text())
    probe = json.loads((DATA / "probe" / f"{env}.model-bn_subclass.json").read_text())
    stage = next(s for s in probe["model"]["stages"] if s["stage"] == "qat_step")
    stage.update(status="fail", error={"type": "RuntimeError", "message": f"boom {text}\nsecond line {text}",
                                       "frames": [f"model.py:3 in forward {text}"]})  # fmt: skip
    for name, fact in facts.items():
        if fact.get("state") == "known" and name.startswith("lib:"):
            fact["detail"] = f"/opt/{name} {text}"
    return core.diagnose(
        facts_from_dict(planted(facts, text)), load(), command="check",
        target=target if target is not None else f"/envs/x/bin/python {text}",
        probe=from_payload(planted(probe, text)), python="/envs/x/bin/python", notes=(f"note {text}",),
    )  # fmt: skip
