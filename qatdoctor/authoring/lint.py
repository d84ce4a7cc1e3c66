"""`matrix validate` beyond the schema: contradictions, unreachable ranges, dangling references."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

from packaging.specifiers import SpecifierSet

from qatdoctor.diagnose.conditions import evaluate_all, specs_intersect
from qatdoctor.diagnose.evaluate import cuda_from_local
from qatdoctor.diagnose.requirements import IMPLEMENTED
from qatdoctor.knowledge.entries import Matrix, Rule, same_version
from qatdoctor.knowledge.schema import Problem
from qatdoctor.knowledge.versions import in_range, try_parse_version
from qatdoctor.knowledge.vocab import CHOICE_FACTS, SET_PACKAGES
from qatdoctor.records import Fact, Facts

# What a known-good rule's points fix: aimet-torch, torch, torchvision, the CUDA build, Python, the QuantSim API.
UNIVERSE_FACTS = frozenset({*SET_PACKAGES[:3], "cuda", "python", *CHOICE_FACTS})


def lint(matrix: Matrix) -> list[Problem]:
    """Every lint problem; an empty list means the matrix is consistent."""
    return [*consistency(matrix), *_basis(matrix)]


def consistency(matrix: Matrix, *, goods: Collection[str] | None = None) -> list[Problem]:
    """The cross-field checks: every rule satisfiable and reachable, no contradictions, every reference
    resolves. `goods` limits the (slow) contradiction check to those known-good rules."""
    subset = matrix if goods is None else matrix._replace(
        rules=tuple(r for r in matrix.rules if r.kind != "good" or r.id in goods)
    )
    return [
        *_unsatisfiable(matrix), *_unreachable(matrix), *_contradictions(subset), *_references(matrix),
        *_requirements(matrix), *_api_lines(matrix), *_proposed(matrix),
    ]  # fmt: skip


def _where(rule: Rule) -> str:
    return f"rule {rule.id!r}"


def _unsatisfiable(matrix: Matrix) -> Iterator[Problem]:
    for rule in matrix.rules:
        for cond in rule.when:
            if cond.spec is not None and not specs_intersect(cond.spec, SpecifierSet()):
                yield Problem(f"{_where(rule)} → when.{cond.fact}", f"{cond.raw!r} matches no version at all")


def _unreachable(matrix: Matrix) -> Iterator[Problem]:
    """A non-triage rule whose aimet-torch/torch range matches no release the matrix knows never fires."""
    known = {
        "aimet-torch": [a.version for a in matrix.aimet],
        "torch": [r for t in matrix.torch for r in t.releases],
    }
    for rule in matrix.rules:
        if rule.triage_only:
            continue
        for cond in rule.when:
            versions = known.get(cond.fact)
            if versions and cond.spec is not None and not any(in_range(v, cond.spec) for v in versions):
                yield Problem(
                    f"{_where(rule)} → when.{cond.fact}",
                    f"unreachable: no {cond.fact} release in the matrix matches {cond.raw!r}",
                )


def _points(matrix: Matrix, rule: Rule) -> Iterator[Facts]:
    """Concrete (aimet-torch, torch, python) combinations from the matrix that satisfy a rule's version clauses."""
    mentions_python = any(c.fact == "python" for c in rule.when)
    for aimet in matrix.aimet:
        for series in matrix.torch:
            pythons = series.python if mentions_python else ("",)
            for release in series.releases:
                for python in pythons:
                    values = {
                        "aimet-torch": Fact.known(str(aimet.version)),
                        "torch": Fact.known(str(release)),
                        "torchvision": Fact.known(series.torchvision[str(release)]),
                    }
                    cuda = cuda_from_local(series.pypi_cuda or "")  # pragma: no mutate - non-cu: None
                    values["cuda"] = Fact.known(cuda) if cuda else Fact.absent()
                    if python:
                        values["python"] = Fact.known(f"{python}.0")
                    line = matrix.api_line(aimet.version)
                    if line is not None:
                        values["aimet-api"] = Fact.known(line.default_api)
                    facts = Facts(values)
                    if evaluate_all(rule.when, facts).value:
                        yield facts


def _contradictions(matrix: Matrix) -> Iterator[Problem]:
    """A known-good rule must not land on a combination an environment-scoped error rule marks bad."""
    bad = [r for r in matrix.rules if r.kind == "bad" and r.severity == "error" and r.scope == "environment"]
    bad = [r for r in bad if not r.triage_only and {c.fact for c in r.when} <= UNIVERSE_FACTS]
    for good in (r for r in matrix.rules if r.kind == "good"):
        reported: set[str] = set()
        for point in _points(matrix, good):
            for rule in bad:
                if rule.id not in reported and evaluate_all(rule.when, point).value:
                    reported.add(rule.id)
                    shown = ", ".join(
                        f"{k} {point.value(k)}" for k in ("aimet-torch", "torch", "python") if point.value(k)
                    )
                    yield Problem(
                        _where(good), f"contradiction: known-good, but bad rule {rule.id!r} also matches {shown}"
                    )


def _requirements(matrix: Matrix) -> Iterator[Problem]:
    """The [[requirement]] table and the checks qatdoctor/diagnose/requirements.py implements must agree."""
    declared = {r.id: r for r in matrix.requirements}
    for check_id in IMPLEMENTED:
        if check_id not in declared:
            yield Problem("requirement", f"{check_id!r} is implemented but has no [[requirement]] entry")
    for check_id, requirement in declared.items():
        where = f"requirement {check_id!r}"
        if check_id not in IMPLEMENTED:
            yield Problem(where, "no implementation in qatdoctor/diagnose/requirements.py")
            continue
        for key in sorted(IMPLEMENTED[check_id] - set(requirement.texts)):
            yield Problem(f"{where} → texts", f"missing text {key!r} (the check formats it)")
        for key in sorted(set(requirement.texts) - IMPLEMENTED[check_id]):
            yield Problem(f"{where} → texts.{key}", "unused: the check has no such text")


def _api_lines(matrix: Matrix) -> Iterator[Problem]:
    """Every [[aimet]] release belongs to one [[api_line]], ships its default API and no API the line lacks."""
    for release in matrix.aimet:
        lines = [line for line in matrix.api_lines if line.covers(release.version)]
        where = f"aimet {str(release.version)!r}"
        if len(lines) != 1:
            yield Problem(where, f"in {len(lines)} [[api_line]] entries (must be exactly one)")
            continue
        line = lines[0]
        if line.default_api not in release.apis:
            yield Problem(f"{where} → apis", f"lacks its line's default API {line.default_api!r}")
        for api in sorted(set(release.apis) - {*line.apis, *line.optional_apis}):
            yield Problem(f"{where} → apis", f"{api!r} is not an API of its [[api_line]] {str(line.aimet)!r}")


def _proposed(matrix: Matrix) -> Iterator[Problem]:
    """A rule measured on a release whose entry is still a `matrix refresh` proposal: the run is the review the
    entry is waiting for (check the entry against it, then delete `proposed`), and until then the rule never lands."""
    for rule in matrix.rules:
        for index, cell in enumerate(rule.measured_on):
            aimet = try_parse_version(cell.versions.get("aimet-torch", ""))
            release = matrix.aimet_release(aimet) if aimet is not None else None
            torch = try_parse_version(cell.versions.get("torch", ""))
            series = matrix.torch_series(torch.series) if torch is not None else None
            names = [f"aimet-torch {release.version}"] if release is not None and release.proposed else []
            if torch is not None and series is not None and series.is_proposed(torch):
                names.append(f"torch {torch}")
            if names:
                yield Problem(f"{_where(rule)} → measured_on[{index}]",
                              f"measured on {' and '.join(names)}, whose entry is still proposed: review it "
                              "against the run and delete `proposed`")  # fmt: skip


def _references(matrix: Matrix) -> Iterator[Problem]:
    base = Path(matrix.path).parent
    requirements = {r.id for r in matrix.requirements}
    vocabulary = {kind: matrix.probe_vocabulary(kind) for kind in ("model", "stage", "check")}
    for rule in matrix.rules:
        for covered in rule.covers:
            if covered not in requirements:
                yield Problem(f"{_where(rule)} → covers", f"unknown requirement check {covered!r}")
        for index, probe in enumerate(rule.probes):
            where = f"{_where(rule)} → probe[{index}]"
            for kind, word in (("model", probe.model), ("stage", probe.stage), ("check", probe.check)):
                known = vocabulary[kind]
                if word is not None and word not in known and (kind, word) != ("model", "*"):
                    yield Problem(where, f"unknown probe {kind} {word!r} (known: {', '.join(known)})")
    for record in matrix.evidence:
        if record.file and not (base / record.file).is_file():
            yield Problem(f"evidence {record.id!r} → file", f"{record.file} does not exist next to the matrix")


# A title that claims a run of ours; a known-good rule without one must say the vendor documents it.
_CLAIMS_MEASURED = ("(measured)", "known-good")
VENDOR_DOCUMENTED = "vendor-documented"


def _basis(matrix: Matrix) -> Iterator[Problem]:
    """Every rule states its basis, and a `measured` claim names the versions and the [[evidence]] records
    that hold the runs (`measured_on` is the citation): each record exists and covers the versions claimed, and
    each measured version is inside the rule's own range. A known-good rule without a measurement is
    vendor-documented, not measured."""
    for rule in matrix.rules:
        where = _where(rule)
        if rule.basis == "measured" and not rule.measured_on:
            yield Problem(f"{where} → measured_on", "basis 'measured' needs the versions measured and their records")
        if rule.basis != "measured" and rule.measured_on:
            yield Problem(f"{where} → basis", f"measured_on is given, so the basis is 'measured', not {rule.basis!r}")
        facts = {c.fact for c in rule.when}
        for index, cell in enumerate(rule.measured_on):
            at = f"{where} → measured_on[{index}]"
            yield from _measurement(matrix, rule, cell.versions, cell.evidence, facts, at)
        lowered = rule.title.lower()
        if rule.basis != "measured" and any(claim in lowered for claim in _CLAIMS_MEASURED):
            yield Problem(f"{where} → title", f"says it was measured, but its basis is {rule.basis!r}")
        if rule.kind == "good" and rule.basis == "vendor-docs" and VENDOR_DOCUMENTED not in lowered:
            yield Problem(f"{where} → title", "a known-good rule without a measurement must say 'vendor-documented'")
        if rule.kind == "good" and rule.basis not in ("measured", "vendor-docs"):
            yield Problem(f"{where} → basis", "a known-good rule must be measured or vendor-documented")


def _measurement(
    matrix: Matrix,
    rule: Rule,
    versions: Mapping[str, str],
    record_id: str,
    facts: set[str],
    at: str,
) -> Iterator[Problem]:
    if not versions:
        yield Problem(at, "names no version")
    for name in versions:
        if name not in facts:
            yield Problem(at, f"{name} is not one of the rule's `when` facts ({', '.join(sorted(facts))})")
    record = matrix.evidence_record(record_id)
    if record is None:
        yield Problem(at, f"no [[evidence]] record {record_id!r}")
        return
    for name, version in versions.items():
        recorded = record.versions.get(name)
        if recorded is None or not same_version(version, recorded):
            shown = f"{name} {recorded}" if recorded else f"no {name}"
            yield Problem(at, f"evidence {record_id!r} records {shown}, not {name} {version}")
    clauses = [c for c in rule.when if c.fact in versions and c.spec is not None]
    point = Facts({name: Fact.known(version) for name, version in versions.items()})
    if clauses and evaluate_all(clauses, point).value is False:
        shown = ", ".join(f"{k} {v}" for k, v in versions.items())
        yield Problem(at, f"{shown} is outside the rule's own range ({', '.join(c.raw for c in clauses)})")
