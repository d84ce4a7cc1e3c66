"""Collecting facts about a target interpreter by running a stdlib-only script inside it."""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qatdoctor import bounded
from qatdoctor.environment import active, prefetch
from qatdoctor.environment.active import Choice
from qatdoctor.environment.runner import Completed, Runner, run
from qatdoctor.errors import CollectError, InputError, TargetError
from qatdoctor.knowledge.vocab import collector_request
from qatdoctor.records import Facts

__all__ = ["Choice", "CollectError", "TargetError", "choose_python", "collect", "collector_path", "resolve_python"]

_TOO_OLD = "the target Python is too old: qatdoctor needs 3.8+ in the target"


def collector_path() -> Path:
    """The collector script on disk (wheels install it as a plain file beside this module)."""
    return Path(__file__).with_name("_collector.py")


def resolve_python(python: str | None) -> str:
    """The interpreter to run (see `choose_python`)."""
    return choose_python(python).python


def choose_python(python: str | None) -> Choice:
    """The interpreter to run and why: None is the environment the user is in (`environment/active.py`), a bare
    name is looked up on PATH, a venv dir is its bin/python."""
    choice = active.choose(python)
    return Choice(_checked(choice.python), choice.why)


def _checked(python: str) -> str:
    if not python:
        raise TargetError("this interpreter does not know its own path (sys.executable is empty)")
    if os.sep not in python and not Path(python).is_dir():
        found = shutil.which(python)
        if found is None:
            raise TargetError(f"{python} does not exist (not found on PATH)")
        return found
    path = Path(python).expanduser().absolute()  # never resolve: a venv's python is a symlink
    if not path.exists():
        raise TargetError(f"{python} does not exist")
    if path.is_dir():
        candidate = path / "bin" / "python"
        if not candidate.exists():
            raise TargetError(f"{python} is a directory without bin/python")
        path = candidate
    if not path.is_file() or not os.access(path, os.X_OK):
        raise TargetError(f"{path} is not executable")
    return str(path)


def collect(
    python: str | None = None,
    *,
    runner: Runner = run,
    timeout: float = 30.0,
    libraries: Sequence[str] | None = None,
    matrix: Path | None = None,
) -> Facts:
    """Run the collector in the target interpreter and map its JSON to facts; it looks for the package facts and
    `libraries` (default: those `matrix`, or the default one, checks: `knowledge.load.checked_libraries`)."""
    from qatdoctor.environment.facts import facts_from_collector

    target = resolve_python(python)
    if libraries is None:
        from qatdoctor.knowledge.load import checked_libraries, default_path

        libraries = checked_libraries(matrix or default_path())
    argv = list(prefetch.collector_argv(target, collector_request(list(libraries))))
    prefetched = prefetch.take(argv) if runner is run else None
    completed = prefetched.wait() if prefetched is not None else runner(argv, timeout=timeout, env=dict(os.environ))
    return facts_from_collector(parse_output(target, completed, timeout), libraries=tuple(libraries))


def parse_output(target: str, completed: Completed, timeout: float) -> dict[str, Any]:
    """The collector's JSON object, or a one-line TargetError saying why there is none."""
    if completed.start_error is not None:
        if completed.start_errno == errno.ENOEXEC:
            raise TargetError(f"{target} is not a Python interpreter ({completed.start_error})")
        raise TargetError(f"{target} could not start: {completed.start_error}")
    if completed.timed_out:
        raise TargetError(f"{target} did not answer within {timeout:g}s")
    if completed.signal is not None:
        raise TargetError(f"{target} crashed ({completed.describe_exit()})")
    if completed.returncode != 0:
        last = completed.stderr_tail(1).strip()
        if old := re.search(r"Python (\S+) is too old", last):
            raise TargetError(f"{target}: {_TOO_OLD} (found Python {old[1]})")
        if last.startswith("SyntaxError"):
            raise TargetError(f"{target}: {_TOO_OLD} (it cannot parse the collector: {last})")
        detail = f": {last}" if last else ""
        raise TargetError(f"{target} failed ({completed.describe_exit()}){detail}")
    payload = _last_json_object(completed.stdout)
    if payload is None:
        shown = completed.stdout.strip().replace("\n", " ")[:80]
        if not shown:
            raise TargetError(f"{target} is not a Python interpreter, or printed nothing")
        raise TargetError(f"{target} is not a Python interpreter, or printed something that is not JSON: {shown}")
    return payload


def _last_json_object(stdout: str) -> dict[str, Any] | None:
    """The whole stdout as a JSON object, else its last line (a sitecustomize may print before us)."""
    candidates = [stdout, *reversed(stdout.strip().splitlines()[-1:])]
    for text in candidates:
        try:
            value = bounded.loads(text, what="the collector's output")  # bounded nesting: a hostile env's print
        except InputError:
            continue
        if isinstance(value, dict):
            return value
    return None
