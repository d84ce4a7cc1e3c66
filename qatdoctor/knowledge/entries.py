"""The compatibility matrix as frozen data (see compat_matrix.toml and docs/matrix.md 'Adding a matrix entry')."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import NamedTuple

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from qatdoctor.knowledge.versions import ParsedVersion
from qatdoctor.knowledge.vocab import LIBRARY_PREFIX
from qatdoctor.records import Facts, Measurement, Source


class V1Requirements(NamedTuple):
    """What `aimet_torch.v1` (the legacy API inside 2.x wheels) demands of the environment."""

    torch: SpecifierSet | None = None
    cuda_major: int | None = None
    python: SpecifierSet | None = None
    extra: str | None = None


class WheelVariant(NamedTuple):
    """How the wheel for another CPython minor differs from the CPython 3.10 one."""

    glibc_min: ParsedVersion | None = None
    cuda_major: int | None = None
    numpy: SpecifierSet | None = None
    wheel: str | None = None


class AimetRelease(NamedTuple):
    """One aimet-torch release on PyPI and what its wheel declares or was built for."""

    version: ParsedVersion
    released: dt.date
    requires_python: SpecifierSet
    apis: tuple[str, ...]
    sources: tuple[Source, ...]
    torch: SpecifierSet | None = None
    torchvision: SpecifierSet | None = None
    numpy: SpecifierSet | None = None
    cuda_major: int | None = None
    glibc_min: ParsedVersion | None = None
    v1: V1Requirements | None = None
    python_wheels: Mapping[str, WheelVariant] = MappingProxyType({})
    system_libs: tuple[str, ...] = ()
    built_with_torch: ParsedVersion | None = None
    wheel: str | None = None
    yanked: str | None = None
    notes: str | None = None
    proposed: bool = False  # written by `matrix refresh`, not reviewed: never recommended, never known-good

    def for_python(self, minor: str | None) -> AimetRelease:
        """This release as seen from a CPython minor: the fields of that minor's wheel where it differs."""
        variant = self.python_wheels.get(minor or "")
        if variant is None:
            return self
        return self._replace(
            glibc_min=variant.glibc_min or self.glibc_min,
            cuda_major=variant.cuda_major if variant.cuda_major is not None else self.cuda_major,
            numpy=variant.numpy or self.numpy,
            wheel=variant.wheel or self.wheel,
        )


class TorchSeries(NamedTuple):
    """One torch minor series (e.g. 2.2): its releases, Python wheels, CUDA builds, torchvision pairs."""

    series: str
    releases: tuple[ParsedVersion, ...]
    python: tuple[str, ...]
    torchvision: Mapping[str, str]
    sources: tuple[Source, ...]
    released: dt.date | None = None
    requires_python: SpecifierSet | None = None
    cuda_variants: tuple[str, ...] = ()
    pypi_cuda: str | None = None
    sm: tuple[str, ...] = ()
    variant_sm: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    notes: str | None = None
    proposed: bool = False  # the whole series: written by `matrix refresh`, not reviewed
    proposed_releases: tuple[ParsedVersion, ...] = ()  # releases refresh added to a reviewed series

    def is_proposed(self, release: ParsedVersion) -> bool:
        """Whether this release's entry is a proposal nobody has reviewed (the series', or the release's own)."""
        return self.proposed or any(r.comparable == release.comparable for r in self.proposed_releases)


class CudaDriver(NamedTuple):
    """Minimum NVIDIA driver for a CUDA major family (minor-version compatibility)."""

    major: int
    driver_min: ParsedVersion
    sources: tuple[Source, ...]
    notes: str | None = None


class Condition(NamedTuple):
    """One `when` clause: a fact and a range, a value, or presence/absence."""

    fact: str
    raw: str
    spec: SpecifierSet | None = None
    values: tuple[str, ...] = ()
    presence: str | None = None


class Signature(NamedTuple):
    """Text that identifies a rule in a traceback or log."""

    text: str | None = None
    regex: str | None = None
    type: str | None = None
    note: str | None = None

    @property
    def strictness(self) -> int:
        """0 is strictest: exception type + exact text; then text; then regex."""
        if self.type and self.text:
            return 0
        if self.text:
            return 1
        return 2


class ProbeMatch(NamedTuple):
    """A probe outcome that identifies a rule (`model` may be `*`)."""

    model: str
    stage: str
    status: str
    check: str | None = None


class RuleFix(NamedTuple):
    """A fix as the matrix states it; upgrade/pin fixes are made concrete by the recommender."""

    kind: str
    summary: str
    commands: tuple[str, ...] = ()
    code: str | None = None
    package: str | None = None
    spec: SpecifierSet | None = None


class Rule(NamedTuple):
    """A known-bad or known-good combination."""

    id: str
    kind: str
    severity: str
    title: str
    summary: str
    when: tuple[Condition, ...]
    sources: tuple[Source, ...]
    scope: str = "environment"
    model_feature: str | None = None
    details: str | None = None
    covers: tuple[str, ...] = ()
    triage_only: bool = False
    signatures: tuple[Signature, ...] = ()
    probes: tuple[ProbeMatch, ...] = ()
    fixes: tuple[RuleFix, ...] = ()
    basis: str = "inferred"
    measured_on: tuple[Measurement, ...] = ()
    cause: str = "environment"  # model-code: the user's model code raises it, not the environment

    @property
    def measured(self) -> bool:
        """Whether a run of ours (probe, reproduction, wheel read) backs it on at least one version."""
        return self.basis == "measured" and bool(self.measured_on)

    def measurement_for(self, facts: Facts) -> Measurement | None:
        """The measurement whose versions these facts match (None: this environment was not measured)."""
        return next((m for m in self.measured_on if covers(m, facts)), None)

    def basis_for(self, facts: Facts | None) -> tuple[str, str]:
        """(basis, a line saying it) for this rule applied to `facts`: measured here, extrapolated from other
        versions, or the rule's own basis (vendor-docs, reported, inferred)."""
        if not self.measured:
            return self.basis, BASIS_LINES.get(self.basis, f"basis: {self.basis}")
        hit = self.measurement_for(facts) if facts is not None else None
        if hit is not None:
            return "measured", f"measured on {hit.describe()} (evidence:{hit.evidence})"
        where = _where(self, facts)
        seen = measured_list(self.measured_on)
        return "extrapolated", f"expected (not measured{' on ' + where if where else ''}; measured on {seen})"

    def has_version_fix(self) -> bool:
        """Whether some version change removes it (an upgrade or pin fix), rather than only a code change."""
        return any(fix.kind in ("upgrade", "pin") for fix in self.fixes)


BASIS_LINES = {
    "vendor-docs": "vendor-documented (docs, release notes, package metadata); not measured by qatdoctor",
    "reported": "reported in an issue; not measured by qatdoctor",
    "inferred": "inferred from code or other facts; not measured by qatdoctor",
}


def same_version(measured: str, value: str) -> bool:
    """Whether a measured version names `value`: `3.10` covers 3.10.13, `2.2.2` covers 2.2.2+cu121."""
    try:
        want, have = Version(measured), Version(value)
    except InvalidVersion:
        return measured == value
    if len(want.release) < len(have.release):
        return have.release[: len(want.release)] == want.release
    return Version(want.public) == Version(have.public)


def covers(measurement: Measurement, facts: Facts) -> bool:
    """The environment is one the measurement ran on (every version it names matches)."""
    for name, version in measurement.versions.items():
        value = facts.value(name)
        if value is None or not same_version(version, value):
            return False
    return True


def measured_list(measured: Iterable[Measurement], limit: int = 8) -> str:
    """`aimet-torch 1.31.2, 1.32.2, 2.0.0` (one fact), else `aimet-torch 2.10.0, torch 2.2.2; …`, capped."""
    cells = list(dict.fromkeys(m.describe() for m in measured))
    names = {tuple(m.versions) for m in measured}
    if len(names) == 1 and len(next(iter(names))) == 1:
        (name,) = next(iter(names))
        values = sorted(dict.fromkeys(m.versions[name] for m in measured), key=_sort_key)
        more = f" and {len(values) - limit} more" if len(values) > limit else ""
        return f"{name} {', '.join(values[:limit])}{more}"
    more = f" and {len(cells) - limit} more" if len(cells) > limit else ""
    return "; ".join(cells[:limit]) + more


def _sort_key(value: str) -> tuple[int, Version | str]:
    try:
        return 0, Version(value)
    except InvalidVersion:
        return 1, value


def _where(rule: Rule, facts: Facts | None) -> str:
    if facts is None:
        return ""
    names = dict.fromkeys(name for m in rule.measured_on for name in m.versions)
    return ", ".join(f"{name} {facts.value(name)}" for name in names if facts.value(name))


class EvidenceRecord(NamedTuple):
    """A probe run we did, with its versions: the provenance of probe-sourced rules."""

    id: str
    date: dt.date
    versions: Mapping[str, str]
    platform: str
    outcome: str
    summary: str
    file: str | None = None
    cases: Mapping[str, str] = MappingProxyType({})


class Producer(NamedTuple):
    """An installed package that makes a construct likely in the user's models."""

    package: str
    note: str


class Construct(NamedTuple):
    """A model construct that model-scope rules name (`model_feature`), and how to find it in a model."""

    id: str
    title: str
    summary: str
    detect: tuple[Mapping[str, object], ...]
    sources: tuple[Source, ...]
    stand_in: str | None = None
    only_with: str | None = None
    produced_by: tuple[Producer, ...] = ()


class FamilyBrings(NamedTuple):
    """A construct a model family's models carry, the conditions, and the words of a report it shows in."""

    construct: str
    when: str
    symptoms: tuple[tuple[str, ...], ...]
    basis: str
    evidence: str
    rules: tuple[str, ...] = ()  # the construct's rules a report makes likely; empty: all of them


class ModelFamily(NamedTuple):
    """Models a report may name (RTMDet, timm, ultralytics...), and the constructs they bring."""

    id: str
    title: str
    words: tuple[str, ...]
    brings: tuple[FamilyBrings, ...]
    sources: tuple[Source, ...]
    packages: tuple[str, ...] = ()


class ProbeTerm(NamedTuple):
    """A word of the live probe's vocabulary (a model, stage, silent check or construct detector it implements)."""

    kind: str
    id: str
    summary: str
    sources: tuple[Source, ...]


class Api(NamedTuple):
    """A QuantSim API, and what porting code to it means."""

    id: str
    title: str
    port_note: str
    sources: tuple[Source, ...]


class ApiLine(NamedTuple):
    """An aimet-torch release line: the QuantSim APIs of its releases and the one used by default."""

    aimet: SpecifierSet
    apis: tuple[str, ...]
    default_api: str
    default_note: str
    sources: tuple[Source, ...]
    basis: str
    env_selects: tuple[str, ...] = ()
    optional_apis: tuple[str, ...] = ()

    def covers(self, version: ParsedVersion) -> bool:
        return self.aimet.contains(version.comparable, prereleases=True)


class SystemLib(NamedTuple):
    """A shared library and the distribution packages that provide it."""

    soname: str
    apt: str
    sources: tuple[Source, ...]
    basis: str
    dnf: str | None = None
    pip: str | None = None


class OsRelease(NamedTuple):
    """An OS release and the glibc it ships."""

    distro: str
    version: str
    glibc: str
    sources: tuple[Source, ...]
    basis: str


class PythonSupport(NamedTuple):
    """The CPython minors verify and sweep consider, and the one preferred."""

    minors: tuple[str, ...]
    prefer_from: str
    sources: tuple[Source, ...]
    basis: str

    def by_preference(self) -> tuple[str, ...]:
        """The oldest minor from `prefer_from` up, then newer ones, then older ones (newest first)."""
        floor = _minor(self.prefer_from)
        return tuple(sorted(self.minors, key=lambda m: (_minor(m) < floor, abs(_minor(m) - floor))))


def _minor(python: str) -> int:
    return int(python.split(".")[1].rstrip("t"))


class Requirement(NamedTuple):
    """A built-in requirement check (`req.*`): its id and its texts (format templates)."""

    id: str
    summary: str
    texts: Mapping[str, str]
    sources: tuple[Source, ...]
    basis: str


class Matrix(NamedTuple):
    """The whole matrix, plus where it came from."""

    path: str
    sha256: str
    matrix_version: str
    updated: dt.date
    aimet: tuple[AimetRelease, ...]
    torch: tuple[TorchSeries, ...]
    cuda: tuple[CudaDriver, ...]
    rules: tuple[Rule, ...]
    evidence: tuple[EvidenceRecord, ...] = ()
    description: str | None = None
    constructs: tuple[Construct, ...] = ()
    apis: tuple[Api, ...] = ()
    api_lines: tuple[ApiLine, ...] = ()
    system_libs: tuple[SystemLib, ...] = ()
    os_releases: tuple[OsRelease, ...] = ()
    python_support: PythonSupport | None = None
    requirements: tuple[Requirement, ...] = ()
    probe_terms: tuple[ProbeTerm, ...] = ()
    model_families: tuple[ModelFamily, ...] = ()

    def aimet_release(self, version: ParsedVersion) -> AimetRelease | None:
        """The release entry whose version equals `version` (local variants ignored)."""
        return next((a for a in self.aimet if a.version.comparable == version.comparable), None)

    def torch_series(self, series: str) -> TorchSeries | None:
        return next((t for t in self.torch if t.series == series), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def probe_vocabulary(self, kind: str) -> tuple[str, ...]:
        """The ids of one kind of probe term (`model`, `stage`, `check`, `detector`), in the matrix's order."""
        return tuple(t.id for t in self.probe_terms if t.kind == kind)

    def first_stage(self, rule: Rule | None) -> int:
        """The earliest pipeline stage a rule's probe outcomes name (no rule, or none named: after every stage)."""
        stages = self.probe_vocabulary("stage")
        named = [stages.index(p.stage) for p in rule.probes if p.stage in stages] if rule is not None else []
        return min(named, default=len(stages))

    def construct(self, construct_id: str) -> Construct | None:
        return next((c for c in self.constructs if c.id == construct_id), None)

    def construct_of_stand_in(self, model: str) -> Construct | None:
        """The construct a probe stand-in model carries (None for the baseline)."""
        return next((c for c in self.constructs if c.stand_in == model), None)

    def api(self, api_id: str) -> Api | None:
        return next((a for a in self.apis if a.id == api_id), None)

    def api_line(self, version: ParsedVersion) -> ApiLine | None:
        """The release line `version` belongs to."""
        return next((line for line in self.api_lines if line.covers(version)), None)

    def checked_libraries(self) -> tuple[str, ...]:
        """Every soname the matrix tests (a release's system_libs, a rule's `lib:` conditions): what the collector
        looks for. In [[system_lib]] order, then the rest sorted."""
        named = {lib for release in self.aimet for lib in release.system_libs}
        prefix = LIBRARY_PREFIX
        named |= {c.fact[len(prefix) :] for r in self.rules for c in r.when if c.fact.startswith(prefix)}
        order = [lib.soname for lib in self.system_libs]
        return tuple(sorted(named, key=lambda soname: (order.index(soname) if soname in order else len(order), soname)))

    def system_lib(self, soname: str) -> SystemLib | None:
        return next((lib for lib in self.system_libs if lib.soname == soname), None)

    def requirement(self, check_id: str) -> Requirement | None:
        return next((r for r in self.requirements if r.id == check_id), None)

    def driver_min(self, cuda_major: int) -> CudaDriver | None:
        return next((c for c in self.cuda if c.major == cuda_major), None)

    def evidence_record(self, record_id: str) -> EvidenceRecord | None:
        return next((e for e in self.evidence if e.id == record_id), None)

    def measured_landing(self, lands_on: Iterable[str], facts: Facts) -> bool:
        """Whether a known-good landing was measured on these versions (a `good` rule with a measurement that
        covers them), rather than only declared by the vendor (a pin, the wheel's build torch) or extrapolated."""
        for rule_id in lands_on:
            rule = self.rule(rule_id)
            if rule is not None and rule.kind == "good" and rule.measurement_for(facts) is not None:
                return True
        return False
