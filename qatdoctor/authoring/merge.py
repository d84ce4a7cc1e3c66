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
from typing import Any

from qatdoctor.authoring.generate import Provenance, generate, toml_str
from qatdoctor.knowledge.load import MatrixError, build, parse_toml
from qatdoctor.knowledge.model import Matrix
from qatdoctor.knowledge.vocab import Problem
from qatdoctor.lab.evidence import Cell, read


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
    if cell.outcome == "install-failed":
        error = str(cell.install.get("error") or "no error recorded").strip().splitlines()[0][:300]
        summary = f"The environment could not be built, so nothing was probed: {error}."
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
    model = _model_case(cell)
    if model:
        cases = ", ".join(filter(None, [cases, f"{toml_str(model[0])} = {toml_str(model[1])}"]))
    if cases:
        lines.append(f"cases = {{ {cases} }}")
    return "\n".join(lines) + "\n"


def _model_case(cell: Cell) -> tuple[str, str] | None:
    """The `--model` run of a cell as one case: `model <file>:<callable>` → its failing stages, or pass."""
    run = cell.probe.model if cell.probe else None
    if run is None:
        return None
    name = "model " + run.spec.rsplit("/", 1)[-1]
    if not run.ran:
        return name, f"{run.status}: {run.reason or (run.error.type if run.error else '')}".strip()
    bad = [f"{s.stage} {s.status.value} ({s.error.type if s.error else s.check})" for s in run.failed_stages()]
    frozen = f"; frozen BN layers: {', '.join(run.frozen_layers)}" if run.frozen_layers else ""
    changed = f"; {run.bn_changed}/{run.bn_buffers} running-stat buffers changed" if run.bn_buffers else ""
    return name, ("; ".join(bad) or "pass") + frozen + changed


def merge_text(text: str, blocks: Sequence[tuple[str, str]], table: str = "evidence") -> str:
    """Replace entries ([[evidence]] or [[rule]]) with the same id; put new ones after the last entry of their
    table (so each table stays in one piece), or at the end when the table has none yet."""
    for entry_id, block in blocks:
        found = _entry_pattern(table, entry_id).search(text)
        if found is not None:
            text = text[: found.start()] + block + "\n" + text[found.end() :]
            continue
        last = _last_entry(text, table)
        if last is None:
            text = text.rstrip("\n") + "\n\n" + block
        else:
            head = text[:last].rstrip("\n")
            text = head + "\n\n" + block + ("\n" + text[last:].lstrip("\n") if text[last:].strip() else "")
    return text.rstrip("\n") + "\n"


def _last_entry(text: str, table: str) -> int | None:
    """Where the last `[[table]]` entry (with its sub-tables) ends."""
    starts = [m.start() for m in re.finditer(r"^\[\[" + re.escape(table) + r"\]\]\nid = (.*)\n", text, re.M)]
    if not starts:
        return None
    found = re.compile(r"^\[\[" + re.escape(table) + r"\]\]\nid = .*\n" + _body(table), re.M).match(text, starts[-1])
    return found.end() if found else None


def _body(table: str) -> str:
    if table == "rule":
        return r"(?:(?!\[\[(?!" + re.escape(table) + r"\.)|\[(?!\[)|#).*\n?)*"
    return r"(?:(?!\[|#).*\n?)*"


def _entry_pattern(table: str, entry_id: str) -> re.Pattern[str]:
    """One `[[table]]` block by id, up to the next top-level table or comment line (sub-tables included)."""
    head = r"^\[\[" + re.escape(table) + r"\]\]\nid = " + re.escape(toml_str(entry_id)) + r"\n"
    return re.compile(head + _body(table), re.MULTILINE)


def _wheel_records(path: Path, matrix_path: Path) -> list[tuple[str, str]] | None:
    """[[evidence]] blocks for a wheel evidence file (`matrix refresh --evidence`); None for other files."""
    import json

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None  # `read` reports it
    if not isinstance(payload, dict) or payload.get("qatdoctor_wheels") != 1:
        return None
    date = str(payload.get("created", ""))[:10]
    relative = os.path.relpath(path.resolve(), matrix_path.resolve().parent)
    return [render_wheel_record(w, date=date, file=relative) for w in payload.get("wheels") or []]


def wheel_record_id(wheel: dict[str, Any]) -> str:
    tag = "-".join(str(t) for t in wheel.get("tags", [])[:1])
    return re.sub(r"[^a-z0-9.-]", "-", f"wheel-{wheel['name']}-{wheel['version']}-{tag}".lower())


def render_wheel_record(wheel: dict[str, Any], *, date: str, file: str) -> tuple[str, str]:
    """One [[evidence]] block for a wheel read with zipfile + pyelftools: what the artefact itself says."""
    versions = {str(wheel["name"]): str(wheel["version"])}
    abi = re.match(r"^cpython-3(\d+)", str(wheel.get("python_abi") or ""))
    tag = re.match(r"^cp3(\d+)-", str((wheel.get("tags") or [""])[0]))
    minor = tag or (abi if wheel.get("elf") else None)
    if minor:
        versions["python"] = f"3.{minor.group(1)}"
    elf = wheel.get("elf") or []
    deps = [d for d in wheel.get("requires_dist") or [] if re.match(r"^(torch|torchvision|numpy)\b", d)]
    parts = [f"{wheel['filename']}: Requires-Python {wheel.get('requires_python')}",
             f"Requires-Dist {', '.join(deps) or 'no torch/torchvision/numpy'}"]  # fmt: skip
    extras = (wheel.get("extras") or {}).get("v1-deps")
    if extras:
        parts.append(f"extra v1-deps: {', '.join(extras)}")
    parts.append(f"platform floor {wheel.get('platform_floor') or 'none (any)'}")
    parts.append(f"{len(elf)} ELF files")
    if wheel.get("glibc"):
        parts.append(f"highest GLIBC symbol version GLIBC_{wheel['glibc']}")
    parts.append(f"CUDA sonames NEEDED: {' '.join(wheel.get('cuda_sonames') or []) or 'none'}")
    if wheel.get("build_torch"):
        parts.append(f"_version.py torch {wheel['build_torch']}")
    parts.append("aimet_torch.v1 present" if wheel.get("has_v1") else "no aimet_torch.v1")
    cases = {}
    for item in elf:
        symbols = ", ".join(item.get("glibc_symbols", [])[:6])
        glibc = f"GLIBC_{item['glibc']} ({symbols})" if item.get("glibc") else "no GLIBC versions"
        cases[str(item["path"]).rsplit("/", 1)[-1]] = f"{glibc}; NEEDED {' '.join(item.get('needed', []))}"
    inline = ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in versions.items())
    record = wheel_record_id(wheel)
    lines = [
        "[[evidence]]",
        f"id = {toml_str(record)}",
        f"date = {date}",
        f"versions = {{ {inline} }}",
        f"platform = {toml_str('wheel file read with zipfile and pyelftools (no install, no run)')}",
        'outcome = "inspected"',
        f"summary = {toml_str('; '.join(parts) + '.')}",
        f"file = {toml_str(file)}",
    ]
    if cases:
        lines.append("cases = { " + ", ".join(f"{toml_str(k)} = {toml_str(v)}" for k, v in cases.items()) + " }")
    return record, "\n".join(lines) + "\n"


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
        wheel_records = _wheel_records(path, matrix_path)
        if wheel_records is not None:
            records += wheel_records
            continue
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
    from qatdoctor import atomic
    from qatdoctor.errors import InputError

    try:
        atomic.write_text(matrix_path, merged)  # a full disk leaves the old matrix intact, never a truncated one
    except OSError as error:
        raise InputError(f"cannot write {matrix_path}: {error.strerror or error}") from None
    return MergeResult(tuple(r for r, _ in records), tuple(rules), tuple(dict.fromkeys(curate)))


def _goods_to_check(matrix: Matrix, generated: set[str]) -> set[str]:
    """Known-good rules whose contradictions can change: the new ones, and those whose aimet-torch range
    admits the release of a new bad rule (the contradiction check is the slow part of the lint)."""
    from qatdoctor.diagnose.conditions import evaluate_all
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
    from qatdoctor.knowledge import schema

    doc = parse_toml(text, str(matrix_path))
    problems = schema.validate(doc)
    if problems:
        raise MatrixError(str(matrix_path), problems)
    return build(doc, path=str(matrix_path))


def _lint_lines(matrix: Matrix, goods: set[str]) -> list[str]:
    """Lint, with the (slow) contradiction check limited to the known-good rules in `goods`."""
    from qatdoctor.authoring import lint

    return [str(p) for p in lint.consistency(matrix, goods=goods)]


def schema_problem(line: str) -> Problem:
    where, _, what = line.partition(": ")
    return Problem(where, what or line)
