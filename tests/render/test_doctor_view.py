"""The default text view: one screen, verdict last, each finding once, nothing marked ✗ that does not fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qatdoctor import core
from qatdoctor.jsonio import facts_from_dict
from qatdoctor.knowledge.load import load
from qatdoctor.model import Report, Scope
from qatdoctor.render.doctor import render
from qatdoctor.target.probe import from_payload

DATA = Path(__file__).resolve().parents[1] / "data"


def diagnose(env: str, model: bool = False) -> Report:
    facts = facts_from_dict(json.loads((DATA / "verify" / f"{env}.facts.json").read_text()))
    name = f"{env}.model-bn_subclass.json" if model else f"{env}.json"
    probe = from_payload(json.loads((DATA / "probe" / name).read_text()))
    return core.diagnose(facts, load(), command="check", target="/envs/x/bin/python", probe=probe,
                         python="/envs/x/bin/python")  # fmt: skip


def prose(text: str) -> list[str]:
    """Lines that are not commands or code (those stay on one line, to be copied)."""
    return [line for line in text.splitlines() if not line.startswith("     ")]


@pytest.mark.parametrize(
    ("env", "model", "most"),
    [
        pytest.param("aimet-2.42.0", False, 25, id="healthy-2.42.0"),
        pytest.param("aimet-1.32.2", False, 25, id="healthy-1.32.2"),
        pytest.param("aimet-1.32.2", True, 60, id="3152-stack-with-a-bn-subclass-model"),
    ],
)
def test_it_fits_one_screen_with_the_verdict_last(env: str, model: bool, most: int) -> None:
    report = diagnose(env, model)
    text = render(report)
    lines = text.splitlines()
    assert len(lines) <= most, text
    assert all(len(line) <= 100 for line in prose(text)), [line for line in prose(text) if len(line) > 100]
    assert lines[-1].startswith(f"verdict: {report.verdict.value.upper()} — "), lines[-1]


def test_the_verdict_never_contradicts_the_lines_above_it() -> None:
    for env, model in (("aimet-2.42.0", False), ("aimet-1.32.2", True)):
        report = diagnose(env, model)
        text = render(report)
        crosses = [line for line in text.splitlines() if line.lstrip().startswith("✗")]
        assert bool(crosses) == (report.verdict.value == "problems"), text


def test_each_failing_finding_shows_once_and_caveats_never_as_failures() -> None:
    report = diagnose("aimet-1.32.2", model=True)
    text = render(report)
    for finding in report.findings:
        if finding.failed:
            assert text.count(f"({finding.id})") == 1, finding.id
    healthy = diagnose("aimet-2.42.0")
    healthy_text = render(healthy)
    caveats = [f for f in healthy.findings if f.scope is Scope.CAVEAT]
    assert caveats and "✗" not in healthy_text
    for caveat in caveats:
        assert any(caveat.title in line and line[0] in "·†?" for line in healthy_text.splitlines()), caveat.title


def test_recommendations_are_numbered_and_findings_point_at_them() -> None:
    report = diagnose("aimet-1.32.2", model=True)
    text = render(report)
    assert "fix: recommendation 1 (code)" in text
    assert "\n1. " in text and "make_qat_safe(model, example_input)" in text
