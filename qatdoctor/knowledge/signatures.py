"""Matching a rule's error signatures against error text (probe errors, pasted logs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from qatdoctor.knowledge.entries import Signature
from qatdoctor.records import ErrorInfo

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


MAX_TRIES = 64  # occurrences of a needle examined for its exception type before a loose match is accepted


class Matcher(Protocol):
    """What signature matching needs from a compiled regex (RE2's and `re`'s patterns both fit)."""

    def search(self, text: str) -> Any: ...


class _NeverMatches:
    def search(self, text: str) -> None:
        return None


@lru_cache(maxsize=1)
def re2_module() -> Any:
    """The google-re2 module (linear-time matching), or None when it is not installed."""
    try:
        import re2  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - a dependency; the fallback only guards a broken install
        return None
    return re2


def re2_options() -> Any:
    """RE2 options for signatures: errors not printed, memory bounded."""
    re2 = re2_module()
    options = re2.Options()
    options.log_errors = False  # RE2 would print refused patterns on stderr
    options.max_mem = 8 << 20
    return options


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Matcher:
    """A signature regex under a matcher without catastrophic backtracking: RE2 (linear in the input). Without
    google-re2, Python's `re` only for patterns without nested or alternated repetition; others never match."""
    re2 = re2_module()
    if re2 is not None:
        try:
            return re2.compile(pattern, re2_options())  # type: ignore[no-any-return]
        except re2.error:
            return _NeverMatches()  # `matrix validate` rejects such a pattern
    if _backtracking_risk(pattern) is not None:
        return _NeverMatches()
    return re.compile(pattern)


def regex_problem(pattern: str) -> str | None:
    """Why a signature regex is not acceptable (for `matrix validate`), or None.

    It must be a valid Python regex, accepted by RE2 (no back-references, look-arounds or other constructs that
    need backtracking), and must not match the empty text (it would match everything).
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"invalid regex: {exc}"
    re2 = re2_module()
    if re2 is None:  # pragma: no cover - see _compiled
        return _backtracking_risk(pattern)
    try:
        compiled = re2.compile(pattern, re2_options())
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return f"not supported by the linear-time regex engine (RE2): {detail}"
    if compiled.search("") is not None:
        return "matches the empty text (so it would match any input)"
    return None


def _backtracking_risk(pattern: str) -> str | None:
    """A repetition that contains another repetition or an alternation, e.g. `(a+)+` or `(a|aa)+` (for `re`)."""
    try:
        parsed = _sre_parse().parse(pattern)
    except Exception:  # anything the parser refuses is refused here too
        return "invalid regex"
    constants = _sre_constants()
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT, getattr(constants, "POSSESSIVE_REPEAT", None)}

    def risky(items: Any, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                low, high, body = av
                if inside and high != low:
                    return True
                if risky(body, inside or (high == constants.MAXREPEAT or high > 1)):
                    return True
            elif op is constants.BRANCH:
                if inside:
                    return True
                if any(risky(branch, inside) for branch in av[1]):
                    return True
            elif op is constants.SUBPATTERN and risky(av[-1], inside):
                return True
        return False

    if not risky(parsed, False):
        return None
    return "a repetition inside a repetition or an alternation (catastrophic backtracking)"


def _sre_parse() -> Any:
    try:
        import re._parser as parser  # type: ignore[import-not-found,unused-ignore]  # 3.11+
    except ImportError:  # pragma: no cover - 3.10
        import sre_parse as parser
    return parser


def _sre_constants() -> Any:
    try:
        import re._constants as constants  # type: ignore[import-not-found,unused-ignore]  # 3.11+
    except ImportError:  # pragma: no cover - 3.10
        import sre_constants as constants
    return constants


@lru_cache(maxsize=1024)
def needle(text: str) -> str:
    """A text signature as it appears in normalized text."""
    return normalize(text)


def signature_matches(signature: Signature, text: str, error_type: str | None = None) -> bool:
    """Whether normalized `text` carries the signature (and its exception type, when it names one)."""
    if signature.text is not None:
        needle_text = needle(signature.text)
        if needle_text not in text:
            return False
        if signature.type is not None and error_type is None:
            at = text.find(needle_text)
            # the type must introduce the message, as in "RuntimeError: The function ..."
            return text.rfind(f"{signature.type}:", max(0, at - 300), at + 1) != -1
    if signature.regex is not None and not _compiled(signature.regex).search(text):
        return False
    return signature.type is None or error_type is None or _same_type(signature.type, error_type)


def error_matches(signatures: Iterable[Signature], error: ErrorInfo | None) -> bool:
    """Whether an error seen in the target fits one of a rule's signatures (no error, or none given: it fits)."""
    signatures = tuple(signatures)
    if error is None or not signatures:
        return True
    text = normalize(f"{error.type}: {error.message}")
    return any(signature_matches(sig, text, error.type) for sig in signatures)


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
        wanted = needle(signature.text)
        at = text.find(wanted)
        if at == -1 or (signature.regex is not None and not _compiled(signature.regex).search(text)):
            return None
        loose = TextMatch(at, at + len(wanted), 1)
        tries = MAX_TRIES
        while signature.type is not None and at != -1 and tries:  # prefer an occurrence its type introduces
            typed = type_before(text, at, signature.type)
            if typed != -1:
                return TextMatch(typed, at + len(wanted), 0, at)
            at = text.find(wanted, at + 1)
            tries -= 1
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
