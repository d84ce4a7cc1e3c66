"""The cached stand-in probe: a second `check` of an unchanged environment does not probe again; installing a
package, another probe script, other models, `--no-cache` or `--model` all run it.

The collector runs for real in a throwaway venv (stdlib only); the probe answers from a recorded real run, and the
test counts how often it was started."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from qatdoctor import core
from qatdoctor.environment.runner import Completed, run
from qatdoctor.records import ModelSpec

RECORDED = Path(__file__).resolve().parents[1] / "data" / "probe" / "aimet-2.42.0.json"


class CountingRunner:
    """The real runner for everything but the probe script, which answers from a recorded run."""

    def __init__(self) -> None:
        self.probes = 0
        self.requests: list[dict[str, Any]] = []

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        if any(str(a).endswith("_probe.py") for a in argv):
            self.probes += 1
            self.requests.append(json.loads(Path(argv[argv.index("--request") + 1]).read_text()))
            return Completed(tuple(argv), 0, RECORDED.read_text(), "", 0.1)
        return run(argv, **kwargs)


@pytest.fixture()
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("QATDOCTOR_CACHE", str(tmp_path / "cache"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    return str(tmp_path / "venv" / "bin" / "python")


def check(python: str, runner: CountingRunner, **kw: Any) -> core.Report:
    return core.run_check(core.Options(python=python, runner=runner, **kw))


def test_a_second_check_of_an_unchanged_environment_uses_the_cached_probe(venv: str) -> None:
    runner = CountingRunner()
    first = check(venv, runner)
    second = check(venv, runner)
    assert runner.probes == 1
    assert second.probe is not None and first.probe is not None
    assert [c.stages for c in second.probe.cases] == [c.stages for c in first.probe.cases]
    assert any(n.startswith("probe: stand-ins' cached result from ") for n in second.notes)
    assert not any("cached" in n for n in first.notes)


def test_installing_anything_invalidates_it(venv: str, tmp_path: Path) -> None:
    runner = CountingRunner()
    check(venv, runner)
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    (site / "qatdoctor_cache_probe-1.0.dist-info").mkdir()  # what an install leaves behind
    check(venv, runner)
    assert runner.probes == 2


@pytest.mark.parametrize(
    "second",
    [
        pytest.param({"use_cache": False}, id="no-cache"),
        pytest.param({"probe_models": ("baseline",)}, id="other-models"),
        pytest.param({"model": ModelSpec("model.py:build")}, id="user-model-never-cached"),
    ],
)
def test_what_reruns_the_probe(venv: str, second: dict[str, Any]) -> None:
    runner = CountingRunner()
    check(venv, runner)
    check(venv, runner, **second)
    assert runner.probes == 2


def test_a_crash_is_not_cached(venv: str) -> None:
    class Crashing(CountingRunner):
        def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
            if any(str(a).endswith("_probe.py") for a in argv):
                self.probes += 1
                return Completed(tuple(argv), -11, "", "", 0.1)
            return run(argv, **kwargs)

    runner = Crashing()
    check(venv, runner)
    check(venv, runner)
    assert runner.probes == 2


def test_a_corrupt_cache_entry_is_a_miss(venv: str, tmp_path: Path) -> None:
    runner = CountingRunner()
    check(venv, runner)
    for entry in (tmp_path / "cache").glob("*.json"):
        entry.write_text(json.dumps({"saved": "x", "probe": {"state": 3}}))
    report = check(venv, runner)
    assert runner.probes == 2 and report.probe is not None and report.probe.state == "ran"


def test_with_a_model_only_the_model_runs_when_the_stand_ins_are_cached(venv: str) -> None:
    runner = CountingRunner()
    first = check(venv, runner)
    with_model = check(venv, runner, model=ModelSpec("model.py:build"))
    assert runner.probes == 2
    assert runner.requests[1]["stand_ins"] == [] and "model" in runner.requests[1], "stand-ins skipped, the model runs"
    assert "stand_ins" not in runner.requests[0], "every stand-in"
    assert with_model.probe is not None and first.probe is not None
    assert with_model.probe.cases == first.probe.cases, "the cached stand-ins stand in"
