"""Built-in checks of an environment against what its releases declare (`req.*` findings).

The numbers come from the matrix's [[aimet]], [[torch]] and [[cuda]] tables, each check's texts from its
[[requirement]] entry; only the comparisons live here. `IMPLEMENTED` says which ids (and texts) they use:
`matrix validate` fails when it and the matrix's [[requirement]] table differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from qatdoctor.knowledge.entries import AimetRelease, Matrix, TorchSeries
from qatdoctor.knowledge.load import MatrixError
from qatdoctor.knowledge.versions import ParsedVersion, in_range, try_parse_version
from qatdoctor.knowledge.vocab import GPU, LIBRARY_PREFIX
from qatdoctor.records import Facts, FactState, Finding, Fix, Severity, Source, Status

_CP_WHEEL = re.compile(r"^cp3(\d+)-")
_SPEC = frozenset({"declared"})

# check id -> the [[requirement]] texts its implementation formats
IMPLEMENTED: Mapping[str, frozenset[str]] = {
    "req.python": _SPEC,
    "req.python-wheel": frozenset({"torch_title", "torch_summary", "torch_evidence", "aimet_title", "aimet_evidence"}),
    "coverage.python": frozenset({"title", "summary", "fix"}),
    "req.torch": _SPEC,
    "req.torchvision": _SPEC,
    "req.numpy": _SPEC,
    "req.glibc": frozenset({"unknown", "title", "evidence", "summary"}),
    "req.cuda-major": frozenset({"unknown", "title", "evidence"}),
    "req.system-lib": frozenset({"unknown", "title", "summary", "fix", "command", "evidence"}),
    "req.v1": frozenset({"declared", "cuda_title", "cuda_evidence"}),
    "req.v1-removed": frozenset({"title", "evidence", "summary"}),
    "req.torchvision-pair": frozenset({"title", "summary", "evidence"}),
    "req.driver": frozenset({"not_applicable", "unknown", "title", "summary", "fix", "evidence"}),
    "req.gpu-arch": frozenset({"not_applicable", "title", "summary", "evidence"}),
}


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


def text(matrix: Matrix, check_id: str, key: str, **fields: Any) -> str:
    """The check's text `key` from its [[requirement]] entry, formatted with `fields`."""
    assert key in IMPLEMENTED[check_id], (check_id, key)
    requirement = matrix.requirement(check_id)
    template = requirement.texts.get(key) if requirement is not None else None
    if template is None:
        raise MatrixError(matrix.path, f"[[requirement]] {check_id!r} has no text {key!r}")
    return template.format(**fields)


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
        about=(fact,),
    )


def _spec_check(ctx: Context, check_id: str, fact: str, spec: SpecifierSet | None) -> Iterator[Finding]:
    """`fact` must lie in `spec`, as declared by the installed aimet-torch release."""
    if ctx.aimet is None or spec is None or not str(spec):
        return
    declared = text(ctx.matrix, check_id, "declared")
    state = ctx.facts.get(fact).state
    if state is FactState.UNKNOWN:
        yield _unknown(check_id, f"{fact} against aimet-torch {ctx.aimet.version}", fact, ctx.facts)
        return
    version = _version(ctx.facts, fact)
    if state is FactState.ABSENT or version is None:
        if state is FactState.ABSENT and fact in ("torch", "torchvision", "numpy"):
            installed = f"aimet-torch {ctx.aimet.version} {declared} {spec}"
            yield _fail(ctx, check_id, fact, f"{fact} is not installed", installed)
        return
    if not in_range(version, spec):
        yield _fail(
            ctx,
            check_id,
            fact,
            f"{fact} {version} does not satisfy aimet-torch {ctx.aimet.version}'s {declared} {spec}",
            f"{fact} {version} not in {spec}",
        )


def _fail(
    ctx: Context, check_id: str, fact: str, title: str, evidence: str, summary: str | None = None
) -> Finding:
    assert ctx.aimet is not None
    return Finding(
        id=check_id,
        title=title,
        severity=Severity.ERROR,
        origin="requirements",
        summary=summary or f"{title}; the versions qatdoctor recommends below satisfy it.",
        sources=ctx.aimet.sources,
        evidence=(evidence,),
        about=(fact,),
    )


def _python(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.python", "python", ctx.aimet.requires_python)


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
        check = "coverage.python"
        yield Finding(
            id=check,
            title=text(ctx.matrix, check, "title", python=python, newest=newest),
            severity=Severity.WARNING,
            status=Status.UNKNOWN,
            origin="coverage",
            summary=text(ctx.matrix, check, "summary"),
            fixes=(Fix("config", text(ctx.matrix, check, "fix")),),
            about=("python",),
        )
    torch = ctx.torch
    wheel = "req.python-wheel"
    if torch is not None and torch.python and minor not in {m.rstrip("t") for m in torch.python}:
        fields = {"series": torch.series, "minor": minor, "wheels": ", ".join(torch.python)}
        yield Finding(
            id=wheel,
            title=text(ctx.matrix, wheel, "torch_title", **fields),
            severity=Severity.ERROR,
            origin="requirements",
            summary=text(ctx.matrix, wheel, "torch_summary", **fields),
            sources=torch.sources,
            evidence=(text(ctx.matrix, wheel, "torch_evidence", **fields),),
            about=("python",),
        )
    aimet = ctx.aimet
    minors = wheel_pythons(aimet) if aimet is not None else None
    if aimet is not None and minors is not None and minor not in minors and in_range(python, aimet.requires_python):
        listed = ", ".join(sorted(minors))
        found = {"aimet": aimet.version, "minor": minor, "minors": listed, "wheel": aimet.wheel}
        yield _fail(
            ctx,
            wheel,
            "python",
            text(ctx.matrix, wheel, "aimet_title", **found),
            text(ctx.matrix, wheel, "aimet_evidence", **found),
        )


def _torch(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.torch", "torch", ctx.aimet.torch)


def _torchvision(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.torchvision", "torchvision", ctx.aimet.torchvision)


def _numpy(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is not None:
        yield from _spec_check(ctx, "req.numpy", "numpy", ctx.aimet.numpy)


def _glibc(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is None or ctx.aimet.glibc_min is None:
        return
    check, glibc = "req.glibc", _version(ctx.facts, "glibc")
    fields = {"aimet": ctx.aimet.version, "glibc": glibc, "glibc_min": ctx.aimet.glibc_min,
              "wheel": ctx.aimet.wheel or "wheel"}  # fmt: skip
    if glibc is None:
        yield _unknown(check, text(ctx.matrix, check, "unknown", **fields), "glibc", ctx.facts)
    elif glibc.comparable < ctx.aimet.glibc_min.comparable:
        yield _fail(
            ctx,
            check,
            "glibc",
            text(ctx.matrix, check, "title", **fields),
            text(ctx.matrix, check, "evidence", **fields),
            summary=text(ctx.matrix, check, "summary", **fields),
        )


def _cuda_major(ctx: Context) -> Iterator[Finding]:
    """1.x wheels link one CUDA major's cuBLAS; a torch build of another major does not provide it."""
    aimet = ctx.aimet
    if aimet is None or aimet.cuda_major is None or "v2" in aimet.apis:
        return
    check, cuda = "req.cuda-major", ctx.facts.get("cuda")
    if cuda.state is FactState.UNKNOWN:
        yield _unknown(check, text(ctx.matrix, check, "unknown"), "cuda", ctx.facts)
        return
    major = cuda_major(cuda.value) if cuda.is_known else None
    if major is not None and major != aimet.cuda_major:
        fields = {"cuda": cuda.value, "major": major, "aimet": aimet.version, "cuda_major": aimet.cuda_major}
        title, evidence = text(ctx.matrix, check, "title", **fields), text(ctx.matrix, check, "evidence", **fields)
        yield _fail(ctx, check, "cuda", title, evidence)


def _system_libs(ctx: Context) -> Iterator[Finding]:
    if ctx.aimet is None:
        return
    check = "req.system-lib"
    for lib in ctx.aimet.system_libs:
        name = f"{LIBRARY_PREFIX}{lib}"
        fact = ctx.facts.get(name)
        known = ctx.matrix.system_lib(lib)
        fields = {"lib": lib, "aimet": ctx.aimet.version, "package": known.apt if known else lib}
        if fact.state is FactState.UNKNOWN:
            yield _unknown(check, text(ctx.matrix, check, "unknown", **fields), name, ctx.facts)
        elif fact.state is FactState.ABSENT:
            command = text(ctx.matrix, check, "command", **fields)
            yield Finding(
                id=check,
                title=text(ctx.matrix, check, "title", **fields),
                severity=Severity.ERROR,
                origin="requirements",
                summary=text(ctx.matrix, check, "summary", **fields),
                fixes=(Fix("system", text(ctx.matrix, check, "fix", **fields), (command,)),),
                sources=ctx.aimet.sources,
                evidence=(text(ctx.matrix, check, "evidence", **fields),),
                about=(name,),
            )


def _v1(ctx: Context) -> Iterator[Finding]:
    aimet = ctx.aimet
    if aimet is None or ctx.facts.value("aimet-api") != "v1" or "v2" not in aimet.apis:
        return
    if "v1" not in aimet.apis:
        removed = "req.v1-removed"
        yield _fail(
            ctx,
            removed,
            "aimet-api",
            text(ctx.matrix, removed, "title", aimet=aimet.version),
            text(ctx.matrix, removed, "evidence", aimet=aimet.version),
            summary=text(ctx.matrix, removed, "summary", aimet=aimet.version),
        )
        return
    v1 = aimet.v1
    if v1 is None:
        return
    for fact, spec in (("torch", v1.torch), ("python", v1.python)):
        yield from _spec_check(ctx, "req.v1", fact, spec)
    cuda = ctx.facts.get("cuda")
    major = cuda_major(cuda.value) if cuda.is_known else None
    if v1.cuda_major is not None and major is not None and major != v1.cuda_major:
        fields = {"cuda": cuda.value, "cuda_major": v1.cuda_major}
        yield _fail(
            ctx,
            "req.v1",
            "cuda",
            text(ctx.matrix, "req.v1", "cuda_title", **fields),
            text(ctx.matrix, "req.v1", "cuda_evidence", **fields),
        )


def _torchvision_pair(ctx: Context) -> Iterator[Finding]:
    torch, vision = _version(ctx.facts, "torch"), _version(ctx.facts, "torchvision")
    if ctx.torch is None or torch is None or vision is None:
        return
    expected = ctx.torch.torchvision.get(str(torch.comparable))
    if expected is not None and Version(expected) != vision.comparable:
        check, fields = "req.torchvision-pair", {"vision": vision, "torch": torch, "expected": expected}
        yield Finding(
            id=check,
            title=text(ctx.matrix, check, "title", **fields),
            severity=Severity.ERROR,
            origin="requirements",
            summary=text(ctx.matrix, check, "summary", **fields),
            sources=ctx.torch.sources,
            evidence=(text(ctx.matrix, check, "evidence", **fields),),
            about=("torchvision", "torch"),
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
    check = "req.driver"
    fields = {"major": major, "driver_min": needed.driver_min, "driver": driver.value, "cuda": cuda.value}
    if driver.state is FactState.ABSENT:
        yield _not_applicable(check, text(ctx.matrix, check, "not_applicable", **fields), "driver")
        return
    if driver.state is FactState.UNKNOWN:
        yield _unknown(check, text(ctx.matrix, check, "unknown", **fields), "driver", ctx.facts, needed.sources)
        return
    version = _version(ctx.facts, "driver")
    if version is not None and version.comparable < needed.driver_min.comparable:
        yield Finding(
            id=check,
            title=text(ctx.matrix, check, "title", **fields),
            severity=Severity.ERROR,
            origin="requirements",
            summary=text(ctx.matrix, check, "summary", **fields),
            fixes=(Fix("system", text(ctx.matrix, check, "fix", **fields)),),
            sources=needed.sources,
            evidence=(text(ctx.matrix, check, "evidence", **fields),),
            about=("driver",),
        )


def _gpu_arch(ctx: Context) -> Iterator[Finding]:
    gpus = ctx.facts.gpus
    torch = _version(ctx.facts, "torch")
    if ctx.torch is None or torch is None:
        return
    check = "req.gpu-arch"
    if gpus == ():
        yield _not_applicable(check, text(ctx.matrix, check, "not_applicable", torch=torch), GPU)
        return
    if not gpus:
        return
    variant = torch.local if torch.local and torch.local.startswith("cu") else ctx.torch.pypi_cuda
    arch = ctx.torch.variant_sm.get(variant or "", ()) or (ctx.torch.sm if variant == ctx.torch.pypi_cuda else ())
    if not arch:
        return
    for gpu in gpus:
        if gpu.compute_capability and not runs_on(gpu.compute_capability, arch):
            fields = {"gpu": gpu.name, "capability": gpu.compute_capability, "torch": torch,
                      "arch": ", ".join(arch), "arch_list": " ".join(arch)}  # fmt: skip
            yield Finding(
                id=check,
                title=text(ctx.matrix, check, "title", **fields),
                severity=Severity.ERROR,
                origin="requirements",
                summary=text(ctx.matrix, check, "summary", **fields),
                sources=ctx.torch.sources,
                evidence=(text(ctx.matrix, check, "evidence", **fields),),
                about=(GPU,),
            )


def _not_applicable(check_id: str, what: str, fact: str) -> Finding:
    """GPU checks on a host without a GPU (a container build): neither pass nor fail."""
    return Finding(
        id=check_id,
        title=f"Not applicable here: {what}",
        severity=Severity.INFO,
        status=Status.NOT_APPLICABLE,
        origin="requirements",
        summary="This host has no NVIDIA driver/GPU. Give the machine that will run the environment with "
        "--target-driver VERSION (and --assume gpu=CC) to check it.",
        about=(fact,),
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


_CHECKS: tuple[Callable[[Context], Iterator[Finding]], ...] = (
    _python, _python_wheels, _torch, _torchvision, _numpy, _glibc, _cuda_major, _system_libs, _v1,
    _torchvision_pair, _driver, _gpu_arch,
)  # fmt: skip
