"""What a container build expects of the image: a CUDA build of torch, and the driver of the machine that will
run it (`--expect-cuda`, `--target-driver`). The build host itself usually has no GPU."""

from __future__ import annotations

from qatdoctor.errors import InputError
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.records import Fact, Facts, FactState, Finding, Severity, Status


def with_target_driver(facts: Facts, driver: str | None) -> Facts:
    """The driver checks use the target machine's driver instead of this host's."""
    if driver is None:
        return facts
    parsed = parse_version(driver, what="--target-driver version")
    return facts.with_values({"driver": Fact.known(parsed.raw, origin="target", detail="--target-driver")})


def expect_cuda(facts: Facts, expected: str | None) -> list[Finding]:
    """A failing finding when torch is a CPU build or a different CUDA build than expected."""
    if expected is None:
        return []
    want = parse_version(expected, what="--expect-cuda version")
    if len(want.version.release) < 2:
        raise InputError(f"--expect-cuda needs MAJOR.MINOR (e.g. 12.1), got {expected!r}")
    cuda = facts.get("cuda")
    torch = facts.value("torch") or "torch"
    if cuda.state is FactState.UNKNOWN:
        status, title = Status.UNKNOWN, f"could not tell torch's CUDA build ({cuda.reason})"
    elif cuda.state is FactState.ABSENT or cuda.value is None:
        status, title = Status.FAIL, f"{torch} is a CPU build, but --expect-cuda {expected} was given"
    elif parse_version(cuda.value).version.release[:2] != want.version.release[:2]:
        status, title = Status.FAIL, f"{torch} is a CUDA {cuda.value} build, expected CUDA {expected}"
    else:
        status, title = Status.PASS, f"{torch} is a CUDA {cuda.value} build, as expected"
    return [
        Finding(
            id="expect.cuda",
            title=title,
            severity=Severity.ERROR if status is not Status.PASS else Severity.INFO,
            status=status,
            origin="expectation",
            summary="Checked against --expect-cuda. A CPU wheel usually means pip resolved torch without the "
            "CUDA index, or a CPU-only constraint was in effect.",
        )
    ]
