"""`qatdoctor matrix merge-evidence FILE`: evidence cells → [[evidence]] records in compat_matrix.toml.

The TOML is edited as text (its comments and layout are the maintainers'): a record with the same id is
replaced in place, a new one is appended at the end. The result is validated before it is written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from qatdoctor.evidence import Cell, read
from qatdoctor.matrix import schema
from qatdoctor.matrix.load import MatrixError, build, parse_toml


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are a subset of TOML's)."""
    return json.dumps(text, ensure_ascii=False)


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


def merge_text(text: str, blocks: Sequence[tuple[str, str]]) -> str:
    """Replace records with the same id, append the rest."""
    for record, block in blocks:
        pattern = re.compile(
            r"^\[\[evidence\]\]\nid = " + re.escape(toml_str(record)) + r"\n(?:(?!^\[).*\n?)*", re.MULTILINE
        )
        if pattern.search(text):
            found = pattern.search(text)
            assert found is not None
            text = text[: found.start()] + block + "\n" + text[found.end() :]
        else:
            text = text.rstrip("\n") + "\n\n" + block
    return text


def merge_evidence(matrix_path: Path, evidence_paths: Sequence[Path]) -> list[str]:
    """Merge every cell of the evidence files into the matrix; returns the record ids written."""
    text = matrix_path.read_text(encoding="utf-8")
    blocks: list[tuple[str, str]] = []
    for path in evidence_paths:
        header, cells = read(path)
        date = str(header.get("created", ""))[:10]
        host = header.get("host") or {}
        platform = ", ".join(
            str(host.get(key, "unknown")) for key in ("platform", "accelerator", "os")
        ) + f", glibc {host.get('glibc', 'unknown')}"
        relative = os.path.relpath(path.resolve(), matrix_path.resolve().parent)
        for cell in cells:
            blocks.append((record_id(cell), render_record(cell, date=date, platform=platform, file=relative)))
    merged = merge_text(text, blocks)
    doc = parse_toml(merged, str(matrix_path))
    problems = schema.validate(doc)
    if problems:
        raise MatrixError(str(matrix_path), problems)
    build(doc, path=str(matrix_path))
    matrix_path.write_text(merged, encoding="utf-8")
    return [record for record, _ in blocks]
