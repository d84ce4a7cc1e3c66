"""Matching a rule's error signatures against error text (probe errors, pasted logs)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from qatdoctor.matrix.model import Signature

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
SPACE = re.compile(r"\s+")
# e-mail / GitHub quote markers at the start of continuation lines ("> RuntimeError: ...").
QUOTE = re.compile(r"^[ \t]*(?:>+(?:[ \t]+|$))+", re.MULTILINE)
TYPE_REACH = 300  # how far before the message its exception type may stand (multi-line messages)
_IDENT = re.compile(r"[\w.]")
_REGEX_META = set(".^$|()[]{}*+?\\")


def normalize(text: str) -> str:
    """Colour codes removed, CR/LF and runs of whitespace collapsed to one space."""
    return SPACE.sub(" ", ANSI.sub("", text)).strip()


def normalize_window(text: str) -> str:
    """Like `normalize` for raw log text that is already free of colour codes; quote markers dropped too."""
    return SPACE.sub(" ", QUOTE.sub("", text))


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


@dataclass(frozen=True)
class TextMatch:
    """Where a signature matched in normalized text, and how strictly (`Signature.strictness` scale)."""

    start: int
    end: int
    strictness: int
    message: int = -1  # where the message itself starts, when `start` is its exception type

    @property
    def text_start(self) -> int:
        return self.start if self.message < 0 else self.message


def find_signature(signature: Signature, text: str) -> TextMatch | None:
    """Search normalized `text` for the signature; a missing exception type loosens the match.

    For `type` + `text`, the type must introduce the message (`RuntimeError: The function ...`, possibly
    module-qualified or a few lines earlier for multi-line messages) to count as strictness 0; without it the
    same text is a strictness-1 match.
    """
    if signature.text is not None:
        needle = normalize(signature.text)
        at = text.find(needle)
        if at == -1 or (signature.regex is not None and not _compiled(signature.regex).search(text)):
            return None
        loose = TextMatch(at, at + len(needle), 1)
        while signature.type is not None and at != -1:  # prefer an occurrence its exception type introduces
            typed = type_before(text, at, signature.type)
            if typed != -1:
                return TextMatch(typed, at + len(needle), 0, at)
            at = text.find(needle, at + 1)
        return loose
    assert signature.regex is not None
    found = _compiled(signature.regex).search(text)
    if found is None:
        return None
    start = found.start()
    if signature.type is not None and (typed := type_before(text, start, signature.type)) != -1:
        return TextMatch(typed, found.end(), signature.strictness, start)
    return TextMatch(start, found.end(), signature.strictness)


def type_before(text: str, at: int, error_type: str) -> int:
    """Start of the `Type:` (or `pkg.mod.Type:`) introducing the message at `at`, or -1."""
    names = (error_type, "ModuleNotFoundError") if error_type == "ImportError" else (error_type,)
    low = max(0, at - TYPE_REACH)
    for name in names:
        head = text.rfind(f"{name}:", low, at + 1)
        while head != -1:
            if head == 0 or not (text[head - 1].isalnum() or text[head - 1] == "_"):
                while head > 0 and _IDENT.match(text[head - 1]):
                    head -= 1  # include the module qualification in the evidence
                return head
            head = text.rfind(f"{name}:", low, head)
    return -1


def required_tokens(signature: Signature) -> tuple[str, ...]:
    """The whitespace-free literals (four characters or more) every match of the signature contains."""
    runs = [normalize(signature.text)] if signature.text is not None else _required_literals(signature.regex or "")
    return tuple(dict.fromkeys(token for run in runs for token in run.split() if len(token) >= 4))


def anchor(signature: Signature) -> str | None:
    """The required literal to `str.find` for this signature: the longest, preferring punctuation or digits.

    None when a regex has no required literal of at least four characters.
    """
    tokens = required_tokens(signature)
    return max(tokens, key=lambda t: (len(t) + (8 if not t.isalpha() else 0), t)) if tokens else None


def _required_literals(pattern: str) -> list[str]:
    """The literal runs outside groups, classes and optional parts of a regex (empty on a top-level `|`)."""
    runs: list[str] = []
    current: list[str] = []
    depth = i = 0
    quantified = False

    def close() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            i += 2
            quantified = False
            if escaped.isalnum():  # \d, \s, \b, back-references: no literal
                close()
            elif depth == 0:
                current.append(escaped)
            continue
        i += 1
        if char not in _REGEX_META:
            if depth == 0:
                current.append(char)
            quantified = False
            continue
        if char in "*?{" and current and not quantified:
            current.pop()  # the previous literal is optional or repeated an unknown number of times
        quantified = char in "*+?}"
        if char == "{":
            i = pattern.find("}", i) + 1 or len(pattern)
            quantified = True
        elif char == "[":
            i = _class_end(pattern, i)
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "|" and depth == 0:
            return []
        close()
    close()
    return runs


def _class_end(pattern: str, i: int) -> int:
    """Index just past the `]` closing a character class that opened before `i`."""
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i + 1
