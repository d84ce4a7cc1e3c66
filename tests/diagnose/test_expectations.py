"""Container-build expectations: --expect-cuda and --target-driver."""

from __future__ import annotations

import pytest

from qatdoctor.diagnose.expectations import expect_cuda, with_target_driver
from qatdoctor.errors import InputError
from qatdoctor.records import Fact, Facts, Status


@pytest.mark.parametrize(
    ("cuda", "expected", "status"),
    [
        pytest.param(Fact.known("12.1"), "12.1", Status.PASS, id="match"),
        pytest.param(Fact.known("12.1"), "12.4", Status.FAIL, id="other-minor"),
        pytest.param(Fact.known("13.0"), "12.1", Status.FAIL, id="other-major"),
        pytest.param(Fact.absent("CPU build of torch"), "12.1", Status.FAIL, id="cpu-build"),
        pytest.param(Fact.unknown("torch/version.py unreadable"), "12.1", Status.UNKNOWN, id="unknown"),
    ],
)
def test_expect_cuda(cuda: Fact, expected: str, status: Status) -> None:
    (finding,) = expect_cuda(Facts({"torch": Fact.known("2.2.2"), "cuda": cuda}), expected)
    assert finding.status is status


def test_expect_cuda_needs_major_minor() -> None:
    with pytest.raises(InputError, match=r"MAJOR\.MINOR"):
        expect_cuda(Facts({}), "12")


def test_target_driver_replaces_the_hosts() -> None:
    facts = with_target_driver(Facts({"driver": Fact.absent("no NVIDIA driver")}), "535.104.05")
    assert facts.value("driver") == "535.104.05" and facts.get("driver").origin == "target"
    with pytest.raises(InputError):
        with_target_driver(facts, "latest")
