"""Evaluating a rule's `when` clauses against facts: True, False, or None (a fact is unknown)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from qatdoctor.knowledge.entries import Condition
from qatdoctor.knowledge.versions import in_range, try_parse_version
from qatdoctor.records import Facts, FactState


@dataclass(frozen=True)
class Outcome:
    """The result of a conjunction, with what made it true and what kept it undecided."""

    value: bool | None
    matched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def evaluate_condition(cond: Condition, facts: Facts) -> tuple[bool | None, str]:
    """One clause: (result, a line of evidence or the reason it is undecided)."""
    fact = facts.get(cond.fact)
    shown = fact.describe()
    if fact.state is FactState.UNKNOWN:
        return None, f"{cond.fact} {shown}"
    if cond.presence is not None:
        present = fact.state is FactState.KNOWN and fact.value != "absent"
        return present == (cond.presence == "present"), f"{cond.fact} is {'present' if present else 'absent'}"
    if fact.state is FactState.ABSENT or fact.value is None:
        return False, f"{cond.fact} is absent"
    if cond.values:
        return fact.value in cond.values, f"{cond.fact} = {fact.value}"
    assert cond.spec is not None
    constraint = _constraint(fact.value)
    if constraint is not None:
        hit = specs_intersect(constraint, cond.spec)
        return hit, f"{cond.fact} {fact.value} overlaps {cond.raw}"
    parsed = try_parse_version(fact.value)
    if parsed is None:
        return None, f"{cond.fact} {fact.value!r} is not a version qatdoctor can compare"
    return in_range(parsed, cond.spec), f"{cond.fact} {fact.value} in {cond.raw}"


def evaluate_all(conditions: Iterable[Condition], facts: Facts) -> Outcome:
    """All clauses must hold: False beats None beats True."""
    matched: list[str] = []
    missing: list[str] = []
    for cond in conditions:
        result, note = evaluate_condition(cond, facts)
        if result is False:
            return Outcome(False)
        (matched if result else missing).append(note)
    return Outcome(None if missing else True, tuple(matched), tuple(missing))


def _constraint(value: str) -> SpecifierSet | None:
    """A fact value that is a range (a planned pin such as `<2`) rather than a version."""
    if value[:1] in "<>=!~":
        return SpecifierSet(value)
    return None


def specs_intersect(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether some version satisfies both ranges, tested on the boundary versions and their neighbours.

    Works back to packaging 22 (its own `is_disjoint` needs 26.3).
    """
    bounds: set[Version] = {Version("0"), Version("99999")}
    for spec in (*a, *b):
        text = spec.version.removesuffix(".*")
        try:
            bound = Version(text)
        except ValueError:
            continue  # pragma: no mutate - `===x` matches no version
        bounds.add(bound)
        release = list(bound.release)
        bounds.add(Version(".".join(map(str, [*release, 999999]))))
        bumped = [*release[:-1], release[-1] + 1]
        bounds.add(Version(".".join(map(str, bumped))))
        if release[-1] > 0:
            bounds.add(Version(".".join(map(str, [*release[:-1], release[-1] - 1, 999999]))))
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in bounds)
