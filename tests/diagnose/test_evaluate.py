"""evaluate(): facts derived from facts, coverage of versions the matrix does not know, the verdict, and what a
known-good combination is."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from qatdoctor.core import load_matrix
from qatdoctor.diagnose.evaluate import (
    Evaluation,
    caveat_context,
    could_be_good,
    cuda_from_local,
    derive_facts,
    evaluate,
    is_clean,
    verdict_of,
)
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.records import Fact, Facts, FactState, Finding, Scope, Severity, Status, Verdict
from tests.matrixkit import beyond, newest_entry

MATRIX = load_matrix(None)
BEYOND, NEWEST = beyond(MATRIX), newest_entry(MATRIX)  # derived: a new [[aimet]] entry changes no test
UNKNOWN = Fact.unknown("could not read it")
ABSENT = Fact.absent("not installed")


def make_facts(**values: str | Fact) -> Facts:
    def name(key: str) -> str:
        return "env:" + key[4:] if key.startswith("env_") else key.replace("_", "-")

    return Facts({name(k): v if isinstance(v, Fact) else Fact.known(v) for k, v in values.items()})


def finding(status: Status, severity: Severity = Severity.ERROR, scope: Scope = Scope.ENVIRONMENT,
            likely: str | None = None) -> Finding:  # fmt: skip
    return Finding("x", "x", severity, "x", status=status, scope=scope, likely=likely)


# --- the verdict -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("findings", "verdict"),
    [
        pytest.param((), Verdict.OK, id="nothing"),
        pytest.param((finding(Status.PASS, Severity.INFO),), Verdict.OK, id="pass"),
        pytest.param((finding(Status.FAIL),), Verdict.PROBLEMS, id="error-fails"),
        pytest.param((finding(Status.SILENT_FAIL),), Verdict.PROBLEMS, id="error-fails-silently"),
        pytest.param((finding(Status.FAIL, Severity.WARNING),), Verdict.OK, id="warning-fails"),
        pytest.param((finding(Status.UNKNOWN),), Verdict.UNKNOWN, id="error-unknown"),
        pytest.param((finding(Status.UNKNOWN, Severity.WARNING),), Verdict.UNKNOWN, id="warning-unknown"),
        pytest.param((finding(Status.UNKNOWN, Severity.INFO),), Verdict.OK, id="info-unknown-is-information"),
        pytest.param((finding(Status.UNKNOWN), finding(Status.FAIL)), Verdict.PROBLEMS, id="problems-beat-unknown"),
        pytest.param((finding(Status.FAIL, Severity.WARNING), finding(Status.UNKNOWN)), Verdict.UNKNOWN,
                     id="unknown-beats-warning"),
        pytest.param((finding(Status.UNKNOWN, scope=Scope.CAVEAT),), Verdict.OK, id="caveat-unlikely"),
        pytest.param((finding(Status.FAIL, scope=Scope.CAVEAT),), Verdict.OK, id="caveat-never-fails"),
        pytest.param((finding(Status.UNKNOWN, scope=Scope.CAVEAT, likely="mmengine"),), Verdict.UNKNOWN,
                     id="caveat-likely"),
        pytest.param((finding(Status.FAIL, scope=Scope.MODEL),), Verdict.PROBLEMS, id="model-failure"),
    ],
)
def test_verdict_of(findings: tuple[Finding, ...], verdict: Verdict) -> None:
    assert verdict_of(findings) is verdict
    assert verdict_of(iter(findings)) is verdict  # any iterable, consumed once


@pytest.mark.parametrize(
    ("findings", "lands_on", "clean"),
    [
        ((), ("good",), True),
        ((), (), False),
        ((finding(Status.FAIL),), ("good",), False),
        ((finding(Status.FAIL, Severity.WARNING),), ("good",), True),
        ((finding(Status.UNKNOWN),), ("good",), True),
        ((finding(Status.FAIL, scope=Scope.CAVEAT),), ("good",), True),
    ],
)
def test_is_clean(findings: tuple[Finding, ...], lands_on: tuple[str, ...], clean: bool) -> None:
    assert is_clean(Evaluation(Facts({}), findings, lands_on)) is clean


# --- derived facts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "cuda"),
    [("cu121", "12.1"), ("cu130", "13.0"), ("cu118", "11.8"), ("cu92", None), ("cpu", None), ("rocm6.0", None),
     ("cuda", None), ("", None), ("xcu121", None)],
)  # fmt: skip
def test_cuda_from_local(local: str, cuda: str | None) -> None:
    assert cuda_from_local(local) == cuda


def shown(fact: Fact) -> tuple[str, str | None, str, str | None]:
    return fact.state.value, fact.value, fact.origin, fact.detail


API_ROWS = [
    pytest.param({"aimet_torch": "1.32.2"}, ("known", "v1", "derived", "the only API of aimet-torch 1.x"), id="1x"),
    pytest.param({"aimet_torch": "1.32.2", "env_AIMET_DEFAULT_API": "v2"},
                 ("known", "v1", "derived", "the only API of aimet-torch 1.x"), id="1x-ignores-the-variable"),
    pytest.param({"aimet_torch": "2.0.0"}, ("known", "v2", "derived", "default API of aimet-torch 2.x"), id="2x"),
    pytest.param({"aimet_torch": "2.0.0", "env_AIMET_DEFAULT_API": "v1"},
                 ("known", "v1", "derived", "AIMET_DEFAULT_API=v1"), id="2x-asks-for-v1"),
    pytest.param({"aimet_torch": "2.42.0", "env_AIMET_DEFAULT_API": "v1"},
                 ("known", "v1", "derived", "AIMET_DEFAULT_API=v1"), id="2.42-asks-for-removed-v1"),
    pytest.param({"aimet_torch": "2.42.0", "env_AIMET_DEFAULT_API": "V2"},
                 ("known", "v2", "derived", "default API of aimet-torch 2.x"), id="2x-other-value"),
    pytest.param({"aimet_torch": "1.99.0"}, ("known", "v1", "derived", "the only API of aimet-torch 1.x"),
                 id="unlisted-1x-by-major"),
    pytest.param({"aimet_torch": "3.0.0"}, ("known", "v2", "derived", "default API of aimet-torch 2.x"),
                 id="unlisted-3x-by-major"),
    pytest.param({"aimet_torch": "2.99.0"}, ("known", "v2", "derived", "default API of aimet-torch 2.x"),
                 id="unlisted-2x-by-major"),
    pytest.param({"aimet_torch": ABSENT}, ("absent", None, "derived", None), id="not-installed"),
    pytest.param({"aimet_torch": UNKNOWN}, ("unknown", None, "derived", None), id="unknown"),
    pytest.param({"aimet_torch": "nonsense"}, ("unknown", None, "derived", None), id="unparsable"),
    pytest.param({"aimet_torch": "2.0.0", "aimet_api": "v1"}, ("known", "v1", "collected", None), id="stated-kept"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "expected"), API_ROWS)
def test_effective_api(values: dict[str, str | Fact], expected: tuple[str, ...]) -> None:
    assert shown(derive_facts(make_facts(**values), MATRIX).get("aimet-api")) == expected


CUDA_ROWS = [
    pytest.param("2.2.2", ("known", "12.1", "inferred", "PyPI's default build of torch 2.2 is cu121"), id="pypi-2.2"),
    pytest.param("2.14.1", ("known", "13.0", "inferred", "PyPI's default build of torch 2.14 is cu130"),
                 id="pypi-2.14"),
    pytest.param("2.2.2+cu118", ("known", "11.8", "derived", "from torch's local tag +cu118"), id="local-tag"),
    pytest.param("2.2.2+cpu", ("absent", None, "derived", None), id="cpu-build"),
    pytest.param("2.2.2+git1234", ("unknown", None, "collected", None), id="source-build"),
    pytest.param("2.99.0", ("unknown", None, "collected", None), id="series-unknown"),
]  # fmt: skip


@pytest.mark.parametrize(("torch", "expected"), CUDA_ROWS)
def test_implied_cuda(torch: str, expected: tuple[str, ...]) -> None:
    assert shown(derive_facts(make_facts(torch=torch), MATRIX).get("cuda")) == expected


def test_implied_cuda_needs_a_pypi_build_the_matrix_names() -> None:
    series = MATRIX.torch_series("2.2")
    assert series is not None
    for pypi in (None, "cpu"):
        matrix = MATRIX._replace(torch=tuple(s._replace(pypi_cuda=pypi) if s is series else s for s in MATRIX.torch))
        assert derive_facts(make_facts(torch="2.2.2"), matrix).get("cuda").state is FactState.UNKNOWN


def test_derived_facts_never_override_stated_ones() -> None:
    stated = make_facts(aimet_torch="2.0.0", torch="2.2.2", aimet_api="v1", cuda="11.8")
    assert derive_facts(stated, MATRIX) == stated
    no_torch = derive_facts(make_facts(aimet_torch="2.0.0"), MATRIX)
    assert "cuda" not in no_torch.values
    unreadable_torch = derive_facts(make_facts(aimet_torch="2.0.0", torch="nonsense"), MATRIX)
    assert "cuda" not in unreadable_torch.values


def test_derived_reasons_say_why() -> None:
    assert derive_facts(make_facts(aimet_torch=ABSENT), MATRIX).get("aimet-api").reason == "aimet-torch not installed"
    assert derive_facts(make_facts(aimet_torch=UNKNOWN), MATRIX).get("aimet-api").reason == "aimet-torch version unknown"
    assert derive_facts(make_facts(torch="2.2.2+cpu"), MATRIX).get("cuda").reason == "CPU build of torch"
    assert derive_facts(make_facts(torch="2.99.0"), MATRIX).get("cuda").reason == "torch's CUDA build is not known"
    source = derive_facts(make_facts(torch="2.2.2+git1234"), MATRIX).get("cuda").reason
    assert source == "torch 2.2.2+git1234 is not a PyPI or PyTorch-index build: its CUDA build is not known"


# --- findings and landings -------------------------------------------------------------------------------------

GOOD_2X = {"aimet_torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7"}


def ids(evaluation: Evaluation, scope: Scope | None = Scope.ENVIRONMENT) -> dict[str, Status]:
    return {f.id: f.status for f in evaluation.findings if scope is None or f.scope is scope}


EVALUATE_ROWS = [
    pytest.param({"aimet_torch": ABSENT, "torch": ABSENT}, Verdict.PROBLEMS, (),
                 {"env.aimet-torch-missing": Status.FAIL, "env.torch-missing": Status.FAIL}, id="nothing-installed"),
    pytest.param({**GOOD_2X, "aimet_torch": "1.34.0.cu121", "torch": "2.2.2", "python": "3.10.13"}, Verdict.UNKNOWN,
                 ("good-aimet-1.32.2-1.35.0-torch-2.2.2-py310",),
                 {"coverage.aimet-torch": Status.UNKNOWN, "aimet-1.34-1.35-safetensors-not-declared": Status.FAIL},
                 id="github-release-build"),
    pytest.param({**GOOD_2X, "aimet_torch": BEYOND}, Verdict.UNKNOWN, (),
                 {"coverage.aimet-torch": Status.UNKNOWN}, id="newer-aimet"),
    pytest.param({**GOOD_2X, "torch": "2.14.7"}, Verdict.UNKNOWN,
                 ("aimet-torch 2.42.0 wheel was built with torch 2.14.1+cu126",),
                 {"coverage.torch": Status.UNKNOWN}, id="unknown-torch-patch"),
    pytest.param({**GOOD_2X, "aimet_torch": "2.5.0", "torch": "2.8.0", "python": "3.10.13"}, Verdict.UNKNOWN, (),
                 {"coverage.untested-combination": Status.UNKNOWN}, id="untested-pair"),
    pytest.param({**GOOD_2X, "torch": "2.2.2"}, Verdict.PROBLEMS, (),
                 {"aimet-2.42-torch-2.2-import-error": Status.FAIL}, id="bad-pair-is-not-untested"),
    pytest.param({"aimet_torch": "1.32.2", "torch": "2.2.2", "python": "3.10.13"}, Verdict.UNKNOWN,
                 ("good-aimet-1.32.2-1.35.0-torch-2.2.2-py310", "aimet-torch 1.32.2 pins torch==2.2.2"),
                 {"good-aimet-1.32.2-1.35.0-torch-2.2.2-py310": Status.PASS}, id="documented-1x"),
    pytest.param({"aimet_torch": "1.35.0", "torch": "2.2.2", "python": "3.10.13"}, Verdict.PROBLEMS,
                 ("aimet-torch 1.35.0 pins torch==2.2.2",), {"aimet-1.35-v1-undefined-symbol-gzeof": Status.FAIL},
                 id="exact-pin-is-declared-good"),
    pytest.param({"aimet_torch": "2.17.0", "torch": "2.8.0", "python": "3.10.13"}, Verdict.UNKNOWN, (),
                 {"coverage.untested-combination": Status.UNKNOWN}, id="a-cap-is-not-a-pin"),
    pytest.param({**GOOD_2X, "torch": "2.14.0"}, Verdict.UNKNOWN,
                 ("aimet-torch 2.42.0 wheel was built with torch 2.14.1+cu126",), {}, id="wheel-built-series"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "verdict", "lands_on", "expected"), EVALUATE_ROWS)
def test_evaluate(
    values: dict[str, str | Fact], verdict: Verdict, lands_on: tuple[str, ...], expected: Mapping[str, Status]
) -> None:
    evaluation = evaluate(make_facts(**values), MATRIX)
    found = ids(evaluation)
    assert {k: found.get(k) for k in expected} == dict(expected)
    assert evaluation.lands_on == lands_on
    assert evaluation.verdict is verdict
    assert could_be_good(make_facts(**values), MATRIX) is bool(lands_on)


def test_good_landings_are_pass_findings_and_no_untested_warning() -> None:
    evaluation = evaluate(make_facts(**GOOD_2X), MATRIX)
    assert evaluation.lands_on == ("good-aimet-2.42.0-torch-2.14.1-py311",
                                   "aimet-torch 2.42.0 wheel was built with torch 2.14.1+cu126")  # fmt: skip
    passed = [f for f in evaluation.findings if f.status is Status.PASS]
    assert [f.id for f in passed] == ["good-aimet-2.42.0-torch-2.14.1-py311"]
    assert passed[0].basis == "measured"
    assert "coverage.untested-combination" not in ids(evaluation)


def test_presence_findings() -> None:
    missing = {f.id: f for f in evaluate(make_facts(aimet_torch=ABSENT, torch="2.2.2"), MATRIX).findings}
    aimet = missing["env.aimet-torch-missing"]
    assert (aimet.status, aimet.severity, aimet.origin) == (Status.FAIL, Severity.ERROR, "environment")
    assert aimet.title == "aimet-torch is not installed in this environment"
    assert [(f.kind, f.package, f.spec) for f in aimet.fixes] == [("install", "aimet-torch", ">=0")]
    assert "env.torch-missing" not in missing
    unknown = {f.id: f for f in evaluate(make_facts(aimet_torch="2.42.0", torch=UNKNOWN), MATRIX).findings}
    torch = unknown["env.torch-missing"]
    assert (torch.status, torch.severity, torch.title) == (Status.UNKNOWN, Severity.WARNING, "torch: unknown: could not read it")
    assert torch.summary == "Nothing to check for torch; `qatdoctor pin` prints a known-good set to install."
    assert "env.aimet-torch-missing" not in unknown


@pytest.mark.parametrize(
    ("values", "title"),
    [
        ({"aimet_torch": "nonsense", "torch": "2.2.2"}, "aimet-torch version 'nonsense' is not a PEP 440 version"),
        ({"aimet_torch": "2.42.0", "torch": "nonsense"}, "torch version 'nonsense' is not a PEP 440 version"),
        ({"aimet_torch": "1.34.0.cu121", "torch": "2.2.2"}, "aimet-torch 1.34.0.cu121 is a GitHub-release build (cu121)"),
        ({"aimet_torch": BEYOND, "torch": "2.14.1"},
         f"aimet-torch {BEYOND} is newer than anything the matrix knows (matrix 2026.11.25, newest {NEWEST})"),
        ({"aimet_torch": "1.29.0", "torch": "2.2.2"},
         f"aimet-torch 1.29.0 is a release the matrix does not know (matrix 2026.11.25, newest {NEWEST})"),
        ({"aimet_torch": "2.42.0", "torch": "2.14.7"},
         "torch 2.14.7 is not a release the matrix knows (newest known: 2.15.0)"),
        ({"aimet_torch": "2.42.0", "torch": "2.99.0"},
         "torch 2.99.0 is not a release the matrix knows (newest known: 2.15.0)"),
    ],
)  # fmt: skip
def test_outside_coverage_titles(values: dict[str, str], title: str) -> None:
    evaluation = evaluate(make_facts(**values, python="3.11.7"), MATRIX)
    outside = [f for f in evaluation.findings if f.origin == "coverage" and f.title == title]
    assert len(outside) == 1, [f.title for f in evaluation.findings]
    found = outside[0]
    assert found.status is Status.UNKNOWN and found.severity is Severity.WARNING and found.id.startswith("coverage.")
    assert [(fx.kind, fx.summary) for fx in found.fixes] == [
        ("config", "use a newer matrix: qatdoctor --matrix PATH (or $QATDOCTOR_MATRIX)")
    ]
    assert found.summary.startswith(
        ("qatdoctor cannot place it in any range", "The matrix describes the PyPI wheels", "Outside known coverage")
    )
    assert evaluation.verdict is not Verdict.OK


def test_outside_coverage_with_an_empty_matrix() -> None:
    empty = MATRIX._replace(aimet=(), torch=(), rules=())
    evaluation = evaluate(make_facts(aimet_torch="2.42.0", torch="2.14.1"), empty)
    titles = {f.id: f.title for f in evaluation.findings}
    assert titles["coverage.aimet-torch"] == (
        "aimet-torch 2.42.0 is a release the matrix does not know (matrix 2026.11.25, newest None)"
    )
    assert titles["coverage.torch"] == "torch 2.14.1 is not a release the matrix knows (newest known: None)"


def test_a_yanked_release() -> None:
    release = MATRIX.aimet_release(parse_version("2.42.0"))
    yanked = MATRIX._replace(aimet=tuple(a._replace(yanked="broken upload") if a is release else a for a in MATRIX.aimet))
    found = {f.id: f for f in evaluate(make_facts(**GOOD_2X), yanked).findings}["coverage.yanked"]
    assert found.title == "aimet-torch 2.42.0 was yanked from PyPI: broken upload"
    assert (found.status, found.severity, found.origin) == (Status.FAIL, Severity.WARNING, "matrix")
    assert release is not None and found.sources == release.sources
    assert "coverage.yanked" not in ids(evaluate(make_facts(**GOOD_2X), MATRIX))


def test_untested_combination_finding() -> None:
    evaluation = evaluate(make_facts(aimet_torch="2.5.0", torch="2.8.0", python="3.10.13"), MATRIX)
    found = {f.id: f for f in evaluation.findings}["coverage.untested-combination"]
    assert found.title == "aimet-torch 2.5.0 with torch 2.8.0 is not a known-good combination"
    assert (found.status, found.severity, found.origin) == (Status.UNKNOWN, Severity.WARNING, "coverage")
    # no untested warning without both versions placed in the matrix
    assert "coverage.untested-combination" not in ids(evaluate(make_facts(aimet_torch="2.5.0"), MATRIX))
    assert "coverage.untested-combination" not in ids(evaluate(make_facts(torch="2.8.0"), MATRIX))


def test_a_matched_rule_replaces_the_requirement_check_it_covers() -> None:
    # aimet-torch 2.17.0 caps torch below 2.9: the rule explains it, req.torch is not repeated.
    found = ids(evaluate(make_facts(aimet_torch="2.17.0", torch="2.9.0", python="3.10.13"), MATRIX))
    assert found.get("aimet-2.17-torch-2.9-cap") is Status.FAIL and "req.torch" not in found
    # an undecided rule says the same "unknown" as the check it covers: only the rule is shown
    undecided = ids(evaluate(make_facts(aimet_torch="1.32.2", torch="2.2.2", python="3.10.13", glibc=UNKNOWN), MATRIX))
    assert undecided.get("aimet-1.32.2-1.35-cp310-glibc-below-2.34") is Status.UNKNOWN and "req.glibc" not in undecided
    # a check a rule covers still fails when the rule does not match
    lib = ids(evaluate(make_facts(aimet_torch="1.32.2", torch="2.1.2", python="3.10.13"), MATRIX))
    assert lib.get("req.torch") is Status.FAIL


def test_an_undecided_rule_does_not_hide_a_failing_check() -> None:
    the_facts = make_facts(aimet_torch="1.32.2", torch="2.2.2", python="3.10.13", glibc="2.31").with_values(
        {"lib:liblapacke.so.3": UNKNOWN}
    )
    found = ids(evaluate(the_facts, MATRIX))
    assert found.get("aimet-1x-liblapacke-missing") is Status.UNKNOWN
    assert found.get("req.system-lib") is None  # covered: unknown and unknown
    assert found.get("aimet-1.32.2-1.35-cp310-glibc-below-2.34") is Status.FAIL
    assert found.get("req.glibc") is None  # covered: the rule's failure explains it


def test_caveats_likely_and_dropped() -> None:
    with_mmengine = evaluate(make_facts(aimet_torch="1.32.2", torch="2.2.2", python="3.10.13", mmengine="0.10.7"), MATRIX)
    caveats = {f.id: f for f in with_mmengine.findings if f.scope is Scope.CAVEAT}
    likely = caveats["bn-subclass-qat-crash-v1"].likely
    assert likely is not None and likely.startswith("mmengine 0.10.7 is installed: ")
    assert caveats["functional-bn-qat-crash-v1"].likely is None
    assert with_mmengine.verdict is Verdict.UNKNOWN
    # mmcv's construct cannot occur without mmcv
    without_mmcv = evaluate(make_facts(**GOOD_2X, mmcv=ABSENT), MATRIX)
    assert "efficient-conv-bn-eval-drops-bn" not in ids(without_mmcv, None)
    assert "efficient-conv-bn-eval-drops-bn" in ids(evaluate(make_facts(**GOOD_2X), MATRIX), None)
    with_mmcv = evaluate(make_facts(**GOOD_2X, mmcv="2.1.0"), MATRIX)
    mmcv = {f.id: f for f in with_mmcv.findings}["efficient-conv-bn-eval-drops-bn"]
    assert mmcv.likely is not None and mmcv.likely.startswith("mmcv 2.1.0 is installed: ")


def test_caveat_context_leaves_other_findings_alone() -> None:
    plain = Finding("x", "x", Severity.ERROR, "x")
    assert caveat_context(plain, make_facts(), MATRIX) is plain
    unknown_construct = Finding("x", "x", Severity.ERROR, "x", scope=Scope.CAVEAT, construct="no-such-construct")
    assert caveat_context(unknown_construct, make_facts(), MATRIX) is unknown_construct
    environment = Finding("x", "x", Severity.ERROR, "x", construct="bn-subclass")
    assert caveat_context(environment, make_facts(mmengine="0.10.7"), MATRIX) is environment
    two = caveat_context(
        Finding("x", "x", Severity.ERROR, "x", scope=Scope.CAVEAT, construct="bn-subclass"),
        make_facts(mmengine="0.10.7", timm="1.0.0"),
        MATRIX,
    )
    assert two is not None and two.likely is not None
    assert two.likely.startswith("mmengine 0.10.7 is installed: ") and "; timm 1.0.0 is installed: " in two.likely


def test_could_be_good() -> None:
    assert could_be_good(make_facts(**GOOD_2X), MATRIX)
    assert could_be_good(make_facts(aimet_torch="2.42.0", torch="2.14.0"), MATRIX)  # the wheel's own series
    assert could_be_good(make_facts(aimet_torch="1.32.2", torch="2.2.2"), MATRIX)  # the release's exact pin
    assert not could_be_good(make_facts(aimet_torch="2.5.0", torch="2.8.0", python="3.10.13"), MATRIX)
    assert not could_be_good(make_facts(aimet_torch="2.42.0"), MATRIX)
    # a rule landing without a declared one: 2.42.0 with torch 2.8 was measured
    assert could_be_good(make_facts(aimet_torch="2.42.0", torch="2.8.0", python="3.11.7"), MATRIX)
    assert not could_be_good(make_facts(aimet_torch="2.42.0", torch="2.8.0", python="3.10.13"), MATRIX)


def test_what_each_coverage_and_presence_finding_tells_the_user() -> None:
    absent = {f.id: f for f in evaluate(make_facts(aimet_torch=ABSENT, torch=ABSENT), MATRIX).findings}
    torch = absent["env.torch-missing"]
    assert torch.summary == (
        "There is no AIMET pipeline to diagnose without torch. Install a known-good set (or point --python at the "
        "environment you train in)."
    )
    assert [(f.kind, f.summary, f.package, f.spec) for f in torch.fixes] == [
        ("install", "Install a known-good set with torch.", "torch", ">=0")
    ]
    unknown = {f.id: f for f in evaluate(make_facts(aimet_torch=UNKNOWN, torch="2.2.2"), MATRIX).findings}
    assert unknown["env.aimet-torch-missing"].origin == "environment"
    assert unknown["env.aimet-torch-missing"].fixes == ()
    summaries = {
        f.title: f.summary
        for values in (
            {"aimet_torch": "nonsense", "torch": "2.2.2"},
            {"aimet_torch": "1.34.0.cu121", "torch": "2.2.2"},
            {"aimet_torch": BEYOND, "torch": "2.99.0"},
            {"aimet_torch": "2.5.0", "torch": "2.8.0", "python": "3.10.13"},
        )
        for f in evaluate(make_facts(**values), MATRIX).findings
        if f.origin == "coverage"
    }
    assert summaries == {
        "aimet-torch version 'nonsense' is not a PEP 440 version":
            "qatdoctor cannot place it in any range; every rule about it is undecided.",
        "aimet-torch 1.34.0.cu121 is a GitHub-release build (cu121)":
            "The matrix describes the PyPI wheels; this build's own pins are not checked (rules still apply).",
        f"aimet-torch {BEYOND} is newer than anything the matrix knows (matrix 2026.11.25, newest {NEWEST})":
            "Outside known coverage: not reported as good. Point --matrix at a newer matrix, or run the probe.",
        "torch 2.99.0 is not a release the matrix knows (newest known: 2.15.0)":
            "Outside known coverage: not reported as good.",
        "aimet-torch 2.5.0 with torch 2.8.0 is not a known-good combination":
            "No rule marks it bad, but nothing marks it good either; run the probe to find out.",
    }  # fmt: skip
    untested = {f.id: f for f in evaluate(make_facts(aimet_torch="2.5.0", torch="2.8.0", python="3.10.13"), MATRIX).findings}
    (source,) = untested["coverage.untested-combination"].sources
    assert (source.kind, source.ref) == ("docs", "docs/matrix.md#the-matrix")
    yanked_release = MATRIX.aimet_release(parse_version("2.42.0"))
    yanked = MATRIX._replace(aimet=tuple(a._replace(yanked="x") if a is yanked_release else a for a in MATRIX.aimet))
    found = {f.id: f for f in evaluate(make_facts(**GOOD_2X), yanked).findings}
    assert found["coverage.yanked"].summary == "Install a non-yanked release."


@pytest.mark.parametrize(("python", "glibc_fails"), [("3.8.10", False), ("3.10.13", True)])
def test_the_wheel_for_the_python_decides_the_glibc_floor(python: str, glibc_fails: bool) -> None:
    # aimet-torch 1.31.2's cp38 wheel needs glibc 2.29, its cp310 wheel 2.32 (2.34 in practice)
    evaluation = evaluate(make_facts(aimet_torch="1.31.2", torch="1.13.1", python=python, glibc="2.31"), MATRIX)
    failing = {f.id for f in evaluation.findings if f.status is Status.FAIL and "glibc" in f.id}
    assert bool(failing) is glibc_fails, failing
