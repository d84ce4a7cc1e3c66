"""The wheel ships the matrix (TOML, compiled sidecar, schema), its evidence, and the in-target scripts."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("qatdoctor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "qatdoctor/data/compat_matrix.toml",
        "qatdoctor/data/compat_matrix.json",
        "qatdoctor/data/compat_matrix.schema.json",
        "qatdoctor/environment/_collector.py",
        "qatdoctor/environment/_probe.py",
    ):
        assert required in names, required
    prefix = "qatdoctor/data/evidence/"
    evidence = {n[len(prefix) :] for n in names if n.startswith(prefix) and not n.endswith("/")}
    shipped = {p.relative_to(ROOT / "evidence").as_posix() for p in (ROOT / "evidence").rglob("*") if p.is_file()}
    assert evidence == {n for n in shipped if "__pycache__" not in n}
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if line.startswith("Requires-Dist")]
    runtime = [line for line in requires if "extra ==" not in line]
    assert not any(name in line for line in runtime for name in ("torch", "aimet", "pydantic")), runtime


def test_compiled_sidecar_is_current() -> None:
    """`qatdoctor matrix compile` was run after the last edit of compat_matrix.toml."""
    from qatdoctor.knowledge.load import _compiled

    assert _compiled(ROOT / "compat_matrix.toml") is not None, "run: qatdoctor matrix compile"
