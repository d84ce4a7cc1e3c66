"""Grid expansion for `qatdoctor sweep`: version lists and PEP 440 ranges → installable cells, or reasons.

`--torch '>=2.10,<2.15'` means the newest patch of each torch series in the range; `--aimet '>=2.0,<2.5'`
every aimet-torch release in it; plain versions are taken as given. Items are comma-separated, and
consecutive clauses that start with an operator form one range (`2.8.0,>=2.10,<2.12` = 2.8.0 + one range).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet

from qatdoctor.errors import InputError
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.versions import ParsedVersion, in_range, parse_specifier, parse_version
from qatdoctor.lab.cellplan import CellPlan, blockers, is_known_torch, plan_cell, python_choices

_OPERATOR = re.compile(r"^\s*(==|!=|<=|>=|~=|<|>|===)")
_MINOR = re.compile(r"^3\.\d{1,2}$")
AUTO = "auto"


@dataclass(frozen=True)
class Skipped:
    """A grid cell that is not run, and why (never dropped silently)."""

    id: str
    aimet: str
    torch: str
    python: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Grid:
    """The cells to run and the cells skipped."""

    plans: tuple[CellPlan, ...]
    skipped: tuple[Skipped, ...]
    warnings: tuple[str, ...] = ()


def split_items(text: str, what: str) -> list[str | SpecifierSet]:
    """`2.8.0,>=2.10,<2.12` → ['2.8.0', SpecifierSet('>=2.10,<2.12')]."""
    items: list[str | SpecifierSet] = []
    clauses: list[str] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        if _OPERATOR.match(raw) or "*" in raw:
            clauses.append(raw if _OPERATOR.match(raw) else f"=={raw}")
            continue
        if clauses:
            items.append(parse_specifier(",".join(clauses), what=f"--{what} range"))
            clauses = []
        parse_version(raw, what=f"--{what} version")
        items.append(raw)
    if clauses:
        items.append(parse_specifier(",".join(clauses), what=f"--{what} range"))
    if not items:
        raise InputError(f"--{what} is empty: give versions or a range, e.g. '>=2.10,<2.15'")
    return items


def resolve_aimet(text: str, matrix: Matrix) -> tuple[list[str], list[str]]:
    """aimet-torch releases for `--aimet` (a range: every non-yanked release in it), plus warnings."""
    releases = sorted((a for a in matrix.aimet if not a.yanked), key=lambda a: a.version.comparable)
    return _resolve(text, "aimet", [a.version for a in releases], lambda found: found)


def resolve_torch(text: str, matrix: Matrix) -> tuple[list[str], list[str]]:
    """torch releases for `--torch` (a range: the newest patch of each series in it; `2.12`: that series)."""
    everything = sorted((r for s in matrix.torch for r in s.releases), key=lambda r: r.comparable)

    def newest_per_series(found: list[ParsedVersion]) -> list[ParsedVersion]:
        by_series: dict[str, ParsedVersion] = {}
        for version in found:
            by_series[version.series] = version
        return list(by_series.values())

    return _resolve(text, "torch", everything, newest_per_series)


def _resolve(
    text: str,
    what: str,
    known: list[ParsedVersion],
    reduce: Callable[[list[ParsedVersion]], list[ParsedVersion]],
) -> tuple[list[str], list[str]]:
    out: list[str] = []
    warnings: list[str] = []
    for item in split_items(text, what):
        if isinstance(item, SpecifierSet):
            found = [v for v in known if in_range(v, item)]
            if not found:
                raise InputError(f"--{what} {str(item)!r} matches no release the matrix knows")
            out += [str(v) for v in reduce(found)]
            continue
        version = parse_version(item, what=f"--{what} version")
        exact = [v for v in known if v.comparable == version.comparable]
        series = [v for v in known if _is_series(item) and v.series == version.series]
        if series:
            out.append(str(series[-1]))
        elif exact:
            out.append(item)
        else:
            warnings.append(f"{what} {item} is not a release the matrix knows; trying it anyway")
            out.append(item)
    return list(dict.fromkeys(out)), warnings


def _is_series(item: str) -> bool:
    return item.count(".") == 1


def parse_pythons(text: str | None) -> list[str]:
    """`3.10,3.11` → ['3.10', '3.11']; empty or `auto` → ['auto'] (per cell: the newest minor that installs)."""
    if not text or text.strip() == AUTO:
        return [AUTO]
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not _MINOR.match(part):
            raise InputError(f"--python {part!r}: give Python minors like 3.10,3.11 (or auto)")
        out.append(part)
    return list(dict.fromkeys(out))


def expand(
    matrix: Matrix,
    aimets: Sequence[str],
    torches: Sequence[str],
    pythons: Sequence[str],
    *,
    extra: tuple[str, ...] = (),
    available: Callable[[str], bool] = lambda minor: True,
) -> Grid:
    """aimet × torch × python; uninstallable cells (per the matrix) become Skipped with their reasons."""
    plans: list[CellPlan] = []
    skipped: list[Skipped] = []
    warnings: list[str] = []
    for aimet in aimets:
        for torch in torches:
            if not is_known_torch(matrix, torch):
                warnings.append(f"torch {torch} is not in the matrix: its torchvision is left to the installer")
            minors = list(pythons)
            if minors == [AUTO]:
                minors = _auto_minor(matrix, aimet, torch, available)
            for python in minors:
                plan = plan_cell(matrix, aimet, torch, python, extra=extra)
                reasons = blockers(matrix, plan)
                if not reasons and not available(python):
                    reasons = [f"no Python {python} interpreter found on this machine"]
                if reasons:
                    skipped.append(Skipped(plan.id, aimet, torch, python, tuple(reasons)))
                else:
                    plans.append(plan)
    return Grid(tuple(plans), tuple(skipped), tuple(dict.fromkeys(warnings)))


def _auto_minor(matrix: Matrix, aimet: str, torch: str, available: Callable[[str], bool]) -> list[str]:
    """The newest minor the combination installs on and this machine has; else one to report against."""
    choices = python_choices(matrix, aimet, torch)
    for minor in choices:
        if available(minor):
            return [minor]
    return [choices[0]] if choices else ["3.11"]
