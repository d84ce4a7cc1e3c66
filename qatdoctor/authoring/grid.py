"""The compatibility grid: aimet-torch releases × torch series, every cell decided by the doctor's own evaluate().

A cell plans the set the recommender would install (aimet-torch, the newest patch of the torch series, its
torchvision, the release's numpy range, PyPI's CUDA build or the build a driver needs) on one Python minor, and
reads the state off the same `evaluate()` that `check` and `resolve` run, so the grid cannot disagree with them.
Only environment-scope findings decide a cell; model-scope rules are kept per cell as caveats.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from qatdoctor import __version__
from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.evaluate import Evaluation, cuda_from_local, derive_facts, evaluate
from qatdoctor.diagnose.requirements import cuda_major
from qatdoctor.knowledge.entries import AimetRelease, Matrix, Rule, TorchSeries
from qatdoctor.knowledge.load import EVIDENCE_PREFIX
from qatdoctor.knowledge.versions import ParsedVersion, in_range, parse_version
from qatdoctor.recommend.commands import pip_install
from qatdoctor.recommend.ranking import PYPI, Candidate, cuda_variant, numpy_for, planned_facts
from qatdoctor.records import Fact, Facts, Finding, Scope, Severity, Status

PIP_PYTHON = "python"
_MINOR = re.compile(r"^3\.\d+$")  # CPython minors; free-threaded builds (3.13t) have no aimet-torch wheel
# Display words for the matrix's vocabularies: probe stages, requirement checks and the facts a rule tests.
STAGE_WORDS = {
    "import": "import", "prepare": "prepare", "quantsim": "QuantSim", "compute_encodings": "encodings",
    "qat_step": "QAT", "fold": "fold", "fold_prepared": "fold",
}  # fmt: skip
CHECK_WORDS = {
    "req.python": "Python", "req.torch": "pin", "req.torchvision": "pin", "req.numpy": "numpy",
    "req.glibc": "glibc", "req.cuda-major": "CUDA", "req.system-lib": "library", "req.v1": "v1-API",
    "req.v1-removed": "v1-API", "req.driver": "driver", "req.gpu-arch": "GPU", "req.torchvision-pair": "pin",
}  # fmt: skip
FACT_WORDS = {"python": "Python", "cuda": "CUDA", "lib:liblapacke.so.3": "library", "lib:libcublas.so.12": "library"}
CHECK_TITLES = {
    "req.python": "the release's Requires-Python", "req.torch": "the release's torch requirement",
    "req.torchvision": "the release's torchvision requirement", "req.numpy": "the release's numpy requirement",
    "req.glibc": "the glibc its wheel needs", "req.cuda-major": "the CUDA major its binaries link",
    "req.system-lib": "system libraries its binaries load", "req.v1": "what the legacy v1 API needs",
    "req.v1-removed": "the legacy v1 API is gone", "req.driver": "the NVIDIA driver for torch's CUDA build",
    "req.gpu-arch": "GPU architectures in torch's build", "req.torchvision-pair": "the torchvision built for torch",
}  # fmt: skip
# Requirement checks that pip itself enforces: a set failing one of them cannot be installed at all.
INSTALL_CHECKS = frozenset({"req.python", "req.torch", "req.torchvision"})
_SET_FACTS = ("aimet-torch", "aimet-api", "torch", "torchvision")


class State(str, enum.Enum):
    """What a cell says, best first."""

    MEASURED = "measured"
    VENDOR = "vendor"
    UNTESTED = "untested"
    BAD = "bad"
    NOT_INSTALLABLE = "not-installable"


class DriverMark(str, enum.Enum):
    """How the torch series' CUDA builds fit the `--driver` given."""

    OK = "ok"
    VARIANT = "variant"  # PyPI's default build needs a newer driver; another build from the PyTorch index fits
    TOO_OLD = "too-old"  # no CUDA build of the series runs on this driver


class Outcome(NamedTuple):
    """evaluate()'s findings for one planned set, sorted into what the grid shows."""

    state: State
    reason: str | None = None
    decided_by: str | None = None  # the rule, check or declaration that decides the state
    rules: tuple[str, ...] = ()  # deciding rules: failing known-bad ones (first decides) or matched known-good
    checks: tuple[str, ...] = ()  # failing requirement checks (req.*)
    declared: tuple[str, ...] = ()  # known-good by the release's own torch pin or build torch
    evidence: tuple[str, ...] = ()  # [[evidence]] ids behind the deciding rules
    caveats: tuple[str, ...] = ()  # model-scope rules that apply to this set
    warnings: tuple[str, ...] = ()  # failing environment warnings (they do not decide the cell)
    undecided: tuple[str, ...] = ()  # checks that depend on the host (glibc, system libraries, numpy, driver)
    note: str | None = None
    basis: str | None = None  # what the deciding rule rests on for this set (`Rule.basis_for`)


class Plan(NamedTuple):
    """One planned set on one Python minor, and how it evaluated."""

    python: str | None
    torch: str
    torchvision: str
    build: str | None  # the CUDA build evaluated (`cu121`), None for a CPU-only series
    variant: str | None  # a non-default build installed from the PyTorch index
    outcome: Outcome
    pip: str | None


class Cell(NamedTuple):
    """One aimet-torch release × torch series."""

    aimet: str
    series: str
    plan: Plan
    driver: DriverMark | None = None
    driver_min: str | None = None  # the oldest driver any build of the series needs (when too old)
    flagged: tuple[str, ...] = ()  # caveats about the `--model-construct` construct

    @property
    def state(self) -> State:
        return self.plan.outcome.state


class Row(NamedTuple):
    """An aimet-torch release and its minor line (`1.32`)."""

    version: str
    line: str
    requires_python: str
    apis: tuple[str, ...]
    proposed: bool = False  # its entry is a `matrix refresh` proposal nobody reviewed


class Column(NamedTuple):
    """A torch series, its newest patch and PyPI's CUDA build."""

    series: str
    torch: str
    torchvision: str
    pypi_cuda: str | None
    proposed: bool = False  # the series (or the patch shown) is a `matrix refresh` proposal nobody reviewed


class Tier(NamedTuple):
    """A range of NVIDIA drivers that picks the same CUDA builds: at or above one [[cuda]] floor."""

    label: str
    driver: str | None  # the floor that stands for the range; None: any driver


def driver_tiers(matrix: Matrix) -> tuple[Tier, ...]:
    """Any driver, then one tier per [[cuda]] floor (newest first), then older than every floor."""
    floors = sorted(matrix.cuda, key=lambda c: c.driver_min.comparable, reverse=True)
    tiers = [Tier("any driver", None)]
    tiers += [Tier(f">= {c.driver_min} (CUDA {c.major}.x builds)", str(c.driver_min)) for c in floors]
    if floors:
        tiers.append(Tier(f"< {floors[-1].driver_min} (no CUDA build)", "0"))
    return tuple(tiers)


class Filters(NamedTuple):
    python: str | None = None
    driver: str | None = None
    construct: str | None = None


class Grid(NamedTuple):
    """The whole grid for one set of filters."""

    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    cells: tuple[tuple[Cell, ...], ...]  # [row][column]
    filters: Filters
    pythons: tuple[str, ...]  # every Python minor some cell can use


def _minor(python: str | None) -> int:
    return int(python.split(".")[1]) if python else 0


def minor_line(version: ParsedVersion) -> str:
    release = (*version.comparable.release, 0)
    return f"{release[0]}.{release[1]}"


def newest(series: TorchSeries) -> ParsedVersion:
    """The newest reviewed patch of a series (a proposed one only when the whole series is)."""
    reviewed = [r for r in series.releases if not series.is_proposed(r)]
    return max(reviewed or series.releases, key=lambda r: r.comparable)


def rows_of(matrix: Matrix) -> tuple[Row, ...]:
    releases = sorted((a for a in matrix.aimet if not a.yanked), key=lambda a: a.version.comparable)
    return tuple(
        Row(str(a.version), minor_line(a.version), str(a.requires_python), a.apis, a.proposed) for a in releases
    )


def columns_of(matrix: Matrix) -> tuple[Column, ...]:
    series = sorted(matrix.torch, key=lambda s: newest(s).comparable)
    return tuple(
        Column(s.series, str(top), s.torchvision[str(top)], s.pypi_cuda, s.is_proposed(top))
        for s in series
        for top in (newest(s),)
    )


def python_minors(series: TorchSeries) -> tuple[str, ...]:
    return tuple(sorted((p for p in series.python if _MINOR.match(p)), key=_minor))


class Evaluator:
    """Plans and evaluates cells, each (release, torch, Python, build) once."""

    def __init__(self, matrix: Matrix) -> None:
        self.matrix = matrix
        self._plans: dict[tuple[str, str, str, str | None], Plan] = {}
        self._matrices: dict[tuple[str, str], Matrix] = {}

    def release(self, version: str) -> AimetRelease:
        found = self.matrix.aimet_release(parse_version(version))
        assert found is not None, version
        return found

    def series(self, name: str) -> TorchSeries:
        found = self.matrix.torch_series(name)
        assert found is not None, name
        return found

    def pythons(self, aimet: str, series: str) -> tuple[str, ...]:
        """The CPython minors both have: torch wheels and the release's Requires-Python."""
        release = self.release(aimet)
        return tuple(
            p for p in python_minors(self.series(series)) if in_range(parse_version(p), release.requires_python)
        )

    def build_for(self, series: str, driver: str | None) -> tuple[str | None, DriverMark | None]:
        """The non-default build a driver needs (None: PyPI's), chosen as the recommender chooses it."""
        if driver is None:
            return None, None
        facts = Facts({"driver": Fact.known(driver, origin="assumed")})
        chosen = cuda_variant(facts, self.matrix, self.series(series), None)
        if chosen is None:
            return None, DriverMark.TOO_OLD
        return (None, DriverMark.OK) if chosen == PYPI else (chosen, DriverMark.VARIANT)

    def driver_floor(self, series: str) -> str | None:
        """The oldest driver any CUDA build of the series runs on."""
        entry = self.series(series)
        floors = [
            needed.driver_min
            for tag in {entry.pypi_cuda, *entry.cuda_variants}
            if tag and (major := cuda_major(cuda_from_local(tag))) is not None
            and (needed := self.matrix.driver_min(major)) is not None
        ]  # fmt: skip
        return str(min(floors, key=lambda v: v.comparable)) if floors else None

    def plan(self, aimet: str, series: str, python: str, variant: str | None) -> Plan:
        """The set for one release, series, Python minor and CUDA build, through evaluate()."""
        key = (aimet, series, python, variant)
        if key not in self._plans:
            self._plans[key] = self._plan(self.release(aimet), self.series(series), python, variant)
        return self._plans[key]

    def _plan(self, aimet: AimetRelease, series: TorchSeries, python: str, variant: str | None) -> Plan:
        # The newest patch the release accepts (a 1.x release pins one), else the newest: evaluate() says why not.
        accepted = [r for r in series.releases if aimet.torch is None or in_range(r, aimet.torch)]
        reviewed = [r for r in accepted if not series.is_proposed(r)]
        torch = max(reviewed or accepted or series.releases, key=lambda r: r.comparable)
        vision = series.torchvision[str(torch)]
        base = Facts({"python": Fact.known(python, origin="planned")})
        numpy = numpy_for(base, aimet.numpy)
        local = f"+{variant}" if variant else ""
        build = variant or series.pypi_cuda
        planned = planned_facts(base, aimet, f"{torch.comparable}{local}", vision, numpy, build)
        evaluation = evaluate(planned, self._matrix_for(aimet, python))
        candidate = Candidate(aimet, torch, series, variant, vision, numpy, evaluation)
        pip = pip_install(PIP_PYTHON, candidate.pins(), candidate.index_url)
        return Plan(python, str(torch), vision, build, variant, classify(evaluation, self.matrix), pip)

    def _matrix_for(self, aimet: AimetRelease, python: str) -> Matrix:
        """The matrix without the rules this release and Python rule out: evaluate() matches the same rules, faster."""
        key = (str(aimet.version), python)
        if key not in self._matrices:
            facts = derive_facts(
                Facts({"aimet-torch": Fact.known(str(aimet.version)), "python": Fact.known(python)}), self.matrix
            )
            fixed = {"aimet-torch", "aimet-api", "python"}
            rules = tuple(
                r
                for r in self.matrix.rules
                if not r.triage_only and evaluate_all([c for c in r.when if c.fact in fixed], facts).value is not False
            )
            self._matrices[key] = self.matrix._replace(rules=rules)
        return self._matrices[key]

    def cell(self, aimet: str, series: str, filters: Filters) -> Cell:
        """One cell under the filters: the given Python minor, or the one that reads best."""
        variant, mark = self.build_for(series, filters.driver)
        plan = self.best(aimet, series, variant, filters.python)
        floor = self.driver_floor(series) if mark is DriverMark.TOO_OLD else None
        flagged: tuple[str, ...] = ()
        if filters.construct is not None:
            flagged = tuple(r for r in plan.outcome.caveats if self._feature(r) == filters.construct)
        return Cell(aimet, series, plan, mark, floor, flagged)

    def best(self, aimet: str, series: str, variant: str | None, python: str | None = None) -> Plan:
        """The plan on `python`, or on the Python minor that reads best (the newest among equals)."""
        pythons = [p for p in self.pythons(aimet, series) if python is None or p == python]
        if not pythons:
            return self.no_python(aimet, series, python)
        plans = (self.plan(aimet, series, p, variant) for p in pythons)
        return min(plans, key=lambda p: (RANK[p.outcome.state], -_minor(p.python)))

    def no_python(self, aimet: str, series: str, python: str | None) -> Plan:
        """A cell no Python minor (or not the one asked for) can install."""
        release, entry = self.release(aimet), self.series(series)
        wheels = ", ".join(python_minors(entry))
        if python is None:
            note = (
                f"no Python minor both support: aimet-torch {aimet} requires Python {release.requires_python}, "
                f"torch {series} has wheels for {wheels}"
            )
        elif python not in python_minors(entry):
            note = f"torch {series} has no wheel for Python {python} (only {wheels})"
        else:
            note = f"aimet-torch {aimet} requires Python {release.requires_python}"
        torch = newest(entry)
        outcome = Outcome(State.NOT_INSTALLABLE, "Python", "req.python", checks=("req.python",), note=note)
        return Plan(python, str(torch), entry.torchvision[str(torch)], entry.pypi_cuda, None, outcome, None)

    def _feature(self, rule_id: str) -> str | None:
        rule = self.matrix.rule(rule_id)
        return rule.model_feature if rule is not None else None


RANK = {State.MEASURED: 0, State.VENDOR: 1, State.UNTESTED: 2, State.BAD: 3, State.NOT_INSTALLABLE: 4}


def build(matrix: Matrix, filters: Filters | None = None, evaluator: Evaluator | None = None) -> Grid:
    """The grid under the filters (an `Evaluator` can be shared between several filter sets)."""
    evaluator = evaluator or Evaluator(matrix)
    filters = filters or Filters()
    rows, columns = rows_of(matrix), columns_of(matrix)
    cells = tuple(tuple(evaluator.cell(r.version, c.series, filters) for c in columns) for r in rows)
    pythons = sorted({p for r in rows for c in columns for p in evaluator.pythons(r.version, c.series)}, key=_minor)
    return Grid(rows, columns, cells, filters, tuple(pythons))


def classify(evaluation: Evaluation, matrix: Matrix) -> Outcome:
    """Sort the findings: failing environment errors decide (pip-enforced ones first), then known-good."""
    findings = evaluation.findings
    env = [f for f in findings if f.scope is not Scope.CAVEAT]
    caveats = tuple(dict.fromkeys(f.id for f in findings if f.scope is Scope.CAVEAT))
    warnings = tuple(f.id for f in env if f.failed and f.severity is Severity.WARNING)
    undecided = tuple(
        f.id
        for f in env
        if f.status is Status.UNKNOWN and f.severity is not Severity.INFO and not f.id.startswith("coverage.")
    )
    base = Outcome(State.UNTESTED, caveats=caveats, warnings=warnings, undecided=undecided)
    errors = sorted(
        (f for f in env if f.failed and f.severity is Severity.ERROR), key=lambda f: _failure_order(f, matrix)
    )
    if errors:
        rules = tuple(f.id for f in errors if matrix.rule(f.id) is not None)
        return base._replace(
            state=State.NOT_INSTALLABLE if _check_of(errors[0], matrix) in INSTALL_CHECKS else State.BAD,
            reason=reason_word(errors[0], matrix),
            decided_by=errors[0].id,
            basis=_basis(errors[0].id, matrix, evaluation.facts),
            rules=rules,
            checks=tuple(f.id for f in errors if matrix.rule(f.id) is None),
            evidence=_evidence(rules, matrix),
        )
    if evaluation.lands_on:
        # a measured rule decides before a documented one: it says more about this set
        good = (x for x in evaluation.lands_on if matrix.rule(x) is not None)
        rules = tuple(sorted(good, key=lambda x: not _measured(matrix.rule(x))))
        decided = (rules or evaluation.lands_on)[0]
        return base._replace(
            state=State.MEASURED if any(_measured(matrix.rule(x)) for x in rules) else State.VENDOR,
            decided_by=decided,
            basis=_basis(decided, matrix, evaluation.facts),
            rules=rules,
            declared=tuple(x for x in evaluation.lands_on if matrix.rule(x) is None),
            evidence=_evidence(rules, matrix),
        )
    return base


def _measured(rule: Rule | None) -> bool:
    """A known-good rule our own runs back. The matrix's `basis` says so where it is given; without one, a rule
    citing an [[evidence]] run, or one `merge-evidence` wrote (`good-measured-*`)."""
    if rule is None:
        return False
    if rule.basis != "inferred" or rule.measured_on:
        return rule.measured
    return rule.id.startswith("good-measured-") or _cites_evidence(rule)


def _basis(rule_id: str | None, matrix: Matrix, facts: Facts) -> str | None:
    """What the deciding rule rests on for this very set: measured here, extrapolated, vendor docs, …"""
    rule = matrix.rule(rule_id) if rule_id else None
    if rule is None or (rule.basis == "inferred" and not rule.measured_on and _cites_evidence(rule)):
        return None  # no basis given: a rule citing our runs is not "inferred"
    return rule.basis_for(facts)[1]


def _cites_evidence(rule: Rule) -> bool:
    return any(s.ref.startswith(EVIDENCE_PREFIX) for s in rule.sources)


def _evidence(rule_ids: Iterable[str], matrix: Matrix) -> tuple[str, ...]:
    refs = (s.ref for r in rule_ids if (rule := matrix.rule(r)) is not None for s in rule.sources)
    return tuple(dict.fromkeys(ref[len(EVIDENCE_PREFIX) :] for ref in refs if ref.startswith(EVIDENCE_PREFIX)))


def _check_of(finding: Finding, matrix: Matrix) -> str | None:
    """The requirement check a finding is, or that its rule explains."""
    rule = matrix.rule(finding.id)
    if rule is None:
        return finding.id
    return next((c for c in rule.covers if c in INSTALL_CHECKS), rule.covers[0] if rule.covers else None)


def _failure_order(finding: Finding, matrix: Matrix) -> tuple[int, int]:
    """What pip refuses first, then the earliest pipeline stage (a failing load or a requirement is an import)."""
    installs = 0 if _check_of(finding, matrix) in INSTALL_CHECKS else 1
    rule = matrix.rule(finding.id)
    stages = matrix.probe_vocabulary("stage")
    stage = matrix.first_stage(rule) if rule is not None and rule.probes else 0 if rule is None else len(stages)
    return installs, stage


def reason_word(finding: Finding, matrix: Matrix) -> str:
    """One word for why a set fails, from the data: the rule's earliest probe stage, the requirement check it is or
    explains, or else the fact its `when` tests beyond the versions of the set."""
    rule = matrix.rule(finding.id)
    if rule is None:
        return CHECK_WORDS.get(finding.id, finding.id.removeprefix("req."))
    stages, first = matrix.probe_vocabulary("stage"), matrix.first_stage(rule)
    if rule.probes and first < len(stages):
        return STAGE_WORDS.get(stages[first], stages[first])
    if rule.covers:
        return CHECK_WORDS.get(_check_of(finding, matrix) or "", rule.covers[0].removeprefix("req."))
    facts = [c.fact for c in rule.when if c.fact not in _SET_FACTS]
    return FACT_WORDS.get(facts[0], facts[0]) if facts else "rule"


def iter_cells(grid: Grid) -> Iterator[Cell]:
    for row in grid.cells:
        yield from row


LEGEND = {
    State.MEASURED: "known-good, backed by our own runs (the rule's basis is measured, or it cites an evidence run)",
    State.VENDOR: "known-good as the vendor documents it: a rule without a probe run, the release's own exact "
    "torch pin, or the torch its wheel was built with",
    State.BAD: "known-bad: the word says where it fails (the failing rule's earliest probe stage or check)",
    State.NOT_INSTALLABLE: "not installable: pip refuses the set (Python: no Python minor both support or no "
    "wheel for it; pin: the release pins another torch)",
    State.UNTESTED: "untested: no rule marks the set either way",
}
PROPOSED_MARK = "*"
PROPOSED_NOTE = "proposed by `matrix refresh`, not reviewed: never known-good, never recommended"


def cell_to_dict(cell: Cell) -> dict[str, Any]:
    """A cell as JSON: its state and why, the set and its pip line."""
    plan, outcome = cell.plan, cell.plan.outcome
    return {
        "aimet_torch": cell.aimet,
        "torch_series": cell.series,
        "torch": plan.torch,
        "torchvision": plan.torchvision,
        "python": plan.python,
        "cuda_build": plan.build,
        "variant": plan.variant,
        "state": outcome.state.value,
        "reason": outcome.reason,
        "decided_by": outcome.decided_by,
        "rules": list(outcome.rules),
        "checks": list(outcome.checks),
        "declared_good": list(outcome.declared),
        "evidence": list(outcome.evidence),
        "caveats": list(outcome.caveats),
        "construct_rules": list(cell.flagged),
        "warnings": list(outcome.warnings),
        "undecided": list(outcome.undecided),
        "driver": cell.driver.value if cell.driver else None,
        "driver_min": cell.driver_min,
        "note": outcome.note,
        "basis": outcome.basis,
        "pip": plan.pip,
    }


def grid_to_dict(grid: Grid, matrix: Matrix) -> dict[str, Any]:
    """The grid as one JSON object (schema_version 1, like the reports)."""
    return {
        "schema_version": 1,
        "qatdoctor_version": __version__,
        "command": "matrix grid",
        "matrix": {
            "path": matrix.path,
            "version": matrix.matrix_version,
            "updated": matrix.updated.isoformat(),
            "sha256": matrix.sha256,
        },
        "filters": {
            "python": grid.filters.python,
            "driver": grid.filters.driver,
            "model_construct": grid.filters.construct,
        },
        "legend": {state.value: text for state, text in LEGEND.items()},
        "pythons": list(grid.pythons),
        "rows": [row._asdict() | {"apis": list(row.apis)} for row in grid.rows],
        "columns": [column._asdict() for column in grid.columns],
        "cells": [cell_to_dict(cell) for cell in iter_cells(grid)],
    }
