"""`qatdoctor matrix merge-evidence FILE`: evidence cells → [[evidence]] records and rules in compat_matrix.toml.

The TOML is edited with tomlkit, so its comments and layout (the maintainers') stay whatever they are: an entry
with the same id is updated in place, a new one joins the end of its table. The result is validated before it is
written, atomically.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import tomlkit
from tomlkit.container import Container, OutOfOrderTableProxy
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, Comment, InlineTable, Table, Trivia
from tomlkit.toml_document import TOMLDocument

from qatdoctor.authoring.generate import Provenance, entry, generate, inline
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import MatrixError, build, parse_toml
from qatdoctor.knowledge.vocab import Problem
from qatdoctor.lab.evidence import Cell, read
from qatdoctor.text import first_line


def record_id(cell: Cell) -> str:
    return f"probe-{cell.id}"


def render_record(cell: Cell, *, date: str, platform: str, file: str) -> Table:
    """One [[evidence]] entry for a cell."""
    versions = dict(cell.versions)
    if cell.api:
        versions["api"] = cell.api
    failing = sorted(k for k, v in cell.summary.items() if v != "pass")
    summary = (
        f"qatdoctor probe, outcome {cell.outcome}"
        + (f"; failing: {', '.join(failing)}" if failing else "; every probe model passed")
        + "."
    )
    if cell.outcome == "install-failed":
        error = first_line(str(cell.install.get("error") or ""), limit=300, default="no error recorded")
        summary = f"The environment could not be built, so nothing was probed: {error}."
    record = entry({
        "id": record_id(cell),
        "date": _date(date),
        "versions": inline(versions),
        "platform": platform,
        "outcome": cell.outcome,
        "summary": summary,
        "file": file,
    })  # fmt: skip
    cases = dict(cell.summary)
    model = _model_case(cell)
    if model:
        cases[model[0]] = model[1]
    if cases:
        record.append("cases", inline(cases))
    return record


def _date(text: str) -> dt.date | str:
    """A TOML date when `text` is one (a string otherwise, which the schema then rejects)."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return text


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


def merge_entries(doc: TOMLDocument, entries: Sequence[tuple[str, Table]], where: str, table: str = "evidence") -> None:
    """Write entries ([[evidence]] or [[rule]]) into the parsed matrix: one with the same id is updated in place
    (only the values that differ, so its comments and layout stay), a new one goes after the last entry of its
    table, or at the end of the file when the table has none yet."""
    for entry_id, new in entries:
        new = copy.deepcopy(new)
        found = doc.get(table)
        if found is None:
            _blank_line_after(doc)
            doc.append(table, AoT([new]))
            continue
        if not isinstance(found, (AoT, Array)):
            raise MatrixError(where, f"{table}: not an array of tables")
        old = next((e for e in found if isinstance(e, (Table, InlineTable)) and e.get("id") == entry_id), None)
        if old is not None:
            _update(old, new)
        elif isinstance(found, AoT):
            _append(found, new)
        else:
            found.append(_inline_copy(new))  # `table = [{ ... }, ...]`: one more inline table


def _update(old: MutableMapping[str, Any], new: Table) -> None:
    """Make `old` hold `new`'s values, touching only the keys whose values differ."""
    for name in [k for k in old if k not in new]:
        del old[name]
    for name, value in new.items():
        current = old.get(name)
        if name in old and _plain(current) == _plain(value):
            continue
        if isinstance(current, (Table, OutOfOrderTableProxy)) and isinstance(value, (Table, InlineTable)):
            _update(current, cast(Table, value))  # a [table] or dotted keys: their lines stay where they are
        elif isinstance(current, AoT) and isinstance(value, AoT) and len(current) == len(value):
            for mine, theirs in zip(current, value, strict=True):
                _update(mine, theirs)
        else:
            old[name] = value


def _inline_copy(table: Table) -> InlineTable:
    """`table` as an inline table (its sub-tables as arrays of inline tables)."""
    out = tomlkit.inline_table()
    for name, value in table.items():
        out.append(name, Array([_inline_copy(t) for t in value], Trivia()) if isinstance(value, AoT) else value)
    return out


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def _append(aot: AoT, new: Table) -> None:
    """Add `new` after the last entry; comments that end that entry (the next section's heading) move below it."""
    last = _innermost(aot[-1].value)
    body = last.body
    cut = len(body)
    while cut and body[cut - 1][0] is None:
        cut -= 1
    first_comment = next((i for i in range(cut, len(body)) if isinstance(body[i][1], Comment)), len(body))
    gap, moved = body[cut:first_comment], body[first_comment:]
    del body[first_comment:]
    if not gap:
        _blank_line_after(last)
    tail = _innermost(new.value)
    for _, item in [*copy.deepcopy(gap), *moved] if (gap or moved) else []:
        tail.append(None, item)
    aot.append(new)


def _innermost(container: Container) -> Container:
    """The container whose lines come last in the text: that of the last sub-table, if any."""
    while container.body and isinstance(container.body[-1][1], (Table, AoT)):
        item = container.body[-1][1]
        container = item.value if isinstance(item, Table) else item[-1].value
    return container


def _blank_line_after(container: Container) -> None:
    """End `container` (a document or the innermost part of an entry) with a blank line."""
    inner = _innermost(container)
    text = inner.as_string()
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    if text and not text.endswith(newline * 2):
        inner.append(None, tomlkit.ws(newline if text.endswith(newline) else newline * 2))


def _wheel_records(path: Path, matrix_path: Path) -> list[tuple[str, Table]] | None:
    """[[evidence]] entries for a wheel evidence file (`matrix refresh --evidence`); None for other files."""
    from qatdoctor import bounded
    from qatdoctor.errors import InputError

    try:
        payload = bounded.read_json(path, what="evidence file")
    except InputError:
        return None  # `read` reports it
    if not isinstance(payload, dict) or payload.get("qatdoctor_wheels") != 1:
        return None
    date = str(payload.get("created", ""))[:10]
    relative = os.path.relpath(path.resolve(), matrix_path.resolve().parent)
    wheels = payload.get("wheels") or []
    out = []
    for index, wheel in enumerate(wheels if isinstance(wheels, list) else [wheels]):
        try:
            out.append(render_wheel_record(wheel, date=date, file=relative))
        except (KeyError, TypeError, AttributeError, ValueError, IndexError) as error:
            raise InputError(f"{path}: wheel {index} is malformed ({type(error).__name__}: {error})") from None
    return out


def wheel_record_id(wheel: dict[str, Any]) -> str:
    tag = "-".join(str(t) for t in wheel.get("tags", [])[:1])
    return re.sub(r"[^a-z0-9.-]", "-", f"wheel-{wheel['name']}-{wheel['version']}-{tag}".lower())


def render_wheel_record(wheel: dict[str, Any], *, date: str, file: str) -> tuple[str, Table]:
    """One [[evidence]] entry for a wheel read with zipfile + pyelftools: what the artefact itself says."""
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
    record = wheel_record_id(wheel)
    table = entry({
        "id": record,
        "date": _date(date),
        "versions": inline(versions),
        "platform": "wheel file read with zipfile and pyelftools (no install, no run)",
        "outcome": "inspected",
        "summary": "; ".join(parts) + ".",
        "file": file,
    })  # fmt: skip
    if cases:
        table.append("cases", inline(cases))
    return record, table


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
    original = _read(matrix_path)
    where = str(matrix_path)
    cells: list[tuple[Cell, Provenance]] = []
    records: list[tuple[str, Table]] = []
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
    doc = _parse(original, where)
    merge_entries(doc, records, where)
    text = _dump(doc, original)
    matrix = _build(text, matrix_path)
    rules: dict[str, Table] = {}
    curate: list[str] = []
    for cell, at in cells:
        generated = generate(cell, matrix, at)
        rules.update(generated.rules)
        curate += generated.curate
    merge_entries(doc, list(rules.items()), where, table="rule")
    merged = _dump(doc, original)
    after = _build(merged, matrix_path)
    goods = _goods_to_check(after, set(rules))
    before = set(_lint_lines(_build(original, matrix_path), goods))
    new_problems = set(_lint_lines(after, goods)) - before
    dropped = {rule: line for line in sorted(new_problems) for rule in rules if repr(rule) in line}
    if dropped:
        curate += [f"not written: {rule} would contradict the matrix ({why})" for rule, why in dropped.items()]
        rules = {k: v for k, v in rules.items() if k not in dropped}
        doc = _parse(text, where)
        merge_entries(doc, list(rules.items()), where, table="rule")
        merged = _dump(doc, original)
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
    from qatdoctor.records import Fact, Facts

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


def _read(path: Path) -> str:
    """The matrix text with its own line endings (bounded, a regular file); MatrixError when it is not one."""
    from qatdoctor import bounded
    from qatdoctor.errors import InputError
    from qatdoctor.knowledge.load import MAX_BYTES

    try:
        return bounded.read_text(path, limit=MAX_BYTES, what="the matrix", regular=True)
    except InputError as error:
        raise MatrixError(str(path), error.message.replace(f" {path}", "")) from None


def _parse(text: str, where: str) -> TOMLDocument:
    """The matrix as a tomlkit document (tomllib's message when it is not TOML)."""
    try:
        return tomlkit.parse(text)
    except TOMLKitError as error:
        parse_toml(text, where)  # raises MatrixError with the loader's own message
        raise MatrixError(where, f"not valid TOML: {error}") from None


def _dump(doc: TOMLDocument, original: str) -> str:
    """The document's text, in the original's line endings (new entries are written with \\n)."""
    text = doc.as_string()
    if "\r\n" in original and "\n" not in original.replace("\r\n", ""):
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    return text


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
