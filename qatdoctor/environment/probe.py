"""Running `_probe.py` in the target interpreter: a crash, hang or garbage output there is data, not an error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatdoctor import bounded
from qatdoctor.environment.runner import Completed, Runner, run, scratch_dir
from qatdoctor.errors import InputError, QatdoctorError
from qatdoctor.jsonio import probe_from_dict
from qatdoctor.knowledge.entries import Construct
from qatdoctor.records import ErrorInfo, ModelRun, ModelSpec, ProbeCase, ProbeRun, StageResult, Status

# Measured: the slowest reference run, RTMDet-tiny with the stand-ins on aimet-torch 1.32.2 (2 loaded CPU cores),
# took 45 s; 240 s leaves five times that for larger models and slower machines (--probe-timeout raises it).
DEFAULT_TIMEOUT = 240.0
EVENT_PREFIX = "@qatdoctor-probe "
# The probe's event names for the user's own model (`--model`) and its fixed rerun (`--with-fixes`).
USER_MODELS = {"@model": "your model", "@model-fixed": "your model, fixed"}
# The stages the probe runs on the user's model; a run without all of them did not pass (`_finished`).
MODEL_STAGES = ("prepare", "quantsim", "compute_encodings", "qat_step", "fold", "fold_prepared")
PROTOCOL = 1  # `_probe.py`'s PROTOCOL: the request and response shape its docstring documents


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
    model_phase: str | None = None  # where the user's model run is: factory, scan, a stage, fixes (None: outside)
    model_label: str = "@model"

    def __call__(self, line: str) -> None:
        if not line.startswith(EVENT_PREFIX):
            return
        try:
            event: dict[str, Any] = bounded.loads(line[len(EVENT_PREFIX) :], what="a probe event")
        except InputError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "import-start":
            self.importing = str(event.get("what"))
            self.progress(f"probe: importing {self.importing}")
        elif kind == "import-end":
            self.importing = None
        elif kind == "model-start":
            self.model_phase = "factory"
            self.progress(f"your model: building {event.get('spec')}")
        elif kind == "model-end":
            self.model_phase = None
        elif kind == "scan-start":
            self.model_phase = "scan"
            self.model_label = str(event.get("model") or self.model_label)
            self.progress("your model: scanning its layers")
        elif kind == "fixes-start":
            self.model_phase, self.model_label = "fixes", "@model-fixed"
        elif kind == "stage-start":
            self.current = (str(event.get("model")), str(event.get("mode")), str(event.get("stage")))
            if self.current[0] in USER_MODELS:
                self.model_phase, self.model_label = self.current[2], self.current[0]
                self.progress(f"{USER_MODELS[self.current[0]]}: {self.current[2]}")
            elif not any(f[:2] == self.current[:2] for f in self.finished):
                self.progress(f"probe: {self.current[0]} ({self.current[1]} mode)")
        elif kind == "stage-end" and self.current is not None:
            model, mode, stage = self.current
            status = str(event.get("status"))
            self.finished.append((model, mode, stage, status))
            self.current = None
            if status not in ("pass", "skipped"):
                where = USER_MODELS.get(model, f"probe: {model}/{mode}")
                self.progress(f"{where} {stage}: {status}")

    def where(self) -> str:
        if self.current is not None:
            return "during {}/{} stage {}".format(*self.current)
        if self.model_phase is not None:
            return f"while running {USER_MODELS.get(self.model_label, 'your model')} ({self.model_phase})"
        if self.importing is not None:
            return f"while importing {self.importing}"
        return "outside any stage"

    def _stages(self, death: str) -> dict[tuple[str, str], list[StageResult]]:
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
        return order

    def partial_cases(self, death: str) -> tuple[ProbeCase, ...]:
        """Stand-in cases reconstructed from the events; the stage that never ended is the one that died."""
        order = self._stages(death)
        return tuple(
            ProbeCase(model, mode, tuple(stages)) for (model, mode), stages in order.items() if model not in USER_MODELS
        )

    def partial_model(self, spec: ModelSpec | None, death: str, status: str = "crashed") -> ModelRun | None:
        """The user's model when the process died or hung while running it (a crash or hang of *their* model:
        in its factory, its scan, a stage or the fixes), with the stages it finished; `status` crashed/timeout."""
        if spec is None or self.model_phase is None:
            return None
        stages = self._stages(death).get((self.model_label, "train"), [])
        where = self.model_phase
        return ModelRun(spec.spec, status=status, reason=f"the process {death} during {where}",
                        stages=tuple(stages), ended_at=where)  # fmt: skip


def probe_env() -> dict[str, str]:
    """The user's environment, always with one intra-op thread: the probe's tensors are tiny, and on a small
    box thread contention made it 30 % slower and 3x more load-sensitive (bn-probe-measurements.md §5)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def zoo_script() -> Path:
    """`environment/_zoo.py`, which builds `--model FAMILY:NAME` in the target."""
    return Path(__file__).with_name("_zoo.py")


def zoo_families() -> tuple[str, ...]:
    """The families `_zoo.py` builds, read from its source (it is a target-side script: never imported here)."""
    import ast

    tree = ast.parse(zoo_script().read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILIES" for t in node.targets):
            families = ast.literal_eval(node.value)
            return tuple(str(f) for f in families)
    raise ProbeError(f"{zoo_script()} declares no FAMILIES")


def fixes_script() -> Path:
    """`qatdoctor/fixes.py`, which the probe loads by path in the target for `--with-fixes`."""
    path = Path(__file__).resolve().parents[1] / "fixes.py"
    if not path.is_file():
        raise ProbeError(f"fixes module missing from the installation: {path}")
    return path


def constructs_payload(constructs: Sequence[Construct]) -> list[dict[str, Any]]:
    """The matrix's construct detectors, as the probe script reads them (`--constructs FILE`)."""
    return [{"id": c.id, "detect": [dict(d) for d in c.detect]} for c in constructs]


def run_probe(
    python: str,
    *,
    runner: Runner = run,
    timeout: float = DEFAULT_TIMEOUT,
    models: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
    model: ModelSpec | None = None,
    constructs: Sequence[Construct] = (),
    stand_ins: bool = True,
    vocabulary: Mapping[str, Sequence[str]] | None = None,
) -> ProbeRun:
    """Run the probe in `python`; always returns a ProbeRun (state ran / import-failed / crashed / timeout).

    With `model`, the user's model runs after the stand-ins in the same process (one AIMET import); without
    `stand_ins` (their result is cached) only the model runs."""
    events = _Events(progress)
    progress("probe: starting (tiny models through the real AIMET pipeline)")
    # torch._dynamo (imported by aimet-torch 2.x) creates its cache dir on import: keep it in a temp dir.
    # The runner owns the directory: removed when the probe ends, or at shutdown (Ctrl-C, SIGTERM) at the latest.
    with scratch_dir("qatdoctor-probe-") as scratch:
        request = scratch / "request.json"
        asked = probe_request(models, model, constructs, stand_ins=stand_ins, vocabulary=vocabulary)
        request.write_text(json.dumps(asked), encoding="utf-8")
        argv = [python, str(probe_script()), "--request", str(request)]
        env = {**probe_env(), "TORCHINDUCTOR_CACHE_DIR": str(scratch), "TRITON_CACHE_DIR": str(scratch)}
        done = runner(argv, timeout=timeout, env=env, on_stderr_line=events)
    return interpret_completed(done, events, timeout, model)


def probe_request(
    models: Sequence[str],
    model: ModelSpec | None,
    constructs: Sequence[Construct],
    *,
    stand_ins: bool = True,
    vocabulary: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The one request the probe script reads (its protocol: the docstring of `_probe.py`)."""
    request: dict[str, Any] = {"protocol": PROTOCOL, "stand_ins": list(models) if stand_ins else []}
    if stand_ins and not models:
        request.pop("stand_ins")  # every stand-in the script has
    for key, words in (vocabulary or {}).items():
        request[key] = list(words)
    if model is not None:
        request["model"] = {
            "spec": model.spec,
            "input_shape": list(model.input_shape) if model.input_shape else None,
            "with_fixes": str(fixes_script()) if model.with_fixes else None,
            "zoo": str(zoo_script()),
        }
        request["constructs"] = constructs_payload(constructs)
    return request


def interpret_completed(done: Completed, events: _Events, timeout: float, model: ModelSpec | None = None) -> ProbeRun:
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
            model=events.partial_model(model, "hung", status="timeout"),
        )
    payload = _json_object(done.stdout)
    if done.returncode != 0 or payload is None:
        died = done.describe_exit()
        return ProbeRun(
            state="crashed",
            reason=f"{died} {events.where()}" if done.returncode != 0 else "the probe printed no result",
            cases=events.partial_cases(death := f"was {died}" if done.signal is not None else f"ended ({died})"),
            exit_status=died,
            stderr_tail=tail,
            model=events.partial_model(model, death),
        )
    try:
        return from_payload(payload, stderr_tail=tail)
    except InputError as error:
        return ProbeRun(state="crashed", reason=f"the probe's result is malformed: {error.message}", stderr_tail=tail)


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = bounded.loads(text, what="the probe's output")  # bounded nesting, whatever the target printed
    except InputError:
        return None
    return value if isinstance(value, dict) else None


def from_payload(payload: Mapping[str, Any], *, stderr_tail: str | None = None) -> ProbeRun:
    """The probe script's response → ProbeRun; every field the protocol documents is read here (`_probe.py`'s
    docstring; tests/environment/test_probe_protocol.py fails when one is not)."""
    imported = _section(payload, "import")
    api = _section(payload, "api")
    failed = imported.get("status") == "fail"
    timings = dict(_section(payload, "timings"))
    if isinstance(imported.get("seconds"), (int, float)):
        timings["import"] = imported["seconds"]
    notes = [str(n) for n in payload.get("notes") or ()]
    for key, words in _section(payload, "unsupported").items():
        notes.append(f"the probe does not implement the matrix's {key}: {', '.join(map(str, words))}")
    as_report = {
        "state": "import-failed" if failed else "ran",
        "api": api.get("selected"),
        "api_requested": api.get("requested"),
        "quantsim_module": api.get("quantsim_module"),
        "import_error": imported.get("error"),
        "versions": payload.get("versions") or {},
        "timings": timings,
        "cases": payload.get("cases") or [],
        "stderr_tail": stderr_tail if failed else None,
        "reason": api.get("reason"),
        "model": payload.get("model"),
        "probe_error": payload.get("probe_error"),
        "notes": notes,
    }
    if payload.get("probe") != PROTOCOL:
        raise InputError(f"protocol {payload.get('probe')!r}, expected {PROTOCOL}")
    probe = probe_from_dict(as_report)
    assert probe is not None
    if probe.model is not None:
        probe = probe._replace(model=_finished(probe.model, probe.probe_error))
    return probe


def _section(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    return value if isinstance(value, Mapping) else {}


def _finished(run: ModelRun, probe_error: ErrorInfo | None) -> ModelRun:
    """A model run the script calls `ran` passes only with every stage run: one that stopped early (a bug of the
    script, or a response cut short) is `incomplete`, never a pass."""
    if run.status != "ran":
        return run
    missing = [s for s in MODEL_STAGES if run.stage(s) is None]
    if not missing and probe_error is None:
        return run
    where = missing[0] if missing else (run.ended_at or "the run")
    why = f"{probe_error.type} in the probe" if probe_error is not None else "the probe stopped early"
    return run._replace(status="incomplete", ended_at=where, error=run.error or probe_error,
                        reason=f"{why}: {where} never ran")  # fmt: skip
