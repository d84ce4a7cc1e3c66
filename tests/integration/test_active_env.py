"""Without `--python`, `check` examines the environment the user has activated (environment/active.py), on the real
aimet-2.42.0 reference env, with qatdoctor run from its own venv (this suite's dev venv, which has no torch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import reference_python

pytestmark = pytest.mark.integration


def _activated(prefix: Path) -> dict[str, str]:
    """The variables `source bin/activate` sets."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(prefix)
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize("view", ["json", "text"])
def test_check_examines_the_activated_venv_and_says_why(view: str) -> None:
    python = Path(reference_python("aimet-2.42.0"))
    prefix = python.parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--format", view], env=_activated(prefix),
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if view == "json":
        report = json.loads(done.stdout)
        assert (report["verdict"], report["target"], report["target_why"]) == ("ok", str(python), "active virtualenv")
        assert report["facts"]["aimet-torch"]["value"] == "2.42.0"
    else:
        first = done.stdout.splitlines()[0]
        assert "aimet-2.42.0/bin/python (active virtualenv)" in first, first
