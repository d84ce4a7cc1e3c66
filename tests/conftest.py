"""Shared fixtures: the reference environments built by scripts/refenvs.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
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


@pytest.fixture(autouse=True, scope="session")
def _per_run_probe_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This run's own probe cache: no state is shared with other runs of the suite or with the user's cache."""
    before = os.environ.get("QATDOCTOR_CACHE")
    os.environ["QATDOCTOR_CACHE"] = str(tmp_path_factory.mktemp("probe-cache"))
    yield
    if before is None:
        os.environ.pop("QATDOCTOR_CACHE", None)
    else:
        os.environ["QATDOCTOR_CACHE"] = before
