"""Every rule states its basis; measured claims name versions and records; findings carry basis and measured_on."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from qatdoctor.authoring.lint import lint
from qatdoctor.diagnose.evaluate import evaluate
from qatdoctor.jsonio import finding_to_dict
from qatdoctor.knowledge.entries import Matrix, same_version
from qatdoctor.knowledge.load import load
from qatdoctor.records import Fact, Facts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(ROOT / "compat_matrix.toml")


def facts(**values: str) -> Facts:
    return Facts({k.replace("_", "-"): Fact.known(v) for k, v in values.items()})


def finding(matrix: Matrix, rule_id: str, **values: str) -> dict:
    found = {f.id: f for f in evaluate(facts(**values), matrix).findings}
    return finding_to_dict(found[rule_id])


def test_every_rule_states_its_basis(matrix: Matrix) -> None:
    bases = {r.basis for r in matrix.rules}
    assert bases <= {"measured", "vendor-docs", "reported", "inferred"}
    for rule in matrix.rules:
        assert rule.measured == bool(rule.measured_on), rule.id
        if rule.kind == "good" and not rule.measured:
            assert "vendor-documented" in rule.title and "(measured)" not in rule.title, rule.id


def test_the_shipped_matrix_lints_clean(matrix: Matrix) -> None:
    assert lint(matrix) == []


@pytest.mark.parametrize(
    ("measured", "value", "same"),
    [("3.10", "3.10.13", True), ("2.2.2", "2.2.2+cu121", True), ("2.8.0", "2.8", True), ("1.32.1.post1", "1.32.1", False),
     ("3.10", "3.11.7", False), ("2.14.1", "2.14.10", False)],
)  # fmt: skip
def test_same_version(measured: str, value: str, same: bool) -> None:
    assert same_version(measured, value) is same


def test_measured_versions_give_a_measured_finding(matrix: Matrix) -> None:
    good = finding(matrix, "good-aimet-2.42.0-torch-2.14.1-py311", aimet_torch="2.42.0", torch="2.14.1+cu130",
                   python="3.11.7", aimet_api="v2")  # fmt: skip
    assert good["basis"] == "measured"
    assert good["measured_on"] == [{"aimet-torch": "2.42.0", "python": "3.11", "torch": "2.14.1"}]
    assert any("probe-aimet-2.42.0-torch-2.14.1-py311" in line for line in good["evidence"]), "the record, once"
    assert any(line.startswith("measured on aimet-torch 2.42.0, torch 2.14.1, python 3.11") for line in good["evidence"])


def test_other_versions_in_the_range_are_extrapolated(matrix: Matrix) -> None:
    guard = finding(matrix, "aimet-v1-api-torch-mismatch-2.1-2.24", aimet_torch="2.15.0", aimet_api="v1",
                    torch="2.2.2", python="3.10.13")  # fmt: skip
    assert guard["basis"] == "extrapolated"
    line = next(e for e in guard["evidence"] if e.startswith("expected"))
    assert line == "expected (not measured on aimet-torch 2.15.0, torch 2.2.2; measured on aimet-torch 2.10.0, torch 2.2.2)"


def test_unmeasured_rules_say_what_they_rest_on(matrix: Matrix) -> None:
    frozen = finding(matrix, "norm-eval-bn-unfrozen-before-1.32.1", aimet_torch="1.31.2", torch="1.13.1")
    assert frozen["basis"] == "vendor-docs" and frozen["measured_on"] == []
    assert any("vendor-documented" in e for e in frozen["evidence"])


def test_measured_landing_needs_a_measurement_of_these_versions(matrix: Matrix) -> None:
    measured = facts(aimet_torch="2.42.0", torch="2.14.1", python="3.11.7", aimet_api="v2")
    assert matrix.measured_landing(evaluate(measured, matrix).lands_on, measured)
    pinned = facts(aimet_torch="1.32.2", torch="2.2.2", python="3.8.18", aimet_api="v1")
    lands = evaluate(pinned, matrix).lands_on
    assert lands and not matrix.measured_landing(lands, pinned)  # the pin says so; no run of ours on Python 3.8


def test_the_bn_subclass_freeze_is_measured_on_every_2x_release_it_claims(matrix: Matrix) -> None:
    rule = matrix.rule("bn-subclass-stats-frozen-v2")
    assert rule is not None and rule.measured
    releases = [a.version for a in matrix.aimet if a.version.comparable.major == 2]
    spec = next(c.spec for c in rule.when if c.fact == "aimet-torch")
    assert spec is not None
    claimed = [v for v in releases if spec.contains(v.comparable, True)]
    measured = {m.versions["aimet-torch"] for m in rule.measured_on}
    assert str(max(v.comparable for v in claimed)) == "2.42.0"  # no open-ended claim beyond what was run
    assert {"2.0.0", "2.5.0", "2.9.0", "2.10.0", "2.42.0"} <= measured


def write_rule(tmp_path: Path, rule: str) -> Path:
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    text = (ROOT / "compat_matrix.toml").read_text(encoding="utf-8")
    path = tmp_path / "compat_matrix.toml"
    path.write_text(text.rstrip("\n") + "\n\n" + rule, encoding="utf-8")
    return path


RULE = """[[rule]]
id = "x-test"
kind = "{kind}"
severity = "{severity}"
title = "{title}"
summary = "s"
when = {{ aimet-torch = ">=2.40,<2.43", aimet-api = "v2" }}
basis = "{basis}"
{measured}sources = [{{ kind = "issue", ref = "https://example.org/1" }}]
"""


@pytest.mark.parametrize(
    ("kind", "title", "basis", "measured", "expected"),
    [
        ("bad", "t", "measured", "", "basis 'measured' needs the versions measured"),
        ("bad", "t", "reported", 'measured_on = [{ aimet-torch = "2.42.0", evidence = "probe-aimet-2.42.0-torch-2.14.1-py311" }]\n',
         "the basis is 'measured', not 'reported'"),
        ("bad", "t", "measured", 'measured_on = [{ aimet-torch = "2.41.0", evidence = "probe-aimet-2.42.0-torch-2.14.1-py311" }]\n',
         "records aimet-torch 2.42.0, not aimet-torch 2.41.0"),
        ("bad", "t", "measured", 'measured_on = [{ aimet-torch = "2.0.0", evidence = "probe-aimet-2.0.0-torch-2.2.2-py310-v2" }]\n',
         "outside the rule's own range"),
        ("bad", "t", "measured", 'measured_on = [{ aimet-torch = "2.42.0", evidence = "no-such-record" }]\n',
         "no [[evidence]] record 'no-such-record'"),
        ("bad", "t", "measured", 'measured_on = [{ torch = "2.14.1", evidence = "probe-aimet-2.42.0-torch-2.14.1-py311" }]\n',
         "torch is not one of the rule's `when` facts"),
        ("good", "aimet-torch 2.42 with anything (known-good)", "vendor-docs", "",
         "says it was measured, but its basis is 'vendor-docs'"),
        ("good", "aimet-torch 2.42 with anything", "vendor-docs", "", "must say 'vendor-documented'"),
        ("good", "aimet-torch 2.42 (reported working)", "reported", "", "must be measured or vendor-documented"),
    ],
)  # fmt: skip
def test_lint_holds_claims_to_their_evidence(
    tmp_path: Path, kind: str, title: str, basis: str, measured: str, expected: str
) -> None:
    severity = "info" if kind == "good" else "error"
    path = write_rule(tmp_path, RULE.format(kind=kind, severity=severity, title=title, basis=basis, measured=measured))
    problems = [str(p) for p in lint(load(path)) if "x-test" in p.where]
    assert any(expected in p for p in problems), problems


def test_schema_requires_a_basis(tmp_path: Path) -> None:
    from qatdoctor.knowledge.load import MatrixError

    rule = re.sub(r'^basis = .*\n', "", RULE.format(kind="bad", severity="error", title="t", basis="", measured=""),
                  flags=re.M)  # fmt: skip
    with pytest.raises(MatrixError) as caught:
        load(write_rule(tmp_path, rule))
    assert any("basis: required field is missing" in str(p) for p in caught.value.problems)
