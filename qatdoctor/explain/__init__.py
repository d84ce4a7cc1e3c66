"""`qatdoctor explain`: triage a pasted traceback, log, package list or issue body against the matrix."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import BinaryIO

from qatdoctor.core import load_matrix
from qatdoctor.errors import InputError
from qatdoctor.explain.diagnosis import Scan, explain_report
from qatdoctor.explain.extract import Lexicon, VersionExtractor
from qatdoctor.explain.families import WordSpotter
from qatdoctor.explain.frames import FrameTracker
from qatdoctor.explain.reader import CHUNK, iter_text
from qatdoctor.explain.scan import SignatureScanner
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.records import Report

__all__ = ["explain_stream", "run_explain", "scan_stream"]


def scan_stream(stream: BinaryIO, matrix: Matrix, *, chunk_size: int = CHUNK) -> Scan:
    """One pass over the input: signature hits and stated versions, in memory bounded by the chunk size."""
    scanner = SignatureScanner(rule for rule in matrix.rules if rule.kind == "bad" and rule.signatures)
    extractor = VersionExtractor(lexicon=Lexicon.of(matrix))
    spotter = WordSpotter.of(matrix)
    frames = FrameTracker()
    characters = replaced = 0
    for text in iter_text(stream, chunk_size):
        characters += len(text)
        replaced += 0 if text.isascii() else text.count("\ufffd")
        scanner.feed(text)
        extractor.feed(text)
        spotter.feed(text)
        frames.feed(text)
    scanner.finish()
    extractor.finish()
    return Scan(
        hits=tuple(scanner.hits.values()),
        statements=extractor.statements,
        characters=characters,
        replaced=replaced,
        mentions_aimet=extractor.mentions_aimet,
        versions_truncated=extractor.truncated,
        words=spotter.first,
        frames=frames.frames,
    )


def explain_stream(stream: BinaryIO, matrix: Matrix, *, target: str, chunk_size: int = CHUNK) -> Report:
    """The explain report for a binary stream."""
    started = time.perf_counter()
    scan = scan_stream(stream, matrix, chunk_size=chunk_size)
    return explain_report(scan, matrix, target=target, timings={"scan": time.perf_counter() - started})


def run_explain(source: str | None, matrix: Path | None = None) -> Report:
    """`qatdoctor explain [FILE|-]`: a file, or stdin for `-` or no argument."""
    loaded = load_matrix(matrix)
    if source in (None, "-"):
        return explain_stream(_stdin(), loaded, target="stdin")
    assert source is not None
    try:
        with Path(source).open("rb") as stream:
            return explain_stream(stream, loaded, target=source)
    except OSError as error:
        raise InputError(f"cannot read {source}: {error.strerror or error}") from None


def _stdin() -> BinaryIO:
    if sys.stdin is None:  # `qatdoctor explain - <&-`
        raise InputError("cannot read stdin: it is closed", hint="give a file, or pipe the text in")
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text-only stdin (tests, embedding): re-encode it
        import io

        return io.BytesIO(sys.stdin.read().encode("utf-8", errors="replace"))
    return buffer  # type: ignore[no-any-return]
