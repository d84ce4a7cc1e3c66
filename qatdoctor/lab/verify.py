"""`qatdoctor verify`: build the recommended set in a throwaway environment, probe it, compare with before.

The user's environment is never touched: the recommendation's pins go into a fresh env (the target's
Python minor) under `$QATDOCTOR_ENVS/verify/`, which is deleted afterwards unless `--keep`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from qatdoctor import core
from qatdoctor.environment.assume import apply_assumptions, what_if_facts
from qatdoctor.environment.collect import resolve_python
from qatdoctor.errors import InputError
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.versions import in_range, try_parse_version
from qatdoctor.knowledge.vocab import SET_PACKAGES
from qatdoctor.lab.cellplan import CellPlan, blockers, check_index, plan_cell, python_choices
from qatdoctor.lab.cellrun import CellRun, Tools, run_cell
from qatdoctor.lab.envbuild import EnvBuildError, InstallError, PythonNotFoundError, default_root, find_python
from qatdoctor.lab.verify_compare import Comparison, compare
from qatdoctor.records import Facts, Recommendation, Report, Verdict

VERSION_KINDS = ("keep-aimet", "keep-torch", "newest", "fresh", "current")


@dataclass(frozen=True)
class VerifyOptions:
    """What `qatdoctor verify` takes beyond the common options."""

    base: core.Options = field(default_factory=core.Options)
    pick: int = 1
    reproduce: bool = False
    installer: str = "auto"
    keep: bool = False
    root: Path | None = None
    tools: Tools = field(default_factory=Tools)
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class VerifyResult:
    """Both sides, the plan that was built, and the comparison."""

    before: Report
    after: Report
    plan: CellPlan
    recommendation: Recommendation | None
    comparison: Comparison
    run: CellRun
    hypothetical: bool

    @property
    def mode(self) -> str:
        return "reproduce" if self.recommendation is None else "recommendation"

    @property
    def fixes(self) -> bool:
        """The recommendation removed every failure it targeted and added no error-level failure."""
        return self.recommendation is not None and self.comparison.fixes_targets

    @property
    def exit_code(self) -> int:
        if self.recommendation is None:
            return 1 if self.after.verdict is Verdict.PROBLEMS else 0
        return 0 if self.fixes else 1


def run_verify(options: VerifyOptions) -> VerifyResult:
    """Diagnose the target, build what the chosen recommendation (or --reproduce) says, probe, compare."""
    base = options.base
    matrix = core.load_matrix(base.matrix)
    hypothetical = bool(base.assume) and base.python is None
    before = _before(options, matrix, hypothetical)
    recommendation = None if options.reproduce else _pick(before.recommendations, options.pick, hypothetical)
    plan = replace(_plan(matrix, before.facts, recommendation, base), extra=options.extra)
    reasons = blockers(matrix, plan)
    if reasons:
        raise EnvBuildError(f"cannot build {plan.describe()}: " + "; ".join(reasons))
    check_index(plan.index_url)
    notes = _notes(recommendation)
    try:
        run = _build_and_probe(plan, options, matrix)
    except InstallError as error:
        kept_numpy = plan.numpy is not None and (recommendation is None or "numpy" not in _pins(recommendation))
        if not kept_numpy:
            raise
        base.progress(f"the target's numpy{plan.numpy} does not fit the new set ({error.message}); retrying")
        notes.append(f"the target's numpy{plan.numpy} conflicts with this set: the installer chose numpy")
        plan = replace(plan, numpy=None)
        run = _build_and_probe(plan, options, matrix)
    notes.append(_built(run))
    assert run.probe is not None
    after = core.diagnose(
        run.facts,
        matrix,
        command="verify",
        target=f"throwaway environment: {plan.describe()}",
        probe=run.probe,
        timings={"build": run.build_seconds, "probe": run.probe_seconds},
        notes=notes,
    )
    comparison = compare(before, after, matrix, recommendation)
    return VerifyResult(before, after, plan, recommendation, comparison, run, hypothetical)


def _before(options: VerifyOptions, matrix: Matrix, hypothetical: bool) -> Report:
    """The original side: the target's facts and probe, or (hypothetical) the matrix's view of --assume."""
    base, tools = options.base, options.tools
    if hypothetical:
        facts = core.infer_missing(what_if_facts(base.assume, matrix.checked_libraries()), matrix)
        return core.diagnose(
            facts,
            matrix,
            command="verify",
            target="hypothetical environment (--assume)",
            notes=["before: the matrix only (a hypothetical environment is not probed)"],
        )
    python = resolve_python(base.python)
    base.progress(f"collecting facts from {python}")
    started = time.perf_counter()
    facts = apply_assumptions(tools.collector(python, runner=tools.runner, timeout=base.collect_timeout), base.assume)
    timings = {"collect": time.perf_counter() - started}
    probe = None
    if base.probe:
        started = time.perf_counter()
        probe = tools.prober(
            python,
            runner=tools.runner,
            timeout=base.probe_timeout,
            models=base.probe_models,
            progress=base.progress,
            model=base.model,
            constructs=matrix.constructs,
        )
        timings["probe"] = time.perf_counter() - started
    return core.diagnose(facts, matrix, command="verify", target=python, probe=probe, timings=timings, python=python)


def version_recommendations(recs: Sequence[Recommendation]) -> list[Recommendation]:
    return [r for r in recs if r.kind in VERSION_KINDS and r.pins]


def _pick(recs: Sequence[Recommendation], pick: int, hypothetical: bool) -> Recommendation | None:
    options = version_recommendations(recs)
    if not options:
        if hypothetical:
            return None  # reproduce the assumed set
        raise InputError(
            "nothing to verify: no version change is recommended for this environment",
            hint="give your model with --model FILE.py:FUNC (its failures drive the recommendations), or use "
            "--reproduce to rebuild and probe the environment's own set",
        )
    if not 1 <= pick <= len(options):
        raise InputError(f"--pick {pick}: there {'is' if len(options) == 1 else 'are'} {len(options)} "
                         f"version recommendation(s)")  # fmt: skip
    return options[pick - 1]


def _plan(matrix: Matrix, facts: Facts, rec: Recommendation | None, base: core.Options) -> CellPlan:
    """The recommendation's pins (or the environment's own set) on the target's Python minor."""
    # The index follows from torch's local tag (plan_cell): a `+cuXXX` that is PyPI's default build needs none.
    pins = _pins(rec) if rec is not None else _own_pins(facts)
    aimet, torch = pins.get("aimet-torch"), pins.get("torch")
    if aimet is None or torch is None:
        raise InputError(
            "verify needs the aimet-torch and torch versions to build",
            hint="add --assume aimet-torch=X --assume torch=Y",
        )
    numpy = pins.get("numpy") or _keep_numpy(matrix, facts, aimet)
    python = _python_minor(matrix, facts, aimet, torch, base)
    return plan_cell(matrix, aimet, torch, python, torchvision=pins.get("torchvision"), numpy=numpy)


def _pins(rec: Recommendation) -> dict[str, str]:
    """The recommendation's set: `name: version` (numpy: its specifier)."""
    return {p.name: p.spec if p.name == "numpy" else p.spec.removeprefix("==") for p in rec.pins}


def _own_pins(facts: Facts) -> dict[str, str]:
    return {name: value for name in SET_PACKAGES[:3] if (value := facts.value(name))}


def _keep_numpy(matrix: Matrix, facts: Facts, aimet: str) -> str | None:
    """The target's numpy, as `pip install` of the recommendation would keep it (if the release allows it)."""
    numpy = try_parse_version(facts.value("numpy") or "")
    version = try_parse_version(aimet)
    release = matrix.aimet_release(version) if version is not None else None
    if numpy is None or (release is not None and release.numpy is not None and not in_range(numpy, release.numpy)):
        return None
    return f"=={numpy.comparable}"


def _python_minor(matrix: Matrix, facts: Facts, aimet: str, torch: str, base: core.Options) -> str:
    """The target's minor; for a hypothetical set without one, the newest installable minor found here."""
    python = try_parse_version(facts.value("python") or "")
    if python is not None:
        return python.series
    choices = python_choices(matrix, aimet, torch)
    tried = []
    for minor in choices:
        try:
            find_python(minor, base.runner)
            return minor
        except PythonNotFoundError as error:
            tried.append(error.message)
    if not choices:
        raise EnvBuildError(f"no Python minor can install aimet-torch {aimet} with torch {torch} (per the matrix)")
    raise PythonNotFoundError(
        f"none of the Python versions aimet-torch {aimet} + torch {torch} install on ({', '.join(choices)}) "
        "was found here",
        hint="install one (e.g. `uv python install " + choices[0] + "`), or pass --assume python=X.Y",
    )


def _build_and_probe(plan: CellPlan, options: VerifyOptions, matrix: Matrix) -> CellRun:
    options.base.progress(f"building a throwaway environment: {plan.describe()}")
    return run_cell(
        plan,
        (options.root or default_root()) / "verify",
        tools=options.tools,
        installer=options.installer,
        keep=options.keep,
        throwaway=True,
        raise_build_errors=True,
        probe_timeout=options.base.probe_timeout,
        models=options.base.probe_models,
        log=options.base.progress,
        model=options.base.model,
        constructs=matrix.constructs,
    )


def _notes(rec: Recommendation | None) -> list[str]:
    return [f"verifying: {rec.summary}" if rec else "reproducing the stated set (no version change to verify)"]


def _built(run: CellRun) -> str:
    kept = f"kept at {run.kept}" if run.kept else "removed afterwards"
    return f"built with {run.installer} in {run.build_seconds:.0f}s; probe {run.probe_seconds:.0f}s; {kept}"
