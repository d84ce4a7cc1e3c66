"""Text from outside is data: helpers that take any string (empty, blank, one huge line) without failing."""

from __future__ import annotations


def first_line(text: str | None, *, limit: int | None = None, default: str = "") -> str:
    """The first line of `text` that holds more than whitespace, stripped and cut to `limit` characters;
    `default` when there is none (an exception raised with no message, `assert False`)."""
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if limit is None else line[:limit]
    return default
