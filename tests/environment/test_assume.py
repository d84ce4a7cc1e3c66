"""`--assume NAME=VALUE`: accepted spellings, odd versions, and clear errors for everything else."""

from __future__ import annotations

import pytest

from qatdoctor.environment.assume import apply_assumptions, parse_assumption, what_if_facts
from qatdoctor.errors import InputError
from qatdoctor.records import Fact, Facts, FactState, Gpu


@pytest.mark.parametrize(
    ("item", "name", "state", "value"),
    [
        pytest.param("aimet-torch=1.32.2", "aimet-torch", FactState.KNOWN, "1.32.2", id="plain"),
        pytest.param("aimet_torch=1.34.0.cu121", "aimet-torch", FactState.KNOWN, "1.34.0.cu121", id="github-variant"),
        pytest.param("aimet=torch-gpu-1.31.0", "aimet-torch", FactState.KNOWN, "torch-gpu-1.31.0", id="alias-prefix-variant"),
        pytest.param("torch=2.3.0a0+git1234", "torch", FactState.KNOWN, "2.3.0a0+git1234", id="source-build"),
        pytest.param("TORCH = 2.2.2+cu121 ", "torch", FactState.KNOWN, "2.2.2+cu121", id="case-and-spaces"),
        pytest.param("cuda=cpu", "cuda", FactState.ABSENT, None, id="cpu-build"),
        pytest.param("driver=535.104.05", "driver", FactState.KNOWN, "535.104.05", id="driver-raw-kept"),
        pytest.param("liblapacke=absent", "lib:liblapacke.so.3", FactState.ABSENT, None, id="library-absent"),
        pytest.param("libcublas12=yes", "lib:libcublas.so.12", FactState.KNOWN, "present", id="library-present"),
        pytest.param("api=V1", "aimet-api", FactState.KNOWN, "v1", id="api"),
        pytest.param("mmengine=none", "mmengine", FactState.ABSENT, None, id="package-absent"),
    ],
)  # fmt: skip
def test_parse_assumption(item: str, name: str, state: FactState, value: str | None) -> None:
    parsed_name, fact = parse_assumption(item)
    assert parsed_name == name
    assert isinstance(fact, Fact)
    assert (fact.state, fact.value, fact.origin) == (state, value, "assumed")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param("torch", "expects NAME=VALUE", id="no-equals"),
        pytest.param("=2.2.2", "expects NAME=VALUE", id="no-name"),
        pytest.param("torch=", "expects NAME=VALUE", id="no-value"),
        pytest.param("pytorch=2.2.2", "unknown name 'pytorch'", id="unknown-name"),
        pytest.param("torch=latest", "unparseable torch version 'latest'", id="word-version"),
        pytest.param("python=3.x", "unparseable python version", id="wildcard-version"),
        pytest.param("aimet-api=v3", "expected v1 or v2", id="bad-api"),
        pytest.param("liblapacke=maybe", "expected present or absent", id="bad-presence"),
        pytest.param("gpu=hopper", "unparseable GPU compute capability", id="bad-gpu"),
    ],
)
def test_bad_assumptions(item: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_assumption(item)


@pytest.mark.parametrize(
    ("item", "capability"),
    [pytest.param("gpu=9.0", "9.0", id="dotted"), pytest.param("gpu=sm_86", "8.6", id="sm-tag"),
     pytest.param("gpu=120", "12.0", id="three-digits")],
)  # fmt: skip
def test_gpu_assumption(item: str, capability: str) -> None:
    _, gpu = parse_assumption(item)
    assert isinstance(gpu, Gpu) and gpu.compute_capability == capability


def test_new_torch_drops_collected_cuda_build() -> None:
    collected = Facts({"torch": Fact.known("2.14.1"), "cuda": Fact.known("13.0"), "aimet-api": Fact.known("v2")})
    facts = apply_assumptions(collected, ["torch=2.2.2"])
    assert "cuda" not in facts.values and facts.value("torch") == "2.2.2"
    assert facts.value("aimet-api") == "v2"


def test_what_if_marks_everything_else_unknown() -> None:
    facts = what_if_facts(["aimet-torch=1.32.2"])
    assert facts.value("aimet-torch") == "1.32.2"
    assert facts.get("glibc").state is FactState.UNKNOWN and "not given" in (facts.get("glibc").reason or "")
    assert facts.gpus is None


def test_what_if_needs_something() -> None:
    with pytest.raises(InputError, match="at least one --assume"):
        what_if_facts([])
