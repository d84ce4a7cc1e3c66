"""`matrix validate` beyond the schema: contradictions, unreachable ranges, dangling references."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from packaging.specifiers import SpecifierSet

from qatdoctor.conditions import evaluate_all, specs_intersect
from qatdoctor.evaluate import cuda_from_local
from qatdoctor.matrix.model import Matrix, Rule
from qatdoctor.matrix.schema import (
    PROBE_CHECKS,
    PROBE_MODELS,
    PROBE_STAGES,
    REQUIREMENT_CHECKS,
    Problem,
)
from qatdoctor.model import Fact, Facts

UNIVERSE_FACTS = ("aimet-torch", "torch", "torchvision", "cuda", "python")


def lint(matrix: Matrix) -> list[Problem]:
    """Every lint problem; an empty list means the matrix is consistent."""
    return [
        *_unsatisfiable(matrix),
        *_unreachable(matrix),
        *_contradictions(matrix),
        *_references(matrix),
    ]


def _where(rule: Rule) -> str:
    return f"rule {rule.id!r}"


def _unsatisfiable(matrix: Matrix) -> Iterator[Problem]:
    for rule in matrix.rules:
        for cond in rule.when:
            if cond.spec is not None and str(cond.spec) and not specs_intersect(cond.spec, SpecifierSet()):
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
            if versions and cond.spec is not None and not any(cond.spec.contains(v.comparable, True) for v in versions):
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
                    cuda = cuda_from_local(series.pypi_cuda or "")
                    values["cuda"] = Fact.known(cuda) if cuda else Fact.absent("cpu")
                    if python:
                        values["python"] = Fact.known(f"{python}.0")
                    values["aimet-api"] = Fact.known("v1" if aimet.apis == ("v1",) else "v2")
                    facts = Facts(values)
                    if evaluate_all(rule.when, facts).value:
                        yield facts


def _contradictions(matrix: Matrix) -> Iterator[Problem]:
    """A known-good rule must not land on a combination an environment-scoped error rule marks bad."""
    bad = [r for r in matrix.rules if r.kind == "bad" and r.severity == "error" and r.scope == "environment"]
    bad = [r for r in bad if not r.triage_only and {c.fact for c in r.when} <= {*UNIVERSE_FACTS, "aimet-api"}]
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


def _references(matrix: Matrix) -> Iterator[Problem]:
    base = Path(matrix.path).parent
    for rule in matrix.rules:
        for covered in rule.covers:
            if covered not in REQUIREMENT_CHECKS:
                yield Problem(f"{_where(rule)} → covers", f"unknown requirement check {covered!r}")
        for index, probe in enumerate(rule.probes):
            where = f"{_where(rule)} → probe[{index}]"
            if probe.model != "*" and probe.model not in PROBE_MODELS:
                yield Problem(where, f"unknown probe model {probe.model!r} (known: {', '.join(PROBE_MODELS)})")
            if probe.stage not in PROBE_STAGES:
                yield Problem(where, f"unknown probe stage {probe.stage!r} (known: {', '.join(PROBE_STAGES)})")
            if probe.check is not None and probe.check not in PROBE_CHECKS:
                yield Problem(where, f"unknown probe check {probe.check!r} (known: {', '.join(PROBE_CHECKS)})")
    for record in matrix.evidence:
        if record.file and not (base / record.file).is_file():
            yield Problem(f"evidence {record.id!r} → file", f"{record.file} does not exist next to the matrix")
