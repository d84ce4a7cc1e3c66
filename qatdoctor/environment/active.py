"""Which interpreter to examine when `--python` is not given: the environment the user is in.

pipdeptree's `--python auto` and uv's project detection are what users know. qatdoctor lives in its own
environment (pipx, `uv tool`, a venv of its own) and never imports torch, so examining its own interpreter is
almost never what was meant. The order: `--python`; an active virtualenv (`VIRTUAL_ENV`); an active conda env
(`CONDA_PREFIX`); when qatdoctor runs from an isolated environment without torch, the `python` on `PATH`;
otherwise qatdoctor's own interpreter. Stdlib only and cheap: the prefetch path calls it before the CLI loads.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

VIRTUALENV = "active virtualenv"
CONDA = "active conda env"
ON_PATH = "python on PATH (qatdoctor runs from an isolated environment without torch)"
OWN = "qatdoctor's own interpreter"


class Choice(NamedTuple):
    """The interpreter to examine (an unresolved path, or `--python`'s value as given) and why it was chosen
    (None: `--python` named it)."""

    python: str
    why: str | None


class Own(NamedTuple):
    """What qatdoctor's own interpreter says about itself (injectable for tests)."""

    executable: str
    prefix: str
    base_prefix: str
    path: Sequence[str]

    @classmethod
    def current(cls) -> Own:
        return cls(sys.executable, sys.prefix, sys.base_prefix, tuple(sys.path))

    def isolated_without_torch(self) -> bool:
        """A venv (pipx and `uv tool` make one) whose import path has no torch package."""
        if self.prefix == self.base_prefix:
            return False
        return not any(Path(entry, "torch", "__init__.py").is_file() for entry in self.path if entry)


def _env_python(prefix: str | None) -> str | None:
    if not prefix:
        return None
    candidate = Path(prefix).expanduser() / "bin" / "python"
    return str(candidate.absolute()) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def _path_python(environ: Mapping[str, str], own: Own) -> str | None:
    """The first `python`/`python3` on PATH that is not qatdoctor's own interpreter or inside its prefix."""
    mine = os.path.realpath(own.executable) if own.executable else None
    for folder in environ.get("PATH", "").split(os.pathsep):
        for name in ("python", "python3"):
            found = shutil.which(name, path=folder) if folder else None
            if found and os.path.realpath(found) != mine and not _inside(found, own.prefix):
                return str(Path(found).absolute())
    return None


def _inside(path: str, prefix: str) -> bool:
    return bool(prefix) and Path(path).absolute().is_relative_to(Path(prefix).absolute())


def choose(python: str | None, environ: Mapping[str, str] | None = None, own: Own | None = None) -> Choice:
    """The interpreter to examine and the reason, in the documented order (module docstring)."""
    if python is not None:
        return Choice(python, None)
    environ = os.environ if environ is None else environ
    own = Own.current() if own is None else own
    venv = _env_python(environ.get("VIRTUAL_ENV"))
    if venv is not None:
        return Choice(venv, VIRTUALENV)
    conda = _env_python(environ.get("CONDA_PREFIX"))
    if conda is not None:
        return Choice(conda, CONDA)
    if own.isolated_without_torch():
        found = _path_python(environ, own)
        if found is not None:
            return Choice(found, ON_PATH)
    return Choice(own.executable, OWN)
