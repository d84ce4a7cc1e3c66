"""The AIMET knowledge that lives only in compat_matrix.toml: system libraries, OS glibc, API lines, Python minors
and the requirement checks' declarations. Each test edits the matrix and watches the behaviour follow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor.authoring.lint import lint
from qatdoctor.cli import app
from qatdoctor.core import load_matrix
from qatdoctor.diagnose.evaluate import derive_facts
from qatdoctor.diagnose.requirements import Context, check_requirements
from qatdoctor.exitcodes import ExitCode
from qatdoctor.explain.extract import Lexicon, VersionExtractor
from qatdoctor.knowledge.entries import Matrix, OsRelease, Requirement
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.lab.cellplan import python_choices
from qatdoctor.records import Fact, Facts

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load_matrix(None)


def _statements(text: str, matrix: Matrix) -> dict[str, tuple[str, str]]:
    extractor = VersionExtractor(lexicon=Lexicon.of(matrix))
    extractor.feed(text)
    extractor.finish()
    return {s.name: (s.value, s.source) for s in extractor.statements}


def test_a_missing_system_library_names_the_package_the_matrix_gives(matrix: Matrix) -> None:
    lib = matrix.system_lib("liblapacke.so.3")
    assert lib is not None
    edited = matrix._replace(system_libs=(lib._replace(apt="liblapacke-from-the-matrix"),))
    facts = Facts({"aimet-torch": Fact.known("1.32.2"), "lib:liblapacke.so.3": Fact.absent("not found")})
    aimet = edited.aimet_release(parse_version("1.32.2"))
    (finding,) = [f for f in check_requirements(Context(facts, edited, aimet, None)) if f.id == "req.system-lib"]
    assert finding.fixes[0].commands == ("sudo apt-get install -y liblapacke-from-the-matrix",)


def test_explain_reads_missing_libraries_and_os_releases_from_the_matrix(matrix: Matrix) -> None:
    loader = "ImportError: liblapacke.so.3: cannot open shared object file: No such file or directory\n"
    assert _statements(loader, matrix)["lib:liblapacke.so.3"][0] == "absent"
    assert "lib:liblapacke.so.3" not in _statements(loader, matrix._replace(aimet=(), rules=()))
    # the sonames are escaped: a dot matches only a dot
    assert not _statements(loader.replace("liblapacke.so.3", "liblapackeXso.3"), matrix)
    newer = OsRelease("Ubuntu", "26.04", "2.42", matrix.os_releases[0].sources, "inferred")
    assert "glibc" not in _statements("Ubuntu 26.04 LTS\n", matrix)
    edited = matrix._replace(os_releases=(*matrix.os_releases, newer))
    assert _statements("Ubuntu 26.04 LTS\n", edited)["glibc"] == ("2.42", "inferred: Ubuntu 26.04 ships glibc 2.42")


def test_the_api_of_a_release_the_matrix_lacks_comes_from_its_api_line(matrix: Matrix) -> None:
    def api(m: Matrix, aimet: str, env: str | None = None) -> Fact:
        values = {"aimet-torch": Fact.known(aimet)}
        if env:
            values["env:AIMET_DEFAULT_API"] = Fact.known(env)
        return derive_facts(Facts(values), m).get("aimet-api")

    assert (api(matrix, "1.99.0").value, api(matrix, "1.99.0").detail) == ("v1", "the only API of aimet-torch 1.x")
    assert api(matrix, "2.99.0").value == "v2" and api(matrix, "2.99.0", "v1").value == "v1"
    no_switch = tuple(line._replace(env_selects=()) for line in matrix.api_lines)
    assert api(matrix._replace(api_lines=no_switch), "2.10.0", "v1").value == "v2"
    assert api(matrix._replace(api_lines=()), "2.10.0").state.name == "UNKNOWN"


def test_lint_wants_every_release_on_one_api_line_with_its_default_api(matrix: Matrix) -> None:
    only_2x = tuple(line for line in matrix.api_lines if line.default_api == "v2")
    problems = [str(p) for p in lint(matrix._replace(api_lines=only_2x, rules=()))]
    assert any(p.startswith("aimet '1.32.2': in 0 [[api_line]]") for p in problems)
    v1_line = tuple(line._replace(default_api="v1") if line.default_api == "v2" else line for line in matrix.api_lines)
    problems = [str(p) for p in lint(matrix._replace(api_lines=v1_line, rules=()))]
    assert any("aimet '2.42.0' → apis: lacks its line's default API 'v1'" in p for p in problems)


def test_python_choices_follow_the_matrix_preference(matrix: Matrix) -> None:
    assert matrix.python_support is not None
    first = python_choices(matrix, "2.42.0", "2.4.1")[0]
    later = matrix._replace(python_support=matrix.python_support._replace(prefer_from="3.12"))
    assert first == "3.10" and python_choices(later, "2.42.0", "2.4.1")[0] == "3.12"


def _problems(m: Matrix) -> list[str]:
    return [str(p) for p in lint(m._replace(rules=()))]


def test_a_requirement_declared_without_an_implementation_fails_lint(matrix: Matrix) -> None:
    base = matrix.requirements[0]
    extra = Requirement("req.not-implemented", "nothing checks this", {}, base.sources, "inferred")
    assert "requirement 'req.not-implemented': no implementation in qatdoctor/diagnose/requirements.py" in _problems(
        matrix._replace(requirements=(*matrix.requirements, extra))
    )


def test_an_implemented_check_without_a_declaration_or_a_text_fails_lint(matrix: Matrix) -> None:
    kept = tuple(r for r in matrix.requirements if r.id != "req.glibc")
    assert "requirement: 'req.glibc' is implemented but has no [[requirement]] entry" in _problems(
        matrix._replace(requirements=kept)
    )
    glibc = matrix.requirement("req.glibc")
    assert glibc is not None
    texts = {k: v for k, v in glibc.texts.items() if k != "title"}
    edited = (*kept, glibc._replace(texts={**texts, "typo": "x"}))
    problems = _problems(matrix._replace(requirements=edited))
    assert "requirement 'req.glibc' → texts: missing text 'title' (the check formats it)" in problems
    assert "requirement 'req.glibc' → texts.typo: unused: the check has no such text" in problems


def test_rules_may_cover_only_declared_requirement_checks(matrix: Matrix) -> None:
    covering = next(r for r in matrix.rules if "req.system-lib" in r.covers)
    kept = tuple(r for r in matrix.requirements if r.id != "req.system-lib")
    problems = [str(p) for p in lint(matrix._replace(requirements=kept, rules=(covering,)))]
    assert f"rule {covering.id!r} → covers: unknown requirement check 'req.system-lib'" in problems


def test_matrix_validate_fails_on_an_unimplemented_requirement(tmp_path: Path) -> None:
    copy = tmp_path / "compat_matrix.toml"
    shutil.copy(ROOT / "compat_matrix.toml", copy)
    shutil.copytree(ROOT / "evidence", tmp_path / "evidence")
    text = copy.read_text(encoding="utf-8")
    copy.write_text(
        text.replace(
            "[[requirement]]\n",
            '[[requirement]]\nid = "req.ghost"\nsummary = "declared only"\ntexts = {}\nbasis = "inferred"\n'
            'sources = [{ kind = "docs", ref = "https://example.org" }]\n\n[[requirement]]\n',
            1,
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["matrix", "validate", str(copy)])
    assert result.exit_code == ExitCode.MATRIX_INVALID
    assert "requirement 'req.ghost': no implementation" in result.output
