"""The cached stand-in probe: a second `check` of an unchanged environment does not probe again; installing a
package, another probe script, other models, `--no-cache` or `--model` all run it.

The collector runs for real in a throwaway venv (stdlib only, with a tiny fake aimet-torch installed where a test
needs one); the probe answers from a recorded real run, and the test counts how often it was started. An entry
that is not a regular file, is huge, was made for another interpreter, or predates an edit of the installed files
is a miss."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
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


# --- an entry proves what it claims (issue 25, "A cache that proves what it claims") -----------------------------


def _entry(tmp_path: Path) -> Path:
    (entry,) = (tmp_path / "cache").glob("*.json")
    return entry


def _release_fifo(path: Path) -> None:
    """Let a reader blocked on the FIFO go (what today's code does: block in open())."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def _check_in_thread(python: str, runner: CountingRunner, seconds: float) -> core.Report | None:
    done: list[core.Report] = []
    thread = threading.Thread(target=lambda: done.append(check(python, runner)), daemon=True)
    thread.start()
    thread.join(seconds)
    return done[0] if done else None


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-another-entry"])
def test_an_entry_that_is_no_regular_file_is_a_miss_never_a_hang(venv: str, tmp_path: Path, kind: str) -> None:
    runner = CountingRunner()
    check(venv, runner)
    entry = _entry(tmp_path)
    if kind == "fifo":
        entry.unlink()
        os.mkfifo(entry)
    else:
        other = tmp_path / "elsewhere.json"
        entry.rename(other)
        entry.symlink_to(other)
    try:
        report = _check_in_thread(venv, runner, 60)
    finally:
        if kind == "fifo":
            _release_fifo(entry)
    assert report is not None, "check hung on the cache entry"
    assert runner.probes == 2, "the odd entry was believed"
    assert any(note.startswith("probe: cached result not used: the entry") for note in report.notes), report.notes


def test_a_huge_entry_is_not_read_whole(venv: str, tmp_path: Path) -> None:
    runner = CountingRunner()
    check(venv, runner)
    with _entry(tmp_path).open("r+b") as out:
        out.truncate(256 << 20)  # sparse: 256 MiB of NULs after the real entry
    tracemalloc.start()
    try:
        report = check(venv, runner)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert runner.probes == 2 and report.probe is not None
    assert peak < 64 << 20, f"peak {peak >> 20} MiB while reading a 256 MiB entry"


def test_another_interpreters_entry_under_this_key_is_not_believed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QATDOCTOR_CACHE", str(tmp_path / "cache"))
    pythons = []
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / name)], check=True)
        pythons.append(str(tmp_path / name / "bin" / "python"))
    runner = CountingRunner()
    check(pythons[1], runner)
    (theirs,) = (tmp_path / "cache").glob("*.json")
    theirs.rename(tmp_path / "theirs.json")
    check(pythons[0], runner)
    (mine,) = (tmp_path / "cache").glob("*.json")
    (tmp_path / "theirs.json").replace(mine)  # b's entry copied under a's key
    report = check(pythons[0], runner)
    assert runner.probes == 3, "an entry made for another interpreter was believed"
    assert "probe: cached result not used: the entry was made for another interpreter" in report.notes


FAKE_AIMET = {
    "aimet_torch/__init__.py": "VERSION = '2.42.0'\n",
    "aimet_torch/quantsim.py": "class QuantizationSimModel: pass\n",
    "aimet_torch-2.42.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: aimet-torch\nVersion: 2.42.0\n",
}


def _install_fake_aimet(site: Path) -> None:
    """A tiny installed distribution, as a wheel leaves it: its files and a RECORD listing them."""
    for relative, text in FAKE_AIMET.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)
    rows = [f"{relative},," for relative in FAKE_AIMET] + ["aimet_torch-2.42.0.dist-info/RECORD,,"]
    (site / "aimet_torch-2.42.0.dist-info" / "RECORD").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda pkg: (pkg / "__init__.py").write_text("raise ImportError('broken on purpose')\n"), id="edit"),
        pytest.param(lambda pkg: (pkg / "extra.py").write_text("x = 1\n"), id="add-a-module"),
        pytest.param(lambda pkg: (pkg / "quantsim.py").unlink(), id="remove-a-module"),
    ],
)
def test_changing_an_installed_file_of_aimet_torch_invalidates_it(
    venv: str, tmp_path: Path, change: Callable[[Path], object]
) -> None:
    site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    _install_fake_aimet(site)
    runner = CountingRunner()
    check(venv, runner)
    assert check(venv, runner).probe is not None and runner.probes == 1, "cached while nothing changed"
    time.sleep(0.01)  # a coarse mtime clock still sees the edit: size and inode are in the fingerprint too
    change(site / "aimet_torch")
    report = check(venv, runner)
    assert runner.probes == 2, "the edited install was not noticed"
    assert "probe: cached result not used: installed files of torch or aimet-torch changed since it was saved" in (
        report.notes
    )
