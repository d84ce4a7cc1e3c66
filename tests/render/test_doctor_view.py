"""The default text view: one screen, verdict last, each finding once, nothing marked ✗ that does not fail."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from qatdoctor import core
from qatdoctor.environment.probe import from_payload
from qatdoctor.jsonio import facts_from_dict, report_to_dict
from qatdoctor.knowledge.load import load
from qatdoctor.records import (
    ApiMove,
    ConstructHit,
    CudaMove,
    ErrorInfo,
    Fact,
    ModelRun,
    ProbeRun,
    Report,
    Scope,
    StageResult,
    Status,
    Why,
    reason_text,
    told,
)
from qatdoctor.render.doctor import group_mark, groups, render
from qatdoctor.render.markdown import bundle
from qatdoctor.render.markdown import render as markdown
from qatdoctor.render.text import render as text_render

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


def test_recommendations_render_from_their_fields_not_their_notes() -> None:
    """The usage of a code fix, a CUDA move and an API move come from fields; the notes are prose for -v."""
    report = diagnose("aimet-1.32.2", model=True)
    code = next(r for r in report.recommendations if r.kind == "code")
    assert code.usage and "make_qat_safe(model, example_input)" in code.usage
    misleading = ("for: x", "moves torch from CUDA 11 to CUDA 12", "v1 → v2 QuantSim API: port")
    recs = tuple(r._replace(notes=misleading, cuda_move=None, api_move=None) for r in report.recommendations)
    text = render(report._replace(recommendations=recs))
    assert "make_qat_safe(model, example_input)" in text
    assert "moves torch from CUDA 11" not in text and "needs porting" not in text
    move = CudaMove("11", "12", "525.60.13", None)
    api = ApiMove("v1", "v2", "port it")
    version = next(r for r in report.recommendations if r.kind != "code")
    recs = tuple(r._replace(cuda_move=move, api_move=api, notes=()) if r.id == version.id else r for r in recs)
    text = render(report._replace(recommendations=recs))
    assert move.describe() in " ".join(text.split())
    assert "v1 → v2 QuantSim API: your QuantSim code needs porting (-v)" in text


@pytest.mark.parametrize("name", sorted(p.name for p in (DATA / "probe").glob("aimet-*.json")))
def test_finding_flags_agree_with_the_prose(name: str) -> None:
    """`not_reproduced` and `stand_in` are set where the summary and the id say so (nothing reads those)."""
    env = name.split(".model-")[0].removesuffix(".json")
    facts_path = DATA / "verify" / f"{env}.facts.json"
    if not facts_path.exists():
        pytest.skip("no recorded facts for this probe")
    facts = facts_from_dict(json.loads(facts_path.read_text()))
    probe = from_payload(json.loads((DATA / "probe" / name).read_text()))
    report = core.diagnose(facts, load(), command="check", target="x", probe=probe)
    for f in report.findings:
        assert f.not_reproduced == told(f).startswith("The matrix predicts this, but the probe did not reproduce")
        parts = f.id.split(".")
        expected = parts[2] if f.id.startswith("probe.unexplained.") and parts[2] != "any" else None
        assert f.stand_in == expected, f.id


def test_the_bundle_is_rendered_from_the_report_and_replays_from_its_json_block(tmp_path: Path) -> None:
    report = diagnose("aimet-1.32.2", model=True)
    path = tmp_path / "bundle.md"
    path.write_text(bundle(report))
    assert path.read_text().startswith(markdown(report))
    assert core.read_saved_report(path) == json.loads(json.dumps(report_to_dict(report)))


@pytest.mark.parametrize(
    ("changes", "finding_id", "group"),
    [
        pytest.param({"glibc": "2.31"}, "aimet-1.32.2-1.35-cp310-glibc-below-2.34", "python", id="glibc-rule"),
        pytest.param({"python": "3.12.1"}, "aimet-1x-python-3.11-plus-unsupported", "python", id="python-rule"),
        pytest.param({"python": "3.13.1"}, "req.python-wheel", "python", id="python-wheel-check"),
        pytest.param({"lib:liblapacke.so.3": None}, "aimet-1x-liblapacke-missing", "libs", id="library-rule"),
        pytest.param(  # about python and a library: the library decides
            {"lib:libcublas.so.12": None}, "aimet-1.32-1.35-libcublas12-unloadable", "libs", id="library-and-python"
        ),
        pytest.param({"cuda": "11.8"}, "req.cuda-major", "cuda", id="cuda-check"),
        pytest.param({"driver": "450.80"}, "req.driver", "cuda", id="driver-check"),
        pytest.param({"numpy": "2.0.2"}, "aimet-1x-numpy-2", "stack", id="package-rule"),
        pytest.param({"torch": "9.9.9"}, "coverage.torch", "coverage", id="coverage"),
    ],
)
def test_a_finding_is_shown_in_the_group_of_the_facts_it_is_about(
    changes: dict[str, str | None], finding_id: str, group: str
) -> None:
    facts = facts_from_dict(json.loads((DATA / "verify" / "aimet-1.32.2.facts.json").read_text()))
    facts = facts.with_values(
        {name: Fact.known(value) if value else Fact.absent("not found") for name, value in changes.items()}
    )
    report = core.diagnose(facts, load(), command="check", target="/envs/x/bin/python", probe=None,
                           python="/envs/x/bin/python")  # fmt: skip
    placed = {f.id: g.key for g in groups(report) for f in g.findings}
    assert placed.get(finding_id) == group, placed


def test_what_was_not_examined_gets_no_pass_mark() -> None:
    facts = facts_from_dict(json.loads((DATA / "verify" / "aimet-2.42.0.facts.json").read_text()))
    facts = dataclasses.replace(facts, values={k: v for k, v in facts.values.items() if not k.startswith("lib:")})
    report = core.diagnose(facts, load(), command="check", target="/envs/x/bin/python", probe=None,
                           python="/envs/x/bin/python")  # fmt: skip
    lines = render(report).splitlines()
    assert "- Probe: not run (--no-probe)" in lines
    assert "- System libraries: none checked" in lines
    ran = render(diagnose("aimet-2.42.0")).splitlines()
    assert any(line.startswith("✓ Probe: ") for line in ran), ran
    assert any(line.startswith("✓ System libraries: ") for line in ran), ran


def _marks(report: Report) -> dict[str, str]:
    return {g.key: group_mark(g) for g in groups(report)}


_NO_STACK = {"aimet-torch": Fact.absent("not installed"), "torch": Fact.absent("not installed"),
             "torchvision": Fact.absent("not installed"), "cuda": Fact.absent("no torch")}  # fmt: skip


# (what the environment and the probe are, facts changed, probe, expected marks of the groups that must not pass)
STATES = [
    ("no torch, no aimet: nothing to probe or need libraries", _NO_STACK,
     ProbeRun(state="import-failed"), {"cuda": "n/a", "libs": "n/a", "probe": "n/a", "stack": "fail"}),
    ("aimet installed but the probe cannot import it", {}, ProbeRun(state="import-failed"), {"probe": "fail"}),
    ("the probe crashed", {}, ProbeRun(state="crashed", reason="killed by SIGSEGV"), {"probe": "fail"}),
    ("the probe hung", {}, ProbeRun(state="timeout", reason="timed out after 240 s"), {"probe": "fail"}),
    ("--no-probe", {}, None, {"probe": "n/a"}),
    ("no library facts", {"lib:liblapacke.so.3": None, "lib:libcublas.so.12": None}, None, {"libs": "n/a"}),
    ("the model could not be examined", {},
     ProbeRun(state="ran", model=ModelRun("m.py:build", status="factory-failed")), {"model": "fail"}),
]


@pytest.mark.parametrize(("facts_changed", "probe", "expected"), [s[1:] for s in STATES], ids=[s[0] for s in STATES])
def test_no_group_passes_over_what_failed_or_was_not_examined(
    facts_changed: dict[str, Fact | None], probe: ProbeRun | None, expected: dict[str, str]
) -> None:
    facts = facts_from_dict(json.loads((DATA / "verify" / "aimet-2.42.0.facts.json").read_text()))
    values = {k: v for k, v in {**facts.values, **facts_changed}.items() if v is not None}
    facts = dataclasses.replace(facts, values=values)
    report = core.diagnose(facts, load(), command="check", target="/envs/x/bin/python", probe=probe,
                           python="/envs/x/bin/python")  # fmt: skip
    marks = _marks(report)
    assert {key: marks[key] for key in expected} == expected, marks
    symbols = {"pass": "✓", "n/a": "-", "fail": "✗", "warn": "!", "unknown": "?"}
    lines = render(report).splitlines()
    for group in groups(report):
        first = group.label.split("\n")[0]
        assert any(line.startswith(f"{symbols[marks[group.key]]} {first[:40]}") for line in lines), (first, lines)


def test_a_healthy_run_passes_every_group() -> None:
    marks = _marks(diagnose("aimet-2.42.0"))
    assert marks.pop("cuda") == "n/a"  # recorded on a host with no driver and no GPU: the GPU checks do not apply
    assert set(marks.values()) == {"pass"}, marks


# --- the judge's reasons, worded by every view ------------------------------------------------------------------

BLOCKED = ModelRun(
    "m.py:build", "ran", class_name="Net", constructs={"silu-activation": ConstructHit(1, ("act",))},
    stages=(StageResult("prepare", Status.PASS), StageResult("quantsim", Status.FAIL, error=ErrorInfo("TypeError", "odd")),
            StageResult("compute_encodings", Status.SKIPPED)),
)  # fmt: skip
ALL_PASS = BLOCKED._replace(stages=tuple(StageResult(s, Status.PASS) for s in ("prepare", "quantsim", "fold")))


@pytest.mark.parametrize(
    ("env", "run", "finding_id", "code", "shown"),
    [
        pytest.param("aimet-2.0.0-torch-2.2.2-py310", BLOCKED, "silu-quantsim-valueerror-2.0.0", Why.MODEL_BLOCKED,
                     True, id="blocked"),
        pytest.param("aimet-2.0.0-torch-2.2.2-py310", ALL_PASS, "silu-quantsim-valueerror-2.0.0", Why.MODEL_PASSED,
                     False, id="passed"),
        pytest.param("aimet-2.42.0", ALL_PASS._replace(constructs={}), "bn-subclass-stats-frozen-v2", Why.MODEL_LACKS,
                     False, id="lacks"),
    ],
)  # fmt: skip
def test_each_view_words_the_reasons_of_a_finding(
    env: str, run: ModelRun, finding_id: str, code: Why, shown: bool
) -> None:
    """The reason is data on the finding; the JSON summary says it, and so do the -v view and the markdown where
    they show the finding's summary (a pass is listed by id only)."""
    facts = facts_from_dict(json.loads((DATA / "verify" / f"{env}.facts.json").read_text()))
    report = core.diagnose(facts, load(), command="check", target="x", probe=ProbeRun("ran", api="v2", model=run))
    found = next(f for f in report.findings if f.id == finding_id)
    assert [r.code for r in found.reasons] == [code]
    said = reason_text(found.reasons[0])
    verbose = " ".join(text_render(report).split())
    assert (said in verbose and said in markdown(report)) is shown
    encoded = next(f for f in report_to_dict(report)["findings"] if f["id"] == finding_id)
    assert encoded["summary"] == f"{said} {found.summary}" and encoded["reasons"][0]["code"] == code.value
