"""`qatdoctor explain` on real AIMET tracker reports (tests/data/explain/corpus), judged by what each thread established.

Each file: a header (url, title, scope, the thread's outcome, `expect`: the rule ids that name the thread's cause or
fix, `allow`: ids that would not contradict a thread without a resolution, `wrong`: text of a fix the thread shows
wrong), `---`, then the report as posted, trimmed. Only the text after `---` goes to `explain`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from qatdoctor.explain import explain_stream
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.records import Finding, Report, Status, Verdict

CORPUS = Path(__file__).resolve().parents[1] / "data" / "explain" / "corpus"
IN_SCOPE_TARGET = 0.9


class Case(NamedTuple):
    name: str
    url: str
    scope: str
    outcome: str
    expect: frozenset[str]
    allow: frozenset[str]
    wrong: str
    body: str


def read_case(path: Path) -> Case:
    head, _, body = path.read_text(encoding="utf-8").partition("\n---\n")
    fields = {m[1]: m[2].strip() for m in (re.match(r"(\w+):(.*)$", line) for line in head.splitlines()) if m}

    def ids(key: str) -> frozenset[str]:
        return frozenset(i for i in fields.get(key, "").split(",") if i)

    return Case(
        path.stem, fields["url"], fields["scope"], fields["outcome"], ids("expect"), ids("allow"),
        fields.get("wrong", ""), body,
    )  # fmt: skip


CASES = [read_case(p) for p in sorted(CORPUS.glob("*.md"))]


def diagnoses(report: Report) -> list[Finding]:
    """What explain puts forward as the cause: a matched error (FAIL from the log) or a likely finding."""
    return [f for f in report.findings if (f.origin == "log" and f.status is Status.FAIL) or f.likely is not None]


def judge(case: Case, report: Report) -> str | None:
    """None when explain answered as the thread allows, else why not."""
    found = diagnoses(report)
    ids = {f.id for f in found}
    fixes = " ".join(f"{fx.summary} {' '.join(fx.commands)}" for f in report.findings for fx in f.fixes)
    if case.wrong and case.wrong in fixes:
        return f"offers the fix the thread shows wrong: {case.wrong}"
    if case.expect:
        return None if ids & case.expect else f"expected one of {sorted(case.expect)}, got {sorted(ids) or 'nothing'}"
    extra = ids - case.allow
    if extra:
        return f"false diagnosis {sorted(extra)}"
    if report.verdict is Verdict.PROBLEMS and not ids:
        return "verdict problems with nothing the thread supports"
    return None


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(None)


def explain_case(matrix: Matrix, case: Case) -> Report:
    return explain_stream(io.BytesIO(case.body.encode()), matrix, target=case.name)


def test_the_corpus_is_real_and_large_enough() -> None:
    assert len(CASES) >= 40
    assert all(c.url.startswith("https://github.com/qualcomm/aimet/issues/") for c in CASES)
    assert {c.scope for c in CASES} == {"in", "out"}
    assert sum(c.scope == "out" for c in CASES) >= 10
    assert all(c.outcome for c in CASES), "every case states what its thread established"


@pytest.mark.parametrize("case", [c for c in CASES if c.scope == "out"], ids=lambda c: c.name)
def test_out_of_scope_reports_get_no_false_diagnosis(matrix: Matrix, case: Case) -> None:
    assert judge(case, explain_case(matrix, case)) is None


@pytest.mark.parametrize("case", [c for c in CASES if c.scope == "in" and not c.expect], ids=lambda c: c.name)
def test_unresolved_threads_get_nothing_they_contradict(matrix: Matrix, case: Case) -> None:
    assert judge(case, explain_case(matrix, case)) is None


def test_in_scope_hit_rate(matrix: Matrix) -> None:
    """In-scope reports with a resolution: >= 90 % get a failing or likely finding naming the thread's cause."""
    resolved = [c for c in CASES if c.scope == "in" and c.expect]
    misses = {c.name: why for c in resolved if (why := judge(c, explain_case(matrix, c))) is not None}
    rate = 1 - len(misses) / len(resolved)
    assert rate >= IN_SCOPE_TARGET, f"hit rate {rate:.0%} on {len(resolved)}; misses: {misses}"


if __name__ == "__main__":  # `python tests/explain/test_explain_corpus.py`: the table and the in-scope hit rate
    loaded = load(None)
    resolved = [c for c in CASES if c.scope == "in" and c.expect]
    missed = 0
    for case in CASES:
        report = explain_case(loaded, case)
        why = judge(case, report)
        missed += why is not None and case in resolved
        print(f"{'ok ' if why is None else 'BAD'} {case.scope:3} {case.name:45} {why or [f.id for f in diagnoses(report)]}")
    print(f"in-scope with a resolution: {len(resolved) - missed}/{len(resolved)} right; {len(CASES)} reports in all")
