"""Binary input to clean text, chunk by chunk: UTF-8 with replacement, no colour codes, LF line ends."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

from qatdoctor.knowledge.signatures import ANSI

CHUNK = 1 << 20
_ESCAPE_TAIL = 32  # longest colour sequence we wait for across a chunk boundary


def iter_text(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[str]:
    """Decoded, colour-free, LF-only text of `stream`, in pieces of about `chunk_size` characters.

    A multi-byte character, a CR LF pair or a colour sequence split by a read is held back until the next one.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    held = ""
    while True:
        data = stream.read(chunk_size)
        final = not data
        text = held + decoder.decode(data, final=final)
        held = "" if final else _incomplete_tail(text)
        if held:
            text = text[: -len(held)]
        if "\x1b" in text:
            text = ANSI.sub("", text)
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if text:
            yield text
        if final:
            return


def _incomplete_tail(text: str) -> str:
    """A trailing CR or unfinished escape sequence that the next read may complete."""
    if text.endswith("\r"):
        return "\r"
    escape = text.rfind("\x1b", max(0, len(text) - _ESCAPE_TAIL))
    if escape != -1 and ANSI.match(text, escape) is None:
        return text[escape:]
    return ""
