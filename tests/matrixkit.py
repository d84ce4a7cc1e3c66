"""Small matrices for engine tests, and the shipped matrix with one more release (as `matrix refresh` writes it).

`small(...)` keeps the shipped matrix's vocabulary (APIs and release lines, requirement checks, system libraries,
probe terms, constructs, CUDA driver floors) and replaces what the engine decides over — releases, torch series,
rules, evidence — with the few entries a test writes. Every small matrix passes the published schema and the
loader's cross-field checks, so a test cannot rest on a matrix qatdoctor would refuse.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import tomllib

from qatdoctor.knowledge import schema
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import MatrixError, build

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "compat_matrix.toml"
SOURCE = ({"kind": "docs", "ref": "tests/matrixkit.py", "note": "a synthetic entry"},)
VOCABULARY = ("api", "api_line", "requirement", "system_lib", "os_release", "python_support", "probe_term",
              "construct", "cuda")  # fmt: skip


@cache
def _shipped() -> dict[str, Any]:
    return tomllib.loads(SHIPPED.read_text(encoding="utf-8"))


def aimet(version: str, *, requires_python: str = ">=3.8", apis: Sequence[str] | None = None, **fields: Any) -> dict:
    """An [[aimet]] entry (its APIs default to those of its [[api_line]]'s default)."""
    major = int(version.split(".")[0])
    entry: dict[str, Any] = {"version": version, "released": dt.date(2026, 1, 1), "requires_python": requires_python,
                             "apis": list(apis or (["v1"] if major < 2 else ["v2"]))}  # fmt: skip
    return {**entry, **fields, "sources": list(SOURCE)}


def torch(series: str, *patches: int, python: Sequence[str] = ("3.10", "3.11"), **fields: Any) -> dict:
    """A [[torch]] series with releases `series.patch` (each paired with a made-up torchvision) on PyPI's cu121."""
    releases = [f"{series}.{p}" for p in patches or (0,)]
    minor = int(series.split(".")[1])
    vision = {r: f"0.{minor + 15}.{r.rsplit('.', 1)[1]}" for r in releases}
    entry: dict[str, Any] = {"series": series, "releases": releases, "python": list(python), "pypi_cuda": "cu121",
                             "torchvision": vision}  # fmt: skip
    return {**entry, **fields, "sources": list(SOURCE)}


def good(rule_id: str, when: Mapping[str, str], **fields: Any) -> dict:
    """A vendor-documented known-good [[rule]]."""
    return {"id": rule_id, "kind": "good", "severity": "info", "title": f"{rule_id}: vendor-documented",
            "summary": "synthetic", "when": dict(when), "basis": "vendor-docs", **fields,
            "sources": list(SOURCE)}  # fmt: skip


def bad(rule_id: str, when: Mapping[str, str], *, severity: str = "error", **fields: Any) -> dict:
    """A known-bad [[rule]] (environment scope unless `scope="model"` and a `model_feature` are given)."""
    return {"id": rule_id, "kind": "bad", "severity": severity, "title": f"{rule_id}: known-bad",
            "summary": "synthetic", "when": dict(when), "basis": "inferred", **fields,
            "sources": list(SOURCE)}  # fmt: skip


def small_doc(
    aimets: Sequence[Mapping[str, Any]], torches: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """The document of a small matrix: these releases, series and rules, with the shipped vocabulary."""
    base = _shipped()
    doc: dict[str, Any] = {"schema_version": base["schema_version"], "matrix_version": "test", "updated":
                           dt.date(2026, 1, 1)}  # fmt: skip
    for name in VOCABULARY:  # their own sources cite the shipped evidence, which a small matrix does not carry
        doc[name] = [{**copy.deepcopy(e), "sources": list(SOURCE)} for e in base.get(name, [])]
    doc.update({"aimet": [dict(a) for a in aimets], "torch": [dict(t) for t in torches],
                "rule": [dict(r) for r in rules]})  # fmt: skip
    return doc


def small(
    aimets: Sequence[Mapping[str, Any]], torches: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]] = ()
) -> Matrix:
    """A small matrix (see `small_doc`), checked against the published schema, then built."""
    doc = small_doc(aimets, torches, rules)
    problems = schema.validate(doc)
    if problems:
        raise MatrixError("<small matrix>", problems)
    return build(doc, path=str(ROOT / "small.toml"))


def write_small(path: Path, *args: Sequence[Mapping[str, Any]]) -> Path:
    """A small matrix written as a compat_matrix.toml, for the commands that read one (`--matrix PATH`)."""
    import tomlkit

    small(*args)  # valid, or the test says why not
    path.write_text(tomlkit.dumps(small_doc(*args)), encoding="utf-8")
    return path


# ---- the shipped matrix with one more release --------------------------------------------------------------------


def newest_reviewed(matrix: Matrix) -> str:
    """The newest aimet-torch release whose entry was reviewed (not proposed, not yanked)."""
    return str(max((a for a in matrix.aimet if not a.proposed and not a.yanked), key=lambda a: a.version.comparable)
               .version)  # fmt: skip


def newest_entry(matrix: Matrix) -> str:
    """The newest aimet-torch release the matrix has an entry for, reviewed or not."""
    return str(max(matrix.aimet, key=lambda a: a.version.comparable).version)


def beyond(matrix: Matrix) -> str:
    """An aimet-torch release newer than every entry of the matrix (the next minor after the newest)."""
    major, minor = max(a.version.comparable for a in matrix.aimet).release[:2]
    return f"{major}.{minor + 1}.0"


def with_copied_release(text: str, source: str, version: str, *, proposed: bool = True) -> str:
    """The matrix text with an `[[aimet]]` entry for `version`: a copy of `source`'s, written where and how
    `matrix refresh` writes an unreviewed release (`proposed = true` unless `proposed=False`)."""
    from qatdoctor.authoring.refresh import Proposal, apply_proposals

    entry = dict(next(e for e in tomllib.loads(text)["aimet"] if e["version"] == source))
    entry = {"version": version, **({"proposed": True} if proposed else {}), **entry} | {"version": version}
    return apply_proposals(text, [Proposal("aimet", version, entry)])


def write_copied_release(directory: Path, version: str | None = None, *, proposed: bool = True) -> Path:
    """A copy of the shipped matrix (and its evidence) in `directory` with `version` (default: the next minor after
    the newest entry, 2.43.0 today) added as a copy of the newest reviewed release; returns the TOML's path."""
    import shutil

    from qatdoctor.knowledge.load import load

    shipped = load(SHIPPED)
    text = SHIPPED.read_text(encoding="utf-8")
    path = directory / "compat_matrix.toml"
    copied = with_copied_release(text, newest_reviewed(shipped), version or beyond(shipped), proposed=proposed)
    path.write_text(copied, encoding="utf-8")
    if not (directory / "evidence").exists():
        shutil.copytree(ROOT / "evidence", directory / "evidence")
    return path


if __name__ == "__main__":  # python -m tests.matrixkit DIR [--unflagged]: write such a copy into DIR (a repo copy)
    import sys

    target = Path(sys.argv[1])
    written = write_copied_release(target, proposed="--unflagged" not in sys.argv)
    print(written)
