"""Built-in checks of an environment against what its releases declare (`req.*` findings).

The numbers come from the matrix's [[aimet]], [[torch]] and [[cuda]] tables; only the comparisons live here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from qatdoctor.knowledge.model import AimetRelease, Matrix, TorchSeries
from qatdoctor.knowledge.versions import ParsedVersion, in_range, try_parse_version
from qatdoctor.model import Facts, FactState, Finding, Fix, Severity, Source, Status

_CP_WHEEL = re.compile(r"^cp3(\d+)-")
LIB_PACKAGES = {"liblapacke.so.3": "liblapacke", "libcublas.so.12": "libcublas12"}


@dataclass(frozen=True)
class Context:
    """What the checks need: the facts and the matrix entries they resolve to."""

    facts: Facts
    matrix: Matrix
    aimet: AimetRelease | None
    torch: TorchSeries | None


def check_requirements(ctx: Context) -> list[Finding]:
    """Every `req.*` finding: failures, and unknowns where a needed fact could not be read."""
    return [f for check in _CHECKS for f in check(ctx)]


def _version(facts: Facts, name: str) -> ParsedVersion | None:
    value = facts.value(name)
    return try_parse_version(value) if value else None


def _unknown(check_id: str, what: str, fact: str, facts: Facts, sources: tuple[Source, ...] = ()) -> Finding:
    return Finding(
        id=check_id,
        title=f"Could not check {what}",
        severity=Severity.ERROR,
        status=Status.UNKNOWN,
        origin="requirements",
        summary=f"needs {fact}: {facts.get(fact).describe()}",
        sources=sources,
    )


def _spec_check(ctx: Context, check_id: str, fact: str, spec: SpecifierSet | None, declared: str) -> Iterator[Finding]:
    """`fact` must lie in `spec`, as declared by the installed aimet-torch release."""
    if ctx.aimet is None or spec is None or not str(spec):
        return
    state = ctx.facts.get(fact).state
    if state is FactState.UNKNOWN:
        yield _unknown(check_id, f"{fact} against aimet-torch {ctx.aimet.version}", fact, ctx.facts)
        return
    version = _version(ctx.facts, fact)
    if state is FactState.ABSENT or version is None:
        if state is FactState.ABSENT and fact in ("torch", "torchvision", "numpy"):
            yield _fail(ctx, check_id, f"{fact} is not installed", f"aimet-torch {ctx.aimet.version} {declared} {spec}")
        return
    if not in_range(version, spec):
        yield _fail(
            ctx,
            check_id,
            f"{fact} {version} does not satisfy aimet-torch {ctx.aimet.version}'s {declared} {spec}",
            f"{fact} {version} not in {spec}",
        )


def _fail(ctx: Context, check_id: str, title: str, evidence: str, summary: str | None = None) -> Finding:
    assert ctx.aimet is not None
    return Finding(
        id=check_id,
        title=title,
        severity=Severity.ERROR,
        origin="requirements",
        summary=summary or f"{title}; the versions qatdoctor recommends below satisfy it.",
        sources=ctx.aimet.sources,
        evidence=(evidence,),
    )


def _python(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.python", "python", ctx.aimet.requires_python, "Requires-Python")


def wheel_pythons(release: AimetRelease) -> set[str] | None:
    """CPython minors with a wheel when a 1.x release ships only cpXY wheels (None: not restricted).

    2.x releases always have a py3X-none-any file beside any cp310 wheel, so only 1.x is restricted.
    """
    match = _CP_WHEEL.match(release.wheel or "")
    if match is None or release.apis != ("v1",):
        return None
    return {f"3.{match[1]}", *release.python_wheels}


def known_pythons(matrix: Matrix) -> set[str]:
    """Every CPython minor the matrix has wheels for (torch series, aimet-torch cpXY wheels)."""
    minors = {m.rstrip("t") for series in matrix.torch for m in series.python}
    for release in matrix.aimet:
        minors |= wheel_pythons(release) or set()
    return minors


def _python_wheels(ctx: Context) -> Iterator[Finding]:
    """A Python minor without a torch (or 1.x aimet-torch) wheel cannot hold this set; one newer than every minor
    the matrix knows is outside coverage, never good."""
    python = _version(ctx.facts, "python")
    if python is None:
        return
    minor = python.series
    known = known_pythons(ctx.matrix)
    newest = max(known, key=Version, default=None)
    if newest is not None and Version(minor) > Version(newest):
        yield Finding(
            id="coverage.python",
            title=f"Python {python} is newer than any Python the matrix knows (newest: {newest})",
            severity=Severity.WARNING,
            status=Status.UNKNOWN,
            origin="coverage",
            summary="Outside known coverage: not reported as good. Point --matrix at a newer matrix.",
            fixes=(Fix("config", "use a newer matrix: qatdoctor --matrix PATH (or $QATDOCTOR_MATRIX)"),),
        )
    torch = ctx.torch
    if torch is not None and torch.python and minor not in {m.rstrip("t") for m in torch.python}:
        yield Finding(
            id="req.python-wheel",
            title=f"torch {torch.series} has no wheel for Python {minor}",
            severity=Severity.ERROR,
            origin="requirements",
            summary=f"pip cannot install torch {torch.series} on Python {minor}: its wheels are for Python "
            f"{', '.join(torch.python)} only. Use one of those Pythons, or a torch series built for {minor}.",
            sources=torch.sources,
            evidence=(f"Python {minor} not in torch {torch.series}'s wheels ({', '.join(torch.python)})",),
        )
    aimet = ctx.aimet
    minors = wheel_pythons(aimet) if aimet is not None else None
    if aimet is not None and minors is not None and minor not in minors and in_range(python, aimet.requires_python):
        yield _fail(
            ctx,
            "req.python-wheel",
            f"aimet-torch {aimet.version} has no wheel for Python {minor} (only {', '.join(sorted(minors))})",
            f"Python {minor} not in {', '.join(sorted(minors))} ({aimet.wheel})",
        )


def _torch(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.torch", "torch", ctx.aimet.torch, "requirement torch")


def _torchvision(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.torchvision", "torchvision", ctx.aimet.torchvision, "requirement torchvision")


def _numpy(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.numpy", "numpy", ctx.aimet.numpy, "requirement numpy")


def _glibc(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is None or ctx.aimet.glibc_min is None:
        return
    glibc = _version(ctx.facts, "glibc")
    if glibc is None:
        yield _unknown("req.glibc", f"glibc against aimet-torch {ctx.aimet.version}", "glibc", ctx.facts)
    elif glibc.comparable < ctx.aimet.glibc_min.comparable:
        yield _fail(
            ctx,
            "req.glibc",
            f"glibc {glibc} is older than the {ctx.aimet.glibc_min} aimet-torch {ctx.aimet.version}'s wheel needs",
            f"glibc {glibc} < {ctx.aimet.glibc_min} ({ctx.aimet.wheel or 'wheel'})",
            summary="pip will not select this wheel, or its compiled parts fail to load "
            "(`GLIBC_2.xx not found`); use a newer OS image or another aimet-torch release.",
        )


def _cuda_major(ctx: Context) -> Iterator[Finding]:
    """1.x wheels link one CUDA major's cuBLAS; a torch build of another major does not provide it."""
    aimet = ctx.aimet
    if aimet is None or aimet.cuda_major is None or "v2" in aimet.apis:
        return
    cuda = ctx.facts.get("cuda")
    if cuda.state is FactState.UNKNOWN:
        yield _unknown("req.cuda-major", "torch's CUDA build against aimet-torch's binaries", "cuda", ctx.facts)
        return
    major = cuda_major(cuda.value) if cuda.is_known else None
    if major is not None and major != aimet.cuda_major:
        yield _fail(
            ctx,
            "req.cuda-major",
            f"torch is a CUDA {cuda.value} build but aimet-torch {aimet.version} was built for CUDA {aimet.cuda_major}",
            f"cuda {cuda.value} major {major} != {aimet.cuda_major}",
        )


def _system_libs(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is None:
        return
    for lib in ctx.aimet.system_libs:
        fact = ctx.facts.get(f"lib:{lib}")
        if fact.state is FactState.UNKNOWN:
            yield _unknown("req.system-lib", f"for {lib}", f"lib:{lib}", ctx.facts)
        elif fact.state is FactState.ABSENT:
            package = LIB_PACKAGES.get(lib, lib)
            yield Finding(
                id="req.system-lib",
                title=f"{lib} is missing (aimet-torch {ctx.aimet.version} needs it)",
                severity=Severity.ERROR,
                origin="requirements",
                summary=f"The compiled parts of aimet-torch {ctx.aimet.version} load {lib} from the system.",
                fixes=(
                    Fix("system", f"install the {package} system package", (f"sudo apt-get install -y {package}",)),
                ),
                sources=ctx.aimet.sources,
                evidence=(f"lib:{lib} absent",),
            )


def _v1(ctx: Context) -> Iterator[Finding]:
    aimet = ctx.aimet
    if aimet is None or ctx.facts.value("aimet-api") != "v1" or "v2" not in aimet.apis:
        return
    if "v1" not in aimet.apis:
        yield _fail(
            ctx,
            "req.v1-removed",
            f"AIMET_DEFAULT_API=v1 but aimet-torch {aimet.version} has no legacy v1 API",
            "v1 not in the release's APIs",
            summary="The legacy aimet_torch.v1 API was removed; migrate to the v2 API or pin an older release.",
        )
        return
    v1 = aimet.v1
    if v1 is None:
        return
    for fact, spec in (("torch", v1.torch), ("python", v1.python)):
        yield from _spec_check(ctx, "req.v1", fact, spec, "legacy v1 API requirement")
    cuda = ctx.facts.get("cuda")
    major = cuda_major(cuda.value) if cuda.is_known else None
    if v1.cuda_major is not None and major is not None and major != v1.cuda_major:
        yield _fail(
            ctx,
            "req.v1",
            f"aimet_torch.v1 needs a CUDA {v1.cuda_major} torch build, this is CUDA {cuda.value}",
            f"cuda {cuda.value}",
        )


def _torchvision_pair(ctx: Context) -> Iterator[Finding]:
    torch, vision = _version(ctx.facts, "torch"), _version(ctx.facts, "torchvision")
    if ctx.torch is None or torch is None or vision is None:
        return
    expected = ctx.torch.torchvision.get(str(torch.comparable))
    if expected is not None and Version(expected) != vision.comparable:
        yield Finding(
            id="req.torchvision-pair",
            title=f"torchvision {vision} is not the release built for torch {torch} (that is {expected})",
            severity=Severity.ERROR,
            origin="requirements",
            summary="torchvision's compiled ops are built against one torch release; a mismatched pair fails at "
            "import (`operator torchvision::nms does not exist`) or behaves unpredictably.",
            sources=ctx.torch.sources,
            evidence=(f"torch {torch} pairs with torchvision {expected}",),
        )


def _driver(ctx: Context) -> Iterator[Finding]:
    cuda = ctx.facts.get("cuda")
    major = cuda_major(cuda.value) if cuda.is_known else None
    if major is None:
        return
    needed = ctx.matrix.driver_min(major)
    driver = ctx.facts.get("driver")
    if needed is None:
        return
    if driver.state is FactState.ABSENT:
        yield _not_applicable("req.driver", f"NVIDIA driver for CUDA {major} (needs >= {needed.driver_min})")
        return
    if driver.state is FactState.UNKNOWN:
        yield _unknown("req.driver", f"the NVIDIA driver against CUDA {major}", "driver", ctx.facts, needed.sources)
        return
    version = _version(ctx.facts, "driver")
    if version is not None and version.comparable < needed.driver_min.comparable:
        yield Finding(
            id="req.driver",
            title=f"NVIDIA driver {driver.value} is too old for torch's CUDA {cuda.value} build "
            f"(needs >= {needed.driver_min})",
            severity=Severity.ERROR,
            origin="requirements",
            summary=f"CUDA {major}.x wheels need driver >= {needed.driver_min} (minor-version compatibility); "
            "torch.cuda.is_available() will be False or kernels fail to launch.",
            fixes=(
                Fix(
                    "system",
                    f"upgrade the NVIDIA driver to >= {needed.driver_min}, or install a torch build "
                    "for an older CUDA major (see recommendations)",
                ),
            ),
            sources=needed.sources,
            evidence=(f"driver {driver.value} < {needed.driver_min}",),
        )


def _gpu_arch(ctx: Context) -> Iterator[Finding]:
    gpus = ctx.facts.gpus
    torch = _version(ctx.facts, "torch")
    if ctx.torch is None or torch is None:
        return
    if gpus == ():
        yield _not_applicable("req.gpu-arch", f"GPU architectures of torch {torch}")
        return
    if not gpus:
        return
    variant = torch.local if torch.local and torch.local.startswith("cu") else ctx.torch.pypi_cuda
    arch = ctx.torch.variant_sm.get(variant or "", ()) or (ctx.torch.sm if variant == ctx.torch.pypi_cuda else ())
    if not arch:
        return
    for gpu in gpus:
        if gpu.compute_capability and not runs_on(gpu.compute_capability, arch):
            yield Finding(
                id="req.gpu-arch",
                title=f"{gpu.name} (compute capability {gpu.compute_capability}) has no kernels in torch {torch}",
                severity=Severity.ERROR,
                origin="requirements",
                summary=f"The torch {torch} build ships SASS for {', '.join(arch)} only; expect "
                "'no kernel image is available for execution on the device'.",
                sources=ctx.torch.sources,
                evidence=(f"cc {gpu.compute_capability} not covered by {' '.join(arch)}",),
            )


def _not_applicable(check_id: str, what: str) -> Finding:
    """GPU checks on a host without a GPU (a container build): neither pass nor fail."""
    return Finding(
        id=check_id,
        title=f"Not applicable here: {what}",
        severity=Severity.INFO,
        status=Status.NOT_APPLICABLE,
        origin="requirements",
        summary="This host has no NVIDIA driver/GPU. Give the machine that will run the environment with "
        "--target-driver VERSION (and --assume gpu=CC) to check it.",
    )


def runs_on(capability: str, arch: tuple[str, ...]) -> bool:
    """SASS for X.Z runs on a GPU of capability X.Y when Z <= Y (e.g. sm_86 on Ada 8.9)."""
    major, _, minor = capability.partition(".")
    for built in arch:
        b_major, _, b_minor = built.partition(".")
        if b_major == major and int(b_minor or 0) <= int(minor or 0):
            return True
    return False


def cuda_major(cuda: str | None) -> int | None:
    """`12.1` → 12."""
    if not cuda:
        return None
    head = cuda.split(".")[0]
    return int(head) if head.isdigit() else None


_CHECKS = (
    _python, _python_wheels, _torch, _torchvision, _numpy, _glibc, _cuda_major, _system_libs, _v1,
    _torchvision_pair, _driver, _gpu_arch,
)  # fmt: skip
