"""Mapping the collector's JSON to facts: recorded outputs, hand-made variants, and malformed payloads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.environment.collect import CollectError
from qatdoctor.environment.facts import facts_from_collector
from qatdoctor.knowledge.vocab import PACKAGES
from qatdoctor.records import Fact, FactState, Gpu

DATA = Path(__file__).parent.parent / "data" / "collector"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return payload


def test_every_recorded_output_maps_to_facts() -> None:
    for path in sorted(DATA.glob("*.json")):
        facts = facts_from_collector(load(path.name))
        assert facts.get("python").is_known, path.name
        assert {"python", "platform", "cuda", "driver", *PACKAGES} <= set(facts), path.name


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        pytest.param(
            "dev-venv-py311.json",
            {
                "python": Fact.known("3.11.7"),
                "python-implementation": Fact.known("CPython"),
                "python-abi": Fact.known("cpython-311-x86_64-linux-gnu"),
                "platform": Fact.known("linux-x86_64"),
                "os": Fact.known("Debian GNU/Linux 12 (bookworm)"),
                "glibc": Fact.known("2.36"),
                "torch": Fact.absent("not installed"),
                "cuda": Fact.absent("torch not installed"),
                "driver": Fact.absent("no NVIDIA driver"),
                "aimet-built-with-torch": Fact.absent("aimet not installed"),
                "lib:liblapacke.so.3": Fact.known("present", detail="/lib/x86_64-linux-gnu/liblapacke.so.3"),
                "lib:libcublas.so.12": Fact.absent("not found by the dynamic loader"),
                "env:AIMET_DEFAULT_API": Fact.absent("not set"),
            },
            id="real-dev-venv",
        ),
        pytest.param(
            "pyenv-py310.json",
            {
                "python": Fact.known("3.10.13"),
                "python-executable": Fact.known("~/.pyenv/versions/3.10.13/bin/python3.10"),
                "numpy": Fact.absent("not installed"),
            },
            id="real-pyenv-3.10",
        ),
        pytest.param(
            "venv-torch-2.2.2-pypi.json",
            {
                "torch": Fact.known("2.2.2"),
                "cuda": Fact.known("12.1", detail="torch/version.py"),
                "aimet-torch": Fact.absent("not installed"),
            },
            id="real-torch-pypi-wheel",
        ),
        pytest.param(
            "gpu-h100-aimet-2.0.0.json",
            {
                "os": Fact.known("Ubuntu 22.04.4 LTS"),
                "aimet-torch": Fact.known("2.0.0"),
                "torch": Fact.known("2.2.2+cu121"),
                "cuda": Fact.known("12.1", detail="torch/version.py"),
                "driver": Fact.known("535.104.05", detail="/sys/module/nvidia/version"),
                "aimet-built-with-torch": Fact.known("2.2.0+cu121", detail="aimet_common/_deps.py"),
                "aimet-python-abi": Fact.known("cpython-310-x86_64-linux-gnu", detail="aimet_common/_deps.py"),
                "lib:libcublas.so.12": Fact.known("present", detail="site-packages nvidia/cublas/lib"),
                "lib:liblapacke.so.3": Fact.absent("not found by the dynamic loader"),
            },
            id="gpu-host",
        ),
        pytest.param(
            "cpu-torch.json",
            {
                "torch": Fact.known("2.1.2+cpu"),
                "cuda": Fact.absent("CPU build of torch"),
                "driver": Fact.absent("no NVIDIA driver"),
                "env:AIMET_DEFAULT_API": Fact.known("v1"),
                "aimet-built-with-torch": Fact.known("2.1.2+cu121", detail="aimet_torch/_version.py"),
            },
            id="cpu-torch",
        ),
        pytest.param(
            "aimet-1.32.2-no-lapacke.json",
            {
                "aimet-torch": Fact.known("1.32.2"),
                "mmcv": Fact.known("2.1.0"),
                "mmcv-lite": Fact.absent("not installed"),
                "aimet-built-with-torch": Fact.absent("not recorded by this aimet build"),
                "aimet-python-abi": Fact.absent("not recorded by this aimet build"),
                "lib:liblapacke.so.3": Fact.absent("not found by the dynamic loader"),
                "driver": Fact.known("535.104.05", detail="/proc/driver/nvidia/version"),
            },
            id="aimet-1.32.2-without-lapacke",
        ),
        pytest.param(
            "unknowns-nvidia-smi-timeout.json",
            {
                "driver": Fact.unknown("nvidia-smi timed out after 5s"),
                "lib:liblapacke.so.3": Fact.unknown(
                    "ldconfig -p failed: ldconfig: Can't open cache file /etc/ld.so.cache; "
                    "not in LD_LIBRARY_PATH or default directories"
                ),
                "lib:libcublas.so.12": Fact.known("present", detail="site-packages nvidia/cublas/lib"),
                "cuda": Fact.known("12.1", detail="torch/version.py"),
            },
            id="nvidia-smi-timed-out",
        ),
    ],
)
def test_recorded_payloads(recording: str, expected: dict[str, Fact]) -> None:
    facts = facts_from_collector(load(recording))
    assert {name: facts.get(name) for name in expected} == expected


@pytest.mark.parametrize(
    ("recording", "gpus", "reason"),
    [
        pytest.param("dev-venv-py311.json", (), None, id="no-driver-no-gpus"),
        pytest.param("gpu-h100-aimet-2.0.0.json", (Gpu("NVIDIA H100 80GB HBM3", "9.0"),), None, id="one-h100"),
        pytest.param("unknowns-nvidia-smi-timeout.json", None, "nvidia-smi timed out after 5s", id="timed-out"),
    ],
)
def test_gpus(recording: str, gpus: tuple[Gpu, ...] | None, reason: str | None) -> None:
    facts = facts_from_collector(load(recording))
    assert (facts.gpus, facts.gpus_reason) == (gpus, reason)


def changed(path: str, value: Any, *, unknown: dict[str, str] | None = None) -> dict[str, Any]:
    """The real dev-venv recording with the key at `a/b/c` set (or deleted, for value=...)."""
    payload = copy.deepcopy(load("dev-venv-py311.json"))
    *parents, last = path.split("/")
    target = payload
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    if unknown:
        payload["unknown"].update(unknown)
    return payload


@pytest.mark.parametrize(
    ("payload", "name", "fact"),
    [
        pytest.param(
            changed("torch_build", None, unknown={"torch_build": "OSError: boom"}),
            "cuda",
            Fact.unknown("OSError: boom"),
            id="whole-section-unknown",
        ),
        pytest.param(
            changed("packages/torch", None, unknown={"packages.torch": "reading its metadata failed: X"}),
            "torch",
            Fact.unknown("reading its metadata failed: X"),
            id="package-unknown",
        ),
        pytest.param(
            changed("platform/glibc", None),
            "glibc",
            Fact.absent("not a glibc system"),
            id="musl-has-no-glibc",
        ),
        pytest.param(
            changed("platform/os", None, unknown={"platform.os": "/etc/os-release has no PRETTY_NAME"}),
            "os",
            Fact.unknown("/etc/os-release has no PRETTY_NAME"),
            id="os-unknown",
        ),
        pytest.param(
            changed("nvidia", {"driver": "550.54.14", "driver_source": "nvidia-smi", "gpus": []}),
            "driver",
            Fact.known("550.54.14", detail="nvidia-smi"),
            id="driver-from-nvidia-smi",
        ),
        pytest.param(
            changed("libraries/libcublas.so.12", None, unknown={"libraries.libcublas.so.12": "ldconfig not found"}),
            "lib:libcublas.so.12",
            Fact.unknown("ldconfig not found"),
            id="library-unknown",
        ),
        pytest.param(changed("env/AIMET_DEFAULT_API", "v2"), "env:AIMET_DEFAULT_API", Fact.known("v2"), id="env-set"),
        pytest.param(
            changed("torch_build", {"cuda": None, "hip": None, "source": None}, unknown={"x.y": "ignored"}),
            "cuda",
            Fact.absent("torch not installed"),
            id="unmatched-unknown-key-is-ignored",
        ),
    ],
)
def test_single_fact(payload: dict[str, Any], name: str, fact: Fact) -> None:
    assert facts_from_collector(payload).get(name) == fact


def test_whole_nvidia_section_unknown_makes_driver_and_gpus_unknown() -> None:
    facts = facts_from_collector(changed("nvidia", None, unknown={"nvidia": "RuntimeError: x"}))
    assert facts.get("driver").state is FactState.UNKNOWN
    assert (facts.gpus, facts.gpus_reason) == (None, "RuntimeError: x")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param([], "is a list, not a JSON object", id="not-a-dict"),
        pytest.param({}, "version None, expected 1", id="empty-object"),
        pytest.param({"collector": 1, "error": "redaction failed: X"}, "collector failed", id="error-payload"),
        pytest.param(changed("collector", 2), "version 2", id="newer-collector"),
        pytest.param(changed("unknown", ...), "no 'unknown' object", id="no-unknown"),
        pytest.param(changed("unknown", {"a": 1}), "map names to reasons", id="unknown-not-strings"),
        pytest.param(changed("python", ...), "no 'python' section", id="missing-section"),
        pytest.param(changed("python", None), "'python' is null without a reason", id="null-section"),
        pytest.param(changed("packages", ["torch"]), "'packages' is a list", id="section-wrong-type"),
        pytest.param(changed("python/version", ...), "no 'python.version'", id="missing-key"),
        pytest.param(changed("packages/torch", 2.2), "'packages.torch' is a float", id="version-not-string"),
        pytest.param(changed("libraries/liblapacke.so.3", "yes"), "needs a boolean 'found'", id="bad-library"),
        pytest.param(changed("nvidia/gpus", "H100"), "'nvidia.gpus' is a str", id="gpus-not-list"),
        pytest.param(changed("nvidia/gpus", [{"name": 1}]), "'nvidia.gpus[0]'", id="bad-gpu"),
        pytest.param(changed("nvidia/gpus", ...), "no 'nvidia.gpus'", id="no-gpus"),
    ],
)
def test_malformed_payloads_raise_collect_error(payload: Any, message: str) -> None:
    with pytest.raises(CollectError) as raised:
        facts_from_collector(payload)
    assert message in str(raised.value)


def test_the_target_scripts_copies_of_the_vocabulary() -> None:
    """The collector and the probe cannot import qatdoctor: their copies of the fact names and of the
    collector's protocol equal the one definition."""
    from qatdoctor.environment import _collector, _probe, facts
    from qatdoctor.knowledge import vocab

    for name in ("COLLECTOR_VERSION", "ENV_VARS"):
        assert getattr(facts, name) == getattr(_collector, name), name
    assert set(_probe.VERSION_FACTS) == set(vocab.CELL_FACTS)
