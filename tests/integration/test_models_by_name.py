"""`--model FAMILY:NAME` (environment/_zoo.py) on the real model overlay envs: the same verdict and failing findings
as the equivalent factory file in examples/models/, with no weights downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT, reference_python

pytestmark = pytest.mark.integration
MODELS = ROOT / "examples" / "models"


def check(env: str, model: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--python", reference_python(env), "--model", model,
         "--format", "json"],
        capture_output=True, text=True, timeout=900, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def failing(report: dict[str, Any]) -> set[str]:
    return {f["id"] for f in report["findings"] if f["status"] in ("fail", "silent-fail") and f["scope"] != "caveat"}


@pytest.mark.parametrize(
    ("env", "by_name", "factory"),
    [
        ("aimet-2.42.0-models", "torchvision:resnet18", f"{MODELS / 'torchvision_models.py'}:resnet18"),
        ("aimet-2.42.0-models", "mmdet:rtmdet_tiny_8xb32-300e_coco", f"{MODELS / 'rtmdet_tiny.py'}:build"),
        ("aimet-1.32.2-models", "mmdet:rtmdet_tiny_8xb32-300e_coco", f"{MODELS / 'rtmdet_tiny.py'}:build"),
    ],
)
def test_a_model_by_name_is_diagnosed_as_its_factory_file_is(env: str, by_name: str, factory: str) -> None:
    (code, named), (expected_code, filed) = check(env, by_name), check(env, factory)
    assert (code, named["verdict"]) == (expected_code, filed["verdict"])
    assert failing(named) == failing(filed), (failing(named), failing(filed))
    model = named["probe"]["model"]
    assert model["status"] == "ran" and model["spec"] == by_name
    assert [s["status"] for s in model["stages"]] == [s["status"] for s in filed["probe"]["model"]["stages"]]


def test_an_unknown_name_is_the_factory_failing_with_what_is_known() -> None:
    code, report = check("aimet-2.42.0-models", "torchvision:no_such_net")
    assert code == 1
    model = report["probe"]["model"]
    assert model["status"] == "factory-failed" and "no model 'no_such_net'" in model["error"]["message"]
