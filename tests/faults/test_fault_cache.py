"""The probe cache as a careless or hostile user leaves it (issue 25, "The probe cache is trusted too much").

Through the CLI as a real process: an entry replaced by a FIFO (today: `check` hangs forever) or by a 2 GiB sparse
file, on a fake target whose collector and probe are real scripts in this interpreter (the probe cannot import
AIMET here, an outcome that is cached). On the reference environments: another environment's entry copied under
this one's key (today: python 3.11.7 / torch 2.14.1 shown for a 3.10 / 2.2.2 environment).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from faultkit import fake_target, finish, qatdoctor

from qatdoctor import core
from qatdoctor.environment.runner import Completed, run

DATA = Path(__file__).resolve().parents[1] / "data" / "probe"
ENVS = Path.home() / ".cache" / "qatdoctor" / "envs"


def _limit_memory() -> None:
    """1.5 GiB of address space: a process that reads a 2 GiB entry whole fails instead of swapping the box."""
    resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))


def _cli_check(target: Path, cache: Path, *extra: str) -> tuple[int, str, str]:
    args = ["check", "--python", str(target), "-v", *extra]
    return finish(qatdoctor(args, env={"QATDOCTOR_CACHE": str(cache)}), timeout=90)


def _entry(cache: Path) -> Path:
    (entry,) = cache.glob("*.json")
    return entry


@pytest.mark.parametrize("kind", ["fifo", "sparse-2GiB"])
def test_cli_check_on_an_odd_cache_entry_finishes_and_reprobes(tmp_path: Path, token: str, kind: str) -> None:
    target = fake_target(tmp_path, token, collector="real", probe="real")
    cache = tmp_path / "cache"
    rc, _, err = _cli_check(target, cache)
    assert "Traceback" not in err, err
    entry = _entry(cache)
    if kind == "fifo":
        entry.unlink()
        os.mkfifo(entry)
    else:
        with entry.open("r+b") as out:
            out.truncate(2 << 30)
    proc = qatdoctor(["check", "--python", str(target), "-v"], env={"QATDOCTOR_CACHE": str(cache)},
                     preexec_fn=_limit_memory)  # fmt: skip
    try:
        again, out, err = finish(proc, timeout=90)
    finally:
        if kind == "fifo":  # today's check blocks in open(): let it go
            with contextlib.suppress(OSError):
                os.close(os.open(entry, os.O_WRONLY | os.O_NONBLOCK))
    assert again == rc, err
    assert "Traceback" not in err
    assert "cached result not used: the entry" in out + err
    assert "stand-ins' cached result" not in out + err


class RecordedProbe:
    """The real runner for the collector; the probe answers with the recorded run of the environment it names."""

    def __init__(self, recorded: dict[str, Path]) -> None:
        self.recorded = recorded
        self.probes = 0

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        if any(str(arg).endswith("_probe.py") for arg in argv):
            self.probes += 1
            env = next(name for name in self.recorded if f"/{name}/" in argv[0])
            return Completed(tuple(argv), 0, self.recorded[env].read_text(encoding="utf-8"), "", 0.1)
        return run(argv, **kwargs)


@pytest.mark.integration
def test_another_environments_entry_copied_under_this_key_is_not_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pythons = {name: ENVS / name / "bin" / "python" for name in ("aimet-1.32.2", "aimet-2.42.0")}
    if not all(path.exists() for path in pythons.values()):
        pytest.skip("reference environments not built (scripts/refenvs.py list)")
    cache = tmp_path / "cache"
    monkeypatch.setenv("QATDOCTOR_CACHE", str(cache))
    runner = RecordedProbe({name: DATA / f"{name}.json" for name in pythons})

    def check(name: str) -> core.Report:
        return core.run_check(core.Options(python=str(pythons[name]), runner=runner))

    check("aimet-2.42.0")
    newer = _entry(cache)
    newer.rename(tmp_path / "newer.json")
    check("aimet-1.32.2")
    shutil.copyfile(tmp_path / "newer.json", _entry(cache))  # 2.42.0's entry under 1.32.2's key
    report = check("aimet-1.32.2")
    assert report.probe is not None
    assert report.probe.versions.get("python", "").startswith("3.10"), report.probe.versions
    assert report.probe.versions.get("torch", "").startswith("2.2.2"), report.probe.versions
    assert runner.probes == 3
    assert "probe: cached result not used: the entry was made for another interpreter" in report.notes
