"""`qatdoctor matrix merge-evidence FILE`: evidence cells → [[evidence]] records and rules in compat_matrix.toml.

The TOML is edited as text (its comments and layout are the maintainers'): a record with the same id is
replaced in place, a new one is appended at the end. The result is validated before it is written.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qatdoctor.evidence import Cell, read
from qatdoctor.matrix.generate import Provenance, generate, toml_str
from qatdoctor.matrix.load import MatrixError, build, parse_toml
from qatdoctor.matrix.model import Matrix
from qatdoctor.matrix.vocab import Problem


def record_id(cell: Cell) -> str:
    return f"probe-{cell.id}"


def render_record(cell: Cell, *, date: str, platform: str, file: str) -> str:
    """One [[evidence]] block for a cell."""
    versions = dict(cell.versions)
    if cell.api:
        versions["api"] = cell.api
    inline = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in versions.items())
    cases = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in cell.summary.items())
    failing = sorted(k for k, v in cell.summary.items() if v != "pass")
    summary = (
        f"qatdoctor probe, outcome {cell.outcome}"
        + (f"; failing: {', '.join(failing)}" if failing else "; every probe model passed")
        + "."
    )
    lines = [
        "[[evidence]]",
        f"id = {toml_str(record_id(cell))}",
        f"date = {date}",
        f"versions = {{ {inline} }}",
        f"platform = {toml_str(platform)}",
        f"outcome = {toml_str(cell.outcome)}",
        f"summary = {toml_str(summary)}",
        f"file = {toml_str(file)}",
    ]
    if cases:
        lines.append(f"cases = {{ {cases} }}")
    return "\n".join(lines) + "\n"


def merge_text(text: str, blocks: Sequence[tuple[str, str]], table: str = "evidence") -> str:
    """Replace entries ([[evidence]] or [[rule]]) with the same id, append the rest."""
    for entry_id, block in blocks:
        found = _entry_pattern(table, entry_id).search(text)
        if found is not None:
            text = text[: found.start()] + block + "\n" + text[found.end() :]
        else:
            text = text.rstrip("\n") + "\n\n" + block
    return text.rstrip("\n") + "\n"


def _entry_pattern(table: str, entry_id: str) -> re.Pattern[str]:
    """One `[[table]]` block by id, up to the next top-level table or comment line (sub-tables included)."""
    head = r"^\[\[" + re.escape(table) + r"\]\]\nid = " + re.escape(toml_str(entry_id)) + r"\n"
    body = r"(?:(?!\[\[(?!" + re.escape(table) + r"\.)|\[(?!\[)|#).*\n?)*" if table == "rule" else r"(?:(?!\[|#).*\n?)*"
    return re.compile(head + body, re.MULTILINE)


@dataclass(frozen=True)
class MergeResult:
    """What a merge wrote: [[evidence]] record ids, generated rule ids, and lines for a human to curate."""

    records: tuple[str, ...]
    rules: tuple[str, ...]
    curate: tuple[str, ...]


def merge(matrix_path: Path, evidence_paths: Sequence[Path]) -> MergeResult:
    """Merge every cell of the evidence files into the matrix: records, then the rules they justify.

    Idempotent: re-merging the same files rewrites identical blocks, and a cell already covered by a rule
    (including one this command wrote before) gets no new rule. Refuses to write a matrix that fails the
    schema or gains lint problems; a generated rule that would contradict the matrix is left to a human.
    """
    original = matrix_path.read_text(encoding="utf-8")
    cells: list[tuple[Cell, Provenance]] = []
    records: list[tuple[str, str]] = []
    for path in evidence_paths:
        header, found = read(path)
        date = str(header.get("created", ""))[:10]
        host = header.get("host") or {}
        platform = ", ".join(
            str(host.get(key, "unknown")) for key in ("platform", "accelerator", "os")
        ) + f", glibc {host.get('glibc', 'unknown')}"
        relative = os.path.relpath(path.resolve(), matrix_path.resolve().parent)
        for cell in found:
            records.append((record_id(cell), render_record(cell, date=date, platform=platform, file=relative)))
            cells.append((cell, Provenance(record_id(cell), date, platform, relative)))
    text = merge_text(original, records)
    matrix = _build(text, matrix_path)
    rules: dict[str, str] = {}
    curate: list[str] = []
    for cell, where in cells:
        generated = generate(cell, matrix, where)
        rules.update(generated.rules)
        curate += generated.curate
    merged = merge_text(text, list(rules.items()), table="rule")
    after = _build(merged, matrix_path)
    goods = _goods_to_check(after, set(rules))
    before = set(_lint_lines(_build(original, matrix_path), goods))
    new_problems = set(_lint_lines(after, goods)) - before
    dropped = {rule: line for line in sorted(new_problems) for rule in rules if repr(rule) in line}
    if dropped:
        curate += [f"not written: {rule} would contradict the matrix ({why})" for rule, why in dropped.items()]
        rules = {k: v for k, v in rules.items() if k not in dropped}
        merged = merge_text(text, list(rules.items()), table="rule")
        new_problems = set(_lint_lines(_build(merged, matrix_path), goods)) - before
    if new_problems:
        raise MatrixError(str(matrix_path), [schema_problem(p) for p in sorted(new_problems)])
    matrix_path.write_text(merged, encoding="utf-8")
    return MergeResult(tuple(r for r, _ in records), tuple(rules), tuple(dict.fromkeys(curate)))


def _goods_to_check(matrix: Matrix, generated: set[str]) -> set[str]:
    """Known-good rules whose contradictions can change: the new ones, and those whose aimet-torch range
    admits the release of a new bad rule (the contradiction check is the slow part of the lint)."""
    from qatdoctor.conditions import evaluate_all
    from qatdoctor.model import Fact, Facts

    new_bad = [r for r in matrix.rules if r.id in generated and r.kind == "bad"]
    releases = [c.raw.removeprefix("==") for r in new_bad for c in r.when if c.fact == "aimet-torch"]
    goods = {r.id for r in matrix.rules if r.id in generated and r.kind == "good"}
    for rule in matrix.rules:
        clause = tuple(c for c in rule.when if c.fact == "aimet-torch")
        if rule.kind != "good" or rule.id in goods or not releases:
            continue
        if not clause or any(evaluate_all(clause, Facts({"aimet-torch": Fact.known(v)})).value for v in releases):
            goods.add(rule.id)
    return goods


def merge_evidence(matrix_path: Path, evidence_paths: Sequence[Path]) -> list[str]:
    """Merge evidence files into the matrix; returns the record ids, reports rules and curation on stderr."""
    result = merge(matrix_path, evidence_paths)
    for rule in result.rules:
        print(f"qatdoctor: wrote rule {rule}", file=sys.stderr)
    for line in result.curate:
        print(f"qatdoctor: to curate by hand: {line}", file=sys.stderr)
    return list(result.records)


def _build(text: str, matrix_path: Path) -> Matrix:
    from qatdoctor.matrix import schema

    doc = parse_toml(text, str(matrix_path))
    problems = schema.validate(doc)
    if problems:
        raise MatrixError(str(matrix_path), problems)
    return build(doc, path=str(matrix_path))


def _lint_lines(matrix: Matrix, goods: set[str]) -> list[str]:
    """Lint, with the (slow) contradiction check limited to the known-good rules in `goods`."""
    from qatdoctor.matrix import lint

    subset = matrix._replace(rules=tuple(r for r in matrix.rules if r.kind != "good" or r.id in goods))
    problems = [
        *lint._unsatisfiable(matrix),
        *lint._unreachable(matrix),
        *lint._contradictions(subset),
        *lint._references(matrix),
    ]
    return [str(p) for p in problems]


def schema_problem(line: str) -> Problem:
    where, _, what = line.partition(": ")
    return Problem(where, what or line)
