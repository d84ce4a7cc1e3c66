"""Write only where asked, only as asked (issue 25, item 7): an output path that is a symlink, a character device,
a FIFO or a `/dev/stdout`-style link is written through, never replaced by a regular file; a full device is an
error with exit 6. Every node is a scratch one in tmp_path (mknod as root), so the old code's rename over it
harms nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor import atomic
from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / "tests" / "data" / "refresh" / "wheels"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")


def _matrix(tmp: Path) -> Path:
    copy = tmp / "m" / "compat_matrix.toml"
    copy.parent.mkdir()
    shutil.copy(ROOT / "compat_matrix.toml", copy)
    shutil.copytree(ROOT / "evidence", tmp / "m" / "evidence")
    return copy


# every CLI option that writes a file, as (args for an output path, scratch dir) -> argv
COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "report": lambda out, tmp: ["report", "--no-probe", "-o", str(out)],
    "pin": lambda out, tmp: ["pin", "-a", "python=3.11", "-o", str(out)],
    "grid-html": lambda out, tmp: ["matrix", "grid", "--html", str(out)],
    "refresh-evidence": lambda out, tmp: ["matrix", "refresh", "--check", "--wheels", str(WHEELS),
                                          "--matrix", str(_matrix(tmp)), "--evidence", str(out)],
}  # fmt: skip


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.stderr and result.exit_code != ExitCode.INTERNAL, result.stderr
    return result.exit_code, result.stderr


def _device(path: Path, major: int, minor: int, kind: int = stat.S_IFCHR) -> Path:
    os.mknod(path, 0o666 | kind, os.makedev(major, minor))
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_symlink_to_a_file_stays_a_link_and_its_file_is_written(tmp_path: Path, command: str) -> None:
    real = tmp_path / "real.out"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.out"
    link.symlink_to("real.out")
    code, err = invoke(COMMANDS[command](link, tmp_path))
    assert code in (ExitCode.OK, ExitCode.PROBLEMS), err
    assert link.is_symlink() and link.readlink() == Path("real.out")
    assert real.read_text() not in ("", "old") and stat.S_IMODE(real.stat().st_mode) == 0o640  # mode kept
    assert leftovers(tmp_path) == []


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.out"
    link.symlink_to("sub/new.out")
    (tmp_path / "sub").mkdir()
    code, err = invoke(COMMANDS["pin"](link, tmp_path))
    assert code == ExitCode.OK, err
    assert link.is_symlink() and (tmp_path / "sub" / "new.out").read_text().startswith("# qatdoctor")


@root_only
@pytest.mark.parametrize("command", COMMANDS)
def test_a_character_device_is_written_not_replaced(tmp_path: Path, command: str) -> None:
    """`--output /dev/null` as root used to rename a regular file over /dev/null."""
    null = _device(tmp_path / "null", 1, 3)
    code, err = invoke(COMMANDS[command](null, tmp_path))
    assert code in (ExitCode.OK, ExitCode.PROBLEMS), err
    assert stat.S_ISCHR(null.lstat().st_mode) and null.stat().st_rdev == os.makedev(1, 3)
    assert leftovers(tmp_path) == []


@root_only
@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_device_is_exit_6_and_stays_a_device(tmp_path: Path, command: str) -> None:
    """`--output /dev/full` used to 'succeed' (exit 0) by replacing the device with a file."""
    full = _device(tmp_path / "full", 1, 7)
    code, err = invoke(COMMANDS[command](full, tmp_path))
    assert code == ExitCode.BAD_INPUT, err
    assert "No space left on device" in err
    assert stat.S_ISCHR(full.lstat().st_mode) and leftovers(tmp_path) == []


@contextlib.contextmanager
def reading(fifo: Path) -> Iterator[bytearray]:
    """A reader on `fifo` in a thread, collecting what is written until the writer closes (never blocks forever)."""
    got = bytearray()
    descriptor = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader exists from now on
    stop = threading.Event()

    def drain() -> None:
        seen = False
        while not stop.is_set():
            try:
                chunk = os.read(descriptor, 65536)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            if chunk:
                seen = True
                got.extend(chunk)
            elif seen:
                return  # EOF after data: the writer closed
            else:
                time.sleep(0.01)  # no writer yet

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        thread.join(30)
        stop.set()
        os.close(descriptor)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_is_written_through_to_its_reader(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with reading(fifo) as got:
        code, err = invoke(COMMANDS[command](fifo, tmp_path))
    assert code in (ExitCode.OK, ExitCode.PROBLEMS), err
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and len(got) > 100
    assert leftovers(tmp_path) == []


def test_a_fifo_nobody_reads_is_an_error_not_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "FIFO_WAIT", 0.3)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    code, err = invoke(COMMANDS["pin"](fifo, tmp_path))
    assert code == ExitCode.BAD_INPUT and "no process read the FIFO" in err, err
    assert time.monotonic() - started < 20 and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_socket_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        code, err = invoke(COMMANDS["pin"](path, tmp_path))
    assert code == ExitCode.BAD_INPUT and "a socket" in err, err
    assert stat.S_ISSOCK(path.lstat().st_mode)


@root_only
def test_a_block_device_is_refused_and_kept(tmp_path: Path) -> None:
    block = _device(tmp_path / "blk", 240, 0, stat.S_IFBLK)  # a major for local use: no driver behind it
    code, err = invoke(COMMANDS["pin"](block, tmp_path))
    assert code == ExitCode.BAD_INPUT and "a block device" in err, err
    assert stat.S_ISBLK(block.lstat().st_mode)


@pytest.mark.parametrize("where", ["pipe", "file"])
def test_a_dev_stdout_style_link_writes_to_stdout(tmp_path: Path, where: str) -> None:
    """A link to /proc/self/fd/1 (what /dev/stdout is) used to be replaced by a regular file."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    sink = tmp_path / "captured.txt"
    with sink.open("w") as handle:
        proc = subprocess.run(
            [sys.executable, "-m", "qatdoctor", "pin", "-a", "python=3.11", "-o", str(link)],
            stdout=subprocess.PIPE if where == "pipe" else handle, stderr=subprocess.PIPE, text=True, timeout=120,
            cwd=ROOT, env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
    assert proc.returncode == ExitCode.OK, proc.stderr
    written = proc.stdout if where == "pipe" else sink.read_text()
    assert written.startswith("# qatdoctor") and link.is_symlink() and link.readlink() == Path("/proc/self/fd/1")


def test_the_matrix_and_its_sidecar_behind_symlinks_stay_symlinks(tmp_path: Path) -> None:
    """`matrix compile` and `merge-evidence` write the files the links name, and keep the links."""
    real = _matrix(tmp_path)
    link = real.parent / "link.toml"  # beside it: evidence files are found relative to the path given
    link.symlink_to(real.name)
    sidecar_real = real.parent / "elsewhere.json"
    sidecar_real.write_text("{}")
    (real.parent / "link.json").symlink_to(sidecar_real.name)
    code, err = invoke(["matrix", "compile", str(link)])
    assert code == ExitCode.OK, err
    assert (real.parent / "link.json").is_symlink() and sidecar_real.stat().st_size > 1000
    evidence = real.parent / "wheels.json"
    code, err = invoke(["matrix", "refresh", "--check", "--wheels", str(WHEELS), "--matrix", str(link),
                        "--evidence", str(evidence)])  # fmt: skip
    assert code == ExitCode.OK, err
    before = real.read_text()
    code, err = invoke(["matrix", "merge-evidence", str(evidence), "--matrix", str(link)])
    assert code == ExitCode.OK, err
    assert link.is_symlink() and real.read_text() != before


def test_atomic_write_gives_up_on_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError) as raised:
        atomic.write_text(tmp_path / "a", "x")
    assert raised.value.errno == errno.ELOOP and (tmp_path / "a").is_symlink()


def _file_size_limit() -> None:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is EFBIG, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (128, 128))


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_too_big_to_write_leaves_the_old_file(tmp_path: Path, command: str) -> None:
    """A real kernel refusal (RLIMIT_FSIZE: EFBIG past 128 bytes): exit 6, the old file byte for byte, no temp file.
    `refresh --evidence` truncated the old file first (a plain write_text)."""
    out = tmp_path / "out.txt"
    out.write_text("the old content\n")
    args = COMMANDS[command](out, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "qatdoctor", *args], capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=_file_size_limit,
    )  # fmt: skip
    assert proc.returncode == ExitCode.BAD_INPUT and "File too large" in proc.stderr, proc.stderr
    assert out.read_text() == "the old content\n" and leftovers(tmp_path) == []
