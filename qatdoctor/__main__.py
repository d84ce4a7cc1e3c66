"""`python -m qatdoctor` (and the `qatdoctor` console script, via `launch`)."""

import sys


def launch() -> None:
    """Start the fact collector before importing the CLI (see qatdoctor.prefetch), then run the CLI."""
    from qatdoctor import prefetch

    prefetch.start_from_argv(sys.argv[1:])
    from qatdoctor.cli import main

    main()


if __name__ == "__main__":
    launch()
