"""The user's own traceback frames (not under site-packages): where a model-code error comes from."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import NamedTuple

from qatdoctor.explain.extract import HEAD

KEPT = 256  # the most recent user frames kept
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
    """Feed text pieces in order; `frames` holds the user frames seen in the first `head` characters."""

    def __init__(self, head: int = HEAD) -> None:
        self._frames: deque[Frame] = deque(maxlen=KEPT)
        self._left = head
        self._line = 1
        self._partial = ""

    def feed(self, text: str) -> None:
        if self._left <= 0:
            return
        self._left -= len(text)
        text = self._partial + text
        end = text.rfind("\n") + 1
        body, self._partial = text[:end], text[end:][-1024:]
        if 'File "' in body:
            counted, line = 0, self._line
            for match in _FRAME.finditer(body):
                if any(marker in match["path"] for marker in _LIBRARY):
                    continue
                line += body.count("\n", counted, match.start())
                counted = match.start()
                self._frames.append(Frame(line, match["path"], int(match["lineno"]), match["func"]))
        self._line += body.count("\n")

    @property
    def frames(self) -> tuple[Frame, ...]:
        return tuple(self._frames)


def frame_for(frames: Sequence[Frame], line: int) -> Frame | None:
    """The user frame nearest the error on `line`: the innermost one of the traceback before it, else of one that
    follows it (a log line printed before its traceback)."""
    before = [f for f in frames if f.line <= line]
    if before:
        return before[-1]
    after = [f for f in frames if line < f.line <= line + NEAR]
    return after[-1] if after else None
