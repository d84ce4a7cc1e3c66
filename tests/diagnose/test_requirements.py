"""The built-in `req.*` checks, one scenario per row: a fully described environment that passes every check, with
one thing changed, must produce exactly the findings listed (id, status, title and evidence), no more."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor.core import load_matrix
from qatdoctor.diagnose.requirements import (
    Context,
    check_requirements,
    cuda_major,
    known_pythons,
    runs_on,
    wheel_pythons,
)
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.knowledge.vocab import GPU
from qatdoctor.records import Fact, Facts, Finding, Gpu, Severity, Status

MATRIX = load_matrix(None)

# aimet-torch 1.32.2 with everything it declares: no check fails and none is undecided.
GOOD_1X: dict[str, str | Fact] = {
    "aimet-torch": "1.32.2",
    "torch": "2.2.2",
    "torchvision": "0.17.2",
    "numpy": "1.23.5",
    "glibc": "2.35",
    "python": "3.10.13",
    "cuda": "12.1",
    "driver": "550.54",
    "lib:liblapacke.so.3": "present",
}
# aimet-torch 2.42.0 on the torch its wheel was built with.
GOOD_2X: dict[str, str | Fact] = {
    "aimet-torch": "2.42.0",
    "torch": "2.14.1",
    "torchvision": "0.29.1",
    "numpy": "2.2.6",
    "glibc": "2.35",
    "python": "3.11.7",
    "cuda": "13.0",
    "driver": "580.95",
}
UNKNOWN = Fact.unknown("could not read it")
ABSENT = Fact.absent("not installed")


def make_facts(values: Mapping[str, str | Fact | None], gpus: tuple[Gpu, ...] | None = None) -> Facts:
    facts = Facts({k: v if isinstance(v, Fact) else Fact.known(v) for k, v in values.items() if v is not None})
    return facts.with_gpus(gpus) if gpus is not None else facts


def context(facts: Facts, matrix: Matrix = MATRIX) -> Context:
    """The matrix entries the facts resolve to, as evaluate() finds them."""
    aimet_raw, torch_raw, python = facts.value("aimet-torch"), facts.value("torch"), facts.value("python")
    aimet = matrix.aimet_release(parse_version(aimet_raw)) if aimet_raw else None
    aimet = aimet.for_python(parse_version(python).series) if aimet and python else aimet
    series = matrix.torch_series(parse_version(torch_raw).series) if torch_raw else None
    return Context(facts, matrix, aimet, series)


def shown(findings: list[Finding]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(f.id, f.status.value, f.title, f.evidence) for f in findings]


def check(base: Mapping[str, str | Fact], gpus: tuple[Gpu, ...] | None = None, **changes: str | Fact | None) -> list[Finding]:
    values = {**base, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return check_requirements(context(make_facts(values, gpus)))


@pytest.mark.parametrize("base", [GOOD_1X, GOOD_2X], ids=["1.32.2", "2.42.0"])
def test_a_documented_set_passes_every_check(base: Mapping[str, str | Fact]) -> None:
    assert check(base) == []


FAIL, UNKNOWN_S, NA = "fail", "unknown", "not-applicable"

ROWS = [
    # --- torch / torchvision / numpy against the release's declared ranges
    pytest.param(GOOD_1X, {"torch": "2.1.2", "torchvision": "0.16.2"}, [
        ("req.torch", FAIL, "torch 2.1.2 does not satisfy aimet-torch 1.32.2's requirement torch ==2.2.2",
         ("torch 2.1.2 not in ==2.2.2",)),
        ("req.torchvision", FAIL,
         "torchvision 0.16.2 does not satisfy aimet-torch 1.32.2's requirement torchvision ==0.17.2",
         ("torchvision 0.16.2 not in ==0.17.2",)),
    ], id="torch-outside-the-release-pin"),
    pytest.param(GOOD_1X, {"numpy": "1.24.0"}, [
        ("req.numpy", FAIL, "numpy 1.24.0 does not satisfy aimet-torch 1.32.2's requirement numpy <1.24,>=1.20.5",
         ("numpy 1.24.0 not in <1.24,>=1.20.5",)),
    ], id="numpy-at-the-excluded-bound"),
    pytest.param(GOOD_1X, {"numpy": "1.20.5"}, [], id="numpy-at-the-included-bound"),
    pytest.param(GOOD_1X, {"torch": ABSENT, "torchvision": ABSENT, "numpy": ABSENT}, [
        ("req.torch", FAIL, "torch is not installed", ("aimet-torch 1.32.2 requirement torch ==2.2.2",)),
        ("req.torchvision", FAIL, "torchvision is not installed",
         ("aimet-torch 1.32.2 requirement torchvision ==0.17.2",)),
        ("req.numpy", FAIL, "numpy is not installed", ("aimet-torch 1.32.2 requirement numpy <1.24,>=1.20.5",)),
    ], id="required-packages-absent"),
    pytest.param(GOOD_1X, {"torch": UNKNOWN, "numpy": UNKNOWN}, [
        ("req.torch", UNKNOWN_S, "Could not check torch against aimet-torch 1.32.2", ()),
        ("req.numpy", UNKNOWN_S, "Could not check numpy against aimet-torch 1.32.2", ()),
    ], id="unknown-packages-are-undecided"),
    pytest.param(GOOD_1X, {"numpy": "not-a-version"}, [], id="unparsable-numpy-is-not-a-failure"),
    # --- Python
    pytest.param(GOOD_1X, {"python": "3.11.7"}, [
        ("req.python", FAIL,
         "python 3.11.7 does not satisfy aimet-torch 1.32.2's Requires-Python !=3.9.*,<3.11,>=3.8",
         ("python 3.11.7 not in !=3.9.*,<3.11,>=3.8",)),
    ], id="requires-python"),
    pytest.param(GOOD_1X, {"python": ABSENT}, [], id="absent-python-is-not-a-package-to-install"),
    pytest.param(GOOD_1X, {"python": UNKNOWN}, [
        ("req.python", UNKNOWN_S, "Could not check python against aimet-torch 1.32.2", ()),
    ], id="unknown-python"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.30.1", "torch": "1.13.1", "torchvision": "0.14.1", "cuda": "11.7"}, {}, [
        ("req.python-wheel", FAIL, "aimet-torch 1.30.1 has no wheel for Python 3.10 (only 3.8)",
         ("Python 3.10 not in 3.8 (cp38-cp38-manylinux_2_29_x86_64)",)),
    ], id="1x-cp38-wheel-on-python-3.10"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.31.2", "torch": "1.13.1", "torchvision": "0.14.1", "cuda": "11.7",
                  "python": "3.8.10", "driver": "470.1"}, {}, [],
                 id="1x-extra-cp38-wheel-counts"),
    pytest.param(GOOD_2X, {"python": "3.13.1"}, [], id="torch-2.14-has-3.13"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.31.2", "torch": "1.13.1", "torchvision": "0.14.1", "cuda": "11.7",
                  "driver": "470.1"}, {"python": "3.9.18"}, [
        ("req.python", FAIL, "python 3.9.18 does not satisfy aimet-torch 1.31.2's Requires-Python !=3.9.*,<3.11,>=3.8",
         ("python 3.9.18 not in !=3.9.*,<3.11,>=3.8",)),
    ], id="no-wheel-finding-where-requires-python-already-excludes"),
    pytest.param({**GOOD_1X, "python": "3.13.1"}, {}, [
        ("req.python", FAIL,
         "python 3.13.1 does not satisfy aimet-torch 1.32.2's Requires-Python !=3.9.*,<3.11,>=3.8",
         ("python 3.13.1 not in !=3.9.*,<3.11,>=3.8",)),
        ("req.python-wheel", FAIL, "torch 2.2 has no wheel for Python 3.13", (
            "Python 3.13 not in torch 2.2's wheels (3.8, 3.9, 3.10, 3.11, 3.12)",)),
    ], id="torch-without-a-wheel-for-python"),
    pytest.param(GOOD_2X, {"python": "3.16.0"}, [
        ("coverage.python", UNKNOWN_S, "Python 3.16.0 is newer than any Python the matrix knows (newest: 3.15)", ()),
        ("req.python-wheel", FAIL, "torch 2.14 has no wheel for Python 3.16", (
            "Python 3.16 not in torch 2.14's wheels (3.10, 3.11, 3.12, 3.13, 3.14, 3.14t)",)),
    ], id="python-newer-than-the-matrix"),
    pytest.param({**GOOD_2X, "torch": "2.15.0", "torchvision": "0.29.2", "cuda": "13.2"}, {"python": "3.15.0"}, [],
                 id="python-equal-to-the-newest-known"),
    # --- glibc
    pytest.param(GOOD_1X, {"glibc": "2.33"}, [
        ("req.glibc", FAIL, "glibc 2.33 is older than the 2.34 aimet-torch 1.32.2's wheel needs",
         ("glibc 2.33 < 2.34 (cp310-cp310-manylinux_2_34_x86_64)",)),
    ], id="glibc-too-old"),
    pytest.param(GOOD_1X, {"glibc": "2.34"}, [], id="glibc-exactly-the-minimum"),
    pytest.param(GOOD_1X, {"glibc": UNKNOWN}, [
        ("req.glibc", UNKNOWN_S, "Could not check glibc against aimet-torch 1.32.2", ()),
    ], id="glibc-unknown"),
    pytest.param(GOOD_2X, {"glibc": "2.17"}, [], id="glibc-not-declared-by-2x"),
    # --- CUDA major of 1.x binaries
    pytest.param({**GOOD_1X, "aimet-torch": "1.31.1", "torch": "1.13.1", "torchvision": "0.14.1", "python": "3.8.10"},
                 {"cuda": "12.1"}, [
        ("req.cuda-major", FAIL, "torch is a CUDA 12.1 build but aimet-torch 1.31.1 was built for CUDA 11",
         ("cuda 12.1 major 12 != 11",)),
    ], id="cuda-major-mismatch"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.31.1", "torch": "1.13.1", "torchvision": "0.14.1", "python": "3.8.10"},
                 {"cuda": "11.7"}, [], id="cuda-major-match"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.31.1", "torch": "1.13.1", "torchvision": "0.14.1", "python": "3.8.10"},
                 {"cuda": ABSENT}, [], id="cpu-torch-has-no-cuda-major"),
    pytest.param(GOOD_1X, {"cuda": UNKNOWN}, [
        ("req.cuda-major", UNKNOWN_S, "Could not check torch's CUDA build against aimet-torch's binaries", ()),
    ], id="cuda-unknown"),
    pytest.param({**GOOD_1X, "aimet-torch": "1.30.1", "torch": "1.13.1", "torchvision": "0.14.1", "python": "3.8.10"},
                 {"cuda": UNKNOWN}, [], id="no-cuda-major-declared"),
    pytest.param({**GOOD_2X, "aimet-torch": "2.24.0", "torch": "2.10.0", "torchvision": "0.25.0", "numpy": "1.26.4",
                  "python": "3.10.13"}, {"cuda": "13.0"}, [], id="2x-does-not-check-the-cuda-major"),
    # --- system libraries
    pytest.param(GOOD_1X, {"lib:liblapacke.so.3": ABSENT}, [
        ("req.system-lib", FAIL, "liblapacke.so.3 is missing (aimet-torch 1.32.2 needs it)",
         ("lib:liblapacke.so.3 absent",)),
    ], id="system-lib-missing"),
    pytest.param(GOOD_1X, {"lib:liblapacke.so.3": UNKNOWN}, [
        ("req.system-lib", UNKNOWN_S, "Could not check for liblapacke.so.3", ()),
    ], id="system-lib-unknown"),
    # --- the legacy v1 API
    pytest.param({**GOOD_2X, "aimet-torch": "2.31.0", "python": "3.10.13"}, {"aimet-api": "v1"}, [
        ("req.v1-removed", FAIL, "AIMET_DEFAULT_API=v1 but aimet-torch 2.31.0 has no legacy v1 API",
         ("v1 not in the release's APIs",)),
    ], id="v1-removed"),
    pytest.param({**GOOD_2X, "aimet-torch": "2.31.0"}, {"aimet-api": "v2"}, [], id="v2-on-2.31"),
    pytest.param(GOOD_1X, {"aimet-api": "v1"}, [], id="v1-on-1x-is-its-only-api"),
    pytest.param({**GOOD_1X, "aimet-torch": "2.0.0", "numpy": "1.26.4"}, {"aimet-api": "v1"}, [],
                 id="v1-on-2.0.0-as-documented"),
    pytest.param({**GOOD_1X, "aimet-torch": "2.0.0", "numpy": "1.26.4"}, {"aimet-api": "v1", "cuda": "11.8"}, [
        ("req.v1", FAIL, "aimet_torch.v1 needs a CUDA 12 torch build, this is CUDA 11.8", ("cuda 11.8",)),
    ], id="v1-cuda-major"),
    pytest.param({**GOOD_1X, "aimet-torch": "2.0.0", "numpy": "1.26.4"}, {"aimet-api": "v1", "cuda": ABSENT}, [],
                 id="v1-on-a-cpu-build"),
    pytest.param({**GOOD_1X, "aimet-torch": "2.0.0", "numpy": "1.26.4", "torchvision": "0.19.1"},
                 {"aimet-api": "v1", "torch": "2.4.1", "python": "3.11.7"}, [
        ("req.v1", FAIL, "torch 2.4.1 does not satisfy aimet-torch 2.0.0's legacy v1 API requirement ==2.2.*",
         ("torch 2.4.1 not in ==2.2.*",)),
        ("req.v1", FAIL, "python 3.11.7 does not satisfy aimet-torch 2.0.0's legacy v1 API requirement ==3.10.*",
         ("python 3.11.7 not in ==3.10.*",)),
    ], id="v1-torch-and-python"),
    # --- torchvision built for the installed torch
    pytest.param(GOOD_2X, {"torchvision": "0.29.0"}, [
        ("req.torchvision-pair", FAIL,
         "torchvision 0.29.0 is not the release built for torch 2.14.1 (that is 0.29.1)",
         ("torch 2.14.1 pairs with torchvision 0.29.1",)),
    ], id="torchvision-pair"),
    pytest.param(GOOD_2X, {"torchvision": "0.29.1+cu130", "torch": "2.14.1+cu130"}, [], id="torchvision-pair-local-tags"),
    pytest.param(GOOD_2X, {"torchvision": None}, [], id="no-torchvision-no-pair"),
    pytest.param(GOOD_2X, {"torch": "2.14.7"}, [], id="a-patch-without-a-recorded-torchvision"),
    pytest.param(GOOD_2X, {"torch": "2.99.0", "torchvision": "0.1.0"}, [], id="unknown-series-no-pair"),
    # --- the NVIDIA driver for torch's CUDA build
    pytest.param(GOOD_2X, {"driver": "550.54"}, [
        ("req.driver", FAIL, "NVIDIA driver 550.54 is too old for torch's CUDA 13.0 build (needs >= 580.65.06)",
         ("driver 550.54 < 580.65.06",)),
    ], id="driver-too-old"),
    pytest.param(GOOD_2X, {"driver": "580.65.06"}, [], id="driver-exactly-the-minimum"),
    pytest.param(GOOD_2X, {"driver": ABSENT}, [
        ("req.driver", NA, "Not applicable here: NVIDIA driver for CUDA 13 (needs >= 580.65.06)", ()),
    ], id="driver-absent-is-not-applicable"),
    pytest.param(GOOD_2X, {"driver": UNKNOWN}, [
        ("req.driver", UNKNOWN_S, "Could not check the NVIDIA driver against CUDA 13", ()),
    ], id="driver-unknown"),
    pytest.param(GOOD_2X, {"driver": UNKNOWN, "cuda": "14.0"}, [], id="cuda-major-without-a-driver-floor"),
    pytest.param(GOOD_2X, {"driver": UNKNOWN, "cuda": ABSENT}, [], id="cpu-build-needs-no-driver"),
]  # fmt: skip


@pytest.mark.parametrize(("base", "changes", "expected"), ROWS)
def test_requirement_checks(
    base: Mapping[str, str | Fact], changes: dict[str, str | Fact | None], expected: list[tuple[str, ...]]
) -> None:
    assert shown(check({**base, **changes})) == expected


@pytest.mark.parametrize(("base", "changes", "expected"), ROWS)
def test_each_finding_is_about_the_facts_that_decide_it(
    base: Mapping[str, str | Fact], changes: dict[str, str | Fact | None], expected: list[tuple[str, ...]]
) -> None:
    for finding in check({**base, **changes}):
        assert finding.about, finding.id
        assert set(finding.about) <= {*base, *changes}, (finding.id, finding.about)
        assert not changes or set(finding.about) & set(changes), (finding.id, finding.about, changes)


GPU_ROWS = [
    pytest.param({}, (Gpu("Tesla K80", "3.7"),), [
        ("req.gpu-arch", FAIL, "Tesla K80 (compute capability 3.7) has no kernels in torch 2.14.1",
         ("cc 3.7 not covered by 7.5 8.0 8.6 9.0 10.0 12.0",)),
    ], id="pypi-build-without-kepler"),
    pytest.param({"torch": "2.14.1+cu126", "cuda": "12.6"}, (Gpu("Tesla K80", "3.7"), Gpu("GTX 980", "5.2")), [
        ("req.gpu-arch", FAIL, "Tesla K80 (compute capability 3.7) has no kernels in torch 2.14.1+cu126",
         ("cc 3.7 not covered by 5.0 6.0 7.0 7.5 8.0 8.6 9.0",)),
    ], id="cu126-build-runs-maxwell-not-kepler"),
    pytest.param({}, (Gpu("H100", "9.0"), Gpu("RTX 4090", "8.9")), [], id="newer-minor-runs-older-sass"),
    pytest.param({}, (Gpu("mystery", None),), [], id="unknown-capability-is-not-a-failure"),
    pytest.param({}, (), [
        ("req.gpu-arch", NA, "Not applicable here: GPU architectures of torch 2.14.1", ()),
    ], id="no-gpu-is-not-applicable"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "gpus", "expected"), GPU_ROWS)
def test_gpu_architectures(changes: dict[str, str], gpus: tuple[Gpu, ...], expected: list[tuple[str, ...]]) -> None:
    found = check({**GOOD_2X, **changes}, gpus=gpus)
    assert shown(found) == expected
    assert all(f.about == (GPU,) for f in found), [f.about for f in found]


def test_gpu_check_falls_back_to_the_series_architectures() -> None:
    series = MATRIX.torch_series("2.14")
    assert series is not None
    bare = MATRIX._replace(torch=tuple(s._replace(variant_sm={}) if s is series else s for s in MATRIX.torch))
    facts = make_facts(GOOD_2X, (Gpu("GTX 1080", "6.1"),))
    found = check_requirements(context(facts, bare))
    assert shown(found) == [("req.gpu-arch", FAIL, "GTX 1080 (compute capability 6.1) has no kernels in torch 2.14.1",
                             ("cc 6.1 not covered by 7.5 8.0 8.6 9.0 10.0 12.0",))]  # fmt: skip
    # a non-default build without its own list: nothing to compare against
    cu126 = make_facts({**GOOD_2X, "torch": "2.14.1+cu126", "cuda": "12.6"}, (Gpu("GTX 1080", "6.1"),))
    assert check_requirements(context(cu126, bare)) == []


def test_findings_carry_severity_sources_fixes_and_summaries() -> None:
    changes = {"torch": "2.1.2", "torchvision": "0.16.2", "lib:liblapacke.so.3": ABSENT, "glibc": "2.33"}
    by_id = {f.id: f for f in check({**GOOD_1X, **changes})}
    release = MATRIX.aimet_release(parse_version("1.32.2"))
    assert release is not None
    torch = by_id["req.torch"]
    assert torch.severity is Severity.ERROR and torch.origin == "requirements" and torch.sources == release.sources
    assert torch.summary == f"{torch.title}; the versions qatdoctor recommends below satisfy it."
    glibc = by_id["req.glibc"]
    assert glibc.summary.startswith("pip will not select this wheel") and "GLIBC_2.xx not found" in glibc.summary
    lib = by_id["req.system-lib"]
    assert lib.severity is Severity.ERROR and lib.sources == release.sources
    assert [(f.kind, f.summary, f.commands) for f in lib.fixes] == [
        ("system", "install the liblapacke system package", ("sudo apt-get install -y liblapacke",))
    ]
    assert lib.summary == "The compiled parts of aimet-torch 1.32.2 load liblapacke.so.3 from the system."


def test_a_library_without_a_known_package_is_installed_by_its_own_name() -> None:
    release = MATRIX.aimet_release(parse_version("1.32.2"))
    assert release is not None
    matrix = MATRIX._replace(aimet=tuple(
        a._replace(system_libs=("libfoo.so.1", "libcublas.so.12")) if a is release else a for a in MATRIX.aimet
    ))  # fmt: skip
    facts = make_facts({**GOOD_1X, "lib:libfoo.so.1": ABSENT, "lib:libcublas.so.12": ABSENT})
    fixes = [f.fixes[0].commands for f in check_requirements(context(facts, matrix))]
    assert fixes == [("sudo apt-get install -y libfoo.so.1",), ("sudo apt-get install -y libcublas12",)]


def test_unknown_and_undecided_findings_say_what_they_need() -> None:
    by_id = {f.id: f for f in check(GOOD_2X, driver=Fact.unknown("nvidia-smi timed out"))}
    driver = by_id["req.driver"]
    assert driver.status is Status.UNKNOWN and driver.severity is Severity.ERROR and driver.origin == "requirements"
    assert driver.summary == "needs driver: unknown: nvidia-smi timed out"
    floor = MATRIX.driver_min(13)
    assert floor is not None and driver.sources == floor.sources
    absent = {f.id: f for f in check(GOOD_2X, driver=ABSENT)}["req.driver"]
    assert absent.severity is Severity.INFO and absent.summary.startswith("This host has no NVIDIA driver/GPU.")
    assert absent.status is Status.NOT_APPLICABLE and absent.origin == "requirements"
    assert absent.summary == (
        "This host has no NVIDIA driver/GPU. Give the machine that will run the environment with "
        "--target-driver VERSION (and --assume gpu=CC) to check it."
    )
    old = {f.id: f for f in check(GOOD_2X, driver="550.54")}["req.driver"]
    assert old.severity is Severity.ERROR and old.sources == floor.sources
    assert old.summary.startswith("CUDA 13.x wheels need driver >= 580.65.06")
    assert [fx.summary for fx in old.fixes] == [
        "upgrade the NVIDIA driver to >= 580.65.06, or install a torch build for an older CUDA major (see recommendations)"
    ]


def test_torch_series_findings_cite_the_series() -> None:
    series = MATRIX.torch_series("2.14")
    assert series is not None
    pair = check(GOOD_2X, torchvision="0.29.0")[0]
    assert pair.severity is Severity.ERROR and pair.sources == series.sources and pair.origin == "requirements"
    assert pair.summary.startswith("torchvision's compiled ops are built against one torch release")
    wheel = check(GOOD_2X, python="3.16.0")
    assert wheel[0].severity is Severity.WARNING and wheel[0].origin == "coverage"
    assert [(fx.kind, fx.summary) for fx in wheel[0].fixes] == [
        ("config", "use a newer matrix: qatdoctor --matrix PATH (or $QATDOCTOR_MATRIX)")
    ]
    assert wheel[0].summary == "Outside known coverage: not reported as good. Point --matrix at a newer matrix."
    assert wheel[1].severity is Severity.ERROR and wheel[1].sources == series.sources
    assert wheel[1].summary == (
        "pip cannot install torch 2.14 on Python 3.16: its wheels are for Python 3.10, 3.11, 3.12, 3.13, 3.14, 3.14t "
        "only. Use one of those Pythons, or a torch series built for 3.16."
    )
    gpu = check(GOOD_2X, gpus=(Gpu("Tesla K80", "3.7"),))[0]
    assert gpu.severity is Severity.ERROR and gpu.sources == series.sources
    assert gpu.summary == (
        "The torch 2.14.1 build ships SASS for 7.5, 8.0, 8.6, 9.0, 10.0, 12.0 only; expect "
        "'no kernel image is available for execution on the device'."
    )


def test_a_free_threaded_only_python_still_counts() -> None:
    series = MATRIX.torch_series("2.14")
    assert series is not None
    only_t = MATRIX._replace(torch=tuple(s._replace(python=("3.14t",)) if s is series else s for s in MATRIX.torch))
    assert check_requirements(context(make_facts({**GOOD_2X, "python": "3.14.0"}), only_t)) == []
    assert "3.14" in known_pythons(only_t)


def test_a_series_without_a_python_list_is_not_checked_for_wheels() -> None:
    series = MATRIX.torch_series("2.14")
    assert series is not None
    unlisted = MATRIX._replace(torch=tuple(s._replace(python=()) if s is series else s for s in MATRIX.torch))
    facts = make_facts({**GOOD_2X, "python": "3.9.18"})
    assert "req.python-wheel" in {f.id for f in check_requirements(context(facts, MATRIX))}
    assert "req.python-wheel" not in {f.id for f in check_requirements(context(facts, unlisted))}


def test_without_a_release_or_series_nothing_is_checked() -> None:
    facts = make_facts({"aimet-torch": "2.99.0", "torch": "2.99.0", "python": "3.10.13", "driver": "1.0"})
    assert check_requirements(Context(facts, MATRIX, None, None)) == []


def test_an_empty_declared_range_is_not_checked() -> None:
    release = MATRIX.aimet_release(parse_version("1.32.2"))
    assert release is not None
    open_release = release._replace(torch=SpecifierSet(""), numpy=None)
    facts = make_facts({**GOOD_1X, "torch": "9.9.9", "numpy": "9.9"})
    assert check_requirements(Context(facts, MATRIX, open_release, None)) == []


def test_v1_without_declared_requirements_checks_only_the_api() -> None:
    release = MATRIX.aimet_release(parse_version("2.0.0"))
    assert release is not None
    facts = make_facts({**GOOD_1X, "aimet-torch": "2.0.0", "numpy": "1.26.4", "aimet-api": "v1", "cuda": "11.8",
                        "torch": "2.4.1"})  # fmt: skip
    assert check_requirements(Context(facts, MATRIX, release._replace(v1=None), None)) == []


def test_an_empty_matrix_knows_no_python() -> None:
    empty = MATRIX._replace(aimet=(), torch=())
    assert known_pythons(empty) == set()
    assert check_requirements(context(make_facts({"python": "3.99.0"}), empty)) == []


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.30.1", {"3.8"}),
        ("1.31.2", {"3.10", "3.8"}),
        ("1.35.0", {"3.10"}),
        ("2.1.0", None),  # 2.x always has a pure-Python file besides its cp310 wheel
        ("2.42.0", None),
    ],
)
def test_wheel_pythons(version: str, expected: set[str] | None) -> None:
    release = MATRIX.aimet_release(parse_version(version))
    assert release is not None
    assert wheel_pythons(release) == expected
    assert wheel_pythons(release._replace(wheel=None)) is None


def test_known_pythons_of_the_matrix() -> None:
    known = known_pythons(MATRIX)
    assert {"3.7", "3.8", "3.10", "3.14", "3.15"} <= known
    assert not any(m.endswith("t") for m in known)


@pytest.mark.parametrize(
    ("capability", "arch", "expected"),
    [
        ("8.9", ("8.6",), True),
        ("8.6", ("8.6",), True),
        ("8.5", ("8.6",), False),
        ("9.0", ("8.6",), False),
        ("8.0", ("7.5", "9.0"), False),
        ("9.0", ("7.5", "9.0"), True),
        ("9", ("9.0",), True),
        ("9.1", ("9",), True),
        ("9.0", ("9",), True),
        ("9", ("9.1",), False),
        ("12.0", ("10.0", "12.0"), True),
    ],
)
def test_runs_on(capability: str, arch: tuple[str, ...], expected: bool) -> None:
    assert runs_on(capability, arch) is expected


@pytest.mark.parametrize(
    ("cuda", "expected"), [("12.1", 12), ("13.0", 13), ("11", 11), ("", None), (None, None), ("cpu", None)]
)
def test_cuda_major(cuda: str | None, expected: int | None) -> None:
    assert cuda_major(cuda) == expected
