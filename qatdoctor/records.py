"""The frozen data that flows through qatdoctor: facts → findings → recommendations → report."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from qatdoctor.text import first_line


class Severity(str, enum.Enum):
    """How much a finding matters."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Verdict(str, enum.Enum):
    """The one-word answer of a run."""

    OK = "ok"
    PROBLEMS = "problems"
    UNKNOWN = "unknown"


class Status(str, enum.Enum):
    """Three-valued outcome (plus the two ways of not running) used for findings and probe stages."""

    PASS = "pass"
    FAIL = "fail"
    SILENT_FAIL = "silent-fail"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not-applicable"


class FactState(str, enum.Enum):
    """Whether a fact was read, is known to be absent, or could not be read."""

    KNOWN = "known"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class Fact(NamedTuple):
    """One fact about the target environment; `reason` explains an unknown or absent value."""

    state: FactState
    value: str | None = None
    reason: str | None = None
    origin: str = "collected"
    detail: str | None = None

    @classmethod
    def known(cls, value: str, *, origin: str = "collected", detail: str | None = None) -> Fact:
        return cls(FactState.KNOWN, value=value, origin=origin, detail=detail)

    @classmethod
    def absent(cls, reason: str | None = None, *, origin: str = "collected") -> Fact:
        return cls(FactState.ABSENT, reason=reason, origin=origin)

    @classmethod
    def unknown(cls, reason: str, *, origin: str = "collected") -> Fact:
        return cls(FactState.UNKNOWN, reason=reason, origin=origin)

    @property
    def is_known(self) -> bool:
        return self.state is FactState.KNOWN

    def describe(self) -> str:
        """Human form: the value, 'absent', or 'unknown: reason'."""
        if self.state is FactState.KNOWN:
            return self.value or ""
        if self.state is FactState.ABSENT:
            return f"absent ({self.reason})" if self.reason else "absent"
        return f"unknown: {self.reason}"


class Gpu(NamedTuple):
    """One GPU, without anything that identifies the physical device."""

    name: str
    compute_capability: str | None


@dataclass(frozen=True)
class Facts:
    """Everything known about one environment, keyed by canonical fact name."""

    values: Mapping[str, Fact] = field(default_factory=lambda: MappingProxyType({}))
    gpus: tuple[Gpu, ...] | None = None
    gpus_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def get(self, name: str) -> Fact:
        """The fact, or an unknown one saying it was never collected."""
        return self.values.get(name) or Fact.unknown("not collected")

    def value(self, name: str) -> str | None:
        fact = self.get(name)
        return fact.value if fact.is_known else None

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def with_values(self, updates: Mapping[str, Fact]) -> Facts:
        merged = dict(self.values)
        merged.update(updates)
        return Facts(merged, self.gpus, self.gpus_reason)

    def with_gpus(self, gpus: tuple[Gpu, ...] | None, reason: str | None = None) -> Facts:
        return Facts(self.values, gpus, reason)


class Source(NamedTuple):
    """Where a piece of knowledge comes from: an issue, PyPI metadata, a wheel, or one of our probe runs."""

    kind: str
    ref: str
    note: str | None = None


class Measurement(NamedTuple):
    """Versions a rule was measured on (a probe run, a reproduction, a wheel read with a tool) and the
    `[[evidence]]` record that holds the measurement."""

    versions: Mapping[str, str]
    evidence: str

    def describe(self) -> str:
        """`aimet-torch 2.42.0, torch 2.14.1`."""
        return ", ".join(f"{name} {value}" for name, value in self.versions.items())


class Fix(NamedTuple):
    """One way out of a finding: a version change, a system package, or a code change.

    A version fix names the package and range it moves (`package`, `spec`); its commands install the whole
    known-good set that move lands on (`lands_on`), never the one package alone."""

    kind: str
    summary: str
    commands: tuple[str, ...] = ()
    code: str | None = None
    package: str | None = None
    spec: str | None = None
    lands_on: str | None = None


class Scope(str, enum.Enum):
    """What a finding is about, which decides whether it can change the verdict.

    environment: the installation itself. model: the user's own model (`--model`). caveat: knowledge about models
    containing a construct, when qatdoctor has not seen the user's model: it never fails the verdict, but one that
    likely applies (a package that produces the construct is installed) makes it unknown.
    """

    ENVIRONMENT = "environment"
    MODEL = "model"
    CAVEAT = "caveat"


# The one definition of a failed outcome (a finding's or a probe stage's), and of one that says nothing.
FAILED = (Status.FAIL, Status.SILENT_FAIL)
NOT_RUN = (Status.SKIPPED, Status.UNKNOWN, Status.NOT_APPLICABLE)


class Why(str, enum.Enum):
    """Why a rule's finding has its status: the judge's reasons (diagnose/judge.py); renderers word them."""

    UNDECIDED = "undecided"  # the facts cannot decide the rule (`needs`)
    STAND_IN_REPRODUCED = "stand-in-reproduced"  # the probe's stand-in reproduced a model-scope rule
    NOT_REPRODUCED = "not-reproduced"  # the probe exercised the prediction and it passed (`runs`)
    MODEL_LACKS = "model-lacks"  # the user's model has no `construct`
    MODEL_REPRODUCED = "model-reproduced"
    MODEL_ONCE_FIXED = "model-once-fixed"  # reproduced once qatdoctor.fixes removed an earlier failure
    MODEL_PASSED = "model-passed"  # the model has `construct` and passed the `stages` the rule names
    MODEL_BLOCKED = "model-blocked"  # the `stages` failed in another way first
    MODEL_NOT_SHOWN = "model-not-shown"  # the run did not reach the stages the rule names
    MODEL_CANNOT_SHOW = "model-cannot-show"  # the rule names no stage outcome: it rests on the scan
    LOG_SHOWS = "log-shows"  # a pasted log shows the rule's error (`line`, `how` strictly)
    LOG_OUTSIDE_RANGE = "log-outside-range"  # ... but the versions it states are outside the rule's range
    LOG_NOT_AIMET = "log-not-aimet"  # ... but it never mentions AIMET, and the rule is an AIMET failure
    LOG_APPLIES = "log-applies"  # ... and the versions it states are in the rule's range (`matched`)
    LOG_ON_MESSAGE = "log-on-message"  # ... and it does not state every version the rule depends on
    LOG_MODEL_CONTAINS = "log-model-contains"  # ... so the model it ran contains `construct`
    LOG_MODEL_CODE = "log-model-code"  # ... and it is an error of the model's own code (a rule with cause model-code)
    LOG_USER_FRAME = "log-user-frame"  # ... raised from the user's `frame` (input line `line`)


class Reason(NamedTuple):
    """One reason code and its parameters."""

    code: Why
    construct: str | None = None  # the construct's title
    stages: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # the facts an undecided rule needs
    runs: int | None = None  # stage runs that passed
    line: int | None = None  # the log's line
    how: str | None = None  # how strictly the log matched
    rule_range: str | None = None  # the rule's range, in words
    matched: tuple[str, ...] = ()  # the stated versions inside it
    frame: str | None = None  # the user's own frame a model-code error is raised from


# How each reason reads: the one wording the renderers (doctor, -v, markdown) and the JSON `summary` share.
REASON_PROSE: Mapping[Why, str] = MappingProxyType({
    Why.UNDECIDED: "Could not decide (needs {needs}).",
    Why.STAND_IN_REPRODUCED: "The probe's stand-in model reproduced this in this environment.",
    Why.NOT_REPRODUCED: "The matrix predicts this, but the probe did not reproduce it here ({runs} stage runs passed).",
    Why.MODEL_LACKS: "Your model has no {construct}: this does not apply to it.",
    Why.MODEL_REPRODUCED: "Reproduced on your model.",
    Why.MODEL_ONCE_FIXED: "Reproduced on your model once qatdoctor.fixes was applied (--with-fixes); as "
    "given, an earlier failure hid it.",
    Why.MODEL_PASSED: "Your model has {construct}, but its run passed {stages} here: not reproduced.",
    Why.MODEL_BLOCKED: "Your model has {construct}, but {stages} failed in another way first, so this could not be "
    "checked (see the other findings).",
    Why.MODEL_NOT_SHOWN: "Your model has {construct}; the run did not get as far as showing it.",
    Why.MODEL_CANNOT_SHOW: "Your model has {construct}; the run cannot show this one (the rule rests on the scan and "
    "the matrix's measurements).",
    Why.LOG_SHOWS: "The input shows this error (line {line}, {how}).",
    Why.LOG_OUTSIDE_RANGE: "But the stated versions are outside this rule's range ({rule_range}): the message "
    "matches, the versions say otherwise, so no fix is offered.",
    Why.LOG_NOT_AIMET: "But the input never mentions AIMET, and this is an AIMET failure ({rule_range}): the same "
    "message may come from other code.",
    Why.LOG_APPLIES: "It applies to the stated environment: {matched}.",
    Why.LOG_ON_MESSAGE: "The input does not state everything the rule depends on ({rule_range}), so this rests on the "
    "message alone.",
    Why.LOG_MODEL_CONTAINS: "The input's model contains: {construct}.",
    Why.LOG_MODEL_CODE: "Not an environment or version problem: this error comes from the model's own code, so no "
    "install or version change fixes it.",
    Why.LOG_USER_FRAME: "It is raised from your code: {frame} (input line {line}).",
})  # fmt: skip


def reason_text(reason: Reason) -> str:
    """One reason as a sentence."""
    return REASON_PROSE[reason.code].format(
        construct=reason.construct, stages=", ".join(reason.stages), needs="; ".join(reason.needs), runs=reason.runs,
        line=reason.line, how=reason.how, rule_range=reason.rule_range, matched="; ".join(reason.matched),
        frame=reason.frame,
    )  # fmt: skip


def told(finding: Finding) -> str:
    """The finding's summary as shown: its reasons in words, then the summary of the rule or check."""
    return " ".join((*(reason_text(r) for r in finding.reasons), finding.summary))


class Finding(NamedTuple):
    """Something qatdoctor has to say about the environment or the user's model."""

    id: str
    title: str
    severity: Severity
    summary: str
    status: Status = Status.FAIL
    origin: str = "matrix"
    fixes: tuple[Fix, ...] = ()
    sources: tuple[Source, ...] = ()
    evidence: tuple[str, ...] = ()
    scope: Scope = Scope.ENVIRONMENT
    construct: str | None = None
    layers: tuple[str, ...] = ()
    likely: str | None = None
    # what the finding rests on: measured (on these versions), extrapolated (measured only on `measured_on`),
    # vendor-docs, reported (an issue) or inferred; None for findings that are not about a matrix rule
    basis: str | None = None
    measured_on: tuple[Measurement, ...] = ()
    # the probe exercised this matrix prediction and it passed (the finding is kept, downgraded)
    not_reproduced: bool = False
    # an unexplained probe failure of this stand-in model (None: of the import, or not a probe failure)
    stand_in: str | None = None
    # the facts it is about (a rule's `when` facts, a requirement check's fact): what the text view groups it by
    about: tuple[str, ...] = ()
    # the one line of evidence that shows it (a reproduced error first), for the short view; the rest is in -v
    headline: str | None = None
    # why it has its status, as data (set by diagnose/judge.py for rule findings); `told()` words them
    reasons: tuple[Reason, ...] = ()

    @property
    def failed(self) -> bool:
        """A failure that counts against the verdict (caveats never do)."""
        return self.status in FAILED and self.scope is not Scope.CAVEAT

    @property
    def counts_unknown(self) -> bool:
        """Undecided and relevant: an unknown that is not mere information, or a caveat that likely applies."""
        if self.scope is Scope.CAVEAT:
            return self.likely is not None
        return self.status is Status.UNKNOWN and self.severity is not Severity.INFO


STATUS_ORDER: Mapping[Status, int] = MappingProxyType(
    {Status.FAIL: 0, Status.SILENT_FAIL: 0, Status.UNKNOWN: 1, Status.PASS: 2}
)  # any other status: after these
SEVERITY_ORDER: Mapping[Severity, int] = MappingProxyType({Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2})


def finding_order(finding: Finding) -> tuple[int, int, int]:
    """Environment, then the user's model, then caveats; failures first, then unknowns, then passes; errors
    before warnings before info."""
    scope = 1 if finding.scope is Scope.CAVEAT else 0
    return scope, STATUS_ORDER.get(finding.status, len(STATUS_ORDER)), SEVERITY_ORDER[finding.severity]


class Change(NamedTuple):
    """One package move inside a recommendation."""

    package: str
    current: str | None
    target: str


@dataclass(frozen=True)
class Pin:
    """A package and its specifier (`==2.2.2+cu121`, `<1.24`)."""

    name: str
    spec: str

    def __str__(self) -> str:
        return f"{self.name}{self.spec}"


class CudaMove(NamedTuple):
    """A move that changes torch's CUDA major, and the driver floor the new one needs."""

    before: str
    after: str
    driver_min: str | None
    driver: str | None

    def describe(self) -> str:
        return (
            f"moves torch from CUDA {self.before} to CUDA {self.after}: needs NVIDIA driver >= "
            f"{self.driver_min or '?'} where it runs (driver: {self.driver or 'unknown here'}; check with "
            "--target-driver)"
        )


class ApiMove(NamedTuple):
    """A move to an aimet-torch with another QuantSim API (`v1` → `v2`), and how to port."""

    before: str
    after: str
    port_note: str

    @property
    def label(self) -> str:
        return f"{self.before} → {self.after} QuantSim API"

    def describe(self) -> str:
        return f"{self.label}: {self.port_note}"


class Recommendation(NamedTuple):
    """A concrete, installable way to a known-good combination (or a code change).

    `notes` is the prose that the -v view and the JSON show; renderers that need one piece read the field
    it comes from (`cuda_move`, `api_move`, `usage`, `model_failures`), never the prose."""

    id: str
    kind: str
    summary: str
    changes: tuple[Change, ...] = ()
    commands: tuple[str, ...] = ()
    constraints: tuple[str, ...] = ()
    lands_on: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # rules that still (or newly) fail after the move for the model's constructs: what it still needs
    model_failures: tuple[str, ...] = ()
    avoids: tuple[str, ...] = ()  # rules the move is chosen to remove
    pins: tuple[Pin, ...] = ()  # the whole set the constraints file pins
    index_url: str | None = None  # the extra index those pins need
    cuda_move: CudaMove | None = None
    api_move: ApiMove | None = None
    usage: str | None = None  # a code recommendation's code: how to apply the fix


class ErrorInfo(NamedTuple):
    """An exception seen in the target interpreter, as text."""

    type: str
    message: str
    frames: tuple[str, ...] = ()

    def first_line(self, limit: int = 240) -> str:
        """`Type: the message's first non-blank line` (cut at `limit`); just `Type` for an empty message."""
        line = first_line(self.message, limit=limit)
        return f"{self.type}: {line}" if line else self.type


class StageResult(NamedTuple):
    """One stage of one probe case; `layers` names the user's layers a check found (with --model)."""

    stage: str
    status: Status
    seconds: float = 0.0
    error: ErrorInfo | None = None
    check: str | None = None
    measured: str | None = None
    reason: str | None = None
    layers: tuple[str, ...] = ()


class ProbeCase(NamedTuple):
    """One tiny model in one mode, through every stage."""

    model: str
    mode: str
    stages: tuple[StageResult, ...]
    description: str = ""

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.stage == name), None)


class ConstructHit(NamedTuple):
    """Where a construct occurs in the user's model: how many layers (`total`), which, of which classes."""

    total: int
    layers: tuple[str, ...] = ()
    classes: Mapping[str, int] = MappingProxyType({})
    feeds: Mapping[str, tuple[str, ...]] = MappingProxyType({})


class FoldOutcome(NamedTuple):
    """fold_all_batch_norms on a copy of the user's model (original or prepared)."""

    pairs: int | None = None
    unfolded: tuple[str, ...] = ()
    max_abs_diff: float | None = None
    output_scale: float | None = None
    relative: float | None = None
    randomized_stats: int | None = None  # BN layers at identity statistics given random ones first (fold visible)


class ModelSpec(NamedTuple):
    """The user's model as given on the command line (`--model`, `--input-shape`, `--with-fixes`)."""

    spec: str
    input_shape: tuple[int, ...] | None = None
    with_fixes: bool = False


class ModelRun(NamedTuple):
    """The user's model through the real pipeline in the target: scan, stages, folds (and again, fixed)."""

    spec: str
    status: str
    error: ErrorInfo | None = None
    reason: str | None = None
    class_name: str | None = None
    modules: int = 0
    parameters: int = 0
    input_shapes: tuple[tuple[int, ...], ...] = ()
    constructs: Mapping[str, ConstructHit] = MappingProxyType({})
    scan_errors: tuple[str, ...] = ()
    stages: tuple[StageResult, ...] = ()
    fold: Mapping[str, FoldOutcome | None] = MappingProxyType({})
    bn_buffers: int | None = None
    bn_changed: int | None = None
    frozen_layers: tuple[str, ...] = ()
    timings: Mapping[str, float] = MappingProxyType({})
    fixes: Mapping[str, object] | None = None
    fixed: ModelRun | None = None
    ended_at: str | None = None  # where a run that did not finish ended: factory, scan, a stage, fixes
    input_source: str | None = None  # "factory" or "--input-shape"

    @property
    def ran(self) -> bool:
        return self.status == "ran"

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.stage == name), None)

    def failed_stages(self) -> tuple[StageResult, ...]:
        return tuple(s for s in self.stages if s.status in FAILED)


class ProbeRun(NamedTuple):
    """The whole probe: whether it ran, which API, and every case."""

    state: str
    api: str | None = None
    cases: tuple[ProbeCase, ...] = ()
    import_error: ErrorInfo | None = None
    exit_status: str | None = None
    stderr_tail: str | None = None
    versions: Mapping[str, str] = MappingProxyType({})
    timings: Mapping[str, float] = MappingProxyType({})
    reason: str | None = None
    model: ModelRun | None = None
    probe_error: ErrorInfo | None = None  # a failure of the probe script itself (not of AIMET or the model)
    notes: tuple[str, ...] = ()  # what the probe ignored of its request, or could not do with it
    quantsim_module: str | None = None  # the module QuantizationSimModel came from
    api_requested: str | None = None  # AIMET_DEFAULT_API as the probe saw it


class MatrixInfo(NamedTuple):
    """Which matrix a report was computed against."""

    path: str
    version: str
    updated: str
    sha256: str


class Report(NamedTuple):
    """The result of one qatdoctor command, ready for any renderer."""

    command: str
    verdict: Verdict
    facts: Facts
    findings: tuple[Finding, ...]
    recommendations: tuple[Recommendation, ...]
    matrix: MatrixInfo
    target: str
    probe: ProbeRun | None = None
    timings: Mapping[str, float] = MappingProxyType({})
    notes: tuple[str, ...] = ()
    extracted: Mapping[str, str] | None = None
    target_why: str | None = None  # how the target was chosen when --python was not given (environment/active.py)
