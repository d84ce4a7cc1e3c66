"""Matching a rule's error signatures against error text (probe errors, pasted logs)."""

from __future__ import annotations

import re
from functools import lru_cache

from qatdoctor.matrix.model import Signature

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Colour codes removed, CR/LF and runs of whitespace collapsed to one space."""
    return SPACE.sub(" ", ANSI.sub("", text)).strip()


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def signature_matches(signature: Signature, text: str, error_type: str | None = None) -> bool:
    """Whether normalized `text` carries the signature (and its exception type, when it names one)."""
    if signature.text is not None:
        needle = normalize(signature.text)
        if needle not in text:
            return False
        if signature.type is not None and error_type is None:
            at = text.find(needle)
            # the type must introduce the message, as in "RuntimeError: The function ..."
            return text.rfind(f"{signature.type}:", max(0, at - 300), at + 1) != -1
    if signature.regex is not None and not _compiled(signature.regex).search(text):
        return False
    return signature.type is None or error_type is None or _same_type(signature.type, error_type)


def _same_type(expected: str, actual: str) -> bool:
    """`ImportError` matches `ImportError` and `module.ImportError`; ModuleNotFoundError is an ImportError."""
    tail = actual.rsplit(".", 1)[-1]
    return tail == expected or (expected == "ImportError" and tail == "ModuleNotFoundError")
