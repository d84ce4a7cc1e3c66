"""The CLI's edge: messages and progress on stderr, the report on stdout, and the one place where qatdoctor's
errors become exit codes. Shared by `cli` and `cli_matrix`; imports no command."""

import atexit
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer

from qatdoctor import core
from qatdoctor.errors import CollectError, InputError, QatdoctorError
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.load import MatrixError
from qatdoctor.records import Report, Verdict
from qatdoctor.render import Format, render, wants_style
from qatdoctor.transform.controls import printable
from qatdoctor.transform.redact import redact_secrets

T = TypeVar("T")
QUIET = {"on": False}  # --quiet: no progress lines on stderr


def exit_code_for(error: QatdoctorError) -> ExitCode:
    """The one place that maps error layers to exit codes."""
    from qatdoctor.lab.apply import InstallFailed
    from qatdoctor.lab.envbuild import EnvBuildError  # the error path only: envbuild is not needed otherwise
    from qatdoctor.lab.restore import ChangeError

    codes: tuple[tuple[type[QatdoctorError], ExitCode], ...] = (
        (MatrixError, ExitCode.MATRIX_INVALID),
        (CollectError, ExitCode.TARGET_UNUSABLE),
        (InputError, ExitCode.BAD_INPUT),
        (core.NoKnownGoodError, ExitCode.PROBLEMS),
        (EnvBuildError, ExitCode.ENV_BUILD_FAILED),
        (InstallFailed, ExitCode.ENV_BUILD_FAILED),
        (ChangeError, ExitCode.PROBLEMS),
    )
    return next((code for cls, code in codes if isinstance(error, cls)), ExitCode.INTERNAL)


def guarded(action: Callable[[], T], *, debug: bool = False) -> T:
    """Run an action; turn qatdoctor errors into one line + exit code, anything else into exit 70."""
    try:
        return action()
    except QatdoctorError as error:
        say(f"error: {error.message}")
        if isinstance(error, MatrixError) and len(error.problems) > 1:
            for problem in error.problems[1:20]:
                say(f"  {problem}")
        if error.hint:
            say(f"hint: {error.hint}")
        raise typer.Exit(int(exit_code_for(error))) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as error:
        say(f"internal error: {type(error).__name__}: {error}")
        if debug or os.environ.get("QATDOCTOR_DEBUG"):
            traceback.print_exc()
        else:
            say("this is a bug in qatdoctor; rerun with --debug for the traceback and please report it")
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def say(message: str) -> None:
    """Logs and progress: always stderr, so stdout stays the payload; no terminal control, no credential."""
    if _LIVE:
        sys.stderr.write("\r\x1b[2K")  # over the live progress line, which the next progress() redraws
    print(printable(redact_secrets(message)), file=sys.stderr, flush=True)


_STARTED = time.monotonic()
_LIVE: list[bool] = []  # a live progress line is on the terminal (it is cleared before anything else is printed)


def progress(line: str) -> None:
    """Which stage and model the work is on, with the elapsed time, on stderr: one live line on a terminal,
    plain lines otherwise (logs, CI), nothing with --quiet.

    The live line is a carriage return and an erase, written directly: rich's status spinner runs a refresh thread
    whose join at the end cost ~80 ms of a 0.18 s `check --no-probe` (bench/bench_check.py measures both)."""
    if QUIET["on"]:
        return
    text = f"qatdoctor [{time.monotonic() - _STARTED:5.1f}s] {printable(line)}"
    if not (sys.stderr.isatty() and not os.environ.get("CI")):
        say(text)
        return
    width = shutil.get_terminal_size((100, 24)).columns - 1
    sys.stderr.write(f"\r\x1b[2K{text[:width]}")
    sys.stderr.flush()
    if not _LIVE:
        _LIVE.append(True)
        atexit.register(end_progress)


def end_progress() -> None:
    """Clear the live progress line, if one is shown."""
    if _LIVE and _LIVE.pop():
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()


def emit(report: Report, fmt: Format, strict: bool, verbose: int = 0) -> None:
    """Print the report on stdout and exit with the verdict's code."""
    end_progress()  # the live progress line ends before the report
    sys.stdout.write(render(report, fmt, styled=fmt is Format.text and wants_style(sys.stdout), verbose=verbose))
    sys.stdout.flush()
    if report.verdict is Verdict.PROBLEMS:
        raise typer.Exit(int(ExitCode.PROBLEMS))
    if report.verdict is Verdict.UNKNOWN and strict:
        say("qatdoctor: verdict unknown and --strict given")
        raise typer.Exit(int(ExitCode.UNKNOWN))


def write(path: Path, text: str) -> None:
    try:
        from qatdoctor import atomic

        atomic.write_text(path, text)  # complete or untouched, never truncated
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None
