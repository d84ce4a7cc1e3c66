"""The callable core behind the CLI: each command is one function returning a Report."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from qatdoctor.diagnose.evaluate import Evaluation, caveat_context, evaluate, is_clean, verdict_of
from qatdoctor.diagnose.expectations import expect_cuda, with_target_driver
from qatdoctor.diagnose.judge import Evidence
from qatdoctor.environment.assume import apply_assumptions, what_if_facts
from qatdoctor.environment.collect import choose_python, collect, resolve_python
from qatdoctor.environment.probe import DEFAULT_TIMEOUT
from qatdoctor.environment.runner import Runner, run, shield_thread
from qatdoctor.errors import InputError, QatdoctorError
from qatdoctor.jsonio import BUNDLE_FENCE, BUNDLE_FENCE_END, facts_from_dict, probe_from_dict
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.versions import try_parse_version
from qatdoctor.knowledge.vocab import SET_PACKAGES
from qatdoctor.records import (
    Fact,
    Facts,
    FactState,
    Finding,
    Fix,
    MatrixInfo,
    ModelSpec,
    ProbeRun,
    Recommendation,
    Report,
    Scope,
)

Progress = Callable[[str], None]
T = TypeVar("T")


class NoKnownGoodError(QatdoctorError):
    """No known-good set can be installed on this Python/glibc/driver."""


@dataclass(frozen=True)
class Options:
    """What every environment command takes."""

    python: str | None = None
    assume: Sequence[str] = ()
    matrix: Path | None = None
    runner: Runner = run
    progress: Progress = field(default=lambda line: None)
    collect_timeout: float = 30.0
    probe: bool = True
    probe_timeout: float = DEFAULT_TIMEOUT
    probe_models: Sequence[str] = ()
    expect_cuda: str | None = None
    target_driver: str | None = None
    model: ModelSpec | None = None
    use_cache: bool = True


def load_matrix(path: Path | None) -> Matrix:
    return load(path)


def matrix_info(matrix: Matrix) -> MatrixInfo:
    return MatrixInfo(matrix.path, matrix.matrix_version, matrix.updated.isoformat(), matrix.sha256)


def target_facts(options: Options) -> tuple[Facts, dict[str, float]]:
    """Collect facts in the target interpreter, then overlay `--assume`."""
    started = time.perf_counter()
    options.progress(f"collecting facts from {options.python or 'the current interpreter'}")
    facts = collect(options.python, runner=options.runner, timeout=options.collect_timeout, matrix=options.matrix)
    timings = {"collect": time.perf_counter() - started}
    facts = with_target_driver(apply_assumptions(facts, options.assume), options.target_driver)
    return facts, timings


def pip_python(facts: Facts, resolved: str | None = None) -> str:
    """The interpreter to put in pip commands: the target's absolute path when qatdoctor resolved it (runnable
    as printed; renderers shorten the home directory for display), else the collected path, else `python` (a
    hypothetical environment or a pasted log names no interpreter)."""
    return resolved or _expand(facts.value("python-executable")) or "python"


def _expand(path: str | None) -> str | None:
    """The collector shortens the home directory to `~` (it never sends it); a command needs it back."""
    return str(Path(path).expanduser()) if path and path.startswith("~/") else path


def diagnose(
    facts: Facts,
    matrix: Matrix,
    *,
    command: str,
    target: str,
    probe: ProbeRun | None = None,
    extra_findings: Sequence[Finding] = (),
    expected_cuda: str | None = None,
    timings: dict[str, float] | None = None,
    notes: Sequence[str] = (),
    python: str | None = None,
) -> Report:
    """The callers' keyword form of `diagnosis(Inputs(...))`."""
    inputs = Inputs(facts, matrix, command, target, probe, tuple(extra_findings), expected_cuda,
                    dict(timings or {}), tuple(notes), python)  # fmt: skip
    return diagnosis(inputs)


@dataclass(frozen=True)
class Inputs:
    """What one diagnosis reads; `python` is the target's resolved interpreter path, `extra_findings` a pasted
    log's (explain)."""

    facts: Facts
    matrix: Matrix
    command: str
    target: str
    probe: ProbeRun | None = None
    extra_findings: tuple[Finding, ...] = ()
    expected_cuda: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    python: str | None = None


class Gathered(NamedTuple):
    """The evidence, before any judgement: the static evaluation, the stand-ins' findings with the evidence about
    each rule, and the findings from elsewhere (a pasted log, the CUDA expectation)."""

    evaluation: Evaluation
    python: str
    findings: tuple[Finding, ...]
    evidence: Mapping[str, Evidence]
    elsewhere: tuple[Finding, ...]


def diagnosis(inputs: Inputs) -> Report:
    """gather → judge → recommend → assemble."""
    started = time.perf_counter()
    gathered = gather(inputs)
    findings = judge(inputs, gathered)
    recommendations, findings = recommend_for(inputs, gathered, findings)
    return assemble(inputs, gathered.evaluation, findings, recommendations, time.perf_counter() - started)


def gather(inputs: Inputs) -> Gathered:
    """The facts against the matrix, then the stand-ins' evidence judged into it."""
    from qatdoctor.diagnose.probe_findings import stand_in_findings

    python = pip_python(inputs.facts, inputs.python)
    evaluation = evaluate(inputs.facts, inputs.matrix, python=python)
    elsewhere = (*inputs.extra_findings, *expect_cuda(evaluation.facts, inputs.expected_cuda))
    findings, evidence = stand_in_findings(
        inputs.probe, evaluation.facts, inputs.matrix, evaluation.findings, python=python
    )
    return Gathered(evaluation, python, tuple(findings), evidence, elsewhere)


def judge(inputs: Inputs, gathered: Gathered) -> tuple[Finding, ...]:
    """Every finding judged with all the evidence: the user's model settles the caveats it can."""
    findings = (*gathered.findings, *gathered.elsewhere)
    model = inputs.probe.model if inputs.probe is not None else None
    if model is not None:
        from qatdoctor.diagnose.model_findings import model_findings

        findings = tuple(model_findings(model, findings, inputs.matrix, gathered.evidence, python=gathered.python))
    facts = gathered.evaluation.facts
    return tuple(f for f in (caveat_context(f, facts, inputs.matrix) for f in findings) if f is not None)


def recommend_for(
    inputs: Inputs, gathered: Gathered, findings: tuple[Finding, ...]
) -> tuple[tuple[Recommendation, ...], tuple[Finding, ...]]:
    """The recommendations for what fails here, and the findings with their version fixes made whole sets.
    Fixes are driven by what fails: the environment, and the user's model when qatdoctor has seen it."""
    matrix, evaluation, python = inputs.matrix, gathered.evaluation, gathered.python
    avoid = tuple(f for f in findings if f.failed and (f.origin == "probe" or _avoidable_by_version(f, matrix)))
    recommendations: tuple[Recommendation, ...] = ()
    if avoid or not is_clean(evaluation):  # the candidate search is only imported when there is something to fix
        from qatdoctor.recommend.ranking import recommend

        features = _model_features(inputs.probe, findings)
        recommendations = recommend(evaluation, matrix, python=python, failing=avoid, features=features)
    return recommendations, concrete_fixes(findings, evaluation, matrix, python, recommendations)


def _model_features(probe: ProbeRun | None, findings: Sequence[Finding]) -> frozenset[str] | None:
    """The constructs of the user's model: its scan, or (a pasted log that shows it failing) the failing
    findings' constructs; None when nothing is known about it."""
    model = probe.model if probe is not None else None
    if model is not None and model.ran:
        return frozenset(c for c, hit in model.constructs.items() if hit.total)
    shown = {f.construct for f in findings if f.scope is Scope.MODEL and f.failed and f.construct}
    return frozenset(shown) if shown else None


def assemble(
    inputs: Inputs,
    evaluation: Evaluation,
    findings: tuple[Finding, ...],
    recommendations: tuple[Recommendation, ...],
    seconds: float,
) -> Report:
    """The report, its verdict read from the findings."""
    return Report(
        command=inputs.command,
        verdict=verdict_of(findings),
        facts=evaluation.facts,
        findings=findings,
        recommendations=recommendations,
        matrix=matrix_info(inputs.matrix),
        target=inputs.target,
        probe=inputs.probe,
        timings={**inputs.timings, "evaluate": seconds},
        notes=inputs.notes,
    )


def concrete_fixes(
    findings: Sequence[Finding],
    evaluation: Evaluation,
    matrix: Matrix,
    python: str,
    recommendations: Sequence[Recommendation],
) -> tuple[Finding, ...]:
    """Every version fix of a finding as the whole set it lands on, checked against the matrix: the
    recommendation that already carries that move when there is one (so the two never disagree), else the
    closest known-good set with it; a move no set here can carry says so instead of printing a command."""
    if not any(fx.package in SET_PACKAGES and fx.spec for f in findings for fx in f.fixes):
        return tuple(findings)
    from qatdoctor.recommend import ranking as recommend

    memo: recommend.Memo = {}
    made: dict[tuple[str, str], Fix] = {}

    def whole(fix: Fix) -> Fix:
        if fix.package not in SET_PACKAGES or fix.spec is None:
            return fix
        key = (fix.package, fix.spec)
        if key not in made:
            number, rec = next(
                ((n, r) for n, r in enumerate(recommendations, 1) if _carries(r, fix.package, fix.spec)), (0, None)
            )
            where = f"recommendation {number}: " if rec is not None else ""
            rec = rec or recommend.set_with(
                evaluation, matrix, python=python, package=fix.package, spec=fix.spec, memo=memo
            )
            if rec is None:
                made[key] = fix._replace(
                    summary=f"{fix.summary} (no known-good set with {fix.package}{fix.spec} installs on this "
                    "Python/glibc/driver: see the recommendations)",
                    commands=(),
                )
            else:
                changes = ", ".join(f"{c.package} {c.current or '(none)'} → {c.target}" for c in rec.changes)
                made[key] = fix._replace(
                    commands=rec.commands, lands_on=f"{where}{rec.summary}" + (f" ({changes})" if changes else "")
                )
        return made[key]

    return tuple(f._replace(fixes=tuple(whole(fx) for fx in f.fixes)) if f.fixes else f for f in findings)


def _carries(rec: Recommendation, package: str, spec: str) -> bool:
    """A version recommendation whose pin for `package` is inside `spec`."""
    from packaging.specifiers import SpecifierSet

    for pin in rec.pins:
        if pin.name == package and pin.spec.startswith("=="):
            version = try_parse_version(pin.spec.removeprefix("=="))
            return version is not None and SpecifierSet(spec).contains(version.comparable, prereleases=True)
    return False


def _avoidable_by_version(finding: Finding, matrix: Matrix) -> bool:
    """A failure of the user's model the matrix says a version change removes (e.g. the 1.x BN-subclass crash)."""
    rule = matrix.rule(finding.id)
    return rule is not None and finding.scope is Scope.MODEL and rule.has_version_fix()


def run_check(options: Options) -> Report:
    """`qatdoctor check`: collect, probe (unless disabled), evaluate, recommend.

    The collector, the probe and the matrix parser run side by side: they share nothing until evaluation.
    """
    # the matrix is needed before anything starts only to check --models; otherwise it loads beside the collector
    matrix = load_matrix(options.matrix) if options.probe_models else None
    known = matrix.probe_vocabulary("model") if matrix is not None else ()
    unknown = [m for m in options.probe_models if m not in known]
    if unknown:
        raise InputError(f"unknown probe model {unknown[0]!r} (known: {', '.join(known)})")
    if options.model is not None and not options.probe:
        raise InputError("--model needs the probe (drop --no-probe): the model is examined in the target")
    collecting = _background(target_facts, options)
    notes: list[str] = []
    cached, fingerprint = None, None
    if options.probe and options.use_cache:
        # The stand-ins' result depends only on the installed set: an unchanged environment is not probed again
        # (with --model only the user's model runs; its own result is never cached).
        from qatdoctor.environment import probe_cache as cache
        from qatdoctor.environment.probe import probe_script

        matrix = matrix or load_matrix(options.matrix)  # while the collector runs: the lookup's file walk follows
        collected = collecting()
        collecting = _done(collected)
        fingerprint = cache.key(resolve_python(options.python), collected[0], options.probe_models, probe_script())
        lookup = cache.load(fingerprint, collected[0]) if fingerprint else None
        cached = (lookup.probe, lookup.saved) if lookup is not None and lookup.probe is not None else None
        if lookup is not None and (miss := cache.describe_miss(lookup)) is not None:
            notes.append(miss)
    if matrix is None and options.model is not None:
        matrix = load_matrix(options.matrix)
    scan = matrix if options.model is not None else None  # the constructs go to the probe with --model only
    probing = None
    if options.probe and (cached is None or options.model is not None):
        stand_ins = cached is None
        probing = _background(lambda o: _timed_probe(o, scan, stand_ins=stand_ins), options)
    matrix = matrix or load_matrix(options.matrix)
    facts, timings = collecting()
    probe, probe_seconds = probing() if probing is not None else (None, 0.0)
    if cached is not None:
        probe = _with_cached_stand_ins(cached[0], probe)
        notes.append(f"probe: stand-ins' cached result from {cached[1]} (same interpreter, installed packages and "
                     "probe; --no-cache reruns them)")  # fmt: skip
    elif probe is not None and fingerprint is not None:
        cache.save(fingerprint, probe._replace(model=None), facts)
    if probe is not None:
        timings["probe"] = probe_seconds
        if options.assume:
            notes.append("the probe ran on the real environment; --assume changed only the matrix checks")
    else:
        notes.append("probe skipped (--no-probe): findings come from the matrix only")
    chosen = choose_python(options.python)
    report = diagnose(
        facts,
        matrix,
        command="check",
        target=chosen.python,
        probe=probe,
        expected_cuda=options.expect_cuda,
        timings=timings,
        notes=notes,
        python=chosen.python,
    )
    return report._replace(target_why=chosen.why)


def _done(value: T) -> Callable[[], T]:
    """A result already in hand, in the shape `_background` returns."""
    return lambda: value


def _background(work: Callable[[Options], T], options: Options) -> Callable[[], T]:
    """Start `work(options)` on a thread; the returned function waits and returns (or re-raises) its result.

    A plain thread, not concurrent.futures: that module (and the logging it imports) costs ~5 ms per run.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        shield_thread()  # Ctrl-C / SIGTERM reach the main thread, which cleans up
        try:
            outcome.append(work(options))
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def wait() -> T:
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]

    return wait


def _timed_probe(options: Options, matrix: Matrix | None, *, stand_ins: bool = True) -> tuple[ProbeRun, float]:
    from qatdoctor.environment.probe import run_probe

    started = time.perf_counter()
    probe = run_probe(
        resolve_python(options.python),
        runner=options.runner,
        timeout=options.probe_timeout,
        models=options.probe_models if stand_ins else (),
        progress=options.progress,
        model=options.model,
        constructs=matrix.constructs if matrix is not None else (),
        stand_ins=stand_ins,
        vocabulary={k: matrix.probe_vocabulary(k[:-1]) for k in ("stages", "checks", "detectors")} if matrix else None,
    )
    return probe, time.perf_counter() - started


def _with_cached_stand_ins(cached: ProbeRun, fresh: ProbeRun | None) -> ProbeRun:
    """The cached stand-ins with this run's model; a fresh run that could not import AIMET wins as it is."""
    if fresh is None:
        return cached
    if fresh.state != "ran":
        return fresh
    return cached._replace(model=fresh.model)


def run_probe_only(options: Options) -> Report:
    """`qatdoctor probe`: the probe's table and the findings it produced, nothing from the matrix alone."""
    report = run_check(replace(options, probe=True))
    return report._replace(
        command="probe",
        findings=tuple(f for f in report.findings if f.origin == "probe"),
        recommendations=tuple(r for r in report.recommendations if r.kind == "code"),
    )


def run_resolve(options: Options) -> Report:
    """`qatdoctor resolve`: the same diagnosis for a hypothetical environment given with --assume."""
    matrix = load_matrix(options.matrix)
    facts = infer_missing(what_if_facts(options.assume, matrix.checked_libraries()), matrix)
    return diagnose(facts, matrix, command="resolve", target="hypothetical environment (--assume)")


def infer_missing(facts: Facts, matrix: Matrix) -> Facts:
    """For a what-if: torchvision is the one built for the stated torch unless stated otherwise."""
    torch = try_parse_version(facts.value("torch") or "")
    vision = facts.get("torchvision")
    if torch is None or vision.state is not FactState.UNKNOWN:
        return facts
    if torch.local and not (torch.local.startswith("cu") or torch.local == "cpu"):
        return facts  # a source build (+git…) has no release torchvision paired with it: it stays unknown
    series = matrix.torch_series(torch.series)
    paired = series.torchvision.get(str(torch.comparable)) if series else None
    if paired is None:
        return facts
    local = f"+{torch.local}" if torch.version.local else ""
    inferred = Fact.known(
        f"{paired}{local}", origin="inferred", detail=f"the release paired with torch {torch.comparable}"
    )
    return facts.with_values({"torchvision": inferred})


def run_pin(options: Options, *, fresh: bool) -> Recommendation:
    """The known-good set to pin: for the target environment, or (fresh) for an empty one on its Python."""
    matrix = load_matrix(options.matrix)
    facts, _ = target_facts(options)
    if fresh:
        empty = {
            name: Fact.absent("fresh install (--fresh)") for name in SET_PACKAGES
        }
        facts = facts.with_values({k: v for k, v in empty.items() if k not in _assumed(facts)})
    from qatdoctor.recommend.ranking import best_known_good

    recommendation = best_known_good(facts, matrix, pip_python(facts, resolve_python(options.python)))
    if recommendation is None:
        python = facts.value("python") or "this Python"
        raise NoKnownGoodError(
            f"no known-good aimet-torch/torch set installs on Python {python} with this glibc/driver",
            hint="check `qatdoctor check` for what rules it out, or point --matrix at a newer matrix",
        )
    return recommendation


def run_report(options: Options, from_report: Path | None = None) -> Report:
    """`qatdoctor report`: a full check, or a saved JSON report re-evaluated against the current matrix."""
    if from_report is None:
        return run_check(options)._replace(command="report")
    payload = read_saved_report(from_report)
    matrix = load_matrix(options.matrix)
    try:
        facts = facts_from_dict(payload["facts"])
        probe = probe_from_dict(payload.get("probe"))
        saved = payload.get("matrix") or {}
        saved = saved if isinstance(saved, dict) else {}
        notes_in = payload.get("notes") or []
        notes = [
            f"re-evaluated {from_report.name}: saved with matrix {str(saved.get('version', '?'))[:40]} "
            f"(verdict then: {str(payload.get('verdict', '?'))[:20]}); evaluated now with matrix "
            f"{matrix.matrix_version}",
            *(str(note) for note in (notes_in if isinstance(notes_in, list) else [notes_in])),
        ]
        target = f"{str(payload.get('target', 'unknown'))[:500]} (from {from_report.name})"
        return diagnose(facts, matrix, command="report", target=target, probe=probe, notes=notes)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:  # a field of the wrong shape
        raise InputError(f"{from_report} is not a usable qatdoctor report ({type(error).__name__}: {error})") from None


SAVED_REPORT_MAX = 64 << 20  # bytes: a report is ~100 KB; anything this large is not one


def read_saved_report(path: Path) -> dict[str, Any]:
    """A report saved with `--format json`, or the JSON block of a `qatdoctor report` markdown bundle.

    Linear time whatever the file holds: the bundle's block is found with `rfind`/`find` (the last ```json
    fence, up to the next closing fence), never with a backtracking pattern; terminal control characters and
    escape sequences are stripped from every string before anything is displayed.
    """
    from qatdoctor import bounded
    from qatdoctor.transform.controls import printable_data

    text = bounded.read_text(path, limit=SAVED_REPORT_MAX, what="saved report")  # a FIFO or /dev/zero: bounded
    fence = text.rfind(BUNDLE_FENCE)
    if fence != -1:
        start = fence + len(BUNDLE_FENCE)
        end = text.find(BUNDLE_FENCE_END, start)
        text = text[start : end if end != -1 else len(text)]
    payload = bounded.loads(text, what=f"{path}: the report")  # nesting bounded: printable_data recurses
    if not isinstance(payload, dict) or payload.get("schema_version") != 1 or "facts" not in payload:
        raise InputError(f"{path} is not a qatdoctor JSON report (schema_version 1 with facts)")
    return printable_data(payload)


def _assumed(facts: Facts) -> set[str]:
    return {name for name, fact in facts.values.items() if fact.origin == "assumed"}
