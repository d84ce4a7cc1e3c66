"""Invariants the mutation run (scripts/mutation) showed untested: unknown is never green, every requirement
check fails when it should, the lint rejects what it claims to, and the JSON keeps what a finding says."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from qatdoctor.authoring.lint import lint
from qatdoctor.core import load_matrix
from qatdoctor.diagnose.evaluate import evaluate, verdict_of
from qatdoctor.diagnose.requirements import Context, check_requirements, cuda_major, runs_on
from qatdoctor.jsonio import finding_to_dict
from qatdoctor.knowledge.entries import Matrix, ProbeMatch
from qatdoctor.knowledge.load import _condition
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.records import Fact, Facts, Gpu, Status, Verdict


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(None)


def facts(**values: str) -> Facts:
    return Facts({k.replace("_", "-").replace("env-", "env:"): Fact.known(v) for k, v in values.items()})


def requirement_findings(matrix: Matrix, the_facts: Facts) -> dict[str, Status]:
    """The built-in checks alone (no matrix rule can stand in for them)."""
    aimet_version = parse_version(the_facts.value("aimet-torch") or "0")
    torch_version = parse_version(the_facts.value("torch") or "0")
    python = the_facts.value("python")
    aimet = matrix.aimet_release(aimet_version)
    aimet = aimet.for_python(parse_version(python).series) if aimet and python else aimet
    series = matrix.torch_series(torch_version.series)
    found: dict[str, Status] = {}
    for finding in check_requirements(Context(the_facts, matrix, aimet, series)):
        if found.get(finding.id) is not Status.FAIL:
            found[finding.id] = finding.status
    return found


# --- unknown is never green ----------------------------------------------------------------------------------


def test_unknown_is_never_green(matrix: Matrix) -> None:
    """Random environments: OK only when aimet-torch, torch and Python are all stated, known to the matrix, and
    the pair lands on a known-good combination; never when anything that matters is missing or unknown."""
    rng = random.Random(11)
    aimets = [str(a.version) for a in matrix.aimet] + ["2.99.0", "3.0.0", "0.1", None]
    torches = [str(r) for s in matrix.torch for r in s.releases] + ["2.99.1", "9.0.0", None]
    pythons = ["3.8.10", "3.10.13", "3.11.7", "3.12.1", "3.13.0", "3.99", None]
    known_aimet = {str(a.version) for a in matrix.aimet}
    known_torch = {str(r) for s in matrix.torch for r in s.releases}
    for _ in range(400):
        aimet, torch, python = rng.choice(aimets), rng.choice(torches), rng.choice(pythons)
        values = {"aimet-torch": aimet, "torch": torch, "python": python}
        the_facts = Facts({k: Fact.known(v) if v else Fact.unknown("not given") for k, v in values.items()})
        evaluation = evaluate(the_facts, matrix)
        if evaluation.verdict is Verdict.OK:
            assert aimet in known_aimet and torch in known_torch and python, values
            assert evaluation.lands_on, values
            assert not any(f.counts_unknown for f in evaluation.findings), values
        if None in values.values() or (aimet not in known_aimet) or (torch not in known_torch):
            assert evaluation.verdict is not Verdict.OK, values


def test_an_untested_pair_is_unknown_not_ok(matrix: Matrix) -> None:
    evaluation = evaluate(facts(aimet_torch="2.5.0", torch="2.8.0", python="3.10.13"), matrix)
    ids = {f.id: f.status for f in evaluation.findings}
    assert ids.get("coverage.untested-combination") is Status.UNKNOWN
    assert evaluation.verdict is not Verdict.OK


@pytest.mark.parametrize(
    ("name", "value"), [("aimet-torch", "2.99.0"), ("torch", "2.99.1"), ("aimet-torch", "not-a-version")]
)
def test_a_version_outside_the_matrix_is_outside_coverage(matrix: Matrix, name: str, value: str) -> None:
    values = {"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11.7", name: value}
    evaluation = evaluate(Facts({k: Fact.known(v) for k, v in values.items()}), matrix)
    assert any(f.id == f"coverage.{name}" and f.status is Status.UNKNOWN for f in evaluation.findings)
    assert evaluation.verdict is not Verdict.OK


def test_verdict_order(matrix: Matrix) -> None:
    bad = evaluate(facts(aimet_torch="2.42.0", torch="2.2.2", python="3.11.7"), matrix)
    assert bad.verdict is Verdict.PROBLEMS
    assert verdict_of(()) is Verdict.OK


def test_a_yanked_release_is_flagged(matrix: Matrix) -> None:
    release = next(a for a in matrix.aimet if str(a.version) == "2.42.0")
    yanked = matrix._replace(aimet=tuple(a._replace(yanked="broken upload") if a is release else a for a in matrix.aimet))
    found = {f.id: f for f in evaluate(facts(aimet_torch="2.42.0", torch="2.14.1", python="3.11.7"), yanked).findings}
    assert "coverage.yanked" in found and "broken upload" in found["coverage.yanked"].title


# --- every requirement check fails when it should ------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "values"),
    [
        ("req.python", {"aimet_torch": "1.31.2", "torch": "1.13.1", "python": "3.11.7"}),
        ("req.python-wheel", {"aimet_torch": "2.0.0", "torch": "2.2.2", "python": "3.13.0"}),
        ("req.torch", {"aimet_torch": "1.32.2", "torch": "2.1.2", "python": "3.10.13"}),
        ("req.torchvision", {"aimet_torch": "1.32.2", "torch": "2.2.2", "torchvision": "0.16.2", "python": "3.10.13"}),
        ("req.numpy", {"aimet_torch": "1.32.2", "torch": "2.2.2", "numpy": "2.0.1", "python": "3.10.13"}),
        ("req.glibc", {"aimet_torch": "1.31.2", "torch": "1.13.1", "glibc": "2.31", "python": "3.10.13"}),
        ("req.cuda-major", {"aimet_torch": "1.31.1", "torch": "1.13.1+cu117", "cuda": "12.1", "python": "3.8.10"}),
        ("req.v1-removed", {"aimet_torch": "2.31.0", "torch": "2.8.0", "aimet_api": "v1", "python": "3.10.13"}),
        ("req.v1", {"aimet_torch": "2.0.0", "torch": "2.4.1", "aimet_api": "v1", "python": "3.10.13"}),
        ("req.torchvision-pair", {"aimet_torch": "2.42.0", "torch": "2.14.1", "torchvision": "0.20.1", "python": "3.11.7"}),
        ("req.driver", {"aimet_torch": "2.42.0", "torch": "2.14.1+cu130", "cuda": "13.0", "driver": "550.54", "python": "3.11.7"}),
    ],
)
def test_each_requirement_check_fails_when_it_should(matrix: Matrix, check: str, values: dict[str, str]) -> None:
    assert requirement_findings(matrix, facts(**values)).get(check) is Status.FAIL


def test_a_missing_system_library_fails(matrix: Matrix) -> None:
    the_facts = facts(aimet_torch="1.32.2", torch="2.2.2", python="3.10.13").with_values(
        {"lib:liblapacke.so.3": Fact.absent("not found")}
    )
    assert requirement_findings(matrix, the_facts).get("req.system-lib") is Status.FAIL


def test_a_gpu_without_kernels_fails(matrix: Matrix) -> None:
    the_facts = facts(aimet_torch="2.42.0", torch="2.14.1+cu130", cuda="13.0", driver="580.95", python="3.11.7")
    old_gpu = the_facts.with_gpus((Gpu("Tesla K80", "3.7"),))
    assert requirement_findings(matrix, old_gpu).get("req.gpu-arch") is Status.FAIL
    assert "req.gpu-arch" not in requirement_findings(matrix, the_facts.with_gpus((Gpu("H100", "9.0"),)))


def test_the_checks_pass_on_a_vendor_documented_set(matrix: Matrix) -> None:
    the_facts = facts(aimet_torch="1.32.2", torch="2.2.2", torchvision="0.17.2", numpy="1.23.5", glibc="2.35",
                      python="3.10.13", cuda="12.1", driver="550.54").with_values(
        {"lib:liblapacke.so.3": Fact.known("present")}
    )
    failing = {k for k, v in requirement_findings(matrix, the_facts).items() if v is Status.FAIL}
    assert failing == set()


@pytest.mark.parametrize("missing", ["glibc", "numpy", "torchvision", "driver"])
def test_an_unknown_fact_a_check_needs_is_unknown_not_pass(matrix: Matrix, missing: str) -> None:
    values = {"aimet_torch": "1.32.2", "torch": "2.2.2+cu121", "torchvision": "0.17.2", "numpy": "1.23.5", "glibc": "2.35",
                  "python": "3.10.13", "cuda": "12.1", "driver": "550.54"}  # fmt: skip
    values.pop(missing)
    the_facts = facts(**values).with_values({missing: Fact.unknown("could not read it")})
    statuses = set(requirement_findings(matrix, the_facts).values())
    assert Status.UNKNOWN in statuses


def test_helpers() -> None:
    assert cuda_major("12.1") == 12 and cuda_major(None) is None and cuda_major("cpu") is None
    assert runs_on("8.9", ("8.6",)) and not runs_on("8.0", ("8.6",)) and not runs_on("9.0", ("8.6",))


# --- the lint rejects what it claims to ------------------------------------------------------------------------


def _with_rule(matrix: Matrix, **changes: object) -> Matrix:
    template = next(r for r in matrix.rules if r.kind == "bad" and r.scope == "environment" and not r.triage_only)
    rule = template._replace(id="lint-probe", **changes)
    return matrix._replace(rules=(*matrix.rules, rule))


def _lint_lines(matrix: Matrix) -> list[str]:
    return [str(p) for p in lint(matrix) if "lint-probe" in str(p) or "evidence" in str(p)]


def test_lint_rejects_an_unsatisfiable_range(matrix: Matrix) -> None:
    broken = _with_rule(matrix, when=(_condition("aimet-torch", ">2.5,<2.0"),))
    assert any("matches no version at all" in line for line in _lint_lines(broken))


def test_lint_rejects_an_unreachable_range(matrix: Matrix) -> None:
    broken = _with_rule(matrix, when=(_condition("aimet-torch", "==9.9.9"),))
    assert any("unreachable" in line for line in _lint_lines(broken))


def test_lint_rejects_a_contradiction(matrix: Matrix) -> None:
    good = next(r for r in matrix.rules if r.kind == "good")
    broken = _with_rule(matrix, when=good.when, severity="error", scope="environment", triage_only=False)
    problems = [str(p) for p in lint(broken)]
    assert any("contradiction" in p and "lint-probe" in p and good.id in p for p in problems)


def test_lint_rejects_dangling_references(matrix: Matrix) -> None:
    broken = _with_rule(
        matrix, covers=("req.no-such-check",), probes=(ProbeMatch("no-such-model", "no-such-stage", "fail", "nope"),)
    )
    lines = _lint_lines(broken)
    for expected in ("unknown requirement check", "unknown probe model", "unknown probe stage", "unknown probe check"):
        assert any(expected in line for line in lines), expected


def test_lint_rejects_a_missing_evidence_file(matrix: Matrix, tmp_path: Path) -> None:
    record = matrix.evidence[0]._replace(id="lint-probe-record", file="evidence/nope.json")
    broken = matrix._replace(evidence=(*matrix.evidence, record), path=str(tmp_path / "compat_matrix.toml"))
    assert any("nope.json does not exist" in str(p) for p in lint(broken))


# --- the JSON keeps what a finding says ------------------------------------------------------------------------


def test_finding_json_keeps_evidence_fixes_and_sources(matrix: Matrix) -> None:
    evaluation = evaluate(facts(aimet_torch="1.32.2", torch="2.1.2", python="3.10.13"), matrix)
    finding = next(f for f in evaluation.findings if f.evidence and f.sources)
    data = finding_to_dict(finding)
    assert data["evidence"] == list(finding.evidence) and data["evidence"]
    assert [s["ref"] for s in data["sources"]] == [s.ref for s in finding.sources]
    assert data["status"] == finding.status.value and data["severity"] == finding.severity.value


# --- a matched rule becomes the finding it says ----------------------------------------------------------------


def test_rule_finding_carries_the_rule(matrix: Matrix) -> None:
    from qatdoctor.diagnose.conditions import evaluate_all
    from qatdoctor.diagnose.rules import rule_finding
    from qatdoctor.records import told

    rule = next(r for r in matrix.rules if r.kind == "bad" and r.scope == "environment" and r.fixes and r.sources)
    the_facts = Facts({c.fact: Fact.unknown("not given") for c in rule.when})
    undecided = rule_finding(rule, evaluate_all(rule.when, the_facts), python="/env/bin/python")
    assert (undecided.id, undecided.title, undecided.origin) == (rule.id, rule.title, "matrix")
    assert undecided.status is Status.UNKNOWN and told(undecided).startswith("Could not decide (needs ")
    assert undecided.summary == rule.summary and undecided.sources == rule.sources
    assert undecided.severity.value == rule.severity and undecided.construct is None
    assert undecided.basis == rule.basis_for(the_facts)[0] and undecided.measured_on == rule.measured_on
    assert [f.kind for f in undecided.fixes] == [f.kind for f in rule.fixes]
    assert [f.summary for f in undecided.fixes] == [f.summary for f in rule.fixes]
    assert all("{python}" not in c for f in undecided.fixes for c in f.commands)
    assert any(line in undecided.evidence for line in evaluate_all(rule.when, the_facts).missing)
    confirmed = rule_finding(rule, evaluate_all(rule.when, the_facts), confirmed=True)
    assert confirmed.basis == "measured"


def test_fix_from_rule_keeps_version_fixes_whole(matrix: Matrix) -> None:
    from qatdoctor.diagnose.rules import fix_from_rule
    from qatdoctor.knowledge.entries import RuleFix
    from qatdoctor.knowledge.versions import parse_specifier

    pin = fix_from_rule(RuleFix("pin", "pin it", ("{python} -m pip install x",), None, "numpy", parse_specifier("<2")),
                        python="/env/bin/python")  # fmt: skip
    assert (pin.kind, pin.summary, pin.commands, pin.package, pin.spec) == (
        "pin", "pin it", ("/env/bin/python -m pip install x",), "numpy", "<2"
    )  # fmt: skip
    code = fix_from_rule(RuleFix("code", "swap", (), "model = swap(model)", None, None))
    assert (code.kind, code.summary, code.code, code.package, code.spec) == ("code", "swap", "model = swap(model)",
                                                                            None, None)  # fmt: skip
    no_spec = fix_from_rule(RuleFix("upgrade", "newer", (), None, "torch", None))
    assert no_spec.package is None and no_spec.kind == "upgrade"
    other = fix_from_rule(RuleFix("system", "apt", (), None, "liblapacke", parse_specifier(">=1")))
    assert other.package is None


def test_model_rules_are_caveats_and_good_rules_pass(matrix: Matrix) -> None:
    from qatdoctor.diagnose.conditions import evaluate_all
    from qatdoctor.diagnose.rules import rule_finding
    from qatdoctor.records import Scope, told

    model_rule = next(r for r in matrix.rules if r.kind == "bad" and r.scope == "model")
    point = Facts({c.fact: Fact.unknown("x") for c in model_rule.when})
    caveat = rule_finding(model_rule, evaluate_all(model_rule.when, point))
    assert caveat.scope is Scope.CAVEAT and caveat.status is Status.UNKNOWN and caveat.construct == model_rule.model_feature
    confirmed = rule_finding(model_rule, evaluate_all(model_rule.when, point), confirmed=True)
    assert told(confirmed).startswith("The probe's stand-in model reproduced this")
    good = next(r for r in matrix.rules if r.kind == "good")
    passed = rule_finding(good, evaluate_all(good.when, Facts({})))
    assert passed.status is Status.PASS and passed.scope is Scope.ENVIRONMENT
