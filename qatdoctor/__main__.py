"""`python -m qatdoctor` (and the `qatdoctor` console script, via `launch`)."""

import contextlib
import errno
import os
import sys

INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
BAD_INPUT = 6  # qatdoctor.exitcodes.ExitCode.BAD_INPUT (not imported here: this path must stay lean)
INTERNAL = 70


def launch() -> None:
    """Start the fact collector before importing the CLI (see qatdoctor.environment.prefetch), run the CLI, clean up,
    exit fast.

    Every exit path (normal, error, Ctrl-C, SIGTERM/SIGHUP) ends in `runner.shutdown()`: each child's process
    group is killed and each scratch directory removed before the process exits.
    """
    from qatdoctor.environment import runner

    runner.install_signal_handlers()
    _closed_streams()
    code = 0
    try:
        from qatdoctor.environment import prefetch

        prefetch.start_from_argv(sys.argv[1:])
        from qatdoctor.cli import main

        code = main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            _say(done.code)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except runner.Terminated as stop:
        code = 128 + stop.signum
    except OSError as error:  # typer lets output errors other than EPIPE through (e.g. `> /dev/full`)
        code = _output_error(error)
    except Exception as error:  # a bug outside `guarded` (e.g. while importing): one line, never a traceback
        _say(f"internal error: {type(error).__name__}: {error}")
        if os.environ.get("QATDOCTOR_DEBUG"):
            import traceback

            traceback.print_exc()
        code = INTERNAL
    finally:
        runner.ignore_interrupts()
        runner.shutdown(everything=True)  # its only children are its runs: nothing adopted stays
    # Tearing down ~300 imported modules costs 25-35 ms, about as much as the whole evaluation
    # (bench/bench_check.py), so skip it; but what is still buffered must reach its file or say why not.
    try:
        sys.stdout.flush()
    except OSError as error:
        if error.errno != errno.EPIPE:  # `qatdoctor … | head` closed the pipe: nothing left to say
            code = _output_error(error)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    os._exit(code)


class _ClosedOutput:
    """Stands in for a stdout that was closed before qatdoctor started (`>&-`): writing is an output error."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _closed_streams() -> None:
    """A closed stdout fails on the first write (exit 6); a closed stderr swallows messages."""
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115, PTH123 - lives as long as the process


def _output_error(error: OSError) -> int:
    """The output could not be written (a full disk, /dev/full, a closed descriptor): one line, exit 6."""
    if error.errno == errno.EPIPE:
        return 0
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115, PTH123 - nothing more may reach the broken stream
    _say(f"error: cannot write the output: {error.strerror or error}")
    return BAD_INPUT


def _say(message: str) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    launch()
