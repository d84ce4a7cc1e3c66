"""Redaction for anything that leaves the machine (`qatdoctor report`): home paths, host names, GPU UUIDs,
credentials. The collector redacts its own output too; this is the last pass over the whole report."""

from __future__ import annotations

import re
import socket
from functools import cache
from pathlib import Path

GPU_ID = re.compile(r"\b(?:GPU|MIG)-[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([A-Z0-9_]*(?:TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|CREDENTIALS?)[A-Z0-9_]*)"
    r"(\s*[=:]\s*)(['\"]?)[^\s'\"]+\3"
)
TOKEN_SHAPES = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|hf_[A-Za-z0-9]{30,}|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|glpat-[A-Za-z0-9_-]{20,})\b"
)
BEARER = re.compile(r"(?i)\b(authorization:\s*(?:bearer|token|basic))\s+\S+")


@cache
def _hosts() -> tuple[str, ...]:
    names = {socket.gethostname(), socket.gethostname().split(".")[0]}
    # matched case-sensitively as whole words, so a host called "ubuntu" leaves "Ubuntu 22.04" alone
    return tuple(sorted((n for n in names if len(n) >= 2 and n != "localhost"), key=len, reverse=True))


def redact(text: str, *, home: str | None = None) -> str:
    """`text` with home directories as `~`, host names as `<host>`, GPU UUIDs and credentials removed."""
    home = home if home is not None else str(Path.home())
    if home and home not in ("/", "~"):
        text = re.sub(re.escape(home.rstrip("/")) + r"(?=/|\b)", "~", text)
    text = re.sub(r"/(home|Users)/[^/\s\"']+", r"/\1/<user>", text)
    for host in _hosts():
        text = re.sub(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", "<host>", text)
    text = GPU_ID.sub("GPU-<redacted>", text)
    text = SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", text)
    text = TOKEN_SHAPES.sub("<redacted-token>", text)
    return BEARER.sub(r"\1 <redacted>", text)
