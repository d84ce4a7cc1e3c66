"""render/inert.py: code spans and fences outrun the backticks inside, prose reads as written (rendered by
markdown-it-py, a CommonMark renderer)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from qatdoctor.render.inert import code, fence, json_line, line, prose

md = MarkdownIt("commonmark", {"html": True}).enable("table")


class Rendered(HTMLParser):
    def __init__(self, markdown: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.feed(md.render(markdown))

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(markdown: str) -> Rendered:
    return Rendered(markdown)


@pytest.mark.parametrize(
    ("text", "shown"),
    [("a`b", "``a`b``"), ("`a", "`` `a ``"), ("a``b```c", "````a``b```c````"), ("", "` `"), ("x\ny", "`x y`")],
)
def test_a_code_span_outruns_the_backticks_inside(text: str, shown: str) -> None:
    assert code(text) == shown
    assert "".join(rendered(code(text)).text).strip("\n") == (line(text) if text else " ")


def test_a_fence_outruns_the_backticks_inside() -> None:
    lines = fence(["pip install x", "```", "````", "</details>"], "sh", "   ")
    assert lines[0] == "   `````sh" and lines[-1] == "   `````"
    html = rendered("1. item\n" + "\n".join(lines))
    assert "".join(html.text).count("</details>") == 1 and "details" not in html.tags


def test_prose_reads_as_written() -> None:
    text = "*a* _b_ [c](d) <e> & `f` ~~g~~ \\h |i| !j @k #1"
    assert "".join(rendered(prose(text)).text).replace("\u200b", "").strip("\n") == text


def test_json_line_escapes_what_utf8_json_leaves_raw() -> None:
    data = {"k": "a\x9b2J \u202eevil \u2028 é \x1b"}
    text = json_line(data)
    assert "\x9b" not in text and "\u202e" not in text and "\u2028" not in text and "é" in text
    assert json.loads(text) == data and "\n" not in text
