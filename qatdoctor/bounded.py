"""Reading what comes from outside with bounds: at most `limit` bytes, JSON at most `MAX_DEPTH` deep, and only
qatdoctor's own error classes out, whatever the file is (empty, binary, huge, a FIFO, a directory, unreadable).

The depth is checked on the parsed value without recursion (and only when the text has more brackets than the
limit), so no recursive walk over what was read (redaction, control-character stripping, the merge) can hit
RecursionError; the parser's own RecursionError is an error of the input too.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from itertools import chain
from pathlib import Path
from typing import Any

from qatdoctor.errors import InputError, QatdoctorError

MAX_BYTES = 32 << 20  # a report is ~100 KB, the largest evidence file ~1.2 MB
MAX_DEPTH = 64  # the deepest JSON qatdoctor writes (evidence, reports) is 10 levels


def read_bytes(path: Path, *, limit: int = MAX_BYTES, what: str = "file", regular: bool = False) -> bytes:
    """At most `limit` bytes of `path`; InputError naming it for anything else. A FIFO or a character device
    is read too (`<(cat report.json)`), up to the limit, unless `regular`; opening never blocks."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise InputError(f"cannot read {what} {path}: {error.strerror or error}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        kind = _kind(mode, regular)
        if kind:
            raise InputError(f"cannot read {what} {path}: it is {kind}")
        os.set_blocking(descriptor, True)  # a FIFO's writer may be slower than us; with no writer it reads as empty
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        shown = "it is a directory" if error.errno == errno.EISDIR else error.strerror or str(error)
        raise InputError(f"cannot read {what} {path}: {shown}") from None
    finally:
        os.close(descriptor)
    if size > limit:
        raise InputError(f"{what} {path} is larger than {_size(limit)}: refused")
    return b"".join(chunks)


def _kind(mode: int, regular: bool) -> str | None:
    """Why a file of this mode is refused, or None."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if regular or not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        return "not a regular file"
    return None


def read_text(path: Path, *, limit: int = MAX_BYTES, what: str = "file", regular: bool = False) -> str:
    """`read_bytes`, decoded as UTF-8 (InputError when it is not)."""
    data = read_bytes(path, limit=limit, what=what, regular=regular)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start})") from None


def loads(text: str | bytes, *, what: str, max_depth: int = MAX_DEPTH, error: type[QatdoctorError] = InputError) -> Any:
    """JSON no deeper than `max_depth`; `error` (InputError unless told) for anything that is not that."""
    try:
        value = json.loads(text)
    except RecursionError:  # the C parser's own guard, far deeper than max_depth
        raise error(f"{what} is JSON nested more than {max_depth} levels deep: refused") from None
    except ValueError as exc:  # UnicodeDecodeError and a 5,000-digit number included
        raise error(f"{what} is not JSON ({str(exc)[:200]})") from None
    opened = text.count("[") + text.count("{") if isinstance(text, str) else text.count(b"[") + text.count(b"{")
    if opened > max_depth and deeper_than(value, max_depth):  # few brackets cannot nest deep: no walk
        raise error(f"{what} is JSON nested more than {max_depth} levels deep: refused")
    return value


def deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON nests more than `limit` objects/arrays deep; level by level, never recursive."""
    level, containers = 0, [value] if isinstance(value, (dict, list)) else []
    while containers:
        level += 1
        if level > limit:
            return True
        children = chain.from_iterable(c.values() if type(c) is dict else c for c in containers)
        containers = [c for c in children if type(c) is dict or type(c) is list]  # json.loads makes no subclasses
    return False


def read_json(
    path: Path, *, limit: int = MAX_BYTES, what: str = "file", max_depth: int = MAX_DEPTH, regular: bool = False
) -> Any:
    """`read_text` then `loads`: a bounded JSON file."""
    text = read_text(path, limit=limit, what=what, regular=regular)
    return loads(text, what=f"{what} {path}", max_depth=max_depth)


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB" if limit >= 1 << 10 else f"{limit} B"
