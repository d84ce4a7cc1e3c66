"""Text is data (issue 25, item 4): what an environment, a model or a pasted log says reaches a terminal without
its escape sequences, in every terminal view, styled or not, and on stderr; JSON keeps the exact data."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest
from hostilekit import hostile_report

from qatdoctor import console
from qatdoctor.authoring.grid import build as build_grid
from qatdoctor.jsonio import BUNDLE_FENCE, BUNDLE_FENCE_END, report_to_dict
from qatdoctor.knowledge.load import load
from qatdoctor.render import Format, grid_text, render
from qatdoctor.render.markdown import bundle

# each a terminal attack: clear screen and home, a fake green verdict, window title (OSC 0 and 2), a clipboard
# write (OSC 52), cursor up and erase line, 8-bit CSI, bare CR over the line, backspaces, bell, a bidi override
ATTACKS = {
    "clear-screen": "\x1b[2J\x1b[H",
    "colour": "\x1b[32mverdict: OK\x1b[0m",
    "title-osc0": "\x1b]0;pwned-title\x07",
    "title-osc2-st": "\x1b]2;pwned-title\x1b\\",
    "clipboard-osc52": "\x1b]52;c;Y3VybCBldmlsfHNo\x07",
    "cursor-up-erase": "\x1b[1A\x1b[2K",
    "c1-csi": "\x9b2J\x9b31m",
    "bare-cr": "\rverdict: OK",
    "backspaces": "ok\x08\x08\x08\x07",
    "bidi-override": "\u202eevil\u2066",
    "dcs": "\x1bP+q544e\x1b\\",
}
# what may remain of rich's own styling in a styled view: SGR only
SGR = re.compile(r"\x1b\[[0-9;]*m")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def assert_inert(shown: str, styled: bool = False) -> None:
    rest = SGR.sub("", shown) if styled else shown
    assert not CONTROL.search(rest), repr(CONTROL.findall(rest)[:5])
    assert "pwned-title" not in shown or "\x1b]" not in shown
    assert "\x1b[32mverdict" not in shown and "\x1b[2J" not in shown


# rich drops a bare CR, backspaces and the bell itself: those held in the views before (they are tested on stderr)
SHOWN_LIVE = [name for name in ATTACKS if name not in ("bare-cr", "backspaces")]


@pytest.mark.parametrize("attack", SHOWN_LIVE, ids=SHOWN_LIVE)
@pytest.mark.parametrize(
    ("verbose", "styled"), [(0, False), (0, True), (1, False), (1, True)], ids=["doctor", "doctor-styled", "v", "v-styled"]
)
def test_no_escape_sequence_reaches_a_text_view(attack: str, verbose: int, styled: bool) -> None:
    report = hostile_report(ATTACKS[attack])
    shown = render(report, Format.text, styled=styled, verbose=verbose)
    assert_inert(shown, styled)
    assert "boom" in shown  # the model's error is shown, as text


# JSON escapes ESC and the other C0 controls itself (checked: those held before); UTF-8 JSON leaves these raw
RAW_IN_UTF8_JSON = ["c1-csi", "bidi-override"]


@pytest.mark.parametrize("attack", RAW_IN_UTF8_JSON, ids=RAW_IN_UTF8_JSON)
def test_json_keeps_the_exact_text_escaped(attack: str) -> None:
    """`--format json` (ASCII) and the bundle's JSON block (UTF-8: C1 controls and bidi overrides went raw)."""
    report = hostile_report(ATTACKS[attack])
    block = bundle(report).rsplit(BUNDLE_FENCE, 1)[1].split(BUNDLE_FENCE_END, 1)[0]
    for out in (render(report, Format.json), block):
        assert not CONTROL.search(out) and "\x1b" not in out  # JSON escapes it: nothing live on a terminal
        payload = json.loads(out)
        assert any(ATTACKS[attack] in note for note in payload["notes"])  # the data is exact
        assert payload["notes"] == report_to_dict(report)["notes"]


def test_stderr_messages_and_progress_lines_are_text(capsys: pytest.CaptureFixture[str]) -> None:
    attack = "".join(ATTACKS.values())
    console.say(f"error: cannot read {attack}")
    console.progress(f"your model: building m.py:{attack}[/x] [bold]")
    err = capsys.readouterr().err
    assert_inert(err)
    assert "[/x] [bold]" in err and "cannot read" in err


def test_a_model_called_like_markup_shows_as_written_on_the_live_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the progress line is redrawn in place: a name with `[/x]` (markup to rich, MarkupError: 70
    once) shows as written, and the OSC title sequence in it does not reach the terminal."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Tty()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(console, "_LIVE", [])
    console.QUIET["on"] = False
    console.progress("your model: building m.py:[/x]" + ATTACKS["title-osc0"])
    console.end_progress()
    shown = terminal.getvalue()
    assert "building m.py:[/x]" in shown
    assert "\x1b]" not in shown and "\x07" not in shown
    assert shown.replace("\r\x1b[2K", "").count("\x1b") == 0


def test_the_matrix_grid_shows_a_crafted_matrix_as_text() -> None:
    matrix = load()
    crafted = matrix._replace(matrix_version="2026.1" + ATTACKS["title-osc0"] + ATTACKS["clear-screen"])
    grid = build_grid(crafted)
    for styled in (False, True):
        assert_inert(grid_text.render(grid, crafted, styled=styled), styled)
