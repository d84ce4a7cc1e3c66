"""A data change needs no Python change, against the real aimet-2.42.0 reference env: a new [[system_lib]] that
2.42.0 requires is found or missing (never unknown) and `--assume` takes it; a new [[construct]] with an existing
detector kind is scanned for in the user's model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_python
from tests.environment.matrix_copies import NEW_CONSTRUCT, NEW_LIB, with_new_construct, with_new_system_lib

pytestmark = pytest.mark.integration
FACT = f"lib:{NEW_LIB}"


def check(matrix: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--python", reference_python("aimet-2.42.0"), "--format", "json",
         *args],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "QATDOCTOR_MATRIX": str(matrix), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize(
    ("assume", "state", "fails"), [((), "absent", True), (("--assume", f"{NEW_LIB}=present"), "known", False)]
)
def test_a_new_system_library_is_reported_found_or_missing(
    tmp_path: Path, assume: tuple[str, ...], state: str, fails: bool
) -> None:
    code, report = check(with_new_system_lib(tmp_path), "--no-probe", *assume)
    assert report["facts"][FACT]["state"] == state, report["facts"].get(FACT)
    failing = [f for f in report["findings"] if f["id"] == "req.system-lib" and f["status"] == "fail"]
    assert bool(failing) is fails and (code != 0) is fails, (code, [(f["id"], f["status"]) for f in report["findings"]])
    if fails:
        assert NEW_LIB in failing[0]["title"]
    assert not any(f["status"] == "unknown" and FACT in f.get("about", []) for f in report["findings"])


def test_a_new_construct_is_scanned_for(tmp_path: Path) -> None:
    model = tmp_path / "tiny.py"
    model.write_text(
        "import torch\n\n\ndef build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()), torch.randn(1, 3, 8, 8)\n"
    )
    _, report = check(with_new_construct(tmp_path), "--models", "baseline", "--model", f"{model}:build")
    hit = report["probe"]["model"]["scan"]["constructs"][NEW_CONSTRUCT]
    assert (hit["count"], hit["layers"]) == (1, ["0"]), hit
