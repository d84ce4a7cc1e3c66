"""Exact pip commands and constraints files for a set of pins."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from qatdoctor.records import Pin

CUDA_INDEX = "https://download.pytorch.org/whl"
_PLAIN = re.compile(r"^[\w./~+-]+$")


def pip_install(python: str, pins: Iterable[Pin], index_url: str | None = None) -> str:
    """`<python> -m pip install "a==1" "b<2"`, with the PyTorch index when a +cuXXX build is pinned."""
    parts = [_shell_word(python), "-m", "pip", "install", *(f'"{pin}"' for pin in pins)]
    if index_url:
        parts += ["--extra-index-url", index_url]
    return " ".join(parts)


def _shell_word(text: str) -> str:
    """Quote for the shell, but leave a leading `~/` unquoted so the shell still expands it."""
    return text if _PLAIN.match(text) else shlex.quote(text)


def constraints_lines(pins: Iterable[Pin], index_url: str | None = None) -> list[str]:
    """A pip constraints file: one pin per line (no extras), and the index it needs."""
    lines = [str(pin) for pin in pins]
    if index_url:
        lines.insert(0, f"--extra-index-url {index_url}")
    return lines
