"""Redaction for anything that leaves the machine (`qatdoctor report`, evidence files): credentials, home paths,
host and user names, GPU UUIDs.

It works on data, before anything is serialised: `redact_data` walks a report (NamedTuples, dataclasses, dicts,
lists) and rewrites string *values* only, never keys or field names, so the JSON stays valid and replays. The
collector redacts its own output in the target too; this is the last pass.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")

REDACTED = "<redacted>"
GPU_ID = re.compile(r"\b(?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
_VALUE = r"""(?:"[^"\n]*"|'[^'\n]*'|[^\s'",;&)}\]]+)"""
# NAME=VALUE / NAME: VALUE where NAME says secret: HF_TOKEN, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, ...
SECRET_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w-])([\w-]*(?:token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key|private[_-]?key|auth[_-]?key"
    r"|credentials?|session[_-]?id)[\w-]*)"
    rf"(\s*[=:]\s*)({_VALUE})"
)
# upper-case env-style names ending in _KEY / _PASS / _PWD (case-sensitive: `sort_key=` in code is not a secret)
ENV_KEY = re.compile(rf"(?<![\w-])([A-Z][A-Z0-9_]*_(?:KEY|PASS|PWD|KEY_ID)(?:_[A-Z0-9]+)*)(\s*[=:]\s*)({_VALUE})")
TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_-]{50,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|private-token|x-auth-token|cookie)(\s*:\s*)"
    r"(?:(bearer|token|basic|digest|negotiate)\s+)?([^\s\"']+)"
)
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:\"'<>]+(?::[^\s/@\"'<>]*)?@")
USER_DIR = re.compile(r"/(home|Users)/(?!<user>)[^/\s\"']+")

# Words qatdoctor itself prints as data (states, statuses, fact and package names): a host or user named like
# one of them is not a secret, and rewriting the word would corrupt the report.
_COMMON = frozenset({
    "localhost", "root", "user", "admin", "nobody", "python", "python3", "known", "unknown", "absent", "pass",
    "fail", "skipped", "ok", "problems", "error", "warning", "info", "matrix", "probe", "model", "environment",
    "caveat", "coverage", "requirements", "expectation", "log", "derived", "inferred", "assumed", "stated",
    "collected", "torch", "torchvision", "numpy", "aimet", "cuda", "driver", "glibc", "onnx", "mmcv", "mmengine",
    "timm", "gpu", "cpu", "v1", "v2", "baseline", "train", "eval", "host", "none", "true", "false", "null",
})  # fmt: skip
# Fields whose values are qatdoctor's vocabulary, matrix text or commands: host and user names are never
# replaced there (home paths, credentials and GPU UUIDs still are).
VOCABULARY_FIELDS = frozenset({
    "id", "kind", "severity", "status", "origin", "scope", "construct", "command", "verdict", "state", "title",
    "summary", "sources", "fixes", "commands", "constraints", "code", "lands_on", "avoids", "model_failures",
    "changes", "stage", "model", "mode", "check", "type", "api", "layers", "spec", "matrix", "timings",
    "versions", "outcome", "ref", "note", "package", "current",
})  # fmt: skip


@cache
def _hosts() -> tuple[str, ...]:
    try:
        name = os.uname().nodename
    except (AttributeError, OSError):  # pragma: no cover - not POSIX
        import socket

        name = socket.gethostname()
    names = {name, name.split(".")[0]}
    # matched case-sensitively as whole words, so a host called "ubuntu" leaves "Ubuntu 22.04" alone
    return tuple(sorted((n for n in names if len(n) >= 2 and n.lower() not in _COMMON), key=len, reverse=True))


@cache
def _users() -> tuple[str, ...]:
    names: set[str] = set()
    for variable in ("USER", "LOGNAME", "USERNAME"):
        if value := os.environ.get(variable):
            names.add(value)
    try:
        import pwd

        names.add(pwd.getpwuid(os.getuid()).pw_name)
    except (ImportError, KeyError, OSError):  # pragma: no cover - no passwd entry
        pass
    return tuple(sorted((n for n in names if len(n) >= 3 and n.lower() not in _COMMON), key=len, reverse=True))


@cache
def _homes(home: str | None) -> tuple[str, ...]:
    found = {home} if home is not None else {str(Path.home())}
    if home is None:
        found |= {os.path.realpath(h) for h in found}
    return tuple(sorted({h.rstrip("/") for h in found if h and h.rstrip("/") not in ("", "~")}, key=len, reverse=True))


def _word(name: str) -> re.Pattern[str]:
    return _compiled(rf"(?<![\w.-]){re.escape(name)}(?![\w-])")


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _secret(match: re.Match[str]) -> str:
    name, separator, value = match.group(1), match.group(2), match.group(3)
    if "token" in name.lower() and value.strip("\"'").isdigit():
        return match.group(0)  # max_tokens=512 counts tokens; it is not one
    return f"{name}{separator}{REDACTED}"


def redact_secrets(text: str) -> str:
    """Credentials only: NAME=VALUE secrets, known token shapes, Authorization headers, URL user:password@."""
    if "://" in text:
        text = URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = SECRET_ASSIGNMENT.sub(_secret, text)
    text = ENV_KEY.sub(_secret, text)
    text = TOKEN_SHAPES.sub("<redacted-token>", text)
    return AUTH_HEADER.sub(_header, text)


def _header(match: re.Match[str]) -> str:
    scheme = f"{match.group(3)} " if match.group(3) else ""
    return f"{match.group(1)}{match.group(2)}{scheme}{REDACTED}"


def redact(text: str, *, home: str | None = None, names: bool = True) -> str:
    """`text` with credentials, home directories (`~`), other users' home dirs, GPU UUIDs and — with `names` —
    host names (`<host>`) and the user name (`<user>`) removed."""
    for path in _homes(home):
        if path in text:
            text = _compiled(re.escape(path) + r"(?=/|\b|$)").sub("~", text)
    if "/home/" in text or "/Users/" in text:
        text = USER_DIR.sub(r"/\1/<user>", text)
    if names:
        for host in _hosts():
            if host in text:
                text = _word(host).sub("<host>", text)
        for user in _users():
            if user in text:
                text = _word(user).sub("<user>", text)
    if "GPU-" in text or "MIG-" in text:
        text = GPU_ID.sub("GPU-<redacted>", text)
    return redact_secrets(text)


def redact_data(value: T, *, home: str | None = None, names: bool = True) -> T:
    """A copy of `value` with every string value redacted: NamedTuples, frozen dataclasses, mappings, lists, tuples
    and paths are rebuilt; keys, field names, enums and numbers are left as they are."""

    def text(item: str, free: bool) -> str:
        return redact(item, home=home, names=names and free)

    return _walk(value, text, True)  # type: ignore[no-any-return]


# Escape sequences (CSI, OSC, other ESC), C0/C1 controls but tab and newline, DEL, bidirectional overrides.
CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """`text` without terminal control: escape sequences and control characters removed (tab and newline kept)."""
    return CONTROLS.sub("", text) if not text.isprintable() else text  # pragma: no mutate - fast path


def printable_data(value: T) -> T:
    """`printable` applied to every string value (and key) of nested dicts and lists, e.g. a JSON payload."""
    if isinstance(value, str):
        return printable(value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {printable(k) if isinstance(k, str) else k: printable_data(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [printable_data(v) for v in value]  # type: ignore[return-value]
    return value


def _walk(value: Any, text: Any, free: bool) -> Any:
    if value is None or isinstance(value, (enum.Enum, bool, int, float)):  # pragma: no mutate - fast path
        return value
    if isinstance(value, str):
        return text(value, free)
    if isinstance(value, PurePath):
        return type(value)(text(str(value), free))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return type(value)._make(  # type: ignore[attr-defined]
            _walk(item, text, free and field not in VOCABULARY_FIELDS)
            for field, item in zip(value._fields, value, strict=True)  # pragma: no mutate - same length
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _walk(getattr(value, f.name), text, free and f.name not in VOCABULARY_FIELDS)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, Mapping):
        walked = {key: _walk(item, text, free and key not in VOCABULARY_FIELDS) for key, item in value.items()}
        return MappingProxyType(walked) if isinstance(value, MappingProxyType) else walked
    if isinstance(value, (list, tuple)):
        return type(value)(_walk(item, text, free) for item in value)
    return value
