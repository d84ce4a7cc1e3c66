"""File writes that touch only what was asked: a regular file is replaced atomically, anything else is written
through, never replaced.

- A regular file (or a new one): the data goes to a temporary file in the same directory (so the rename cannot
  cross filesystems), is flushed and fsync'ed, then renamed over the target; the directory is fsync'ed so the
  rename survives a crash. Any failure (a full disk, a read-only directory) removes the temporary file, leaves
  the old file as it was and raises OSError. An existing file keeps its permission bits.
- A symlink is resolved first: the file it names is written (by the rules here), the link stays a link.
- A character device (`/dev/null`, a terminal) or a FIFO, and anything reached through /proc (`/dev/stdout`,
  `/dev/fd/N`): opened and written in place. A FIFO gets `FIFO_WAIT` seconds for a reader, then an error.
- A directory, a block device or a socket: refused with OSError.

Every write checks that all bytes went out: a short write or ENOSPC (`/dev/full`) is an OSError, never a
silent success.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import time
from pathlib import Path

FIFO_WAIT = 10.0  # seconds a FIFO output may wait for its reader
_MAX_LINKS = 40  # the kernel's own limit on a symlink chain (ELOOP)
_umask_lock = threading.Lock()


def write_text(path: Path | str, text: str, *, encoding: str = "utf-8", new_mode: int | None = None) -> None:
    """Write `text` to `path` (see the module docstring)."""
    write_bytes(path, text.encode(encoding), new_mode=new_mode)


def write_bytes(path: Path | str, data: bytes, *, new_mode: int | None = None) -> None:
    """Write `data` to `path`: atomically for a regular file, in place for a device or FIFO, never replacing
    one; `new_mode` is the permission of a file that does not exist yet (default: what `open` would give)."""
    real, through_proc = _resolve(Path(path))
    if through_proc:  # a magic link (/proc/self/fd/1): the open file it stands for, whatever that is
        _write_through(Path(path), data)
        return
    try:
        info = real.stat()
    except FileNotFoundError:
        info = None
    if info is None or stat.S_ISREG(info.st_mode):
        _replace(real, data, new_mode)
    elif stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        _write_through(real, data)
    elif stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    else:
        kind = "a block device" if stat.S_ISBLK(info.st_mode) else "a socket"
        raise OSError(errno.EINVAL, f"{kind}: qatdoctor writes only files, character devices and FIFOs", str(path))


def _resolve(path: Path) -> tuple[Path, bool]:
    """What `path` names once its symlinks are followed, and whether the way crosses /proc (a magic link)."""
    current = path.absolute()
    for _ in range(_MAX_LINKS):
        parent = current.parent.resolve()
        current = parent / current.name
        if parent.parts[:2] == ("/", "proc"):
            return current, True
        if not current.is_symlink():
            return current, False
        current = parent / current.readlink()
    raise OSError(errno.ELOOP, "Too many levels of symbolic links", str(path))


def _replace(target: Path, data: bytes, new_mode: int | None) -> None:
    """Replace a regular file (or create one) atomically: a temp file beside it, fsync, rename."""
    import tempfile

    mode = _mode_for(target, new_mode)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        try:
            _write_all(descriptor, data)
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


def _write_through(target: Path, data: bytes) -> None:
    """Open what is there (a device, a FIFO, the file behind /dev/stdout) and write into it; nothing is renamed."""
    descriptor = _open_for_writing(target)
    try:
        info = os.fstat(descriptor)
        if stat.S_ISBLK(info.st_mode) or stat.S_ISDIR(info.st_mode):
            raise OSError(errno.EINVAL, "is not a file, character device or FIFO", str(target))
        if stat.S_ISREG(info.st_mode):
            os.ftruncate(descriptor, 0)  # what `> /dev/stdout` would do to the file behind it
        _write_all(descriptor, data)
        if stat.S_ISREG(info.st_mode):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _open_for_writing(target: Path) -> int:
    """Open without blocking (a FIFO with no reader would hang `open`), then make the descriptor blocking."""
    flags = os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    fifo = stat.S_ISFIFO(target.stat().st_mode)
    deadline = time.monotonic() + FIFO_WAIT
    while True:
        try:
            descriptor = os.open(target, flags)
            break
        except OSError as error:
            if error.errno != errno.ENXIO or not fifo:
                raise
            if time.monotonic() >= deadline:  # ENXIO on a FIFO: no process has it open for reading
                raise OSError(errno.ENXIO, f"no process read the FIFO within {FIFO_WAIT:g} s", str(target)) from None
            time.sleep(0.05)
    fcntl.fcntl(descriptor, fcntl.F_SETFL, fcntl.fcntl(descriptor, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return descriptor


def _write_all(descriptor: int, data: bytes) -> None:
    """Every byte or an OSError: a write that takes nothing is a full device, not a success."""
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "No space left on device (short write)")
        view = view[written:]


def _mode_for(target: Path, new_mode: int | None) -> int:
    """The existing file's permission bits, else `new_mode`, else what a plain `open(..., "w")` would create."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        if new_mode is not None:
            return new_mode
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
