"""Streaming search for the matrix's error signatures, strict-first, with a bounded window between chunks."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from qatdoctor.matrix.model import Rule, Signature
from qatdoctor.signatures import anchor, find_signature, normalize_window

CONTEXT = 1024  # raw characters kept on each side of an anchor: a signature plus its exception type fits
CARRY = 2 * CONTEXT
EVIDENCE_MAX = 300
FALLBACK_ANCHORS = ("Error", "error", "ERROR")  # for a regex without a required literal
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class Hit:
    """Where one rule's signature matched most strictly: strictness, line number and the matched line."""

    rule: Rule
    signature: Signature
    strictness: int
    line: int
    evidence: str
    last_line: int = 0

    def overlaps(self, other: Hit) -> bool:
        """Whether the two matches share an input line (one message matched by two rules)."""
        return self.line <= max(other.line, other.last_line) and other.line <= max(self.line, self.last_line)

    @property
    def rank(self) -> tuple[int, int]:
        return self.strictness, self.line


@dataclass(frozen=True)
class _Entry:
    rule: Rule
    signature: Signature


class SignatureScanner:
    """Feed text pieces in order, then `finish()`; `hits` then holds the strictest match of each rule.

    Each signature has an anchor (a literal it always contains) found with `str.find`; only around an
    anchor is a window of CONTEXT characters on each side normalized and matched. The last CARRY
    characters of each piece are kept, so a match split between pieces is found once its context is complete.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._by_anchor: dict[str, list[_Entry]] = {}
        for rule in rules:
            for signature in rule.signatures:
                key = anchor(signature)
                for literal in (key,) if key else FALLBACK_ANCHORS:
                    self._by_anchor.setdefault(literal, []).append(_Entry(rule, signature))
        self.hits: dict[str, Hit] = {}
        self._carry = ""
        self._lines_before = 0  # newlines before the start of the carry

    def feed(self, text: str) -> None:
        """Scan one piece of text, deferring anchors whose context is not complete yet."""
        buffer = self._carry + text
        self._scan(buffer, len(buffer) - CONTEXT)
        keep = buffer[-CARRY:]
        self._lines_before += buffer.count("\n", 0, len(buffer) - len(keep))
        self._carry = keep

    def finish(self) -> None:
        """Scan the anchors left in the window at the end of the input."""
        self._scan(self._carry, len(self._carry))
        self._carry = ""

    def _scan(self, buffer: str, stop: int) -> None:
        # an anchor at p was handled by the previous call iff its whole context fitted then: p <= carry - CONTEXT
        start = max(0, len(self._carry) - CONTEXT + 1)
        if stop < start:
            return
        for key, entries in self._by_anchor.items():
            end = stop + len(key)
            at = buffer.find(key, start, end)
            while at != -1:
                self._check(buffer, at, entries)
                at = buffer.find(key, at + 1, end)

    def _check(self, buffer: str, at: int, entries: list[_Entry]) -> None:
        lo = max(0, at - CONTEXT)
        raw = buffer[lo : at + CONTEXT]
        window = normalize_window(raw)
        for entry in entries:
            known = self.hits.get(entry.rule.id)
            if known is not None and known.strictness <= entry.signature.strictness:
                continue  # this signature cannot beat what the rule already has (earlier lines win ties)
            match = find_signature(entry.signature, window)
            if match is None:
                continue
            line, spanned, evidence = _evidence(raw, entry.signature)
            line += self._lines_before + buffer.count("\n", 0, lo)
            hit = Hit(entry.rule, entry.signature, match.strictness, line, evidence, line + spanned)
            if known is None or hit.rank < known.rank:
                self.hits[entry.rule.id] = hit


def _evidence(raw: str, signature: Signature) -> tuple[int, int, str]:
    """1-based line number within `raw`, lines spanned after it, and the trimmed, normalized matched line(s)."""
    norm_starts: list[int] = []
    raw_starts: list[int] = []
    words: list[str] = []
    position = 0
    for token in _TOKEN.finditer(raw):
        word = token.group()
        if word.strip(">") == "" and raw[raw.rfind("\n", 0, token.start()) + 1 : token.start()].strip(" \t>") == "":
            continue  # a quote marker, as normalize_window drops it
        norm_starts.append(position)
        raw_starts.append(token.start())
        words.append(word)
        position += len(word) + 1
    exact = find_signature(signature, " ".join(words))
    if exact is None or not raw_starts:  # the two normalizations disagree: fall back to the window's middle
        middle = len(raw) // 2
        first = last = middle
    else:

        def to_raw(offset: int) -> int:
            index = max(0, bisect.bisect_right(norm_starts, offset) - 1)
            return raw_starts[index] + min(offset - norm_starts[index], len(words[index]))

        first, last = to_raw(exact.start), to_raw(max(exact.start, exact.end - 1))
    line_start = raw.rfind("\n", 0, first) + 1
    line_end = raw.find("\n", last)
    line_end = len(raw) if line_end == -1 else line_end
    text = " ".join(raw[line_start:line_end].split())
    if len(text) > EVIDENCE_MAX:
        begin = len(" ".join(raw[line_start:first].split()))
        text = ("…" if begin else "") + text[begin : begin + EVIDENCE_MAX - 2].rstrip() + "…"
    return raw.count("\n", 0, line_start) + 1, raw.count("\n", line_start, line_end), text
