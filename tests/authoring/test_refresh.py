"""`matrix refresh`: real-wheel fixtures read offline reproduce the hand-written entries; style is kept; --check."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import pytest
import tomllib
from packaging.specifiers import SpecifierSet
from typer.testing import CliRunner

from qatdoctor.authoring.lint import lint
from qatdoctor.authoring.refresh import (
    Index,
    IndexFile,
    Proposal,
    PyPIIndex,
    Release,
    WheelDir,
    apply_proposals,
    missing_releases,
    propose_aimet,
    refresh,
)
from qatdoctor.authoring.wheels import read_wheel
from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.versions import parse_version
from tests.matrixkit import beyond, newest_entry

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / "tests" / "data" / "refresh" / "wheels"
TODAY = dt.date(2026, 12, 2)
REMOVED_AIMET = ("1.32.2", "2.28.0", "2.42.0")


def drop(text: str, table: str, key: str, value: str) -> str:
    """Remove one `[[table]]` entry (up to the next table or comment block)."""
    found = re.search(
        r"^\[\[" + table + r"\]\]\n" + key + r' = "' + re.escape(value) + r'"\n(?:(?!\[|#).*\n)*\n?', text, re.M
    )
    assert found is not None, value
    return text[: found.start()] + text[found.end() :]


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    """A copy of the matrix without three aimet-torch releases and the torch 2.15 series."""
    text = (ROOT / "compat_matrix.toml").read_text(encoding="utf-8")
    for version in REMOVED_AIMET:
        text = drop(text, "aimet", "version", version)
    text = drop(text, "torch", "series", "2.15")
    path = tmp_path / "compat_matrix.toml"
    path.write_text(text, encoding="utf-8")
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    return path


def entry(doc: dict, table: str, key: str, value: str) -> dict:
    return next(e for e in doc[table] if e[key] == value)


def test_fixture_wheels_are_small_and_real() -> None:
    assert sum(p.stat().st_size for p in WHEELS.iterdir()) < 1024 * 1024
    facts = read_wheel(WHEELS / "aimet_torch-2.28.0-py310-none-any.whl")
    pymo = next(e for e in facts.elf if "_libpymo" in e.path)
    assert pymo.glibc == "2.34" and "pthread_mutex_trylock" in pymo.glibc_symbols
    assert facts.build_torch == "2.11.0+cu126" and facts.has_v1 and facts.requirement("torch", "v1-deps") == "==2.11.*"
    assert facts.cuda_sonames == ("libcudart-15a7433b.so.12.6.37",) and facts.cuda_major == 12
    cp38 = read_wheel(WHEELS / "aimet_torch-1.32.2-cp38-cp38-manylinux_2_29_x86_64.whl")
    assert cp38.cuda_sonames == ("libcublas.so.11",) and cp38.platform_floor == "2.29" and cp38.cpython == "3.8"
    assert "liblapacke.so.3" in {n for e in cp38.elf for n in e.needed}


def test_missing_releases_are_found_offline(stale: Path) -> None:
    missing = missing_releases(load(stale), WheelDir(WHEELS))
    assert [r.version for r in missing.aimet] == list(REMOVED_AIMET)
    assert [r.version for r in missing.torch] == ["2.15.0"]


def test_refresh_reproduces_the_hand_written_entries(stale: Path) -> None:
    original = tomllib.loads((ROOT / "compat_matrix.toml").read_text(encoding="utf-8"))
    result = refresh(stale, WheelDir(WHEELS), today=TODAY)
    assert result.written and [p.key for p in result.proposals] == [*REMOVED_AIMET, "2.15.0"]
    new = tomllib.loads(stale.read_text(encoding="utf-8"))
    for version in REMOVED_AIMET:
        want, got = entry(original, "aimet", "version", version), entry(new, "aimet", "version", version)
        for field in ("requires_python", "torch", "torchvision", "numpy"):
            assert SpecifierSet(got.get(field, "")) == SpecifierSet(want.get(field, "")), (version, field)
        for field in ("apis", "cuda_major", "glibc_min", "v1", "built_with_torch", "wheel", "system_libs"):
            assert got.get(field) == want.get(field), (version, field)
        assert got["notes"].startswith("Proposed by `qatdoctor matrix refresh`")
        assert {s["kind"] for s in got["sources"]} == {"pypi", "wheel"}
    variant = entry(new, "aimet", "version", "1.32.2")["python_wheels"]["3.8"]
    assert (variant["glibc_min"], variant["cuda_major"], variant["wheel"]) == (
        "2.29", 11, "cp38-cp38-manylinux_2_29_x86_64")  # fmt: skip
    torch = entry(new, "torch", "series", "2.15")
    assert torch["releases"] == ["2.15.0"] and torch["torchvision"] == {"2.15.0": "0.29.2"}
    assert torch["pypi_cuda"] == "cu132" and torch["requires_python"] == ">=3.11"
    # new entries sit in version order and the result is a valid matrix
    versions = [e["version"] for e in new["aimet"]]
    assert versions == sorted(versions, key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)))
    assert load(stale).aimet_release is not None
    # the entries lint clean; the only news is that rules measured on the proposed releases ask for their review
    problems = lint(load(stale))
    review = [p for p in problems if p.message.endswith("whose entry is still proposed: review it against the run "
                                                        "and delete `proposed`")]  # fmt: skip
    assert not [p for p in problems if "aimet" in p.where and p not in review]
    assert review and all(re.search(r"torch (1\.32\.2|2\.28\.0|2\.42\.0|2\.15\.0)\b", p.message) for p in review)


def without(text: str, header: str) -> str:
    """The text less the entry that starts with `header` and the blank line after it."""
    start = text.index(header)
    return text[:start] + text[text.index("\n\n", start) + 2 :]


def test_refresh_keeps_everything_else_byte_for_byte(stale: Path) -> None:
    before = stale.read_text(encoding="utf-8")
    refresh(stale, WheelDir(WHEELS), today=TODAY)
    after = stale.read_text(encoding="utf-8")
    # less the new entries, the file is what it was: rules, evidence, comments and section headings untouched
    headers = [f'[[aimet]]\nversion = "{v}"' for v in REMOVED_AIMET] + ['[[torch]]\nseries = "2.15"']
    rest = after
    for header in headers:
        rest = without(rest, header)
    assert rest == before
    # the new entries use the file's own style and say they are proposed
    assert '  { kind = "pypi", ref = "https://pypi.org/project/aimet-torch/2.42.0/"' in after
    assert 'v1 = { torch = "==2.11.*", cuda_major = 12, python = "==3.10.*", extra = "v1-deps" }' in after
    assert after.count("\nproposed = true\n") - before.count("\nproposed = true\n") == len(headers)
    # a section heading stays right above the section it heads, not above the entry placed before it
    assert '"torch 2.15.0: works" }\n]\n\n[[aimet]]' not in after
    last = after.rindex("[[aimet]]", 0, after.index("# torch minor series"))
    assert after.startswith(f'[[aimet]]\nversion = "{newest_entry(load(stale))}"', last)


# Layouts of the entry before the new one that TOML allows and a line-based reader misses.
LAYOUTS = {
    "a-comment-line-inside": ('apis = ["v2"]\nbuilt_with_torch', 'apis = ["v2"]\n# reviewed by hand\nbuilt_with_torch'),
    "no-spaces-around-equals": ('version = "2.41.0"', 'version="2.41.0"'),
}


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_an_entry_in_any_toml_layout_is_found(stale: Path, layout: tuple[str, str]) -> None:
    text = stale.read_text(encoding="utf-8")
    old_entry = text[text.index('[[aimet]]\nversion = "2.41.0"') :].split("\n\n", 1)[0]
    changed = text.replace(old_entry, old_entry.replace(*layout, 1))
    assert changed != text
    stale.write_text(changed, encoding="utf-8")
    original = entry(tomllib.loads(changed), "aimet", "version", "2.41.0")
    refresh(stale, WheelDir(WHEELS), today=TODAY)
    new = tomllib.loads(stale.read_text(encoding="utf-8"))
    versions = [e["version"] for e in new["aimet"]]
    assert versions == sorted(versions, key=lambda v: tuple(int(p) for p in re.findall(r"\d+", v)))
    assert len(versions) == len(tomllib.loads(changed)["aimet"]) + len(REMOVED_AIMET)
    assert entry(new, "aimet", "version", "2.41.0") == original  # the entry before the new one: whole
    assert entry(new, "aimet", "version", "2.42.0")["proposed"] is True
    assert stale.read_text(encoding="utf-8").count(layout[1]) == 1  # its layout kept


def test_check_exits_1_when_releases_are_missing(stale: Path) -> None:
    before = stale.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["matrix", "refresh", "--check", "--wheels", str(WHEELS), "--matrix", str(stale)])
    assert result.exit_code == ExitCode.PROBLEMS, result.output
    assert "aimet-torch 2.42.0" in result.stdout and "torch 2.15.0" in result.stdout
    assert stale.read_text(encoding="utf-8") == before  # --check never writes


def test_check_passes_on_the_shipped_matrix_with_its_wheels(tmp_path: Path) -> None:
    shutil.copy(ROOT / "compat_matrix.toml", tmp_path / "compat_matrix.toml")
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    result = CliRunner().invoke(
        app, ["matrix", "refresh", "--check", "--wheels", str(WHEELS), "--matrix", str(tmp_path / "compat_matrix.toml")]
    )
    assert result.exit_code == ExitCode.OK, result.output
    assert "has every stable" in result.stdout


def test_evidence_file_records_every_wheel(tmp_path: Path) -> None:
    out = tmp_path / "wheels.json"
    shutil.copy(ROOT / "compat_matrix.toml", tmp_path / "compat_matrix.toml")
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    matrix = tmp_path / "compat_matrix.toml"
    result = CliRunner().invoke(
        app, ["matrix", "refresh", "--check", "--wheels", str(WHEELS), "--matrix", str(matrix), "--evidence", str(out)]
    )
    assert result.exit_code == ExitCode.OK, result.output
    payload = json.loads(out.read_text(encoding="utf-8"))
    assert payload["qatdoctor_wheels"] == 1 and len(payload["wheels"]) == len(list(WHEELS.iterdir()))
    merged = CliRunner().invoke(app, ["matrix", "merge-evidence", str(out), "--matrix", str(matrix)])
    assert merged.exit_code == ExitCode.OK, merged.output
    record = load(matrix).evidence_record("wheel-aimet-torch-2.28.0-py310-none-any")
    assert record is not None and record.outcome == "inspected" and "GLIBC_2.34" in record.summary


class FakePyPI(PyPIIndex):
    """PyPI's JSON API answered from memory; wheels come from the fixture directory."""

    def __init__(self, payloads: dict[str, dict]) -> None:
        super().__init__(opener=lambda url: json.dumps(payloads[url]).encode())

    def wheel(self, file: IndexFile, scratch: Path) -> Path:
        return WHEELS / file.filename


def test_pypi_index_reports_yanked_releases_apart_and_reads_upload_dates(stale: Path) -> None:
    def files(*names: str, yanked: bool = False) -> list[dict]:
        return [{"filename": n, "url": f"../../packages/{n}", "upload_time_iso_8601": "2026-10-18T10:00:00Z",
                 "yanked": yanked, "yanked_reason": "Wrongly pushed" if yanked else None} for n in names]  # fmt: skip

    index: Index = FakePyPI({
        "https://pypi.org/pypi/aimet-torch/json": {"releases": {
            "2.41.0": files("aimet_torch-2.41.0-py310-none-any.whl"),
            "2.42.0": files("aimet_torch-2.42.0-py310-none-any.whl"),
            "2.0.16": files("aimet_torch-2.0.16-cp310-none-any.whl", yanked=True),
            "2.43.0rc1": files("aimet_torch-2.43.0rc1-py310-none-any.whl"),
        }},
        "https://pypi.org/pypi/torch/json": {"releases": {}},
    })  # fmt: skip
    missing = missing_releases(load(stale), index)
    assert [r.version for r in missing.aimet] == ["2.42.0"]
    assert missing.yanked == ("aimet-torch 2.0.16 (yanked: Wrongly pushed)",)
    release = missing.aimet[0]
    assert release.uploaded == dt.date(2026, 10, 18)
    assert release.files[0].url == "https://pypi.org/packages/aimet_torch-2.42.0-py310-none-any.whl"
    proposal = propose_aimet(release, [read_wheel(WHEELS / release.files[0].filename)], load(stale), today=TODAY)
    assert proposal.entry["released"] == dt.date(2026, 10, 18)
    assert "build date" not in proposal.entry["notes"]


def test_apply_proposals_only_touches_the_release_tables() -> None:
    text = (ROOT / "compat_matrix.toml").read_text(encoding="utf-8")
    new = beyond(load(ROOT / "compat_matrix.toml"))
    release = Release("aimet-torch", new, (IndexFile("x.whl", "x.whl", uploaded=TODAY),))
    facts = read_wheel(WHEELS / "aimet_torch-2.42.0-py310-none-any.whl")
    proposal = propose_aimet(release, [facts], load(ROOT / "compat_matrix.toml"), today=TODAY)
    out = apply_proposals(text, [proposal])
    assert without(out, f'[[aimet]]\nversion = "{new}"') == text
    assert entry(tomllib.loads(out), "aimet", "version", new)["proposed"] is True


def test_a_new_release_of_a_known_series_edits_only_that_table() -> None:
    text = (ROOT / "compat_matrix.toml").read_text(encoding="utf-8")
    added = Proposal("torch-release", "2.14.2", {"release": "2.14.2", "torchvision": "0.29.3"}, series="2.14")
    out = apply_proposals(text, [added])
    series = entry(tomllib.loads(out), "torch", "series", "2.14")
    assert series["releases"][-1] == "2.14.2" and series["torchvision"]["2.14.2"] == "0.29.3"
    assert series["proposed_releases"] == ["2.14.2"]
    changed = [line for line in out.splitlines() if line not in text.splitlines()]
    assert len(changed) == 3 and all("2.14.2" in line for line in changed)
    torch = load_text(out).torch_series("2.14")
    assert torch is not None and torch.is_proposed(parse_version("2.14.2")) and not torch.is_proposed(parse_version("2.14.1"))


def load_text(text: str) -> Matrix:
    from qatdoctor.knowledge.load import build, parse_toml

    return build(parse_toml(text, "<test>"))
