"""Outside text as inert markdown: whatever an environment, a model, a pasted log or a saved report says is shown
as text, never read as markup. GitHub renders the bundle, so no raw HTML, no link or image of the text's making (a
bare URL is still autolinked, as in any issue), no mention or issue reference, and no way out of a code span, a
fence, a table cell or the `<details>` blocks qatdoctor writes.

Every value is one line (a line break would let it start a block: an HTML block, a heading, a fence), without
terminal control. `code` puts it in a code span whose backtick run is longer than any inside it; `prose` escapes
HTML, and with a backslash each mark that makes inline markup (CommonMark shows `\\*` as `*`); `fence` makes a code
block whose fence is longer than any backtick run in its lines. A mention is `@` then a zero-width space
(`@\u200bname`, as Renovate writes it), an issue reference `#\u200b12`; neither is read in a code span.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from qatdoctor.transform.controls import printable

ZERO_WIDTH = "\u200b"
_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")
_BACKTICKS = re.compile(r"`+")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PUNCTUATION = re.compile(r"[\\`*_\[\]|~!]")  # what makes inline markup mid-line
_MENTION = re.compile(r"([@#])(?=[A-Za-z0-9])")
# what JSON leaves raw in UTF-8 but a terminal or a browser acts on: C1 controls, bidi overrides, line separators
_JSON_RAW = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def line(text: str) -> str:
    """One line of text: line breaks as spaces, terminal control removed."""
    return _BREAKS.sub(" ", printable(text))


def code(text: str) -> str:
    """An inline code span that shows `text` exactly (one line), whatever backticks it holds."""
    text = line(text)
    if not text.strip(" "):
        return "` `"
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""  # one space each side is stripped again
    return f"{ticks}{pad}{text}{pad}{ticks}"


def prose(text: str) -> str:
    """Text outside code: HTML escaped, markdown punctuation escaped, no mention, one line."""
    text = "".join(_HTML.get(char, char) for char in line(text))
    text = _PUNCTUATION.sub(lambda match: "\\" + match.group(0), text)
    return _MENTION.sub(lambda match: match.group(1) + ZERO_WIDTH, text)


def cell(text: str, *, as_code: bool = False) -> str:
    """A table cell: `prose` (its pipes are escaped) or `code` with its pipes escaped (GFM splits cells first)."""
    return code(text).replace("|", "\\|") if as_code else prose(text)


def fence(lines: Iterable[str], info: str = "", indent: str = "") -> list[str]:
    """A fenced code block of `lines` at `indent`: the fence outruns every backtick run in them."""
    body = [line(text) for text in lines]
    longest = max((len(run) for text in body for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [f"{indent}{ticks}{info}", *(f"{indent}{text}" for text in body), f"{indent}{ticks}"]


def json_line(data: object) -> str:
    """Compact JSON on one line, UTF-8 kept, but C1 controls, bidi overrides and line separators escaped
    (`\\uXXXX`: the same data, and nothing raw a terminal or a browser would act on)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text)
