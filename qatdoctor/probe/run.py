"""Running `_probe.py` in the target interpreter: a crash, hang or garbage output there is data, not an error."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatdoctor.errors import InputError, QatdoctorError
from qatdoctor.jsonio import probe_from_dict
from qatdoctor.model import ErrorInfo, ProbeCase, ProbeRun, StageResult, Status
from qatdoctor.probe import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
from qatdoctor.runner import Completed, Runner, run

EVENT_PREFIX = "@qatdoctor-probe "


class ProbeError(QatdoctorError):
    """The probe could not be started at all (its script is missing from the installation)."""


def probe_script() -> Path:
    """`_probe.py` as shipped in the package."""
    path = Path(__file__).with_name("_probe.py")
    if not path.is_file():
        raise ProbeError(f"probe script missing from the installation: {path}")
    return path


@dataclass
class _Events:
    """What the probe announced on stderr before it ended (for crashes and hangs)."""

    progress: Callable[[str], None]
    finished: list[tuple[str, str, str, str]] = field(default_factory=list)
    current: tuple[str, str, str] | None = None
    importing: str | None = None

    def __call__(self, line: str) -> None:
        if not line.startswith(EVENT_PREFIX):
            return
        try:
            event: dict[str, Any] = json.loads(line[len(EVENT_PREFIX) :])
        except ValueError:
            return
        kind = event.get("event")
        if kind == "import-start":
            self.importing = str(event.get("what"))
            self.progress(f"probe: importing {self.importing}")
        elif kind == "import-end":
            self.importing = None
        elif kind == "stage-start":
            self.current = (str(event.get("model")), str(event.get("mode")), str(event.get("stage")))
            if not any(f[:2] == self.current[:2] for f in self.finished):
                self.progress(f"probe: {self.current[0]} ({self.current[1]} mode)")
        elif kind == "stage-end" and self.current is not None:
            model, mode, stage = self.current
            status = str(event.get("status"))
            self.finished.append((model, mode, stage, status))
            self.current = None
            if status not in ("pass", "skipped"):
                self.progress(f"probe: {model}/{mode} {stage}: {status}")

    def where(self) -> str:
        if self.current is not None:
            return "during {}/{} stage {}".format(*self.current)
        if self.importing is not None:
            return f"while importing {self.importing}"
        return "outside any stage"

    def partial_cases(self, death: str) -> tuple[ProbeCase, ...]:
        """Cases reconstructed from the events; the stage that never ended is the one that died."""
        order: dict[tuple[str, str], list[StageResult]] = {}
        for model, mode, stage, status in self.finished:
            try:
                parsed = Status(status)
            except ValueError:
                parsed = Status.UNKNOWN
            order.setdefault((model, mode), []).append(StageResult(stage, parsed))
        if self.current is not None:
            model, mode, stage = self.current
            order.setdefault((model, mode), []).append(
                StageResult(stage, Status.FAIL, error=ErrorInfo("ProbeDied", f"the probe process {death} here"))
            )
        return tuple(ProbeCase(model, mode, tuple(stages)) for (model, mode), stages in order.items())


def probe_env() -> dict[str, str]:
    """The user's environment, always with one intra-op thread: the probe's tensors are tiny, and on a small
    box thread contention made it 30 % slower and 3x more load-sensitive (bn-probe-measurements.md §5)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def run_probe(
    python: str,
    *,
    runner: Runner = run,
    timeout: float = DEFAULT_TIMEOUT,
    models: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
) -> ProbeRun:
    """Run the probe in `python`; always returns a ProbeRun (state ran / import-failed / crashed / timeout)."""
    argv = [python, str(probe_script())]
    if models:
        argv += ["--models", ",".join(models)]
    events = _Events(progress)
    progress("probe: starting (tiny models through the real AIMET pipeline)")
    # torch._dynamo (imported by aimet-torch 2.x) creates its cache dir on import: keep it in a temp dir.
    with tempfile.TemporaryDirectory(prefix="qatdoctor-probe-") as scratch:
        env = {**probe_env(), "TORCHINDUCTOR_CACHE_DIR": scratch, "TRITON_CACHE_DIR": scratch}
        done = runner(argv, timeout=timeout, env=env, on_stderr_line=events)
    return interpret_completed(done, events, timeout)


def interpret_completed(done: Completed, events: _Events, timeout: float) -> ProbeRun:
    """Turn the finished process into a ProbeRun."""
    tail = done.stderr_tail(15) or None
    if done.start_error is not None:
        return ProbeRun(
            state="crashed", reason=f"could not start the probe: {done.start_error}", exit_status=done.describe_exit()
        )
    if done.timed_out:
        return ProbeRun(
            state="timeout",
            reason=f"no result within {timeout:.0f}s, {events.where()}",
            cases=events.partial_cases("hung"),
            exit_status=done.describe_exit(),
            stderr_tail=tail,
        )
    payload = _json_object(done.stdout)
    if done.returncode != 0 or payload is None:
        died = done.describe_exit()
        return ProbeRun(
            state="crashed",
            reason=f"{died} {events.where()}" if done.returncode != 0 else "the probe printed no result",
            cases=events.partial_cases(f"was {died}" if died.startswith("killed") else f"ended ({died})"),
            exit_status=died,
            stderr_tail=tail,
        )
    try:
        return from_payload(payload, stderr_tail=tail)
    except InputError as error:
        return ProbeRun(state="crashed", reason=f"the probe's result is malformed: {error.message}", stderr_tail=tail)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def from_payload(payload: dict[str, Any], *, stderr_tail: str | None = None) -> ProbeRun:
    """The probe script's JSON → ProbeRun (the script's own contract, see _probe.py)."""
    imported = payload.get("import") or {}
    api = payload.get("api") or {}
    error = imported.get("error") if isinstance(imported, dict) else None
    failed = isinstance(imported, dict) and imported.get("status") == "fail"
    state = "import-failed" if failed else "ran"
    as_report = {
        "state": state,
        "api": api.get("selected") if isinstance(api, dict) else None,
        "import_error": error,
        "versions": payload.get("versions") or {},
        "timings": payload.get("timings") or {},
        "cases": payload.get("cases") or [],
        "stderr_tail": stderr_tail if failed else None,
        "reason": (api.get("reason") if isinstance(api, dict) else None),
    }
    probe = probe_from_dict(as_report)
    assert probe is not None
    return probe
