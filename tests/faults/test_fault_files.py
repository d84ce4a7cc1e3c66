"""Every file qatdoctor writes is complete or untouched: a temp file beside it, fsync, rename.

A full disk is simulated by making `os.write` (or `os.fsync`) raise ENOSPC: the old file must survive byte for
byte, and no temporary file may be left behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor import atomic
from qatdoctor.authoring.merge import merge
from qatdoctor.cli import app
from qatdoctor.errors import InputError
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge import load as matrix_load
from qatdoctor.lab import evidence
from qatdoctor.records import Fact, Facts

ROOT = Path(__file__).resolve().parents[2]
OLD = "the old content\n"


def full_disk(monkeypatch: pytest.MonkeyPatch, call: str = "write") -> None:
    def no_space(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, call, no_space)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("call", ["write", "fsync"])
def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    target = tmp_path / "file.txt"
    target.write_text(OLD)
    target.chmod(0o640)
    full_disk(monkeypatch, call)
    with pytest.raises(OSError, match="No space"):
        atomic.write_text(target, "new content " * 1000)
    monkeypatch.undo()
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []
    atomic.write_text(target, "new")
    assert target.read_text() == "new" and (target.stat().st_mode & 0o777) == 0o640  # mode kept


def test_atomic_write_refuses_a_directory_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        atomic.write_text(target, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def _cell() -> evidence.Cell:
    facts = Facts({"aimet-torch": Fact.known("2.42.0"), "torch": Fact.known("2.14.1"), "python": Fact.known("3.11.7")})
    return evidence.make_cell(facts, None, install_error="HF_TOKEN=\"abc\" at /home/alice/x")


def test_evidence_into_a_directory_is_an_error_and_leaves_no_tmp(tmp_path: Path) -> None:
    """`probe --evidence DIR` used to leave DIR.tmp behind."""
    target = tmp_path / "DIR"
    target.mkdir()
    with pytest.raises(InputError, match="cannot write"):
        evidence.write(target, [_cell()], {"platform": "x"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]


def test_evidence_on_a_full_disk_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "e.json"
    target.write_text(OLD)
    full_disk(monkeypatch)
    with pytest.raises(InputError, match="No space"):
        evidence.write(target, [_cell()], {"platform": "x"})
    monkeypatch.undo()
    assert target.read_text() == OLD and leftovers(tmp_path) == []


def test_evidence_is_redacted(tmp_path: Path) -> None:
    target = tmp_path / "e.json"
    evidence.write(target, [_cell()], {"platform": "x"})
    text = target.read_text()
    assert '"abc' not in text and "alice" not in text
    json.loads(text)


def _matrix_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "compat_matrix.toml"
    shutil.copy(ROOT / "compat_matrix.toml", copy)
    return copy


def test_merge_evidence_on_a_full_disk_leaves_the_matrix_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = _matrix_copy(tmp_path)
    before = matrix.read_bytes()
    source = tmp_path / "ev.json"
    evidence.write(source, [_cell()], {"platform": "linux", "os": "x", "glibc": "2.35", "accelerator": "CPU only"})
    full_disk(monkeypatch)
    with pytest.raises(InputError, match="No space"):
        merge(matrix, [source])
    monkeypatch.undo()
    assert matrix.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_compile_on_a_full_disk_keeps_the_old_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matrix = _matrix_copy(tmp_path)
    sidecar = matrix_load.compile_matrix(matrix)
    before = sidecar.read_bytes()
    full_disk(monkeypatch)
    with pytest.raises(matrix_load.MatrixError, match="No space"):
        matrix_load.compile_matrix(matrix)
    monkeypatch.undo()
    assert sidecar.read_bytes() == before and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "command",
    [
        lambda out: ["report", "--no-probe", "-o", str(out)],
        lambda out: ["pin", "-a", "python=3.11", "-o", str(out)],
    ],
    ids=["report", "pin"],
)
def test_cli_outputs_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: Callable[[Path], list[str]]) -> None:
    out = tmp_path / "out.txt"
    out.write_text(OLD)
    full_disk(monkeypatch)
    result = CliRunner().invoke(app, command(out))
    monkeypatch.undo()
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text() == OLD and leftovers(tmp_path) == []
