"""Streaming search for the matrix's error signatures, strict-first, with a bounded window between chunks."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qatdoctor.knowledge.entries import Rule, Signature
from qatdoctor.knowledge.signatures import (
    QUOTE,
    anchor,
    find_signature,
    needle,
    normalize_window,
    re2_module,
    re2_options,
    required_tokens,
)

CONTEXT = 1024  # raw characters kept on each side of an anchor: a signature plus its exception type fits
CARRY = 2 * CONTEXT
SKIP = CONTEXT // 2  # a signature with its exception type spans well under CONTEXT - SKIP raw characters
# windows normalized per piece before the piece is scanned in one pass instead (anchor-dense input): a window
# costs ~50 µs, the one pass ~20 ms per MiB, so a log with a few anchors per MiB never pays for the pass
WINDOW_BUDGET = 32
WINDOW_COST = 16  # a window normalized costs this many anchors found and skipped
DENSE_BLOCK = 4096  # normalized text maps back to raw positions block by block
EVIDENCE_MAX = 300
FALLBACK_ANCHORS = ("Error", "error", "ERROR")  # for a regex without a required literal
# words too frequent in ordinary logs to be a shared gate (a signature may still use one as its own anchor)
COMMON = frozenset((
    "Error", "error", "failed", "Failed", "found", "module", "modules", "version", "import", "class", "object",
    "shared", "input", "output", "tensor", "function", "training", "model", "models", "current", "please",
    "Please", "process", "group", "following", "directory", "install", "installation", "expected", "using",
    "build", "issue", "resolve", "should", "warning", "Warning", "Could", "could",
))  # fmt: skip
_TOKEN = re.compile(r"\S+")
_MARKERS = re.compile(r"[ \t>]*")


@dataclass(frozen=True)
class Hit:
    """Where one rule's signature matched most strictly: strictness, line number and the matched line."""

    rule: Rule
    signature: Signature
    strictness: int
    line: int
    evidence: str
    last_line: int = 0
    near_aimet: bool = False

    def overlaps(self, other: Hit) -> bool:
        """Whether the two matches share an input line (one message matched by two rules)."""
        return self.line <= max(other.line, other.last_line) and other.line <= max(self.line, self.last_line)

    @property
    def rank(self) -> tuple[int, int]:
        return self.strictness, self.line


@dataclass(frozen=True)
class _Entry:
    """A signature to check where its gate occurs, once its own anchor is seen nearby (None: always)."""

    rule: Rule
    signature: Signature
    verify: str | None = None


def plan_gates(rules: Iterable[Rule]) -> dict[str, list[_Entry]]:
    """The literals to `str.find`, each with the signatures to check around it: few finds per chunk.

    A literal several signatures contain (`cannot`, `(currently`, `symbol:`) is searched once for all of
    them; each remaining signature gets its own anchor.
    """
    pairs = [(rule, signature) for rule in rules for signature in rule.signatures]
    tokens = {(s.text, s.regex): required_tokens(s) for _, s in pairs}
    uncovered = set(tokens)
    gates: dict[str, set[tuple[str | None, str | None]]] = {}
    candidates = {t for ts in tokens.values() for t in ts if len(t) >= 5 and t not in COMMON}
    covers = {c: {k for k, ts in tokens.items() if any(c in t for t in ts)} for c in candidates}
    while uncovered:
        best = max(covers, key=lambda c: (len(covers[c] & uncovered), len(c), c), default=None)
        if best is None or len(covers[best] & uncovered) < 2:
            break
        gates[best] = covers[best] & uncovered
        uncovered -= gates[best]
    plan: dict[str, list[_Entry]] = {}
    for rule, signature in pairs:
        key = (signature.text, signature.regex)
        own = anchor(signature)
        gate = next((g for g, keys in gates.items() if key in keys), None)
        for literal in (gate,) if gate else (own,) if own else FALLBACK_ANCHORS:
            verify = own if own != literal else None
            plan.setdefault(literal, []).append(_Entry(rule, signature, verify))
    return plan


class SignatureScanner:
    """Feed text pieces in order, then `finish()`; `hits` then holds the strictest match of each rule.

    Each signature has an anchor (a literal it always contains) found with `str.find`; only around an
    anchor is a window of CONTEXT characters on each side normalized and matched. The last CARRY
    characters of each piece are kept, so a match split between pieces is found once its context is complete.
    """

    def __init__(self, rules: Iterable[Rule]) -> None:
        rules = tuple(rules)
        self._by_anchor = plan_gates(rules)
        self._all = [_Entry(rule, signature) for rule in rules for signature in rule.signatures]
        self._set = _signature_set(self._all)
        self.hits: dict[str, Hit] = {}
        self._carry = ""
        self._lines_before = 0  # newlines before the start of the carry
        self.dense_scans = 0  # how many pieces were scanned in one pass (anchor-dense input)

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
        budget = WINDOW_BUDGET * WINDOW_COST
        for key, entries in self._by_anchor.items():
            if all(self._settled(entry) for entry in entries):
                continue
            end = stop + len(key)
            at = buffer.find(key, start, end)
            while at != -1:
                if budget <= 0:  # anchor-dense input: one pass over the normalized text is cheaper
                    self._dense(buffer, start, stop)
                    return
                budget -= 1 + (WINDOW_COST - 1) * self._check(buffer, at, entries)
                # the window just checked holds every signature whose gate lies in the next SKIP characters
                at = buffer.find(key, at + SKIP, end)

    def _settled(self, entry: _Entry) -> bool:
        """The entry's rule already has a match as strict as this signature can give."""
        known = self.hits.get(entry.rule.id)
        return known is not None and known.strictness <= entry.signature.strictness

    def _dense(self, buffer: str, start: int, stop: int) -> None:
        """Normalize the piece once (in blocks, so offsets map back), find every signature in it with one RE2 set
        pass, and verify each signature found in a raw window around it, as the anchored scan would."""
        self.dense_scans += 1
        lo, hi = max(0, start - CONTEXT), min(len(buffer), stop + CONTEXT)
        text, raw_starts, norm_starts = normalize_blocks(buffer, lo, hi, DENSE_BLOCK)
        settled = {entry.rule.id for entry in self._all if self._settled(entry)}  # by earlier lines: they stay
        for index in _set_matches(self._set, text, len(self._all)):
            entry = self._all[index]
            if entry.rule.id in settled:
                continue
            match = find_signature(entry.signature, text)
            if match is None:
                continue
            block = max(0, bisect.bisect_right(norm_starts, match.start) - 1)
            block_end = raw_starts[block + 1] if block + 1 < len(raw_starts) else hi
            window = (max(0, raw_starts[block] - CONTEXT), min(len(buffer), block_end + CONTEXT))
            self._check(buffer, raw_starts[block], [entry], window, earliest=True)

    def _check(
        self, buffer: str, at: int, entries: list[_Entry], window: tuple[int, int] | None = None, earliest: bool = False
    ) -> int:
        """Match the entries in the window around `at`; 1 when a window had to be normalized, else 0.

        `earliest`: a match of the same strictness on an earlier line replaces the rule's hit (the one-pass scan
        meets a rule's signatures in signature order, not in input order)."""
        lo, hi = window or (max(0, at - CONTEXT), at + CONTEXT)
        raw = text = ""
        for entry in entries:
            known = self.hits.get(entry.rule.id)
            if known is not None and known.strictness <= entry.signature.strictness and not earliest:
                continue  # cannot beat what the rule already has (the first match of a strictness stays)
            if entry.verify is not None and buffer.find(entry.verify, lo, hi) == -1:
                continue
            if not raw:
                raw = buffer[lo:hi]
                text = normalize_window(raw)
            match = find_signature(entry.signature, text)
            if match is None:
                continue
            line, spanned, evidence = _evidence(raw, entry.signature)
            line += self._lines_before + buffer.count("\n", 0, lo)
            near = "aimet" in raw or "AIMET" in raw
            hit = Hit(entry.rule, entry.signature, match.strictness, line, evidence, line + spanned, near)
            if known is None or hit.rank < known.rank:
                self.hits[entry.rule.id] = hit
        return 1 if raw else 0


def normalize_blocks(buffer: str, lo: int, hi: int, block: int = SKIP) -> tuple[str, list[int], list[int]]:
    """`normalize_window(buffer[lo:hi])`, built block by block, with the raw and normalized start of every block,
    so a position in the normalized text maps back to its raw block.

    Blocks end after a newline where the block has one, so quote markers (a line-start pattern) are handled per
    line exactly as on the whole text; a longer line is cut mid-line, never inside its leading quote markers.
    """
    pieces: list[str] = []
    raw_starts: list[int] = []
    norm_starts: list[int] = []
    size = 0
    spaced = False  # the text so far ends in a space
    line_start = True  # the range starts a line, as it does for normalize_window
    position = lo
    while position < hi:
        end = min(hi, position + block)
        if end < hi:
            newline = buffer.rfind("\n", position, end)
            if newline != -1:
                end = newline + 1
            elif line_start:  # a long line: its quote markers and the character after them stay in this block
                markers = _MARKERS.match(buffer, position)  # `[ \t>]*` always matches (maybe empty)
                end = max(end, min(hi, (markers.end() if markers else position) + 1))
        raw = buffer[position:end]
        if ">" in raw:
            if line_start:
                raw = QUOTE.sub("", raw)
            elif "\n" in raw:  # lines start inside the block, not at its start
                raw = QUOTE.sub("", "x" + raw)[1:]
        words = raw.split()
        piece = " ".join(words)
        if raw and raw[-1].isspace() and words:
            piece += " "
        if raw and raw[0].isspace() and not spaced:
            piece = " " + piece if words else " "
        raw_starts.append(position)
        norm_starts.append(size)
        if piece:
            pieces.append(piece)
            size += len(piece)
            spaced = piece.endswith(" ")
        line_start = buffer[end - 1] == "\n"
        position = end
    return "".join(pieces), raw_starts, norm_starts


def _signature_set(entries: list[_Entry]) -> Any:
    """One RE2 set of every signature (text needles as literals, regexes as they are), or None without RE2."""
    re2 = re2_module()
    if re2 is None or not entries:  # pragma: no cover - google-re2 is a dependency
        return None
    try:
        matcher = re2.Set.SearchSet(re2_options())
        for entry in entries:
            signature = entry.signature
            matcher.Add(re2.escape(needle(signature.text)) if signature.text is not None else signature.regex)
        matcher.Compile()
    except re2.error:
        return None
    return matcher


def _set_matches(matcher: Any, text: str, count: int) -> list[int]:
    """Indices of the signatures found in `text` (all of them when there is no set to ask)."""
    if matcher is None:
        return list(range(count))
    return sorted(matcher.Match(text) or ())


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
        first = message = last = len(raw) // 2
    else:

        def to_raw(offset: int) -> int:
            index = max(0, bisect.bisect_right(norm_starts, offset) - 1)
            return raw_starts[index] + min(offset - norm_starts[index], len(words[index]))

        first, message = to_raw(exact.start), to_raw(exact.text_start)
        last = to_raw(max(exact.text_start, exact.end - 1))
    line_start = raw.rfind("\n", 0, first) + 1
    message_line = raw.rfind("\n", 0, message) + 1
    line_end = raw.find("\n", last)
    line_end = len(raw) if line_end == -1 else line_end
    text = " ".join(raw[line_start:line_end].split())
    if len(text) > EVIDENCE_MAX and message_line > line_start:  # a multi-line message: its type line … the match
        head = " ".join(raw[line_start : raw.find("\n", line_start)].split())
        text = _clip(head, EVIDENCE_MAX // 3) + " … " + " ".join(raw[message_line:line_end].split())
    if len(text) > EVIDENCE_MAX:
        text = _clip(text, EVIDENCE_MAX)
    return raw.count("\n", 0, line_start) + 1, raw.count("\n", line_start, line_end), text


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1].rstrip() + "…"
