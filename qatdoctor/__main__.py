"""`python -m qatdoctor` (and the `qatdoctor` console script, via `launch`)."""

import contextlib
import os
import sys


def launch() -> None:
    """Start the fact collector before importing the CLI (see qatdoctor.prefetch), run the CLI, exit fast."""
    from qatdoctor import prefetch

    prefetch.start_from_argv(sys.argv[1:])
    from qatdoctor.cli import main

    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
    # Everything is written and closed by now; tearing down ~300 imported modules costs 25-35 ms, about as
    # much as the whole evaluation (bench/bench_check.py), so skip it.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # e.g. `qatdoctor … | head` closed the pipe: nothing left to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    launch()
