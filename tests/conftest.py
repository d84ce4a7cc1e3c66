"""Shared fixtures: the reference environments built by scripts/refenvs.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def reference_python(name: str) -> str:
    """The interpreter of a reference env; skipped when missing, failed when QATDOCTOR_REQUIRE_ENVS=1 (CI)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "refenvs.py"), "path", name], capture_output=True, text=True, check=False
    )
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    message = f"reference environment {name} is not built (python scripts/refenvs.py build {name})"
    if os.environ.get("QATDOCTOR_REQUIRE_ENVS") == "1":
        pytest.fail(message)
    pytest.skip(message)
