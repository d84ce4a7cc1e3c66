"""Running and interpreting the probe: crashes, hangs and garbage are findings, never qatdoctor errors."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from qatdoctor import core
from qatdoctor.diagnose.probe_findings import probe_findings
from qatdoctor.environment.probe import from_payload, run_probe
from qatdoctor.knowledge.load import load
from qatdoctor.records import Fact, Facts, Scope, Status

DATA = Path(__file__).resolve().parents[1] / "data" / "probe"


def wrapper(tmp_path: Path, probe_action: str) -> str:
    """A fake interpreter: runs the collector with this Python, but does `probe_action` for the probe."""
    script = tmp_path / "python"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  *_probe.py) {probe_action} ;;\n"
        f'  *) exec {sys.executable} "$@" ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.parametrize(
    ("action", "state", "finding", "needle"),
    [
        pytest.param("kill -SEGV $$", "crashed", "probe.crashed", "SIGSEGV", id="segfault"),
        pytest.param("echo boom >&2; exit 3", "crashed", "probe.crashed", "exit status 3", id="dies"),
        pytest.param("echo '{not json'", "crashed", "probe.crashed", "no result", id="garbage-stdout"),
        pytest.param(
            "echo '@qatdoctor-probe {\"event\": \"stage-start\", \"model\": \"baseline\", \"mode\": \"train\", "
            "\"stage\": \"prepare\"}' >&2; exec sleep 30",
            "timeout", "probe.timeout", "baseline/train stage prepare", id="hangs-in-a-stage",
        ),
    ],
)  # fmt: skip
def test_probe_failures_become_findings(tmp_path: Path, action: str, state: str, finding: str, needle: str) -> None:
    python = wrapper(tmp_path, action)
    probe = run_probe(python, timeout=2)
    assert probe.state == state
    report = core.run_check(core.Options(python=python, probe_timeout=2))
    died = next(f for f in report.findings if f.id == finding)
    assert needle in died.title, died.title
    assert report.verdict.value in ("problems", "unknown")


def test_hang_marks_the_stage_it_died_in(tmp_path: Path) -> None:
    action = (
        "echo '@qatdoctor-probe {\"event\": \"stage-start\", \"model\": \"bn_subclass\", \"mode\": \"eval\", "
        "\"stage\": \"qat_step\"}' >&2; exec sleep 30"
    )
    probe = run_probe(wrapper(tmp_path, action), timeout=1)
    (case,) = probe.cases
    assert (case.model, case.mode, case.stages[-1].stage, case.stages[-1].status) == (
        "bn_subclass", "eval", "qat_step", Status.FAIL
    )  # fmt: skip


def test_an_interpreter_without_torch_gets_the_missing_package_not_a_mystery(tmp_path: Path) -> None:
    """qatdoctor's own venv has neither torch nor aimet-torch: that is the finding, with the install that fixes
    it — not an unexplained probe failure, and no probe protocol in what the user reads."""
    report = core.run_check(core.Options(python=sys.executable, use_cache=False))
    assert report.probe is not None and report.probe.state == "import-failed"
    assert not any(f.id.startswith("probe.unexplained") for f in report.findings)
    missing = next(f for f in report.findings if f.id == "env.aimet-torch-missing")
    assert missing.failed and missing.fixes[0].commands and "aimet-torch==" in missing.fixes[0].commands[0]
    assert report.verdict.value == "problems"


@pytest.mark.parametrize(
    ("recorded", "expected"),
    [
        pytest.param("aimet-1.32.2.json", {"bn-subclass-qat-crash-v1", "functional-bn-qat-crash-v1"}, id="1.32.2"),
        pytest.param("aimet-2.42.0.json", {"bn-subclass-stats-frozen-v2", "functional-bn-stats-frozen-v2",
                                           "functional-bn-nostats-quantsim-attributeerror-v2"}, id="2.42.0"),
        pytest.param("broken-2.42.0-torch-2.2.2.json", {"aimet-2.42-torch-2.2-import-error"}, id="broken"),
    ],
)  # fmt: skip
def test_recorded_probe_runs_are_explained_by_the_matrix(recorded: str, expected: set[str]) -> None:
    payload = json.loads((DATA / recorded).read_text())
    probe = from_payload(payload)
    versions = payload["versions"]
    api = payload["api"]["selected"]
    facts = Facts({**{k: Fact.known(v) for k, v in versions.items()}, "aimet-api": Fact.known(api or "v2")})
    findings = probe_findings(probe, facts, load(), [])
    # Stand-ins reproduce model-scope rules as caveats (never failures); environment rules fail.
    confirmed = {f.id for f in findings if f.origin == "probe" and (f.status is Status.FAIL or f.scope is Scope.CAVEAT)}
    assert expected <= confirmed
    assert all(f.status is not Status.FAIL for f in findings if f.scope is Scope.CAVEAT)
    assert not [f.id for f in findings if f.id.startswith("probe.unexplained")]


def test_probe_always_runs_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the user's shell asks for more intra-op threads (the tiny models only lose from them)."""
    from qatdoctor.environment.probe import probe_env

    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("QATDOCTOR_TEST_MARKER", "kept")
    env = probe_env()
    assert env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert env["QATDOCTOR_TEST_MARKER"] == "kept"
