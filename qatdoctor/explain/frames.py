"""The user's own traceback frames (not under site-packages): where a model-code error comes from."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

KEPT = 256  # user frames kept from the start of the input, and as many of the most recent ones
PER_PIECE = 4096  # frame lines examined per piece read: a text that is nothing but frames stays fast
NEAR = 200  # input lines after an error line a following traceback may start
_FRAME = re.compile(r'File "(?P<path>[^"\n]{1,500})", line (?P<lineno>\d{1,7}), in (?P<func>[\w<>.]{1,200})')
_LIBRARY = ("site-packages", "dist-packages", "/lib/python", "\\lib\\python", "<frozen", "<string>", "<stdin>")


class Frame(NamedTuple):
    """One frame of the user's code: the input line it is on, and the file, line and function it names."""

    line: int
    path: str
    lineno: int
    func: str

    def describe(self) -> str:
        return f'File "{self.path}", line {self.lineno}, in {self.func}'


class FrameTracker:
    """Feed text pieces in order; `frames` holds the user frames seen (the first and the last KEPT)."""

    def __init__(self) -> None:
        self._first: list[Frame] = []
        self._last: deque[Frame] = deque(maxlen=KEPT)
        self._line = 1
        self._partial = ""

    def feed(self, text: str) -> None:
        first = text.find("\n")
        if first == -1:
            self._partial = (self._partial + text)[-1024:]
            return
        joined = self._partial + text[: first + 1]  # the line a read split, made whole (short: no copy of `text`)
        self._scan(joined, 0, len(joined))
        last = text.rfind("\n")
        self._scan(text, first + 1, last + 1)
        self._partial = text[last + 1 :][-1024:]

    def _scan(self, text: str, start: int, end: int) -> None:
        """The frames in the complete lines text[start:end]; then the line count moves past them."""
        at, counted, line = text.find('File "', start, end), start, self._line
        for _ in range(PER_PIECE):
            if at == -1:
                break
            match = _FRAME.match(text, at, end)
            if match is not None and not any(marker in match["path"] for marker in _LIBRARY):
                line += text.count("\n", counted, at)
                counted = at
                frame = Frame(line, match["path"], int(match["lineno"]), match["func"])
                (self._first if len(self._first) < KEPT else self._last).append(frame)
            at = text.find('File "', at + 6, end)
        self._line += text.count("\n", start, end)

    @property
    def frames(self) -> tuple[Frame, ...]:
        return (*self._first, *self._last)


def frame_for(frames: Sequence[Frame], line: int) -> Frame | None:
    """The user frame nearest the error on `line`: the innermost one of the traceback before it, else of one that
    follows it (a log line printed before its traceback)."""
    before = [f for f in frames if f.line <= line]
    if before:
        return before[-1]
    after = [f for f in frames if line < f.line <= line + NEAR]
    return after[-1] if after else None
