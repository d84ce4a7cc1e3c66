"""No message shape or input size can crash the host (issue 25, item 2): empty messages, deep or huge JSON,
odd files (FIFO, /dev/zero, a directory, binary) and hostile wheels are bad input (exit 4/5/6), never an
internal error (70), a hang or gigabytes of memory. Each case runs the real CLI in a child process under a
2 GiB address-space cap and reports its peak RSS (faultkit.measured)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from faultkit import measured

from qatdoctor import bounded
from qatdoctor.errors import InputError
from qatdoctor.exitcodes import ExitCode
from qatdoctor.text import first_line

ROOT = Path(__file__).resolve().parents[2]
EVIDENCE = ROOT / "evidence"


def assert_handled(code: int, err: str, expected: int) -> None:
    assert code == expected, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err, err[-3000:]


@pytest.fixture
def matrix(tmp_path: Path) -> Path:
    copy = tmp_path / "compat_matrix.toml"
    shutil.copy(ROOT / "compat_matrix.toml", copy)
    shutil.copytree(EVIDENCE, tmp_path / "evidence")
    return copy


# --- messages with no text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first"),
    [("", ""), ("\n", ""), (" \n\t\n", ""), ("\n\nsecond", "second"), ("  one  \ntwo", "one"),
     ("x" * 5000, "x" * 300), ("\x1c\u2028line", "line"), (None, "")],
    ids=["empty", "newline", "blank-lines", "leading-blank", "stripped", "cut", "unicode-breaks", "none"],
)  # fmt: skip
def test_first_line_takes_any_text(text: str | None, first: str) -> None:
    assert first_line(text, limit=300) == first
    assert first_line(text, default="(none)") == (first or "(none)") or len(first) == 300


def _cell_file(tmp_path: Path, source: str, outcome: str, change: Callable[[dict[str, object]], None]) -> Path:
    """One real cell of a shipped evidence file, with the given outcome, changed."""
    payload = json.loads((EVIDENCE / source).read_text())
    cell = next(c for c in payload["cells"] if c["outcome"] == outcome)
    change(cell)
    payload["cells"] = [cell]
    path = tmp_path / "evidence" / "crafted.json"
    path.write_text(json.dumps(payload))
    return path


def _empty_import_error(cell: dict[str, object]) -> None:
    """`assert False` inside `import aimet_torch`, on a torch the matrix has no rule for."""
    cell["id"] = "aimet-2.42.0-torch-2.9.1-py310"
    cell["versions"] = {"aimet-torch": "2.42.0", "torch": "2.9.1", "python": "3.10.13"}
    probe = cell["probe"]
    assert isinstance(probe, dict)
    probe["import_error"] = {"type": "AssertionError", "message": " \n ", "frames": []}


def _blank_install_error(cell: dict[str, object]) -> None:
    install = cell["install"]
    assert isinstance(install, dict)
    install["error"] = "\n  \n"
    cell["id"] = f"{cell['id']}-blank"


@pytest.mark.parametrize(
    ("source", "outcome", "change", "written"),
    [("probe-aimet-2.42.0-torch-2.2.2-py310.json", "import-failed", _empty_import_error,
      "AssertionError: (no message)"),
     ("sweep-1x-releases.json", "install-failed", _blank_install_error, "nothing was probed: no error recorded")],
    ids=["import-error-without-message", "install-error-blank"],
)  # fmt: skip
def test_merge_evidence_takes_errors_without_a_message(
    tmp_path: Path, matrix: Path, source: str, outcome: str, change: Callable[[dict[str, object]], None], written: str
) -> None:
    """`message.strip().splitlines()[0]` on a blank message was an IndexError: exit 70."""
    path = _cell_file(tmp_path, source, outcome, change)
    code, _, err, _ = measured(["matrix", "merge-evidence", str(path), "--matrix", str(matrix)])
    assert_handled(code, err, ExitCode.OK)
    assert written in matrix.read_text()


# --- JSON inputs: saved reports, evidence files, wheel evidence --------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


SHAPES: dict[str, Callable[[Path], Path]] = {
    "deep-100000": lambda p: _write(p, _deep(100_000)),
    "deep-900": lambda p: _write(p, '{"schema_version": 1, "facts": {}, "qatdoctor_evidence": 1, "cells": [], '
                                    f'"notes": {_deep(900)}, "host": {_deep(900)}}}'),  # parses; recursive walks did not
    "fifo-no-writer": lambda p: (os.mkfifo(p), p)[1],
    "dev-zero": lambda p: (p.symlink_to("/dev/zero"), p)[1],
    "directory": lambda p: (p.mkdir(), p)[1],
    "empty": lambda p: _write(p, ""),
    "binary": lambda p: (p.write_bytes(bytes(range(256)) * 64), p)[1],
    "nul-bytes": lambda p: _write(p, "\0" * 4096),
    "cells-not-a-list": lambda p: _write(p, '{"qatdoctor_evidence": 1, "schema_version": 1, "facts": {}, "cells": 5}'),
    "wheels-malformed": lambda p: _write(p, '{"qatdoctor_wheels": 1, "wheels": ["x", 5, {"name": 1}]}'),
}  # fmt: skip


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


READERS: dict[str, Callable[[Path, Path], list[str]]] = {
    "report --from-report": lambda path, matrix: ["report", "--from-report", str(path), "--matrix", str(matrix)],
    "merge-evidence": lambda path, matrix: ["matrix", "merge-evidence", str(path), "--matrix", str(matrix)],
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reader", READERS)
def test_json_inputs_are_bounded(tmp_path: Path, matrix: Path, reader: str, shape: str) -> None:
    """Deep JSON was a RecursionError (70) in merge-evidence and in the walks after a report's parse; a FIFO
    hung; /dev/zero read until MemoryError; `cells: 5` and malformed wheel entries were TypeErrors (70)."""
    path = SHAPES[shape](tmp_path / "input.json")
    before = matrix.read_bytes()
    code, _, err, peak = measured(READERS[reader](path, matrix), timeout=60)
    valid_report = reader == "report --from-report" and shape == "cells-not-a-list"  # a report: `cells` unread
    assert_handled(code, err, ExitCode.OK if valid_report else ExitCode.BAD_INPUT)
    assert peak < 600 and matrix.read_bytes() == before, peak


@pytest.mark.parametrize("shape", ["fifo-no-writer", "directory", "binary", "dev-zero"])
@pytest.mark.parametrize("command", ["merge-evidence", "resolve"])
def test_a_matrix_that_is_not_a_file_is_exit_4(tmp_path: Path, shape: str, command: str) -> None:
    """merge-evidence on a missing, directory or binary matrix was an OSError/UnicodeDecodeError (70); a FIFO
    matrix hung every command."""
    path = SHAPES[shape](tmp_path / "m.toml")
    args = (
        ["matrix", "merge-evidence", str(EVIDENCE / "probe-aimet-2.42.0-torch-2.2.2-py310.json"), "--matrix", str(path)]
        if command == "merge-evidence" else ["resolve", "-a", "python=3.11", "--matrix", str(path)]
    )  # fmt: skip
    code, _, err, _ = measured(args, timeout=60)
    assert_handled(code, err, ExitCode.MATRIX_INVALID)


def test_the_bounded_reader_refuses_what_it_must(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(_deep(bounded.MAX_DEPTH + 1))
    with pytest.raises(InputError, match="nested more than 64 levels"):
        bounded.read_json(deep)
    deep.write_text(_deep(bounded.MAX_DEPTH))
    assert bounded.read_json(deep) is not None
    big = tmp_path / "big.json"
    big.write_text(" " * 2048)
    with pytest.raises(InputError, match="larger than 1 KiB"):
        bounded.read_json(big, limit=1024)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        bounded.read_bytes(fifo, regular=True)
    assert bounded.read_bytes(fifo) == b""  # no writer: empty at once, not a hang


@pytest.mark.parametrize(
    ("text", "deeper"),
    [(_deep(64), False), (_deep(65), True), ('[["[[[[[[", {"a": [[]]}]]', True), ('{"a": "' + "[" * 100 + '"}', False)],
    ids=["64", "65", "mixed", "brackets-in-a-string"],
)  # fmt: skip
def test_depth_is_counted_on_the_parsed_value(text: str, deeper: bool) -> None:
    limit = 64 if len(text) > 50 else 3
    assert bounded.deeper_than(json.loads(text), limit) is deeper


# --- what the target prints ---------------------------------------------------------------------------------


def _fake_python(tmp_path: Path, collector: str, probe: str = "") -> Path:
    """A 'Python' whose collector (and probe) print what is given; anything else runs the real interpreter."""
    import sys

    script = tmp_path / "python"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f"  *_collector.py) {collector} ;;\n"
        f"  *_probe.py) {probe or 'exit 3'} ;;\n"
        f'  *) exec "{sys.executable}" "$@" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return script


def test_deep_json_from_the_collector_is_exit_5(tmp_path: Path) -> None:
    """The collector's stdout parsed whole: 100,000-deep JSON was a RecursionError (70)."""
    deep = tmp_path / "deep.json"
    deep.write_text(_deep(100_000))
    python = _fake_python(tmp_path, f"cat {deep}")
    code, _, err, _ = measured(["check", "--python", str(python), "--no-probe"], timeout=60)
    assert_handled(code, err, ExitCode.TARGET_UNUSABLE)


def test_deep_json_and_odd_events_from_the_probe_are_a_crashed_probe(tmp_path: Path) -> None:
    """The probe's stdout (100,000-deep JSON was RecursionError) and its event lines (a list was an
    AttributeError) are data: the run is a crashed probe, never exit 70."""
    import sys

    deep = tmp_path / "deep.json"
    deep.write_text(_deep(100_000))
    collector = f'exec "{sys.executable}" "$@"'
    probe = f"echo '@qatdoctor-probe [1, 2]' >&2; echo '@qatdoctor-probe {_deep(3000)}' >&2; cat {deep}"
    code, out, err, _ = measured(["check", "--python", str(_fake_python(tmp_path, collector, probe))], timeout=90)
    assert code not in (ExitCode.INTERNAL, ExitCode.OK), err[-3000:]
    assert "Traceback" not in err and "internal error" not in err
    assert "crash" in out.lower() or "no result" in out.lower(), out[-2000:]


# --- wheels (`matrix refresh --wheels DIR`) ----------------------------------------------------------------

WHEEL = "torch-9.9.9-cp311-cp311-manylinux_2_28_x86_64.whl"


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _metadata_bomb(path: Path) -> Path:
    """A 255 KiB wheel whose METADATA inflates to 256 MiB (its header says so, honestly)."""
    chunk = b"a" * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("torch-9.9.9.dist-info/METADATA", "w") as member,
    ):
        member.write(b"Metadata-Version: 2.1\nName: torch\nVersion: 9.9.9\nX-Pad: ")
        for _ in range(256):
            member.write(chunk)
    return path


def _patch_sizes(path: Path, size: int) -> Path:
    """Make every header claim `size` uncompressed bytes (a lying header)."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        while at != -1:
            data[at + offset : at + offset + 4] = struct.pack("<I", size)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


def _patch_flags(path: Path, *, flag: int = 0, method: int | None = None) -> Path:
    data = bytearray(path.read_bytes())
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)
        while at != -1:
            data[at + flag_at] |= flag
            if method is not None:
                data[at + method_at : at + method_at + 2] = struct.pack("<H", method)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


META = {"torch-9.9.9.dist-info/METADATA": b"Metadata-Version: 2.1\nName: torch\nVersion: 9.9.9\n"}
BIG = {"torch-9.9.9.dist-info/METADATA": b"Metadata-Version: 2.1\nName: torch\n" + b"a" * (64 << 20)}
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "metadata-bomb-256MiB": (_metadata_bomb, "more than the 4194304 read"),
    "lying-header": (lambda p: _patch_sizes(_zip(p, BIG), 100), "cannot read"),
    "symlink-to-dev-zero": (lambda p: (p.symlink_to("/dev/zero"), p)[1], "not a regular file"),
    "fifo": (lambda p: (os.mkfifo(p), p)[1], "not a regular file"),
    "directory": (lambda p: (p.mkdir(), p)[1], "not a regular file"),
    "empty": (lambda p: _write(p, ""), "cannot read wheel"),
    "truncated": (lambda p: (p.write_bytes(_zip(p, BIG).read_bytes()[: 40_000]), p)[1], "cannot read wheel"),
    "encrypted-member": (lambda p: _patch_flags(_zip(p, META), flag=0x1), "encrypted"),
    "unknown-compression": (lambda p: _patch_flags(_zip(p, META), method=99), "compression"),
}  # fmt: skip


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_wheels_are_exit_6_in_bounded_memory(tmp_path: Path, matrix: Path, case: str) -> None:
    """Issue 25: a wheel symlinked to /dev/zero was a MemoryError (70); the METADATA bomb peaked at 2.6 GB;
    an encrypted member or an unknown compression method escaped as RuntimeError/NotImplementedError (70)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build, message = HOSTILE[case]
    build(wheels / WHEEL)
    code, _, err, peak = measured(
        ["matrix", "refresh", "--check", "--wheels", str(wheels), "--matrix", str(matrix)], timeout=120
    )
    assert_handled(code, err, ExitCode.BAD_INPUT)
    assert message in err and WHEEL in err, err[-2000:]
    assert peak < 300, f"peak RSS {peak} MiB"
