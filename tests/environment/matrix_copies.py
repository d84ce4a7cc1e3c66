"""Modified copies of the shipped matrix, written as a contributor would (tomlkit keeps the rest as it is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from qatdoctor.knowledge.load import default_path

NEW_LIB = "libqatdoctorprobe.so.7"  # a library no system has, unless a test puts it on LD_LIBRARY_PATH
NEW_CONSTRUCT = "conv-layer"  # any Conv2d: an existing detector kind (module-class)
SOURCE = {"kind": "docs", "ref": "https://example.org/qatdoctor-test", "note": "a test's entry"}


def _write(doc: Any, folder: Path) -> Path:
    path = folder / "compat_matrix.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    return path


def with_new_system_lib(folder: Path, release: str = "2.42.0") -> Path:
    """The matrix plus a [[system_lib]] that `release` requires."""
    doc = tomlkit.parse(default_path().read_text(encoding="utf-8"))
    entry = next(a for a in doc["aimet"] if a["version"] == release)
    entry["system_libs"] = [*entry.get("system_libs", []), NEW_LIB]
    lib = tomlkit.table()
    lib.update({"soname": NEW_LIB, "apt": "libqatdoctorprobe7", "basis": "vendor-docs", "sources": [SOURCE]})
    doc["system_lib"].append(lib)
    return _write(doc, folder)


def with_new_construct(folder: Path) -> Path:
    """The matrix plus a [[construct]] detected by an existing kind."""
    doc = tomlkit.parse(default_path().read_text(encoding="utf-8"))
    construct = tomlkit.table()
    construct.update({
        "id": NEW_CONSTRUCT, "title": "a Conv2d layer", "summary": "Any torch.nn.Conv2d (a test's construct).",
        "detect": [{"kind": "module-class", "classes": ["torch.nn.Conv2d"]}], "sources": [SOURCE],
    })  # fmt: skip
    doc["construct"].append(construct)
    return _write(doc, folder)
