"""The saved set (lab/backup.py): `pip freeze` lines parsed strictly, written with a checksum, read back only as
written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qatdoctor.lab import backup
from qatdoctor.lab.backup import Backup, BackupError, Identity, UnreadableLine

ACCEPTED = [
    (["six==1.16.0"], "six", "pin", "1.16.0", "six==1.16.0"),
    (["Typing_Extensions==4.12.2"], "typing-extensions", "pin", "4.12.2", "typing-extensions==4.12.2"),
    (["torch==2.2.2+cu121"], "torch", "pin", "2.2.2+cu121", "torch==2.2.2+cu121"),
    (["dref @ file:///tmp/dref-1.0-py3-none-any.whl"], "dref", "direct", None, None),
    (["# Editable install with no version control (my-pkg==0.1)", "-e /home/me/src"], "my-pkg", "editable", "0.1",
     None),
    (["-e git+https://github.com/x/y@0123abc#egg=y_pkg"], "y-pkg", "editable", None, None),
]
REFUSED = [
    ("--target=/tmp/x", "not `name==version`"),
    ("-r requirements.txt", "not `name==version`"),
    ("--index-url https://evil.example/simple", "not `name==version`"),
    ("-e --target=/tmp/x", "not `name==version`"),
    ("-e /home/me/src", "an editable without a name"),
    ("six>=1.0", "not `name==version`"),
    ("six", "not `name==version`"),
    ("six==1.16.0 --target=/tmp/x", "not `name==version`"),
    ("six==1.16.0; python_version < '3'", "not `name==version`"),
    ("six===1.16.0", "not a PEP 440 version"),
    ("six==banana", "not a PEP 440 version"),
    ("-six==1.0", "not `name==version`"),
    ("dref @ /no/scheme.whl", "not `name==version`"),
    ("six==1.16.0\x1b[2J", "a control character"),
]


@pytest.mark.parametrize(("lines", "name", "kind", "version", "requirement"), ACCEPTED)
def test_freeze_lines_pip_prints_are_read(
    lines: list[str], name: str, kind: str, version: str | None, requirement: str | None
) -> None:
    (entry,) = backup.parse_freeze(["# a comment", "", *lines]).values()
    assert (entry.name, entry.kind, entry.version, entry.requirement) == (name, kind, version, requirement)
    assert entry.lines == tuple(lines), "kept as printed, to be written back"


@pytest.mark.parametrize(("line", "why"), REFUSED)
def test_anything_else_is_refused(line: str, why: str) -> None:
    with pytest.raises(UnreadableLine, match=why.replace("(", r"\(")):
        backup.parse_freeze(["pip==24.0", line])


def test_a_name_listed_twice_is_refused() -> None:
    with pytest.raises(UnreadableLine, match="twice"):
        backup.parse_freeze(["six==1.16.0", "Six==1.17.0"])


def _backup(path: Path) -> Backup:
    saved = backup.parse_freeze(["# Editable install with no version control (my-pkg==0.1)", "-e /src", "six==1.16.0"])
    who = Identity("/v/bin/python", "/usr/bin/python3.11", "/v", "/usr", "3.11.7 (main)")
    return Backup(path, who, "20260101T000000Z", "/v/bin/python -m pip install six==1.17.0", saved,
                  backup.parse_freeze(["six==1.17.0"]))  # fmt: skip


def test_a_backup_reads_back_as_written(tmp_path: Path) -> None:
    written = _backup(tmp_path / "b.json")
    written.save()
    assert backup.decode((tmp_path / "b.json").read_text(), tmp_path / "b.json") == written
    recording = Backup(written.path, written.identity, written.created, written.command, written.saved)
    assert backup.decode(backup.encode(recording), written.path).installed is None, "not finished: no record"


EDITS = [
    ("truncated", lambda text: text[: len(text) // 2], "not JSON, or cut short"),
    ("a version edited", lambda text: text.replace("six==1.16.0", "six==1.15.0"), "does not match its checksum"),
    ("the interpreter edited", lambda text: text.replace('"/v"', '"/w"'), "does not match its checksum"),
    ("a key added", lambda text: text.replace('"sha256"', '"extra": 1, "sha256"'), "expected a checksum"),
    ("nested deep", lambda text: "[" * 100_000, "not JSON"),
]


@pytest.mark.parametrize(("name", "edit", "why"), EDITS, ids=[e[0] for e in EDITS])
def test_an_edited_or_damaged_backup_is_refused(tmp_path: Path, name: str, edit: object, why: str) -> None:
    text = edit(backup.encode(_backup(tmp_path / "b.json")))  # type: ignore[operator]
    with pytest.raises(BackupError, match=why):
        backup.decode(text, tmp_path / "b.json")


CONTENT_EDITS = [
    ("an option line saved", lambda c: c["saved"].append("--target=/tmp/x"), "will not pass to pip"),
    ("an editable recorded as installed", lambda c: c["installed"].append("-e git+https://x/y#egg=y"),
     "installed record that is not"),
    ("a newer format", lambda c: c.update(format=3), "unknown layout"),
    ("an interpreter field missing", lambda c: c["interpreter"].pop("prefix"), "no valid interpreter"),
    ("a command with an escape", lambda c: c.update(command="x\x1b[2J"), "invalid 'command'"),
    ("saved not a list", lambda c: c.update(saved={"six": "1.16.0"}), "not a list of lines"),
]


@pytest.mark.parametrize(("name", "edit", "why"), CONTENT_EDITS, ids=[e[0] for e in CONTENT_EDITS])
def test_content_qatdoctor_does_not_write_is_refused_even_with_a_valid_checksum(
    tmp_path: Path, name: str, edit: object, why: str
) -> None:
    data = json.loads(backup.encode(_backup(tmp_path / "b.json")))
    edit(data["content"])  # type: ignore[operator]
    data["sha256"] = backup._digest(data["content"])
    with pytest.raises(BackupError, match=why):
        backup.decode(json.dumps(data), tmp_path / "b.json")


def test_the_newest_backup_is_the_one_read(tmp_path: Path) -> None:
    folder = backup.backup_dir(tmp_path, "/v/bin/python")
    older = _backup(folder / "20250101T000000000000Z.json")
    older.save()
    newest = _backup(folder / "20260101T000000000000Z.json")
    newest.save()
    assert backup.latest(tmp_path, "/v/bin/python") == newest
    (folder / "20270101T000000000000Z.json").write_text("{")
    with pytest.raises(BackupError, match="20270101"):  # a damaged newest backup is refused, not skipped
        backup.latest(tmp_path, "/v/bin/python")
