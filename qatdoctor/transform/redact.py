"""Redaction for anything that leaves the machine: credentials in every output (`redact_secrets`), and for what
is shared (`qatdoctor report`, evidence files) also home paths, host and user names, GPU UUIDs (`redact`).

It works on data, before anything is serialised: `redact_data` walks a report (NamedTuples, dataclasses, dicts,
lists) and rewrites string *values* only, never keys or field names, so the JSON stays valid and replays. The
collector redacts its own output in the target too; this is the last pass. Every marker is bracketed text
(`[redacted]`), never an HTML tag, and redacting twice changes nothing.
"""

from __future__ import annotations

import os
import re
from functools import cache, lru_cache
from pathlib import Path
from typing import TypeVar

from qatdoctor.transform.walk import map_strings

T = TypeVar("T")

REDACTED = "[redacted]"
TOKEN = "[redacted-token]"
USER = "[user]"
HOST = "[host]"
GPU_ID = re.compile(r"\b(?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
# a quoted value (JSON's escaped quotes included) or a bare word
_VALUE = r"""(?:"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s'",;&)}\]]+)"""
# a name that says secret: HF_TOKEN, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, DB_PASSWORD, api_key, passphrase, ...
_NAME = (
    r"[\w-]*(?:token|secret|passw(?:or)?d|passphrase|api[_-]?key|access[_-]?key|private[_-]?key|auth[_-]?key"
    r"|credentials?|session[_-]?id)[\w-]*"
)
# NAME=VALUE, NAME: VALUE, "NAME": "VALUE" (JSON), NAME = VALUE (pip.conf, ini, TOML)
SECRET_ASSIGNMENT = re.compile(rf"""(?i)(?<![\w-])({_NAME})(["']?\s*[=:]\s*)({_VALUE})""")
# --NAME VALUE and --NAME=VALUE on a command line
SECRET_FLAG = re.compile(rf"(?i)(?<![\w-])(--{_NAME})(\s+|=)(?!-)({_VALUE})")
# netrc: `password X` after `machine H`, `login U`, `account A` or `default`, or on a line of its own
NETRC = re.compile(
    r"(?im)(\b(?:(?:machine|login|account)[ \t]+\S+|default)[ \t]+(?:password|passwd)[ \t]+)(\S+)"
    r"|(^[ \t]*(?:password|passwd)[ \t]+)(\S+)(?=[ \t]*$)"
)
# upper-case env-style names ending in _KEY / _PASS / _PWD (case-sensitive: `sort_key=` in code is not a secret)
ENV_KEY = re.compile(rf"(?<![\w-])([A-Z][A-Z0-9_]*_(?:KEY|PASS|PWD|KEY_ID)(?:_[A-Z0-9]+)*)(\s*[=:]\s*)({_VALUE})")
TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|hf_[A-Za-z0-9]{30,}|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}"
    r"|pypi-[A-Za-z0-9_-]{50,}|AIza[0-9A-Za-z_-]{35}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
)
AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|private-token|x-auth-token|cookie)(\s*:\s*)"
    r"(?:(bearer|token|basic|digest|negotiate)\s+)?([^\s\"']+)"
)
URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/@:\"'<>\[\]]+(?::[^\s/@\"'<>]*)?@")
USER_DIR = re.compile(r"/(home|Users)/(?!\[user\])[^/\s\"']+")
# a secret-named option whose value is not the secret: --password-file PATH, PASSWORD_ENV=NAME, passwordless: true
_NOT_A_SECRET_NAME = re.compile(
    r"(?i)(?:[_-](?:file|path|dir|env|var|length|len|count|prompt|stdin|fd|cmd|command|type|hint|policy|url"
    r"|required|timeout|limit|max|min)|less)$"
)
_NOT_A_SECRET_VALUE = frozenset({"", "true", "false", "yes", "no", "none", "null"})

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
    bare = value.strip("\"'")
    if _NOT_A_SECRET_NAME.search(name) or bare.lower() in _NOT_A_SECRET_VALUE or bare.startswith("[redacted"):
        return match.group(0)
    if "token" in name.lower() and bare.isdigit():
        return match.group(0)  # max_tokens=512 counts tokens; it is not one
    quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 else ""
    return f"{name}{separator}{quote}{REDACTED}{quote}"


# every pattern above needs one of these (lower-cased): a text without any is left alone
_CLUES = ("token", "secret", "pass", "key", "credential", "session", "pwd", "auth", "cookie", "://", "ghp_", "gho_",
          "ghu_", "ghs_", "ghr_", "github_pat_", "hf_", "npm_", "sk-", "glpat-", "pypi-", "akia", "asia", "xox", "aiza",
          "eyj")  # fmt: skip


@lru_cache(maxsize=16384)  # a report repeats its strings (statuses, ids, versions), and is rendered more than once
def redact_secrets(text: str) -> str:
    """Credentials only: NAME=VALUE, NAME: VALUE, "NAME": "VALUE" and --NAME VALUE secrets, netrc passwords,
    known token shapes, Authorization headers, URL user:password@."""
    lower = text.lower()
    if not any(clue in lower for clue in _CLUES):  # pragma: no mutate - fast path
        return text
    if "://" in text:
        text = URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = SECRET_ASSIGNMENT.sub(_secret, text)
    text = SECRET_FLAG.sub(_secret, text)
    text = ENV_KEY.sub(_secret, text)
    if "passw" in text.lower():
        text = NETRC.sub(_netrc, text)
    text = TOKEN_SHAPES.sub(TOKEN, text)
    return AUTH_HEADER.sub(_header, text)


def _netrc(match: re.Match[str]) -> str:
    keyword, value = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return match.group(0) if value.startswith("[redacted") else f"{keyword}{REDACTED}"


def redact_secrets_data(value: T) -> T:
    """`redact_secrets` over every string value of nested data (what every output gets, the terminal included)."""
    return map_strings(value, lambda text, _free: redact_secrets(text))


def _header(match: re.Match[str]) -> str:
    if match.group(4).startswith("[redacted"):
        return match.group(0)
    scheme = f"{match.group(3)} " if match.group(3) else ""
    return f"{match.group(1)}{match.group(2)}{scheme}{REDACTED}"


def redact(text: str, *, home: str | None = None, names: bool = True) -> str:
    """`text` with credentials, home directories (`~`), other users' home dirs, GPU UUIDs and — with `names` —
    host names (`[host]`) and the user name (`[user]`) removed."""
    for path in _homes(home):
        if path in text:
            text = _compiled(re.escape(path) + r"(?=/|\b|$)").sub("~", text)
    if "/home/" in text or "/Users/" in text:
        text = USER_DIR.sub(rf"/\1/{USER}", text)
    if names:
        for host in _hosts():
            if host in text:
                text = _word(host).sub(HOST, text)
        for user in _users():
            if user in text:
                text = _word(user).sub(USER, text)
    if "GPU-" in text or "MIG-" in text:
        text = GPU_ID.sub(f"GPU-{REDACTED}", text)
    return redact_secrets(text)


def redact_data(value: T, *, home: str | None = None, names: bool = True) -> T:
    """A copy of `value` with every string value redacted (`walk.map_strings`): keys, field names, enums and
    numbers are left as they are; host and user names stay in `VOCABULARY_FIELDS`."""

    def text(item: str, free: bool) -> str:
        return redact(item, home=home, names=names and free)

    return map_strings(value, text, fixed=VOCABULARY_FIELDS)
