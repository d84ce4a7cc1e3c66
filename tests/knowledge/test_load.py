"""Loading the matrix: every malformed or hostile input gets a located, one-line problem, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qatdoctor.knowledge import schema
from qatdoctor.knowledge.files import packaged_file
from qatdoctor.knowledge.load import MatrixError, load

HEAD = 'schema_version = 1\nmatrix_version = "test"\nupdated = 2026-11-25\n'
AIMET = """
[[aimet]]
version = "1.32.2"
released = 2024-07-01
requires_python = ">=3.8,!=3.9.*,<3.11"
apis = ["v1"]
torch = "==2.2.2"
sources = [{ kind = "pypi", ref = "https://pypi.org/project/aimet-torch/1.32.2/" }]
"""
TORCH = """
[[torch]]
series = "2.2"
releases = ["2.2.2"]
python = ["3.10"]
torchvision = { "2.2.2" = "0.17.2" }
sources = [{ kind = "pypi", ref = "https://pypi.org/project/torch/2.2.2/" }]
"""
RULE = """
[[rule]]
id = "x"
kind = "bad"
severity = "error"
title = "t"
summary = "s"
when = { aimet-torch = ">=1.26" }
basis = "reported"
sources = [{ kind = "issue", ref = "https://github.com/qualcomm/aimet/issues/3152" }]
"""


def write(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_matrix_loads(tmp_path: Path) -> None:
    matrix = load(write(tmp_path, HEAD + AIMET + TORCH + RULE))
    assert [str(a.version) for a in matrix.aimet] == ["1.32.2"]
    assert matrix.rule("x") is not None
    assert len(matrix.sha256) == 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("this is = not [toml", "not valid TOML", id="not-toml"),
        pytest.param("a = { b = 1,\n c = 2 }", "not valid TOML", id="toml-1.1-multiline-inline-table"),
        pytest.param("", "schema_version: required field is missing", id="empty-file"),
        pytest.param(HEAD.replace("= 1", "= 2"), "schema_version: must be 1", id="future-schema"),
        pytest.param(HEAD + "colour = 1\n", "colour: unknown key", id="unknown-top-key"),
        pytest.param(HEAD + AIMET.replace('"==2.2.2"', '">=2.2+cu121"'), "aimet '1.32.2' → torch: invalid specifier",
                     id="local-in-range"),
        pytest.param(HEAD + AIMET.replace('"1.32.2"\nreleased', '"1.34.0.cu121"\nreleased'),
                     "version: invalid version '1.34.0.cu121'", id="aimet-github-variant-in-matrix"),
        pytest.param(HEAD + AIMET.replace("2024-07-01", '"yesterday"'), "released: must be a TOML date", id="bad-date"),
        pytest.param(HEAD + AIMET + AIMET, "aimet '1.32.2': duplicate version", id="duplicate-release"),
        pytest.param(HEAD + RULE.replace("aimet-torch =", "pytorch ="), "when: pytorch: unknown fact", id="unknown-fact"),
        pytest.param(HEAD + RULE.replace('">=1.26"', '"1.26"'), "invalid specifier '1.26'", id="bare-version-range"),
        pytest.param(HEAD + RULE.replace('kind = "bad"', 'kind = "meh"'), "kind: must be one of bad, good", id="bad-kind"),
        pytest.param(HEAD + RULE.replace('id = "x"', 'id = "Has Spaces"'), "id: must be lower-case", id="bad-id"),
        pytest.param(HEAD + RULE.replace('sources = [{ kind = "issue", ref = "https://github.com/qualcomm/aimet/issues/3152" }]', ""),
                     "rule 'x' → sources: required field is missing", id="rule-without-sources"),
        pytest.param(HEAD + RULE.replace('kind = "issue"', 'kind = "rumour"'), "sources[0] → kind", id="bad-source-kind"),
        pytest.param(HEAD + RULE + '[[rule.signature]]\nregex = "(a+)+$"\n', "nested quantifiers", id="redos-regex"),
        pytest.param(HEAD + RULE + '[[rule.signature]]\nregex = "(unclosed"\n', "invalid regex", id="broken-regex"),
        pytest.param(HEAD + RULE + '[[rule.signature]]\nnote = "only a note"\n', "needs `text` or `regex`",
                     id="empty-signature"),
        pytest.param(HEAD + RULE + '[[rule.fix]]\nkind = "upgrade"\nsummary = "up"\n', "needs `package` and `spec`",
                     id="upgrade-without-target"),
        pytest.param(HEAD + RULE.replace('kind = "bad"\nseverity = "error"', 'kind = "good"\nseverity = "error"'),
                     "known-good rules must have severity 'info'", id="good-with-error"),
        pytest.param(HEAD + RULE.replace('ref = "https', 'ref = "evidence:nope", note = "https'),
                     "unknown evidence record 'evidence:nope'", id="dangling-evidence"),
        pytest.param(HEAD + TORCH.replace('{ "2.2.2" = "0.17.2" }', "{}"), "no torchvision pair for 2.2.2",
                     id="torch-without-pair"),
        pytest.param(HEAD + "aimet = 5\n", "must be an array of tables", id="table-of-wrong-type"),
        pytest.param(HEAD + AIMET.replace("2024-07-01", '"2024-07-01"'), "released: must be a TOML date", id="quoted-date"),
        pytest.param(HEAD + AIMET + '[aimet.python_wheels."three"]\nglibc_min = "2.28"\n',
                     "python_wheels: three: must be a CPython minor", id="bad-wheel-minor"),
        pytest.param(HEAD + AIMET + '[aimet.python_wheels."3.8"]\nglibc_min = "new"\n',
                     "python_wheels → 3.8 → glibc_min: invalid version 'new'", id="bad-wheel-glibc"),
        pytest.param(HEAD + TORCH.replace('{ "2.2.2" = "0.17.2" }', '{ "2.2.2" = "soon" }'),
                     "torch '2.2' → torchvision → 2.2.2: invalid version 'soon'", id="bad-torchvision-pair"),
        pytest.param(HEAD + RULE.replace('kind = "bad"', 'kind = 3'), "kind: must be one of bad, good (got 3)",
                     id="wrong-type-enum"),
        pytest.param(HEAD + RULE.replace('id = "x"', 'id = "x"\ntriage_only = "yes"'), "triage_only: must be true or false",
                     id="not-a-bool"),
        pytest.param(HEAD + RULE + '[[rule.signature]]\ntext = ""\n', "signature[0] → text: must be a non-empty string",
                     id="empty-text"),
        pytest.param(HEAD + "[[rule]]\n" + "x = [" * 600 + "]" * 600, "TOML", id="deeply-nested"),
        pytest.param(HEAD + AIMET.replace('apis = ["v1"]', 'apis = ["v1"]\nproposed = false'),
                     "aimet '1.32.2' → proposed: must be true", id="proposed-false-says-nothing"),
        pytest.param(HEAD + TORCH.replace('python = ["3.10"]', 'python = ["3.10"]\nproposed_releases = ["2.2.3"]'),
                     "torch '2.2' → proposed_releases: 2.2.3 is not one of its releases", id="proposed-release-unknown"),
    ],
)  # fmt: skip
def test_bad_matrices_are_located(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(MatrixError) as caught:
        load(write(tmp_path, text))
    assert any(expected in str(problem) for problem in caught.value.problems) or expected in caught.value.message, [
        str(p) for p in caught.value.problems
    ]
    assert "\n" not in caught.value.message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = HEAD + RULE.replace('kind = "bad"', 'kind = "meh"').replace('severity = "error"', 'severity = "fatal"')
    with pytest.raises(MatrixError) as caught:
        load(write(tmp_path, text))
    assert len(caught.value.problems) == 2


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(lambda p: p / "missing.toml", "file not found", id="missing"),
        pytest.param(lambda p: p, "is a directory", id="directory"),
        pytest.param(lambda p: _binary(p / "bin.toml"), "not UTF-8", id="binary"),
    ],
)  # fmt: skip
def test_unreadable_files(tmp_path: Path, setup, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MatrixError, match=expected):
        load(setup(tmp_path))


def _binary(path: Path) -> Path:
    path.write_bytes(b"\xff\xfe\x00garbage")
    return path


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_bytes(b"# " + b"x" * (9 * 1024 * 1024))
    with pytest.raises(MatrixError, match="refusing to parse"):
        load(path)


def test_published_json_schema_is_current() -> None:
    shipped = json.loads(packaged_file("compat_matrix.schema.json").read_text(encoding="utf-8"))
    assert shipped == schema.json_schema(), "regenerate: qatdoctor matrix schema > compat_matrix.schema.json"
