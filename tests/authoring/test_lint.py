"""`matrix validate`'s lint on small matrices cut from the shipped one: each kind of mistake gives exactly the
problems listed, and a consistent matrix gives none."""

from __future__ import annotations

from pathlib import Path

import pytest

from qatdoctor.authoring.lint import consistency, lint
from qatdoctor.core import load_matrix
from qatdoctor.knowledge.entries import Matrix, ProbeMatch, Rule
from qatdoctor.knowledge.load import _condition
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.records import Measurement, Source

FULL = load_matrix(None)
AIMETS = ("1.32.2", "2.0.0", "2.42.0")
SERIES = ("2.2", "2.14")
# two records the shipped matrix holds: a 1.32.2 run and a 2.42.0 run
RECORD_1X = "probe-aimet-1.32.2-torch-2.2.2-py310"
RECORD_2X = "probe-aimet-2.42.0-torch-2.14.1-py311"


def small() -> Matrix:
    """Three aimet-torch releases, two torch series, no rules."""
    return FULL._replace(
        aimet=tuple(a for a in FULL.aimet if str(a.version) in AIMETS),
        torch=tuple(s for s in FULL.torch if s.series in SERIES),
        rules=(),
    )


def rule(rule_id: str, when: dict[str, str], **changes: object) -> Rule:
    base = Rule(
        id=rule_id,
        kind="bad",
        severity="error",
        title="A problem",
        summary="s",
        when=tuple(_condition(k, v) for k, v in when.items()),
        sources=(Source("issue", "https://example.org/1"),),
        basis="reported",
    )
    return base._replace(**changes)


def good(rule_id: str, when: dict[str, str], **changes: object) -> Rule:
    defaults: dict[str, object] = {"kind": "good", "severity": "info", "title": "A set (vendor-documented)",
                                   "basis": "vendor-docs"}  # fmt: skip
    return rule(rule_id, when, **{**defaults, **changes})


def problems(*rules: Rule, matrix: Matrix | None = None) -> list[str]:
    return [str(p) for p in lint((matrix or small())._replace(rules=rules))]


def test_the_shipped_matrix_and_a_small_cut_lint_clean() -> None:
    assert lint(small()) == []
    assert problems(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}), rule("b", {"aimet-torch": "<2.1"})) == []


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"aimet-torch": ">2.5,<2.0"}, [
            "rule 'x' → when.aimet-torch: '>2.5,<2.0' matches no version at all",
            "rule 'x' → when.aimet-torch: unreachable: no aimet-torch release in the matrix matches '>2.5,<2.0'",
        ]),
        ({"glibc": "<2.17,>2.30"}, ["rule 'x' → when.glibc: '<2.17,>2.30' matches no version at all"]),
        ({"aimet-torch": "==9.9.9"}, [
            "rule 'x' → when.aimet-torch: unreachable: no aimet-torch release in the matrix matches '==9.9.9'",
        ]),
        ({"torch": ">=3"}, ["rule 'x' → when.torch: unreachable: no torch release in the matrix matches '>=3'"]),
        ({"torch": "==2.14.1"}, []),
        ({"torch": "==2.14.*", "aimet-torch": "==2.42.0"}, []),
        ({"aimet-torch": "==1.32.2"}, []),
        ({"glibc": ">=9"}, []),  # no release list for glibc: reachable as far as the matrix can tell
        ({"aimet-api": "v1"}, []),
        ({"lib:liblapacke.so.3": "absent"}, []),
        ({"torch": ""}, []),
    ],
)  # fmt: skip
def test_unsatisfiable_and_unreachable_ranges(when: dict[str, str], expected: list[str]) -> None:
    assert problems(rule("x", when)) == expected


def test_a_prerelease_in_the_matrix_makes_a_range_reachable() -> None:
    release = next(a for a in FULL.aimet if str(a.version) == "2.42.0")
    rc = small()._replace(aimet=(release._replace(version=parse_version("2.43.0rc1")),))
    assert problems(rule("x", {"aimet-torch": ">2.42.0"}), matrix=rc) == []
    assert problems(rule("x", {"aimet-torch": "<2.43.0rc1"}), matrix=rc) == [
        "rule 'x' → when.aimet-torch: unreachable: no aimet-torch release in the matrix matches '<2.43.0rc1'"
    ]


def test_a_triage_rule_may_name_versions_the_matrix_does_not_list() -> None:
    assert problems(rule("x", {"aimet-torch": "<1.26"}, triage_only=True)) == []
    # and the rules after it are still checked
    assert problems(rule("t", {"aimet-torch": "<1.26"}, triage_only=True), rule("x", {"aimet-torch": "==9.9.9"})) == [
        "rule 'x' → when.aimet-torch: unreachable: no aimet-torch release in the matrix matches '==9.9.9'"
    ]
    # but its range must still match some version
    assert problems(rule("x", {"aimet-torch": "<1,>2"}, triage_only=True)) == [
        "rule 'x' → when.aimet-torch: '<1,>2' matches no version at all"
    ]


CONTRADICTIONS = [
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.42.0, torch 2.14.1"],
                 id="same-pair"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.*"}),
                 rule("b", {"aimet-torch": "==2.42.0"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.42.0, torch 2.14.0"],
                 id="reported-once-per-bad-rule"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "python": "==3.11.*"}),
                 rule("b", {"aimet-torch": "==2.42.0", "python": ">=3.11", "torch": "==2.14.1"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.42.0, torch 2.14.1, "
                  "python 3.11.0"],
                 id="python-points"),
    pytest.param(good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"}),
                 rule("b", {"aimet-torch": "==2.0.0", "cuda": "==12.*"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2"],
                 id="cuda-of-the-pypi-build"),
    pytest.param(good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"}),
                 rule("b", {"aimet-torch": "==2.0.0", "torchvision": "==0.17.2"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2"],
                 id="torchvision-of-the-release"),
    pytest.param(good("g", {"aimet-torch": "==1.32.2", "torch": "==2.2.2"}),
                 rule("b", {"aimet-torch": "==1.32.2", "aimet-api": "v1"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 1.32.2, torch 2.2.2"],
                 id="1x-is-v1"),
    pytest.param(good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"}),
                 rule("b", {"aimet-torch": "==2.0.0", "aimet-api": "v2"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2"],
                 id="2x-defaults-to-v2"),
    pytest.param(good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"}),
                 rule("b", {"aimet-torch": "==2.0.0", "aimet-api": "v1"}), [], id="2x-v1-is-not-the-default"),
    pytest.param(good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2", "python": "==3.10.*"}),
                 rule("b", {"aimet-torch": "==2.0.0", "torch": "==2.2.2", "torchvision": "==0.17.2", "cuda": "==12.1",
                            "python": "==3.10.*", "aimet-api": "v2"}),
                 ["rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2, "
                  "python 3.10.0"],
                 id="a-bad-rule-on-every-universe-fact"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0", "cuda": "<13"}), [], id="cuda-13-build"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0"}, severity="warning"), [], id="a-warning-is-no-contradiction"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0"}, scope="model", model_feature="silu-activation"), [],
                 id="a-model-caveat-is-no-contradiction"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0"}, triage_only=True), [], id="triage-only"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.42.0", "glibc": "<2.34"}), [], id="a-fact-outside-the-universe"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 rule("b", {"aimet-torch": "==2.0.0"}), [], id="disjoint"),
    pytest.param(good("g", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
                 good("b", {"aimet-torch": "==2.42.0"}), [], id="two-good-rules"),
]  # fmt: skip


@pytest.mark.parametrize(("good_rule", "bad_rule", "expected"), CONTRADICTIONS)
def test_contradictions(good_rule: Rule, bad_rule: Rule, expected: list[str]) -> None:
    assert problems(good_rule, bad_rule) == expected


def test_a_cpu_only_torch_series_has_no_cuda() -> None:
    cpu_only = small()._replace(torch=tuple(s._replace(pypi_cuda=None) for s in small().torch))
    good_rule = good("g", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"})
    assert problems(good_rule, rule("b", {"aimet-torch": "==2.0.0", "cuda": "absent"}), matrix=cpu_only) == [
        "rule 'g': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2"
    ]
    assert problems(good_rule, rule("b", {"aimet-torch": "==2.0.0", "cuda": ">=0"}), matrix=cpu_only) == []


def test_each_bad_rule_is_reported_once_per_good_rule() -> None:
    found = problems(
        good("g1", {"aimet-torch": ">=2.0", "torch": ">=2.2"}),
        good("g2", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
        rule("b1", {"aimet-torch": "==2.42.0"}),
        rule("b2", {"torch": "==2.14.1"}),
    )
    assert found == [
        "rule 'g1': contradiction: known-good, but bad rule 'b2' also matches aimet-torch 2.0.0, torch 2.14.1",
        "rule 'g1': contradiction: known-good, but bad rule 'b1' also matches aimet-torch 2.42.0, torch 2.2.0",
        "rule 'g2': contradiction: known-good, but bad rule 'b1' also matches aimet-torch 2.42.0, torch 2.14.1",
        "rule 'g2': contradiction: known-good, but bad rule 'b2' also matches aimet-torch 2.42.0, torch 2.14.1",
    ]


def test_references() -> None:
    probes = (
        ProbeMatch("no-such-model", "no-such-stage", "fail", "no-such-check"),
        ProbeMatch("*", "fold", "fail"),
        ProbeMatch("shared_conv", "fold", "silent-fail", "fold_output_changed"),
    )
    found = problems(rule("x", {"aimet-torch": ">=2.0"}, covers=("req.torch", "req.nope"), probes=probes))
    assert found == [
        "rule 'x' → covers: unknown requirement check 'req.nope'",
        "rule 'x' → probe[0]: unknown probe model 'no-such-model' (known: baseline, bn_subclass, functional_bn, "
        "functional_bn_nostats, bn_no_stats, conv_silu, shared_conv)",
        "rule 'x' → probe[0]: unknown probe stage 'no-such-stage' (known: import, prepare, quantsim, compute_encodings, "
        "qat_step, fold, fold_prepared)",
        "rule 'x' → probe[0]: unknown probe check 'no-such-check' (known: training_false_baked, train_output_mismatch, "
        "bn_stats_frozen, not_folded, fold_output_changed)",
    ]


def test_evidence_files_must_exist_next_to_the_matrix(tmp_path: Path) -> None:
    record = FULL.evidence[0]
    assert record.file
    moved = small()._replace(path=str(tmp_path / "compat_matrix.toml"))
    assert [str(p) for p in lint(moved._replace(evidence=(record,)))] == [
        f"evidence {record.id!r} → file: {record.file} does not exist next to the matrix"
    ]
    (tmp_path / record.file).parent.mkdir(parents=True)
    (tmp_path / record.file).write_text("notes", encoding="utf-8")
    assert lint(moved._replace(evidence=(record,))) == []
    assert lint(moved._replace(evidence=(record._replace(file=None),))) == []
    (tmp_path / "adir").mkdir()
    assert len(lint(moved._replace(evidence=(record._replace(file="adir"),)))) == 1  # a directory is not a file


def measured(rule_id: str, when: dict[str, str], *cells: Measurement, **changes: object) -> Rule:
    return rule(rule_id, when, basis="measured", measured_on=cells, **changes)


BASIS = [
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}),
                 ["rule 'x' → measured_on: basis 'measured' needs the versions measured and their records"],
                 id="measured-without-measurements"),
    pytest.param(rule("x", {"aimet-torch": ">=2.40"}, measured_on=(Measurement({"aimet-torch": "2.42.0"}, RECORD_2X),)),
                 ["rule 'x' → basis: measured_on is given, so the basis is 'measured', not 'reported'"],
                 id="measurements-under-another-basis"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({"aimet-torch": "2.42.0"}, RECORD_2X)), [],
                 id="a-measurement-that-holds"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "python": ">=3.10"},
                          Measurement({"aimet-torch": "2.42.0", "python": "3.11"}, RECORD_2X)), [],
                 id="a-python-minor-names-the-patch"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({}, RECORD_2X)),
                 ["rule 'x' → measured_on[0]: names no version"], id="no-version"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({"torch": "2.14.1"}, RECORD_2X)),
                 ["rule 'x' → measured_on[0]: torch is not one of the rule's `when` facts (aimet-torch)"],
                 id="a-version-the-rule-does-not-name"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "aimet-api": "v2"}, Measurement({"torch": "2.14.1"}, RECORD_2X)),
                 ["rule 'x' → measured_on[0]: torch is not one of the rule's `when` facts (aimet-api, aimet-torch)"],
                 id="the-when-facts-listed-sorted"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({"aimet-torch": "2.42.0"}, "no-such-record")),
                 ["rule 'x' → measured_on[0]: no [[evidence]] record 'no-such-record'"], id="missing-record"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({"aimet-torch": "2.41.0"}, RECORD_2X)),
                 [f"rule 'x' → measured_on[0]: evidence '{RECORD_2X}' records aimet-torch 2.42.0, not aimet-torch 2.41.0"],
                 id="another-version-than-the-record"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "glibc": "<2.34"},
                          Measurement({"aimet-torch": "2.42.0", "glibc": "2.31"}, RECORD_2X)),
                 [f"rule 'x' → measured_on[0]: evidence '{RECORD_2X}' records no glibc, not glibc 2.31"],
                 id="a-version-the-record-lacks"),
    pytest.param(measured("x", {"aimet-torch": "<2.40"}, Measurement({"aimet-torch": "2.42.0"}, RECORD_2X)),
                 ["rule 'x' → measured_on[0]: aimet-torch 2.42.0 is outside the rule's own range (<2.40)"],
                 id="outside-its-own-range"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "torch": "<2.14"},
                          Measurement({"aimet-torch": "2.42.0", "torch": "2.14.1"}, RECORD_2X)),
                 ["rule 'x' → measured_on[0]: aimet-torch 2.42.0, torch 2.14.1 is outside the rule's own range "
                  "(>=2.40, <2.14)"],
                 id="outside-with-two-clauses"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "aimet-api": "v2"},
                          Measurement({"aimet-torch": "2.42.0", "aimet-api": "v2"}, RECORD_2X)),
                 [f"rule 'x' → measured_on[0]: evidence '{RECORD_2X}' records no aimet-api, not aimet-api v2"],
                 id="a-choice-clause-is-not-a-range"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40", "aimet-api": "v2"},
                          Measurement({"aimet-torch": "2.42.0", "aimet-api": "v1"}, RECORD_2X)),
                 [f"rule 'x' → measured_on[0]: evidence '{RECORD_2X}' records no aimet-api, not aimet-api v1"],
                 id="only-range-clauses-bound-the-measurement"),
    pytest.param(measured("x", {"aimet-torch": ">=1.30"}, Measurement({"aimet-torch": "2.42.0"}, RECORD_2X),
                          Measurement({"aimet-torch": "1.32.2"}, RECORD_1X)), [],
                 id="two-measurements"),
    pytest.param(measured("x", {"aimet-torch": ">=1.30"}, Measurement({"aimet-torch": "2.42.0"}, RECORD_2X),
                          Measurement({"aimet-torch": "2.42.0"}, RECORD_1X)),
                 [f"rule 'x' → measured_on[1]: evidence '{RECORD_1X}' records aimet-torch 1.32.2, not aimet-torch 2.42.0"],
                 id="the-second-measurement-is-located"),
    pytest.param(rule("x", {"aimet-torch": ">=2.40"}, title="Works (measured)"),
                 ["rule 'x' → title: says it was measured, but its basis is 'reported'"], id="title-claims-measured"),
    pytest.param(rule("x", {"aimet-torch": ">=2.40"}, title="A KNOWN-GOOD set"),
                 ["rule 'x' → title: says it was measured, but its basis is 'reported'"], id="title-claims-known-good"),
    pytest.param(measured("x", {"aimet-torch": ">=2.40"}, Measurement({"aimet-torch": "2.42.0"}, RECORD_2X),
                          title="Works (measured)"), [], id="a-measured-title-that-is-measured"),
    pytest.param(good("x", {"aimet-torch": ">=2.40"}, title="A set"),
                 ["rule 'x' → title: a known-good rule without a measurement must say 'vendor-documented'"],
                 id="good-vendor-docs-without-saying-so"),
    pytest.param(good("x", {"aimet-torch": ">=2.40"}, title="A set (Vendor-Documented)"), [],
                 id="good-vendor-docs-case-insensitive"),
    pytest.param(good("x", {"aimet-torch": ">=2.40"}, title="A set", basis="reported"),
                 ["rule 'x' → basis: a known-good rule must be measured or vendor-documented"], id="good-reported"),
    pytest.param(good("x", {"aimet-torch": ">=2.40"}, title="A set", basis="inferred"),
                 ["rule 'x' → basis: a known-good rule must be measured or vendor-documented"], id="good-inferred"),
    pytest.param(good("x", {"aimet-torch": ">=2.40"}, title="A set", basis="measured",
                      measured_on=(Measurement({"aimet-torch": "2.42.0"}, RECORD_2X),)), [], id="good-measured"),
    pytest.param(rule("x", {"aimet-torch": ">=2.40"}, title="A set", basis="vendor-docs"), [],
                 id="a-bad-rule-need-not-say-vendor-documented"),
]  # fmt: skip


@pytest.mark.parametrize(("the_rule", "expected"), BASIS)
def test_basis_claims(the_rule: Rule, expected: list[str]) -> None:
    assert problems(the_rule) == expected


def test_the_contradiction_check_can_be_limited_to_some_good_rules() -> None:
    matrix = small()._replace(rules=(
        good("g1", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}),
        good("g2", {"aimet-torch": "==2.0.0", "torch": "==2.2.2"}),
        rule("b", {"aimet-torch": ">=2.0"}),
    ))  # fmt: skip
    assert [str(p) for p in consistency(matrix, goods={"g2"})] == [
        "rule 'g2': contradiction: known-good, but bad rule 'b' also matches aimet-torch 2.0.0, torch 2.2.2"
    ]
    assert len(consistency(matrix)) == 2 and consistency(matrix, goods=()) == []


def test_a_release_may_only_ship_the_apis_of_its_line() -> None:
    release = next(a for a in small().aimet if str(a.version) == "2.42.0")
    matrix = small()._replace(aimet=(release._replace(apis=("v2", "v3")),))
    line = next(line for line in matrix.api_lines if line.covers(release.version))
    assert problems(matrix=matrix) == [f"aimet '2.42.0' → apis: 'v3' is not an API of its [[api_line]] {str(line.aimet)!r}"]


def test_every_declared_requirement_is_checked_not_only_the_first_unimplemented_one() -> None:
    glibc = next(r for r in FULL.requirements if r.id == "req.glibc")
    extra = glibc._replace(id="req.not-implemented")
    short = glibc._replace(texts={k: v for k, v in glibc.texts.items() if k != "title"})
    others = tuple(r for r in FULL.requirements if r.id != "req.glibc")
    assert problems(matrix=small()._replace(requirements=(extra, short, *others))) == [
        "requirement 'req.not-implemented': no implementation in qatdoctor/diagnose/requirements.py",
        "requirement 'req.glibc' → texts: missing text 'title' (the check formats it)",
    ]


def flagged(matrix: Matrix, aimet: str | None = None, torch: str | None = None) -> Matrix:
    """The matrix with one aimet-torch release, or one torch release, marked as a `matrix refresh` proposal."""
    releases = tuple(a._replace(proposed=str(a.version) == aimet) for a in matrix.aimet)
    series = tuple(s._replace(proposed_releases=tuple(r for r in s.releases if str(r) == torch)) for s in matrix.torch)
    return matrix._replace(aimet=releases, torch=series)


RUN = Measurement({"aimet-torch": "2.42.0", "torch": "2.14.1"}, RECORD_2X)
PROPOSED = [
    pytest.param({}, [], id="reviewed"),
    pytest.param({"aimet": "2.42.0"}, ["rule 'x' → measured_on[0]: measured on aimet-torch 2.42.0, whose entry is "
                                       "still proposed: review it against the run and delete `proposed`"],
                 id="proposed-aimet-release"),
    pytest.param({"torch": "2.14.1"}, ["rule 'x' → measured_on[0]: measured on torch 2.14.1, whose entry is still "
                                       "proposed: review it against the run and delete `proposed`"],
                 id="proposed-torch-release"),
    pytest.param({"aimet": "2.0.0", "torch": "2.2.2"}, [], id="other-releases-proposed"),
]  # fmt: skip


@pytest.mark.parametrize(("marked", "expected"), PROPOSED)
def test_a_measured_release_must_not_stay_proposed(marked: dict[str, str], expected: list[str]) -> None:
    rule_x = good("x", {"aimet-torch": "==2.42.0", "torch": "==2.14.1"}, basis="measured", title="A set",
                  measured_on=(RUN,))  # fmt: skip
    assert problems(rule_x, matrix=flagged(small(), **marked)) == expected
