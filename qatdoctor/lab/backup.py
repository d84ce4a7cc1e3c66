"""The set saved before `qatdoctor fix` changes a target: what `pip freeze --all` showed, what the fix installed
(with versions), and the interpreter it was taken from. Written with a sha256 over its content; read back
strictly: any shape, line, checksum or size it does not expect is a `BackupError`, never something pip reads.

The checksum catches a truncated or edited file, not a forger (who can recompute it): what undo may do is
bounded by `restore.plan` (only what the fix installed, still at the version it installed) and by the
interpreter check, not by the checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from qatdoctor import atomic
from qatdoctor.errors import InputError

FORMAT = 2
MAX_BYTES = 4 << 20  # a freeze of 1,000 packages is ~50 KB
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # PEP 508
_PIN = re.compile(rf"({_NAME})==([^\s;,]+)")
_DIRECT = re.compile(rf"({_NAME}) @ ([a-z][a-z0-9+.-]*:\S+)")
_EDITABLE = re.compile(r"-e ([^\s-].*)")
_EDITABLE_NOTE = re.compile(rf"# Editable .*\(({_NAME})==([^\s)]+)\)")
_EGG = re.compile(rf"#egg=({_NAME})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BackupError(InputError):
    """A saved set that is unreadable, malformed, edited, or another interpreter's: refused, nothing changed."""


class UnreadableLine(ValueError):
    """A `pip freeze` line that is not `name==version`, `name @ url` or a named `-e` editable."""


@dataclass(frozen=True)
class Identity:
    """An interpreter as it reports itself: the path given, where it resolves, its prefix and version."""

    path: str
    realpath: str
    prefix: str
    base_prefix: str
    version: str

    def differences(self, other: Identity) -> list[str]:
        return [f"{f.name} {getattr(self, f.name)!r} ≠ {getattr(other, f.name)!r}"
                for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One installed distribution as `pip freeze` printed it. Only a pin can be put back by qatdoctor."""

    name: str  # canonical (PEP 503)
    kind: str  # "pin" | "direct" | "editable"
    version: str | None
    lines: tuple[str, ...]  # as printed (an editable's note line first)

    @property
    def requirement(self) -> str | None:
        """`name==version`, rebuilt from the parsed parts (never the raw line); None for a direct or editable."""
        return f"{self.name}=={self.version}" if self.kind == "pin" else None

    @property
    def shown(self) -> str:
        return self.lines[-1]


@dataclass(frozen=True)
class Backup:
    """The set before a fix; `installed` is None until the fix's pip finished (then: what it put there)."""

    path: Path
    identity: Identity
    created: str
    command: str
    saved: Mapping[str, Entry]
    installed: Mapping[str, Entry] | None = None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.path, encode(self))


def parse_freeze(lines: Sequence[str]) -> dict[str, Entry]:
    """`pip freeze` output → entries by canonical name; raises UnreadableLine on anything else."""
    found: dict[str, Entry] = {}
    note: re.Match[str] | None = None
    for raw in lines:
        line = raw.strip()
        if _CONTROL.search(raw):
            raise UnreadableLine(f"a control character in {_cut(raw)}")
        if not line or line.startswith("#"):
            note = _EDITABLE_NOTE.fullmatch(line) or (note if not line else None)
            continue
        entry = _entry(line, note)
        note = None
        if entry.name in found:
            raise UnreadableLine(f"{entry.name} is listed twice")
        found[entry.name] = entry
    return found


def _entry(line: str, note: re.Match[str] | None) -> Entry:
    if pin := _PIN.fullmatch(line):
        return Entry(canonicalize_name(pin[1]), "pin", _version(pin[2], line), (line,))
    if direct := _DIRECT.fullmatch(line):
        return Entry(canonicalize_name(direct[1]), "direct", None, (line,))
    if _EDITABLE.fullmatch(line):
        egg = _EGG.search(line)
        if note is not None:
            return Entry(canonicalize_name(note[1]), "editable", _version(note[2], line), (note[0], line))
        if egg is not None:
            return Entry(canonicalize_name(egg[1]), "editable", None, (line,))
        raise UnreadableLine(f"an editable without a name: {_cut(line)}")
    raise UnreadableLine(f"not `name==version`, `name @ url` or `-e …`: {_cut(line)}")


def _cut(line: str) -> str:
    return repr(line if len(line) <= 120 else line[:120] + "…")


def _version(text: str, line: str) -> str:
    try:
        Version(text)
    except InvalidVersion:
        raise UnreadableLine(f"not a PEP 440 version in {_cut(line)}") from None
    return text


def backup_dir(root: Path, python: str) -> Path:
    """Where the backups of one target interpreter live (`$QATDOCTOR_ENVS/../fix/<hash of its path>/`)."""
    return root / "fix" / hashlib.sha256(python.encode()).hexdigest()[:16]


def encode(backup: Backup) -> str:
    content = _content(backup)
    return json.dumps({"sha256": _digest(content), "content": content}, indent=2, sort_keys=True) + "\n"


def _content(backup: Backup) -> dict[str, Any]:
    def lines(entries: Mapping[str, Entry]) -> list[str]:
        return [line for entry in entries.values() for line in entry.lines]

    installed = None if backup.installed is None else lines(backup.installed)
    return {"format": FORMAT, "interpreter": asdict(backup.identity), "created": backup.created,
            "command": backup.command, "saved": lines(backup.saved), "installed": installed}  # fmt: skip


def _digest(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def decode(text: str, path: Path) -> Backup:
    """A backup file's text → Backup; raises BackupError for anything but what `encode` writes."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise BackupError(f"{path} is not a qatdoctor backup (not JSON, or cut short)") from None
    if isinstance(data, dict) and "freeze" in data and "sha256" not in data:
        raise BackupError(f"{path} was written by an older qatdoctor without a checksum: it is not trusted",
                          hint="its `freeze` list is the saved set: reinstall what you need by hand")  # fmt: skip
    if not isinstance(data, dict) or set(data) != {"sha256", "content"} or not isinstance(data["content"], dict):
        raise BackupError(f"{path} is not a qatdoctor backup (expected a checksum and its content)")
    content = data["content"]
    if data["sha256"] != _digest(content):
        raise BackupError(f"{path} does not match its checksum: it was edited or damaged, so it is not used")
    return _from_content(content, path)


def _from_content(content: dict[str, Any], path: Path) -> Backup:
    def bad(what: str) -> BackupError:
        return BackupError(f"{path} has {what}: it is not used")

    shape = {"format", "interpreter", "created", "command", "saved", "installed"}
    if set(content) != shape or content["format"] != FORMAT:
        raise bad(f"an unknown layout (format {content.get('format')!r})")
    who = content["interpreter"]
    names = {f.name for f in fields(Identity)}
    if not isinstance(who, dict) or set(who) != names or not all(isinstance(v, str) for v in who.values()):
        raise bad("no valid interpreter record")
    for key in ("created", "command"):
        if not isinstance(content[key], str) or _CONTROL.search(content[key]):
            raise bad(f"an invalid {key!r}")
    try:
        saved = parse_freeze(_strings(content["saved"]))
        installed = None if content["installed"] is None else parse_freeze(_strings(content["installed"]))
    except UnreadableLine as error:
        raise bad(f"a line qatdoctor will not pass to pip ({error})") from None
    if installed is not None and any(entry.kind != "pin" for entry in installed.values()):
        raise bad("an installed record that is not `name==version`")
    return Backup(path, Identity(**who), content["created"], content["command"], saved, installed)


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise UnreadableLine("not a list of lines")
    return value


def latest(root: Path, python: str) -> Backup:
    """The newest backup saved for `python`; raises BackupError when there is none or it cannot be trusted."""
    folder = backup_dir(root, python)
    saved = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not saved:
        raise BackupError(f"no saved set for {python}: nothing to undo",
                          hint="`qatdoctor fix` saves one before it changes anything")  # fmt: skip
    return decode(_read(saved[-1]), saved[-1])


def _read(path: Path) -> str:
    """A regular file's text, bounded; a FIFO, device, symlink or huge file is refused (never a hang)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise BackupError(f"cannot read {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise BackupError(f"{path} is not a regular file")
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise BackupError(f"{path} is larger than {MAX_BYTES >> 20} MiB: not a qatdoctor backup")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BackupError(f"{path} is not UTF-8 text: not a qatdoctor backup") from None
