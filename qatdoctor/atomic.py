"""Atomic file writes: every file qatdoctor writes is complete or untouched, never truncated.

The text goes to a temporary file in the same directory (so the rename cannot cross filesystems), is flushed
and fsync'ed, then renamed over the target; the directory is fsync'ed so the rename survives a crash. Any
failure (a full disk, a read-only directory, a target that is a directory) removes the temporary file, leaves
the old file as it was and raises OSError. An existing file keeps its permission bits.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from pathlib import Path

_umask_lock = threading.Lock()


def write_text(path: Path | str, text: str, *, encoding: str = "utf-8") -> None:
    """Replace `path` with `text`, atomically (see the module docstring)."""
    write_bytes(path, text.encode(encoding))


def write_bytes(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data`, atomically: a temp file beside it, fsync, rename; on failure the old file stays."""
    import tempfile

    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(target))
    mode = _mode_for(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fchmod(descriptor, mode)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        Path(temporary).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    _sync_directory(target.parent)


def _mode_for(target: Path) -> int:
    """The existing file's permission bits, else what a plain `open(..., "w")` would create."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        with _umask_lock:
            umask = os.umask(0o022)
            os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        handle = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
