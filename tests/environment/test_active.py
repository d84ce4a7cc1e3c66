"""Which interpreter `check` examines without `--python`: the documented order, on fake prefixes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qatdoctor.environment import active
from qatdoctor.environment.active import Choice, Own


def _prefix(root: Path, name: str, *, torch: bool = False) -> Path:
    """A fake environment: bin/python (an executable file) and, optionally, torch in its site-packages."""
    prefix = root / name
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    site = prefix / "lib" / "site-packages"
    site.mkdir(parents=True)
    if torch:
        (site / "torch").mkdir()
        (site / "torch" / "__init__.py").write_text("")
    return prefix


def _own(prefix: Path, *, venv: bool = True) -> Own:
    return Own(str(prefix / "bin" / "python"), str(prefix), "/usr" if venv else str(prefix),
               (str(prefix / "lib" / "site-packages"),))  # fmt: skip


@pytest.fixture
def envs(tmp_path: Path) -> dict[str, Path]:
    return {
        "tool": _prefix(tmp_path, "tool"),  # qatdoctor's own isolated venv, no torch
        "tool-with-torch": _prefix(tmp_path, "tool-with-torch", torch=True),
        "train": _prefix(tmp_path, "train", torch=True),
        "conda": _prefix(tmp_path, "conda", torch=True),
        "onpath": _prefix(tmp_path, "onpath", torch=True),
    }


# (own env, own is a venv, environ keys → env names, PATH env names, expected env, expected reason)
CASES = [
    ("tool", True, {"VIRTUAL_ENV": "train"}, [], "train", active.VIRTUALENV),
    ("tool", True, {"VIRTUAL_ENV": "train", "CONDA_PREFIX": "conda"}, [], "train", active.VIRTUALENV),
    ("tool", True, {"CONDA_PREFIX": "conda"}, ["onpath"], "conda", active.CONDA),
    ("tool", True, {}, ["onpath"], "onpath", active.ON_PATH),
    ("tool", True, {}, ["tool", "onpath"], "onpath", active.ON_PATH),  # its own bin first on PATH is skipped
    ("tool", True, {}, [], "tool", active.OWN),  # nothing else to examine
    ("tool-with-torch", True, {}, ["onpath"], "tool-with-torch", active.OWN),  # installed into the training env
    ("tool", False, {}, ["onpath"], "tool", active.OWN),  # a system interpreter is not an isolated tool env
    ("tool", True, {"VIRTUAL_ENV": "missing"}, ["onpath"], "onpath", active.ON_PATH),  # a stale VIRTUAL_ENV
]


@pytest.mark.parametrize(("own", "venv", "environ", "path", "expected", "why"), CASES)
def test_the_environment_the_user_is_in_is_chosen(
    envs: dict[str, Path], tmp_path: Path, own: str, venv: bool, environ: dict[str, str], path: list[str],
    expected: str, why: str,
) -> None:  # fmt: skip
    variables = {key: str(envs.get(name, tmp_path / name)) for key, name in environ.items()}
    variables["PATH"] = os.pathsep.join(str(envs[name] / "bin") for name in path)
    choice = active.choose(None, variables, _own(envs[own], venv=venv))
    assert choice == Choice(str(envs[expected] / "bin" / "python"), why)


def test_python_given_wins_over_everything(envs: dict[str, Path]) -> None:
    environ = {"VIRTUAL_ENV": str(envs["train"]), "CONDA_PREFIX": str(envs["conda"])}
    assert active.choose("/x/bin/python", environ, _own(envs["tool"])) == Choice("/x/bin/python", None)
