"""`matrix merge-evidence`: records, generated rules with provenance, curation notes, idempotence, lint."""

from __future__ import annotations

import difflib
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from qatdoctor.authoring.lint import lint
from qatdoctor.authoring.merge import merge
from qatdoctor.knowledge.load import MatrixError, load
from qatdoctor.lab import evidence
from qatdoctor.lab.evidence import Cell
from qatdoctor.records import ErrorInfo, ProbeRun

ROOT = Path(__file__).resolve().parents[2]
HOST = {"platform": "linux-x86_64", "os": "Debian GNU/Linux 12 (bookworm)", "glibc": "2.36", "accelerator": "CPU only"}


@pytest.fixture
def matrix_copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "compat_matrix.toml", tmp_path / "compat_matrix.toml")
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    return tmp_path / "compat_matrix.toml"


def recorded(name: str) -> Cell:
    _, cells = evidence.read(ROOT / "evidence" / f"{name}.json")
    return cells[0]


def retarget(cell: Cell, torch: str, python: str = "3.11.7") -> Cell:
    """The same probe outcome, as if measured with another torch (what a sweep cell looks like)."""
    versions = {**cell.versions, "torch": torch, "python": python}
    probe = cell.probe._replace(versions=versions) if cell.probe else None
    return replace(cell, id=evidence.cell_id(versions), versions=versions, probe=probe)


def import_failure(torch: str, error: ErrorInfo) -> Cell:
    versions = {"aimet-torch": "2.42.0", "torch": torch, "python": "3.11.7"}
    probe = ProbeRun(state="import-failed", api="v2", import_error=error, versions=versions)
    return evidence.make_cell(evidence_facts(versions), probe)


def evidence_facts(versions: dict[str, str]) -> evidence.Facts:
    from qatdoctor.records import Fact, Facts

    return Facts({k: Fact.known(v) for k, v in versions.items()})


def write(path: Path, *cells: Cell) -> Path:
    evidence.write(path, list(cells), HOST)
    return path


def test_clean_cell_becomes_a_measured_good_rule(matrix_copy: Path) -> None:
    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.13.0+cu130")
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "s.json", clean)])
    assert result.records == ("probe-aimet-2.42.0-torch-2.13.0-py311",)
    assert result.rules == ("good-measured-aimet-2.42.0-torch-2.13.0-py311",)
    matrix = load(matrix_copy)
    rule = matrix.rule("good-measured-aimet-2.42.0-torch-2.13.0-py311")
    assert rule is not None and rule.kind == "good"
    assert {c.fact: c.raw for c in rule.when} == {
        "aimet-torch": "==2.42.0", "aimet-api": "v2", "torch": "==2.13.*", "python": "==3.11.*",
    }  # fmt: skip
    assert [s.ref for s in rule.sources] == ["evidence:probe-aimet-2.42.0-torch-2.13.0-py311"]
    assert "evidence/s.json" in (rule.details or "") and "bn_subclass" in (rule.details or "")
    assert lint(matrix) == []


def test_already_known_good_cell_adds_no_rule(matrix_copy: Path) -> None:
    result = merge(matrix_copy, [ROOT / "evidence" / "probe-aimet-2.42.0-torch-2.14.1-py311.json"])
    assert result.rules == () and result.records == ("probe-aimet-2.42.0-torch-2.14.1-py311",)


def test_new_import_failure_becomes_an_environment_rule(matrix_copy: Path) -> None:
    error = ErrorInfo("ImportError", "cannot import name 'foo' from 'torch.fx' (torch/fx/__init__.py)")
    cell = import_failure("2.1.2", error)
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "f.json", cell)])
    assert result.rules == ("import-failure-aimet-2.42.0-torch-2.1.2-py311",)
    rule = load(matrix_copy).rule(result.rules[0])
    assert rule is not None and rule.kind == "bad" and rule.scope == "environment" and rule.severity == "error"
    assert {c.fact: c.raw for c in rule.when} == {"aimet-torch": "==2.42.0", "torch": "==2.1.*", "python": "==3.11.*"}
    assert rule.signatures[0].type == "ImportError"
    assert rule.signatures[0].text == "cannot import name 'foo' from 'torch.fx'"  # the path is dropped
    assert [(p.model, p.stage, p.status) for p in rule.probes] == [("*", "import", "fail")]


def test_explained_import_failure_adds_no_rule(matrix_copy: Path) -> None:
    error = ErrorInfo("ImportError", "cannot import name '_detect_fake_mode_from_gm' from 'torch._export.utils'")
    cell = import_failure("2.2.2", error)
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "e.json", cell)])
    assert result.rules == ()  # aimet-2.42-torch-2.2-import-error explains it


def test_unexplained_model_failures_are_listed_for_curation(matrix_copy: Path) -> None:
    cell = recorded("probe-aimet-2.42.0-torch-2.14.1-py311")
    assert cell.probe is not None
    broken = [c._replace(stages=tuple(s._replace(error=ErrorInfo("KeyError", "x")) if s.stage == "quantsim" and
              c.model == "conv_silu" else s for s in c.stages)) for c in cell.probe.cases]  # fmt: skip
    from qatdoctor.records import Status

    broken = [c._replace(stages=tuple(s._replace(status=Status.FAIL) if s.error and s.error.type == "KeyError" else s
                                      for s in c.stages)) for c in broken]  # fmt: skip
    weird = retarget(replace(cell, probe=cell.probe._replace(cases=tuple(broken))), "2.11.0")
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "w.json", weird)])
    assert any("conv_silu" in line and "unexplained" in line for line in result.curate)
    assert not any(r.startswith("import-failure") for r in result.rules)


def test_clean_cell_a_bad_rule_contradicts_is_left_to_a_human(matrix_copy: Path) -> None:
    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.2.2")
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "c.json", clean)])
    assert result.rules == ()
    assert any("aimet-2.42-torch-2.2-import-error" in line for line in result.curate)


def test_merge_is_idempotent(matrix_copy: Path) -> None:
    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.13.0+cu130")
    error = ErrorInfo("ImportError", "cannot import name 'foo' from 'torch.fx'")
    path = write(matrix_copy.parent / "evidence" / "s.json", clean, import_failure("2.1.2", error))
    first = merge(matrix_copy, [path])
    once = matrix_copy.read_text()
    second = merge(matrix_copy, [path])
    assert matrix_copy.read_text() == once
    assert len(first.rules) == 2 and second.rules == () and second.records == first.records


def test_remerging_the_shipped_evidence_changes_nothing(matrix_copy: Path) -> None:
    before = matrix_copy.read_text()
    merge(matrix_copy, sorted((matrix_copy.parent / "evidence").glob("probe-*.json")))
    assert matrix_copy.read_text() == before


def test_invalid_result_is_refused(matrix_copy: Path) -> None:
    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.13.0")
    path = write(matrix_copy.parent / "evidence" / "s.json", clean)
    before = matrix_copy.read_text()
    matrix_copy.write_text(before.replace('schema_version = 1', 'schema_version = 99'))
    with pytest.raises(MatrixError):
        merge(matrix_copy, [path])


def test_new_entries_join_their_table_so_the_file_stays_in_sections(matrix_copy: Path) -> None:
    import tomlkit

    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.13.0+cu130")
    merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "s.json", clean)])
    text = matrix_copy.read_text()
    record = text.index('id = "probe-aimet-2.42.0-torch-2.13.0-py311"')
    assert record < text.index("\n[[rule]]\n")  # after the last [[evidence]], not at the end of the file
    assert text.rstrip().endswith('{ kind = "probe", ref = "evidence:probe-aimet-2.42.0-torch-2.13.0-py311" }\n]')
    assert tomlkit.dumps(tomlkit.parse(text)) == text  # every array of tables in one piece


def test_generated_rules_state_their_measurement(matrix_copy: Path) -> None:
    clean = retarget(recorded("probe-aimet-2.42.0-torch-2.14.1-py311"), "2.13.0+cu130")
    result = merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "s.json", clean)])
    rule = load(matrix_copy).rule(result.rules[0])
    assert rule is not None and rule.basis == "measured"
    assert [(dict(m.versions), m.evidence) for m in rule.measured_on] == [
        ({"aimet-torch": "2.42.0", "torch": "2.13.0", "python": "3.11"}, "probe-aimet-2.42.0-torch-2.13.0-py311")
    ]


def test_a_model_run_becomes_a_case_of_the_record(matrix_copy: Path) -> None:
    _, cells = evidence.read(ROOT / "evidence" / "sweep-bnsub-silufree-2.0-2.9.json")
    merge(matrix_copy, [write(matrix_copy.parent / "evidence" / "m.json", cells[3])])
    record = load(matrix_copy).evidence_record("probe-" + cells[3].id)
    assert record is not None
    case = record.cases["model bn_subclass_relu.py:build"]
    assert "qat_step silent-fail (bn_stats_frozen)" in case and "frozen BN layers: 1" in case


# A matrix laid out unlike the shipped one: merge-evidence edits it with tomlkit, so whatever the layout, every
# line it does not write stays as it was.
SHIPPED_RECORD = "probe-aimet-2.42.0-torch-2.14.1-py311"


def unusual(text: str) -> str:
    """The shipped matrix with comments between entries, a record in dotted keys and another key order, an inline
    table without padding and a `[evidence.versions]` sub-table."""
    start = text.index(f'[[evidence]]\nid = "{SHIPPED_RECORD}"\n')
    end = text.index("\n\n", start)
    record = tomllib.loads(text[start:end])["evidence"][0]
    dotted = "\n".join(f'versions.{json.dumps(k)} = {json.dumps(v)}' for k, v in record["versions"].items())
    rewritten = (
        f'[[evidence]]\n# measured on a CPU runner\nid = "{SHIPPED_RECORD}"\nfile = {json.dumps(record["file"])}\n'
        f'{dotted}\noutcome = {json.dumps(record["outcome"])}\ndate = {record["date"]}\n'
        f'summary = "a stale summary"   # merge-evidence rewrites this one\n'
        f'platform = {json.dumps(record["platform"])}\n'
        f'cases = {{{", ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in record["cases"].items())}}}'
    )
    text = text[:start] + "# a note between two entries\n\n" + rewritten + text[end:]
    first = text.index("[[evidence]]\n")
    head = text[first : text.index("\n\n", first)]
    lines = head.splitlines()
    versions = next(line for line in lines if line.startswith("versions = "))
    table = tomllib.loads(versions)["versions"]
    moved = [line for line in lines if line != versions] + ["", "[evidence.versions]"]
    moved += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items()]
    text = text[:first] + "\n".join(moved) + text[first + len(head) :]
    rules = text.index("\n[[rule]]\n")
    return text[:rules] + "\n# ---- rules (comment that ends the last [[evidence]] entry)\n" + text[rules:]


def changes(before: str, after: str) -> list[tuple[str, list[str], list[str]]]:
    """The lines replaced, deleted or inserted between two texts (line endings included)."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return [(op, a[i1:i2], b[j1:j2]) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_merge_keeps_an_unusual_layout_byte_for_byte(matrix_copy: Path, newline: str) -> None:
    before = unusual(matrix_copy.read_text()).replace("\n", newline)
    matrix_copy.write_bytes(before.encode())
    assert lint(load(matrix_copy)) == []
    clean = retarget(recorded(SHIPPED_RECORD), "2.13.0+cu130")
    path = write(matrix_copy.parent / "evidence" / "s.json", clean)
    shipped = matrix_copy.parent / "evidence" / f"{SHIPPED_RECORD}.json"
    result = merge(matrix_copy, [path, shipped])
    after = matrix_copy.read_bytes().decode()
    assert result.rules == ("good-measured-aimet-2.42.0-torch-2.13.0-py311",)
    edits = changes(before, after)
    assert [op for op, _, _ in edits] == ["replace", "insert", "insert"]
    summary = f'summary = "qatdoctor probe, outcome problems; failing: bn_no_stats, bn_subclass, functional_bn, functional_bn_nostats, shared_conv."   # merge-evidence rewrites this one{newline}'
    assert edits[0][1:] == (['summary = "a stale summary"   # merge-evidence rewrites this one' + newline], [summary])
    record, rule = "".join(edits[1][2]), "".join(edits[2][2])
    assert f'[[evidence]]{newline}id = "probe-aimet-2.42.0-torch-2.13.0-py311"{newline}' in record
    assert f'[[rule]]{newline}id = "good-measured-aimet-2.42.0-torch-2.13.0-py311"{newline}' in rule
    assert after.index(record) < after.index("# ---- rules") < after.index(rule)
    assert after.index("# ---- rules") < after.index(f"{newline}[[rule]]{newline}")  # it still heads the rules
    assert "\n" not in after.replace("\r\n", "") if newline == "\r\n" else "\r" not in after
    matrix = load(matrix_copy)
    assert lint(matrix) == [] and matrix.evidence_record(SHIPPED_RECORD) is not None
    merge(matrix_copy, [path, shipped])
    assert matrix_copy.read_bytes().decode() == after  # idempotent on this layout too



def test_a_merge_that_would_make_the_matrix_invalid_leaves_it_untouched(matrix_copy: Path) -> None:
    clean = retarget(recorded(SHIPPED_RECORD), "2.13.0")
    path = write(matrix_copy.parent / "evidence" / "s.json", clean)
    payload = json.loads(path.read_text())
    path.write_text(json.dumps({**payload, "created": "sometime"}))  # the record's date would not be a date
    before = matrix_copy.read_bytes()
    with pytest.raises(MatrixError, match="must be a TOML date"):
        merge(matrix_copy, [path])
    assert matrix_copy.read_bytes() == before
    assert [p.name for p in matrix_copy.parent.iterdir() if p.name.endswith(".tmp")] == []
