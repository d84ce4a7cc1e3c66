"""The issue bundle renders outside text inert (issue 25, item 4): rendered by a real CommonMark renderer
(markdown-it-py, raw HTML on, GFM tables), no tag, attribute, link, image, mention or unbalanced `</details>` comes
from the values, and every value still reads exactly as it was written."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hostilekit import hostile_report
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.jsonio import report_to_dict
from qatdoctor.render.markdown import bundle

ATTACKS = {
    "img-onerror": '<img src=x onerror="alert(1)">',
    "script": "<script>alert(document.cookie)</script>",
    "close-details": "</details></details><details open><summary>fake</summary>",
    "mentions": "cc @octocat @github/security-team and fixes #1",
    "code-breakout": "`x` **bold** ``y`` ```z``` ` lone",
    "link-image": "[click](javascript:alert(1)) ![pixel](https://tracker.example/p.png)",
    "html-entities": "&lt;script&gt; &amp; &#60;b&#62;",
    "table-pipes": "a | b \\| c |",
    "newline-blocks": "one\n# heading\n</details>\n<script>x</script>\n```\nfence",
    "html-comment": "<!-- hidden --> <div>",
}
# qatdoctor's own markup in the bundle; a value adds none
OUR_TAGS = {"h3", "h4", "p", "ul", "ol", "li", "strong", "code", "pre", "table", "thead", "tbody", "tr", "th", "td",
            "details", "summary", "sub"}  # fmt: skip
md = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")


class Html(HTMLParser):
    """Tags with their attributes, and the text in order (entities decoded), outside code kept apart."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.ends: list[str] = []
        self.text: list[str] = []
        self.prose: list[str] = []
        self.in_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self.in_code += tag in ("code", "pre")

    def handle_endtag(self, tag: str) -> None:
        self.ends.append(tag)
        self.in_code -= tag in ("code", "pre")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if not self.in_code:
            self.prose.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append(("!--", []))


def one_line(text: str) -> str:
    return re.sub(r"\r\n|[\r\n]", " ", text)


def rendered(markdown: str) -> Html:
    parser = Html()
    parser.feed(md.render(markdown))
    return parser


JSON_BLOCK = "\n<details><summary>qatdoctor JSON"


def assert_inert(bundled: str, payload: str, note: str) -> None:
    """Only qatdoctor's markup in the rendered bundle, each <details> closed, and the value readable as written in
    the part above the JSON block (the block holds it verbatim anyway)."""
    html = rendered(bundled)
    tags = [tag for tag, _ in html.tags]
    assert set(tags) <= OUR_TAGS, set(tags) - OUR_TAGS
    ours = bundled.count("<details><summary>")
    assert tags.count("details") == html.ends.count("details") == ours  # each <details> qatdoctor's, closed
    attributes = {name for _, attrs in html.tags for name, _ in attrs}
    assert attributes <= {"class"}, attributes  # code blocks' language-sh / language-json only
    prose = "".join(html.prose)
    assert not re.search(r"(?<![\w\u200b])[@#][A-Za-z0-9]", prose), "a mention or issue reference is live"
    above = bundled.split(JSON_BLOCK)[0]
    shown = rendered(above)
    emphasis = 1 + sum(1 for text in above.splitlines() if text.startswith("- **"))  # the verdict, each finding's word
    assert [tag for tag, _ in shown.tags].count("strong") == emphasis, "a value made its own emphasis"
    text = "".join(shown.text).replace("\u200b", "")
    assert one_line(payload) in text, "the value does not read as written"
    assert f"note: {one_line(note)}\n" in text, "the note (prose) does not read as written"


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_every_value_from_the_environment_and_the_model_is_inert(attack: str) -> None:
    report = hostile_report(ATTACKS[attack])
    assert_inert(bundle(report), ATTACKS[attack], f"note {ATTACKS[attack]}")


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_a_crafted_saved_report_replays_inert(tmp_path: Path, attack: str) -> None:
    """`report --from-report`: what a stranger's saved report says is data in the new bundle too."""
    payload = report_to_dict(hostile_report(ATTACKS[attack]))
    payload["notes"] = [ATTACKS[attack]]
    payload["target"] = ATTACKS[attack]
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(payload))
    result = CliRunner().invoke(app, ["report", "--from-report", str(saved)])
    assert result.exit_code in (0, 1), result.stderr
    assert_inert(result.stdout, ATTACKS[attack], ATTACKS[attack])


def test_the_redaction_marker_is_text_not_a_tag() -> None:
    report = hostile_report("HF_TOKEN=abc123 at /home/zelda/x")
    html = rendered(bundle(report))
    assert "[redacted]" in "".join(html.text) and "redacted" not in {tag for tag, _ in html.tags}
