"""Renderers: pure functions from a Report to the doctor view (default), the full text (-v), markdown or JSON.
Nothing here decides anything, and nothing parses what a renderer wrote.

`render` is the output boundary: credentials are redacted in every format, terminal control is stripped from
every value a text view shows (JSON escapes it; markdown makes every value inert, `inert.py`)."""

from __future__ import annotations

import enum
import json
import os
import sys
from typing import TypeVar

from qatdoctor.jsonio import report_to_dict
from qatdoctor.records import Report

T = TypeVar("T")


class Format(str, enum.Enum):
    """Output formats of the report commands."""

    text = "text"
    json = "json"
    markdown = "markdown"


def render(report: Report, fmt: Format, *, styled: bool = False, verbose: int = 0) -> str:
    """The report in the requested format; text is the doctor view, or with `verbose` the full report."""
    if fmt is Format.json:
        from qatdoctor.transform.redact import redact_secrets_data

        return json.dumps(report_to_dict(redact_secrets_data(report)), indent=2) + "\n"  # JSON escapes control
    if fmt is Format.markdown:
        from qatdoctor.render import markdown

        return markdown.render(report)  # redacts, and makes every value inert
    report = shown(report)
    if fmt is Format.text and (verbose or report.extracted is not None):
        from qatdoctor.render import text  # rich is only imported for the human formats

        return text.render(report, styled=styled, verbose=verbose)
    if fmt is Format.text:
        from qatdoctor.render import doctor

        return doctor.render(report, styled=styled)
    raise AssertionError(f"unhandled format {fmt}")  # pragma: no cover


def shown(value: T) -> T:
    """What a terminal may show of `value`: credentials redacted, terminal control stripped (one walk)."""
    from qatdoctor.transform.controls import printable
    from qatdoctor.transform.redact import redact_secrets
    from qatdoctor.transform.walk import map_strings

    return map_strings(value, lambda text, _free: printable(redact_secrets(text)), keys=True)


def wants_style(stream: object = sys.stdout) -> bool:
    """Rich styling only on a terminal, and never with NO_COLOR or CI set."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and not os.environ.get("CI")
