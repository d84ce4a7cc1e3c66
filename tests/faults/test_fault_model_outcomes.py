"""Every way a `--model` factory or forward can fail to run is a finding about the model, at the place it stopped,
with a non-zero exit: an exception of any class (BaseException included), recursion, `os._exit`, a segfault, a hang,
an empty exception message. Never "✓ your model passed", never the environment blamed, never an internal error.

Integration: each case is a real `qatdoctor check --model` against the aimet-2.42.0 reference env (the stand-ins'
result is cached once per module, so each case pays one AIMET import)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from faultkit import finish, qatdoctor

from tests.conftest import reference_python

pytestmark = pytest.mark.integration

HEAD = "import torch\n\n\nclass M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n" \
       "        self.conv = torch.nn.Conv2d(3, 4, 3)\n\n"  # fmt: skip
TAIL = "\n\ndef build():\n    return M(), torch.randn(1, 3, 8, 8)\n"
FORWARD = HEAD + "    def forward(self, x):\n{}\n" + TAIL
FACTORIES = {
    "interrupt-in-factory": "def build():\n    raise KeyboardInterrupt\n",
    "system-exit-in-factory": "def build():\n    raise SystemExit\n",
    "generator-exit-in-factory": "def build():\n    raise GeneratorExit\n",
    "interrupt-in-forward": FORWARD.format("        raise KeyboardInterrupt"),
    "interrupt-while-tracing": FORWARD.format(
        "        if isinstance(x, torch.fx.Proxy):\n            raise KeyboardInterrupt\n        return self.conv(x)"
    ),
    "deep-sequential": "import torch\n\n\ndef build():\n    m = torch.nn.Identity()\n    for _ in range(3000):\n"
    "        m = torch.nn.Sequential(m)\n    return m, torch.randn(1, 3, 8, 8)\n",
    "empty-message-in-factory": "def build():\n    raise NotImplementedError\n",
    "empty-assert-while-tracing": FORWARD.format(
        "        assert isinstance(x, torch.Tensor)\n        return self.conv(x)"
    ),
    "os-exit-in-factory": "import os\n\n\ndef build():\n    os._exit(0)\n",
    "segfault-in-factory": "import ctypes\n\n\ndef build():\n    ctypes.string_at(0)\n",
    "hang-in-factory": "import time\n\n\ndef build():\n    time.sleep(10**6)\n",
}
# case -> (finding id, the place the title names or None when the title says it by itself)
EXPECTED = {
    "interrupt-in-factory": ("model.interrupted", "factory"),
    "system-exit-in-factory": ("model.factory-failed", None),
    "generator-exit-in-factory": ("model.factory-failed", None),
    "interrupt-in-forward": ("model.interrupted", "factory"),
    "interrupt-while-tracing": ("model.interrupted", "prepare"),
    "deep-sequential": ("model.factory-failed", None),
    "empty-message-in-factory": ("model.factory-failed", None),
    "empty-assert-while-tracing": ("model.unexplained.prepare", None),
    "os-exit-in-factory": ("model.crashed", "factory"),
    "segfault-in-factory": ("model.crashed", "factory"),
    "hang-in-factory": ("model.timeout", "factory"),
}
TIMEOUT = "60"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("probe-cache")


def check(python: str, model: Path, cache: Path) -> tuple[int, dict[str, Any], str]:
    proc = qatdoctor(
        ["check", "--python", python, "--models", "baseline", "--model", f"{model}:build", "--format", "json",
         "--probe-timeout", TIMEOUT],
        env={"QATDOCTOR_CACHE": str(cache), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    code, out, err = finish(proc, timeout=300)
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.mark.parametrize("case", sorted(FACTORIES))
def test_a_model_that_did_not_run_is_a_failure_about_the_model(case: str, tmp_path: Path, cache: Path) -> None:
    model = tmp_path / f"{case.replace('-', '_')}.py"
    model.write_text(FACTORIES[case])
    code, report, err = check(reference_python("aimet-2.42.0"), model, cache)
    assert code not in (0, 70) and report, (code, err[-2000:])
    finding_id, where = EXPECTED[case]
    about_model = [f for f in report["findings"] if f["scope"] == "model" and f["status"] == "fail"]
    found = next((f for f in about_model if f["id"] == finding_id), None)
    assert found is not None, [(f["id"], f["status"], f["scope"], f["title"]) for f in report["findings"]]
    assert found["severity"] == "error" and report["verdict"] == "problems"
    if where is not None:
        assert f"during {where}" in found["title"], found["title"]
    assert not any(f["id"] == "model.pipeline" for f in report["findings"]), "a model that did not run never passes"
    assert not any(f["id"] in ("probe.crashed", "probe.timeout") for f in report["findings"]), "not the environment"
    assert "Traceback" not in err
