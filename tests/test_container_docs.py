"""Run the documented container-build steps (examples/Dockerfile) against a real environment.

Docker is not available here, so the reference env aimet-2.42.0 stands in for the image's Python: each
`# qatdoctor-step` RUN line is executed with four substitutions, all visible below — `qatdoctor` targets the
env with `--python`, `/opt/constraints.txt` is a temp file, the pip install is a `--dry-run` (the env
already holds what it would install, so it proves the constraints resolve without downloading 4 GB), and the
user's model is a torchvision resnet18 factory (examples/models/torchvision_models.py).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, reference_python

pytestmark = pytest.mark.integration
DOCKERFILE = ROOT / "examples" / "Dockerfile"


def documented_steps() -> tuple[dict[str, str], list[list[str]]]:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    steps = []
    for line in text.splitlines():
        if line.startswith("RUN ") and line.rstrip().endswith("# qatdoctor-step"):
            command = line[4:].split("  # qatdoctor-step")[0]
            for name, value in args.items():
                command = command.replace("${" + name + "}", value)
            steps.append(shlex.split(command))
    return args, steps


def test_dockerfile_documents_three_gated_steps() -> None:
    _, steps = documented_steps()
    assert [s[:2] for s in steps] == [["qatdoctor", "pin"], ["python", "-m"], ["qatdoctor", "check"]]
    assert "--strict" in steps[2] and "--expect-cuda" in steps[2] and "--target-driver" in steps[2]
    assert "--model" in steps[2]


def test_documented_steps_run(tmp_path: Path) -> None:
    python = reference_python("aimet-2.42.0")
    _, steps = documented_steps()
    constraints = tmp_path / "constraints.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    model = f"{ROOT / 'examples' / 'models' / 'torchvision_models.py'}:resnet18"
    for step in steps:
        step = [str(constraints) if part == "/opt/constraints.txt" else part for part in step]
        step = [model if part == "/opt/app/model/build.py:build" else part for part in step]
        if step[0] == "qatdoctor":
            argv = [sys.executable, "-m", "qatdoctor", *step[1:], "--python", python]
        else:
            argv = [python, *step[1:], "--dry-run"]
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900, check=False)
        assert done.returncode == 0, (argv, done.stdout[-3000:], done.stderr[-3000:])
        if step[:2] == ["qatdoctor", "pin"]:
            pins = constraints.read_text()
            assert "aimet-torch==" in pins and "torch==" in pins
        if step[:2] == ["python", "-m"]:
            assert "Would install" not in done.stdout, done.stdout[-2000:]
