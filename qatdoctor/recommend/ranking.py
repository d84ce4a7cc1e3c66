"""From findings to moves: the smallest version change that lands on a known-good combination.

Like pip-audit's fix loop, each candidate is checked by re-running the full evaluation on the facts it would
produce, so a recommendation can never contradict a rule. Python, glibc, the driver and the GPUs are held
fixed: pip cannot change them, so a candidate they rule out is never offered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet

from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.evaluate import Evaluation, could_be_good, cuda_from_local, evaluate, is_clean
from qatdoctor.diagnose.requirements import cuda_major
from qatdoctor.knowledge.entries import AimetRelease, Matrix, Rule, TorchSeries
from qatdoctor.knowledge.versions import ParsedVersion, in_range, try_parse_version
from qatdoctor.knowledge.vocab import SET_PACKAGES
from qatdoctor.recommend.commands import CUDA_INDEX, constraints_lines, pip_install
from qatdoctor.records import (
    FAILED,
    ApiMove,
    Change,
    CudaMove,
    Fact,
    Facts,
    FactState,
    Finding,
    Pin,
    Recommendation,
    Scope,
    Severity,
    Status,
)

PYPI = "pypi"
# Candidates already evaluated in one search, by (aimet-torch, torch, CUDA build): the passes overlap.
Memo = dict[tuple[str, str, "str | None"], "Candidate | None"]


@dataclass(frozen=True)
class Candidate:
    """One concrete set of versions, and how it evaluated."""

    aimet: AimetRelease
    torch: ParsedVersion
    series: TorchSeries
    variant: str | None
    torchvision: str
    numpy: str | None
    evaluation: Evaluation

    def pins(self) -> list[Pin]:
        local = f"+{self.variant}" if self.variant else ""
        pins = [
            Pin("aimet-torch", f"=={self.aimet.version}"),
            Pin("torch", f"=={self.torch.comparable}{local}"),
            Pin("torchvision", f"=={self.torchvision}{local}"),
        ]
        if self.numpy:  # always a range: the release's numpy range, or a failing rule's pin
            pins.append(Pin("numpy", self.numpy))
        return pins

    @property
    def index_url(self) -> str | None:
        return f"{CUDA_INDEX}/{self.variant}" if self.variant else None


def recommend(
    evaluation: Evaluation,
    matrix: Matrix,
    *,
    python: str = "python",
    failing: Sequence[Finding] = (),
    features: frozenset[str] | None = None,
) -> tuple[Recommendation, ...]:
    """Alternatives (keep aimet-torch / keep torch / newest set) plus the code fixes to make.

    `failing` are findings beyond the static ones: reproduced failures (errors) must not match a candidate;
    failures of the user's model that a version change removes get extra alternatives that avoid them too.
    `features` are the constructs of the user's model (`--model`; None when it was not examined): a move that
    leaves or adds a failure for them never ranks above one that does not, and when no move clears them all the
    code fixes come first.
    """
    # Only rules a version change can remove constrain the search; the rest need code fixes on every version.
    movable = [(f, r) for f in failing if (r := matrix.rule(f.id)) is not None and r.has_version_fix()]
    hard = tuple(r for f, r in movable if _is_error(f))
    soft = tuple(r for f, r in movable if not _is_error(f))
    memo: Memo = {}
    moves = _version_moves(evaluation, matrix, python, hard, memo, features) if not is_clean(evaluation) or hard else []
    if soft:
        moves += _version_moves(evaluation, matrix, python, (*hard, *soft), memo, features)
    unique = list({rec.commands: rec for rec in reversed(moves)}.values())[::-1]
    if features is not None:
        unique.sort(key=lambda rec: len(rec.model_failures))  # stable: the search's order breaks ties
    # Code fixes for what was reproduced or motivates a move; caveats keep theirs inside the finding.
    code = _code_fixes((f for f in (*failing, *evaluation.findings) if _is_error(f) or f in failing), matrix)
    if features is not None and code and all(rec.model_failures for rec in unique):
        return (*code, *unique)  # no version clears the model's failures: the code change is the fix
    return (*unique, *code)


# Real numpy releases that stand for a planned numpy range when comparing it with a fix's range.
_NUMPY_SAMPLES = ("2.4.6", "2.2.6", "2.0.2", "1.26.4", "1.24.4", "1.23.5", "1.22.4", "1.21.6")


def set_with(
    evaluation: Evaluation, matrix: Matrix, *, python: str, package: str, spec: str, memo: Memo | None = None
) -> Recommendation | None:
    """The known-good set closest to the installed one in which `package` is in `spec`: a finding's version fix
    made whole (pip-audit's fix loop: every candidate is re-evaluated against the whole matrix), or None when no
    such set installs here (Python, glibc and the driver are held fixed)."""
    wanted = SpecifierSet(spec)
    memo = {} if memo is None else memo
    facts = evaluation.facts
    now_aimet, now_torch = _version(facts, "aimet-torch"), _version(facts, "torch")
    releases = [
        r for r in _installable_aimets(facts, matrix) if package != "aimet-torch" or in_range(r.version, wanted)
    ]
    # The nearest aimet-torch release first (the installed one when the fix moves another package); the first
    # release with any known-good set ends the search, so a fix costs a few evaluations, not the whole grid.
    def nearest(release: AimetRelease) -> tuple[int, ...]:
        same = now_aimet is not None and release.version.comparable == now_aimet.comparable
        return (0 if same else 1, *(_aimet_distance(release, now_aimet) if now_aimet else ()))

    for release in sorted(releases, key=nearest):
        options = [
            c
            for c in _torch_options(facts, matrix, release, memo)
            if is_clean(c.evaluation) and _satisfies(c, facts, package, wanted)
        ]
        if options:
            best = min(options, key=lambda c: (len(_changes(c, facts)), *_torch_distance(c, now_torch)))
            return _as_recommendation("fix", best, facts, python, (), matrix)
    return None


def _satisfies(c: Candidate, facts: Facts, package: str, wanted: SpecifierSet) -> bool:
    if package == "aimet-torch":
        return in_range(c.aimet.version, wanted)
    if package == "torch":
        return in_range(c.torch, wanted)
    if package == "torchvision":
        return (v := try_parse_version(c.torchvision)) is not None and in_range(v, wanted)
    if package == "numpy":
        if c.numpy is None:  # the installed numpy stays
            return (v := _version(facts, "numpy")) is not None and in_range(v, wanted)
        planned = SpecifierSet(c.numpy)  # a range (see Candidate.pins)
        allowed = [s for s in _NUMPY_SAMPLES if planned.contains(s)]
        return bool(allowed) and all(wanted.contains(s) for s in allowed)
    return False


def _is_error(finding: Finding) -> bool:
    return finding.failed and finding.severity is Severity.ERROR


def best_known_good(facts: Facts, matrix: Matrix, python: str = "python") -> Recommendation | None:
    """The set to pin: the current one if clean, else the first alternative."""
    evaluation = evaluate(facts, matrix)  # its findings' fix commands are not used here
    if is_clean(evaluation):
        return _current_as_recommendation(evaluation.facts, evaluation, python)
    moves = _version_moves(evaluation, matrix, python, (), {})
    return moves[0] if moves else None


def _version_moves(
    evaluation: Evaluation,
    matrix: Matrix,
    python: str,
    avoid: tuple[Rule, ...],
    memo: Memo,
    features: frozenset[str] | None = None,
) -> list[Recommendation]:
    facts = evaluation.facts
    aimet_now = _version(facts, "aimet-torch")
    torch_now = _version(facts, "torch")
    current = matrix.aimet_release(aimet_now) if aimet_now else None

    def acceptable(candidates: Iterable[Candidate]) -> list[Candidate]:
        return [c for c in candidates if is_clean(c.evaluation) and not _still_matches(avoid, c)]

    moves: list[tuple[str, Candidate]] = []
    if current is not None and not current.yanked and not current.proposed:
        options = acceptable(_torch_options(facts, matrix, current, memo))
        if options:
            nearest = min(
                options, key=lambda c: (_hazards(c), not _measured(c, matrix), *_torch_distance(c, torch_now))
            )
            moves.append(("keep-aimet", nearest))
    if torch_now is not None and matrix.torch_series(torch_now.series) is not None:
        options = acceptable(
            c
            for a in _installable_aimets(facts, matrix)
            for c in _torch_options(facts, matrix, a, memo, fixed=torch_now)
        )
        if options:
            api_now = facts.value("aimet-api")
            moves.append(
                (
                    "keep-torch",
                    min(
                        options,
                        key=lambda c: (
                            _api_change(c, api_now),
                            _hazards(c),
                            not _measured(c, matrix),
                            *_aimet_distance(c.aimet, aimet_now),
                        ),
                    ),
                )
            )
    newest = _newest(facts, matrix, acceptable, memo)
    if newest is not None:
        moves.append(("fresh" if aimet_now is None else "newest", newest))
    # With the user's model: fewest failures for its constructs first. Without it: alternatives that bring
    # caveats the current set does not have go last (e.g. 2.0.0's SiLU failure).
    present = {r.id for r in _hazard_rules(evaluation.facts, matrix)}
    moves.sort(
        key=lambda move: (
            len(_hazard_rules(move[1].evaluation.facts, matrix, features)) if features is not None else 0,
            len(_new_hazards(move[1], matrix, present)),
        )
    )
    seen: set[tuple[str, ...]] = set()
    out = []
    for kind, candidate in moves:
        key = tuple(str(p) for p in candidate.pins())
        if key not in seen:
            seen.add(key)
            out.append(_as_recommendation(kind, candidate, facts, python, avoid, matrix, present, features))
    return out


def _hazard_rules(facts: Facts, matrix: Matrix, features: AbstractSet[str] | None = None) -> list[Rule]:
    """Model-scope known-bad errors that apply to these versions (for models with `features`, when given)."""
    return [
        r
        for r in matrix.rules
        if r.scope == "model"
        and r.kind == "bad"
        and r.severity == "error"
        and not r.triage_only
        and (features is None or r.model_feature in features)
        and evaluate_all(r.when, facts).value is True
    ]


def _new_hazards(candidate: Candidate, matrix: Matrix, present: AbstractSet[str]) -> list[Rule]:
    return [r for r in _hazard_rules(candidate.evaluation.facts, matrix) if r.id not in present]


def _newest(
    facts: Facts, matrix: Matrix, acceptable: Callable[[Iterable[Candidate]], list[Candidate]], memo: Memo
) -> Candidate | None:
    """The newest aimet-torch release that installs here, with the torch its wheel was built with if that is
    known-good (the vendor tested it), else its newest known-good torch."""
    for release in sorted(_installable_aimets(facts, matrix), key=lambda a: a.version.comparable, reverse=True):
        options = acceptable(_torch_options(facts, matrix, release, memo))
        if options:
            return max(
                options, key=lambda c: (-_hazards(c), _measured(c, matrix), _is_build_torch(c), c.torch.comparable)
            )
    return None


def _measured(candidate: Candidate, matrix: Matrix) -> bool:
    """A landing we ran (a measured known-good rule), preferred over one only the vendor declares."""
    return matrix.measured_landing(candidate.evaluation.lands_on, candidate.evaluation.facts)


def _is_build_torch(candidate: Candidate) -> bool:
    built = candidate.aimet.built_with_torch
    return built is not None and built.series == candidate.torch.series


def _still_matches(avoid: tuple[Rule, ...], candidate: Candidate) -> bool:
    return any(evaluate_all(rule.when, candidate.evaluation.facts).value for rule in avoid)


def _api_change(candidate: Candidate, api_now: str | None) -> int:
    """Moving between the legacy v1 and the v2 QuantSim API means code changes: prefer staying."""
    return int(api_now is not None and candidate.evaluation.facts.value("aimet-api") != api_now)


def _hazards(candidate: Candidate) -> int:
    """Model-scoped known-bad rules that still apply to the candidate (fewer is better)."""
    return sum(1 for f in candidate.evaluation.findings if f.construct is not None and f.severity is Severity.ERROR)


def _version(facts: Facts, name: str) -> ParsedVersion | None:
    value = facts.value(name)
    return try_parse_version(value) if value else None


def _python_minor(facts: Facts) -> str | None:
    python = _version(facts, "python")
    return python.series if python else None


def _installable_aimets(facts: Facts, matrix: Matrix) -> Iterator[AimetRelease]:
    python = _version(facts, "python")
    for release in matrix.aimet:
        if release.yanked or release.proposed:  # a proposed entry is never recommended
            continue
        if python is not None and not in_range(python, release.requires_python):
            continue
        yield release


def _torch_options(
    facts: Facts, matrix: Matrix, aimet: AimetRelease, memo: Memo, *, fixed: ParsedVersion | None = None
) -> Iterator[Candidate]:
    """Candidate torch builds for one aimet-torch release, each fully evaluated (lazily)."""
    minor = _python_minor(facts)
    for series in matrix.torch:
        if minor is not None and minor not in series.python:
            continue
        if fixed is not None and series.series != fixed.series:
            continue
        releases = [r for r in series.releases if fixed is None or r.comparable == fixed.comparable]
        releases = [r for r in releases if not series.is_proposed(r)]  # a proposed release is never offered
        if aimet.torch is not None:
            releases = [r for r in releases if in_range(r, aimet.torch)]
        if not releases:
            continue
        chosen = cuda_variant(facts, matrix, series, fixed)
        if chosen is None:
            continue
        installed = _version(facts, "torch")
        # The newest patch of a series stands for the series, unless the user's own release is in it.
        for release in sorted(releases, key=lambda r: r.comparable, reverse=True)[: 1 if fixed is None else None]:
            variant: str | None = chosen
            if chosen == PYPI:
                # An installed `2.2.2+cu118` satisfies a plain `torch==2.2.2`: only then name PyPI's default build
                # explicitly (and its index) to replace it; any other release from PyPI needs no local tag.
                local = (installed.local or "") if installed is not None else ""
                same = installed is not None and installed.comparable == release.comparable
                variant = series.pypi_cuda if same and local.startswith("cu") and local != series.pypi_cuda else None
            key = (str(aimet.version), str(release), variant)
            if key not in memo:
                memo[key] = _candidate(facts, matrix, aimet, series, release, variant)
            candidate = memo[key]
            if candidate is not None:
                yield candidate


def cuda_variant(facts: Facts, matrix: Matrix, series: TorchSeries, fixed: ParsedVersion | None) -> str | None:
    """PYPI for PyPI's default build, a `cuXXX` tag when another build is needed, None when none fits.

    With a known driver: the first build it runs (PyPI's first). Without one (unknown, or a build host with no
    GPU): the build that keeps the environment's CUDA major, PyPI's when it does — moving to another major is
    only safe where the driver is known to support it (a note on the recommendation says what it needs)."""
    if fixed is not None and fixed.local and fixed.local != series.pypi_cuda:
        return fixed.local
    driver = _version(facts, "driver")
    options = [PYPI, *(v for v in sorted(series.cuda_variants, reverse=True) if v != series.pypi_cuda)]
    if driver is None:
        keeping = [o for o in options if _major_of(series, o) == _installed_major(facts)]
        return (keeping or options)[0] if _installed_major(facts) is not None else options[0]
    for option in options:
        major = _major_of(series, option)
        needed = matrix.driver_min(major) if major is not None else None
        if needed is None or driver.comparable >= needed.driver_min.comparable:
            return option
    return None


def _major_of(series: TorchSeries, option: str | None) -> int | None:
    tag = series.pypi_cuda if option in (PYPI, None) else option
    return cuda_major(cuda_from_local(tag or ""))


def _installed_major(facts: Facts) -> int | None:
    """The CUDA major of the installed torch build (None for CPU builds and unknown ones)."""
    return cuda_major(facts.value("cuda"))


def _candidate(
    facts: Facts,
    matrix: Matrix,
    aimet: AimetRelease,
    series: TorchSeries,
    torch: ParsedVersion,
    variant: str | None,
) -> Candidate | None:
    vision = series.torchvision[str(torch)]
    numpy = numpy_for(facts, aimet.numpy)
    local = f"+{variant}" if variant else ""
    planned = planned_facts(facts, aimet, f"{torch.comparable}{local}", vision, numpy, variant or series.pypi_cuda)
    if not could_be_good(planned, matrix):
        return None  # never offered: it lands on nothing known-good (most of the ~2000 pairs)
    evaluation = evaluate(planned, matrix)
    fixes = _numpy_pins(evaluation, matrix)
    if fixes is not None and numpy is not None and not _is_range(numpy):
        numpy = None
    if fixes is not None:
        numpy = str(SpecifierSet(",".join(s for s in (numpy if _is_range(numpy) else None, fixes) if s)))
        planned = planned.with_values({"numpy": Fact.known(numpy, origin="planned")})
        evaluation = evaluate(planned, matrix)
    return Candidate(aimet, torch, series, variant, vision, numpy, evaluation)


def _is_range(value: str | None) -> bool:
    return bool(value) and value[:1] in "<>=!~"  # type: ignore[index]


def numpy_for(facts: Facts, spec: SpecifierSet | None) -> str | None:
    """Keep the installed numpy when the release allows it; else plan the release's range."""
    current = _version(facts, "numpy")
    if current is not None and (spec is None or in_range(current, spec)):
        return None
    return str(spec) if spec is not None and str(spec) else None


def _numpy_pins(evaluation: Evaluation, matrix: Matrix) -> str | None:
    """A numpy pin that a failing rule prescribes for itself, if any."""
    for finding in evaluation.findings:
        rule = matrix.rule(finding.id)
        if rule is None or finding.status is not Status.FAIL or finding.severity is not Severity.ERROR:
            continue
        for fix in rule.fixes:
            if fix.kind == "pin" and fix.package == "numpy" and fix.spec is not None:
                return str(fix.spec)
    return None


def planned_facts(
    facts: Facts, aimet: AimetRelease, torch: str, vision: str, numpy: str | None, build: str | None
) -> Facts:
    # The API the user chose (assumed, or AIMET_DEFAULT_API) carries over to a release that ships it; a derived
    # one, or one the release does not ship (v1 on 2.30+), is re-derived (the move then says it needs porting).
    chosen = facts.get("aimet-api")
    keep_api = chosen.origin != "derived" and chosen.value in aimet.apis
    values = {k: v for k, v in facts.values.items() if k != "cuda" and not (k == "aimet-api" and not keep_api)}
    values.update(
        {
            "aimet-torch": Fact.known(str(aimet.version), origin="planned"),
            "torch": Fact.known(torch, origin="planned"),
            "torchvision": Fact.known(vision, origin="planned"),
        }
    )
    cuda = cuda_from_local(build) if build else None
    values["cuda"] = Fact.known(cuda, origin="planned") if cuda else Fact.absent("CPU build", origin="planned")
    if numpy is not None:
        values["numpy"] = Fact.known(numpy, origin="planned")
    # A planned install brings its own numpy, so an unknown numpy no longer blocks the plan.
    elif facts.get("numpy").state is FactState.UNKNOWN and aimet.numpy is not None and str(aimet.numpy):
        values["numpy"] = Fact.known(str(aimet.numpy), origin="planned")
    return Facts(values, facts.gpus, facts.gpus_reason)


def _torch_distance(candidate: Candidate, now: ParsedVersion | None) -> tuple[int, ...]:
    """The same series first (gap 0), then the nearest series, then the nearest patch (newer wins ties)."""
    if now is None:
        return (-_ordinal(candidate.torch),)
    series_gap = abs(_series_ordinal(candidate.torch) - _series_ordinal(now))
    return (series_gap, abs(_ordinal(candidate.torch) - _ordinal(now)), -_ordinal(candidate.torch))


def _aimet_distance(release: AimetRelease, now: ParsedVersion | None) -> tuple[int, ...]:
    """Upgrades before downgrades, smallest step first."""
    if now is None:
        return (0, -_ordinal(release.version))
    step = _ordinal(release.version) - _ordinal(now)
    return (0 if step > 0 else 1, abs(step))


def _ordinal(version: ParsedVersion) -> int:
    release = (*version.comparable.release, 0, 0, 0)
    return release[0] * 1_000_000 + release[1] * 1_000 + release[2]


def _series_ordinal(version: ParsedVersion) -> int:
    release = (*version.comparable.release, 0)
    return release[0] * 1_000 + release[1]


def _as_recommendation(
    kind: str,
    c: Candidate,
    facts: Facts,
    python: str,
    avoid: tuple[Rule, ...],
    matrix: Matrix,
    present: AbstractSet[str] = frozenset(),
    features: frozenset[str] | None = None,
) -> Recommendation:
    changes = _changes(c, facts)
    names = {ch.package for ch in changes}
    torch = f"{c.torch.comparable}{'+' + c.variant if c.variant else ''}"
    if kind == "fix":
        summary = "the whole set: " + ", ".join(f"{p.name}{p.spec}" for p in c.pins())
    elif kind == "keep-aimet":
        summary = f"pin torch=={torch} (keep aimet-torch {c.aimet.version})"
    elif kind == "keep-torch":
        now = _version(facts, "aimet-torch")
        verb = "upgrade" if now is None or c.aimet.version.comparable > now.comparable else "move"
        summary = f"{verb} aimet-torch to {c.aimet.version} (keep torch {c.torch.comparable})"
    else:
        summary = f"install aimet-torch {c.aimet.version} with torch {torch}"
    pins = [p for p in c.pins() if p.name in names] or c.pins()
    notes = ["changes: " + ", ".join(f"{ch.package} {ch.current or '(none)'} → {ch.target}" for ch in changes)] \
        if changes else []
    if avoid:
        notes.append("avoids: " + ", ".join(dict.fromkeys(r.id for r in avoid)))
    cuda_move = api_move = None
    major_now, major_then = _installed_major(facts), cuda_major(c.evaluation.facts.value("cuda"))
    if major_now is not None and major_then is not None and major_now != major_then:
        floor = matrix.driver_min(major_then)
        cuda_move = CudaMove(
            str(major_now), str(major_then), str(floor.driver_min) if floor else None, facts.value("driver")
        )
        notes.append(cuda_move.describe())
    api_now, api_then = facts.value("aimet-api"), c.evaluation.facts.value("aimet-api")
    if api_now and api_then and api_now != api_then and (api := matrix.api(api_then)) is not None:
        api_move = ApiMove(api_now, api_then, api.port_note)
        notes.append(api_move.describe())
    failures: tuple[Rule, ...]
    if features is not None:
        failures = tuple(_hazard_rules(c.evaluation.facts, matrix, features))
        notes += [
            f"{'leaves' if r.id in present else 'adds'} a failure for your model: {r.title} ({r.id})" for r in failures
        ]
    else:  # without the model: the rules that still bite models with the constructs this move is for
        fixing = {r.model_feature for r in avoid if r.model_feature}
        failures = tuple(_hazard_rules(c.evaluation.facts, matrix, fixing))
        notes += [f"still needs the code fix for {r.model_feature}: {r.title} ({r.id})" for r in failures]
        notes += [
            f"new for models with {r.model_feature}: {r.title} ({r.id})"
            for r in _new_hazards(c, matrix, present)
            if r.model_feature not in fixing
        ]
    unchecked = [f.title for f in c.evaluation.findings if f.status is Status.UNKNOWN and f.scope is not Scope.CAVEAT]
    if unchecked:
        notes.append("not checked (facts unknown): " + "; ".join(unchecked))
    return Recommendation(
        id=f"rec.{kind}",
        kind=kind,
        summary=summary,
        changes=tuple(changes),
        commands=(pip_install(python, pins, c.index_url if any("+" in p.spec for p in pins) else None),),
        constraints=tuple(constraints_lines(c.pins(), c.index_url)),
        lands_on=c.evaluation.lands_on,
        notes=tuple(notes),
        model_failures=tuple(r.id for r in failures),
        avoids=tuple(dict.fromkeys(r.id for r in avoid)),
        pins=tuple(c.pins()),
        index_url=c.index_url,
        cuda_move=cuda_move,
        api_move=api_move,
    )


def _changes(c: Candidate, facts: Facts) -> list[Change]:
    """The pins the installed versions do not already satisfy (`2.2.2+cu121` satisfies `==2.2.2`)."""
    out = []
    for pin in c.pins():
        now = facts.value(pin.name)
        parsed = try_parse_version(now) if now else None
        if parsed is None or not SpecifierSet(pin.spec).contains(parsed.version, prereleases=True):
            shown = now or ("unknown" if facts.get(pin.name).state is FactState.UNKNOWN else None)
            out.append(Change(pin.name, shown, pin.spec.removeprefix("==")))
    return out


def _current_as_recommendation(facts: Facts, evaluation: Evaluation, python: str) -> Recommendation:
    pins = [
        Pin(name, f"=={facts.value(name)}")
        for name in SET_PACKAGES
        if facts.value(name)
    ]
    torch = _version(facts, "torch")
    index = f"{CUDA_INDEX}/{torch.local}" if torch and torch.local and torch.local.startswith("cu") else None
    return Recommendation(
        id="rec.current",
        kind="current",
        summary="the installed set is known-good: pin it",
        commands=(pip_install(python, pins, index),),
        constraints=tuple(constraints_lines(pins, index)),
        lands_on=evaluation.lands_on,
        pins=tuple(pins),
        index_url=index,
    )


def _code_fixes(findings: Iterable[Finding], matrix: Matrix) -> list[Recommendation]:
    """Rules with a code fix: the change to make in the model (no version change replaces it). The fix for the
    earliest pipeline stage a rule breaks comes first (a BN swap before a fold workaround)."""
    chosen: dict[str, Finding] = {}
    for finding in findings:
        if finding.status in FAILED and any(fx.kind == "code" for fx in finding.fixes):
            chosen.setdefault(finding.id, finding)
    out = []
    for finding in sorted(chosen.values(), key=lambda f: matrix.first_stage(matrix.rule(f.id))):
        code = [fx for fx in finding.fixes if fx.kind == "code"]
        out.append(
            Recommendation(
                id=f"rec.code.{finding.id}",
                kind="code",
                summary=code[0].summary,
                notes=(f"for: {finding.title}", *(fx.code or "" for fx in code[:1])),
                usage=code[0].code,
            )
        )
    return out

