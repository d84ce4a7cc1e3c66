"""Text is data: terminal control removed from every string before it is shown (escape sequences, C0/C1
controls, bidirectional overrides), so nothing an environment, a model or a saved report says can clear the
screen, move the cursor, recolour a verdict, set the window title or write the clipboard."""

from __future__ import annotations

import re
from typing import TypeVar

from qatdoctor.transform.walk import map_strings

T = TypeVar("T")

# CSI (7- and 8-bit), OSC up to BEL or ST, any other ESC sequence; C0 but tab and newline, DEL, C1; the
# bidirectional marks, embeddings, overrides and isolates (Trojan Source)
CONTROLS = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[ -~]?|\x9b[0-?]*[ -/]*[@-~]"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """`text` without terminal control: escape sequences and control characters removed (tab and newline kept)."""
    return CONTROLS.sub("", text) if not text.isprintable() else text  # pragma: no mutate - fast path


def printable_data(value: T) -> T:
    """`printable` applied to every string of nested data (records, dicts and their keys, lists, tuples)."""
    return map_strings(value, lambda text, _free: printable(text), keys=True)
