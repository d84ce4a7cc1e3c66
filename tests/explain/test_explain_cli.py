"""`qatdoctor explain` end to end: stdin and files, formats, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode

DATA = Path(__file__).resolve().parents[1] / "data" / "explain"
ISSUE = DATA / "issue-3152-native-bn-conda.md"
runner = CliRunner()


def invoke(*args: str, stdin: bytes | str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["explain", *args], input=stdin, env={"NO_COLOR": "1"})


def test_stdin_is_read_when_no_file_is_given() -> None:
    result = invoke(stdin=ISSUE.read_bytes())
    assert result.exit_code == ExitCode.PROBLEMS, result.stderr
    assert "verdict: PROBLEMS" in result.stdout
    assert "bn-subclass-qat-crash-v1" in result.stdout
    # the upgrade the matrix prescribes (aimet-torch>=2.30), printed as the whole set it lands on
    assert re.search(r'python -m pip install "aimet-torch==2\.(3\d|4\d)\.\d+" "torch==', result.stdout), result.stdout
    assert "lands on " in result.stdout


def test_dash_reads_stdin_and_json_is_pure() -> None:
    result = invoke("-", "--format", "json", stdin=ISSUE.read_bytes())
    payload = json.loads(result.stdout)
    assert payload["command"] == "explain" and payload["verdict"] == "problems" and payload["target"] == "stdin"
    first = payload["findings"][0]
    assert {"id", "title", "severity", "summary", "fixes", "sources", "evidence", "origin"} <= set(first)
    assert (first["id"], first["origin"], first["status"]) == ("bn-subclass-qat-crash-v1", "log", "fail")
    assert payload["extracted"]["aimet-torch"] == "1.32.2"
    assert payload["extracted"]["aimet-torch.evidence"].startswith("line 6 (prose): ")
    assert payload["facts"]["aimet-torch"]["origin"] == "stated"
    assert payload["facts"]["driver"]["reason"] == "not stated in the input"


def test_file_argument_and_markdown() -> None:
    result = invoke(str(DATA / "liblapacke-1.32.2-issue.md"), "--format", "markdown")
    assert result.exit_code == ExitCode.PROBLEMS
    assert "#### Versions stated in the input" in result.stdout
    assert "aimet-1x-liblapacke-missing" in result.stdout and "sudo apt-get install -y liblapacke" in result.stdout


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        pytest.param([str(DATA / "neg-cuda-oom.txt")], None, ExitCode.OK, id="unknown-is-0"),
        pytest.param([str(DATA / "neg-cuda-oom.txt"), "--strict"], None, ExitCode.UNKNOWN, id="unknown-strict-is-3"),
        pytest.param([], b"", ExitCode.OK, id="empty-stdin"),
        pytest.param(
            [str(DATA / "pip-list-aimet-2.42-torch-2.2.txt")], None, ExitCode.PROBLEMS, id="bad-versions-is-1"
        ),
        pytest.param(["/nonexistent/traceback.txt"], None, ExitCode.BAD_INPUT, id="missing-file-is-6"),
        pytest.param([str(DATA)], None, ExitCode.BAD_INPUT, id="directory-is-6"),
        pytest.param(["--format", "yaml"], b"x", ExitCode.USAGE, id="bad-format-is-2"),
    ],
)
def test_exit_codes(args: list[str], stdin: bytes | None, code: ExitCode) -> None:
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == code, (result.stdout, result.stderr)
    if code is ExitCode.BAD_INPUT:
        assert result.stderr.startswith("error: cannot read ") and "Traceback" not in result.stderr


def test_empty_and_binary_input_say_so() -> None:
    empty = json.loads(invoke("--format", "json", stdin=b"").stdout)
    assert (empty["verdict"], empty["notes"], empty["extracted"]) == (
        "unknown",
        ["empty input: nothing to explain"],
        {},
    )
    garbage = json.loads(invoke("--format", "json", stdin=bytes(range(256)) * 400).stdout)
    assert garbage["verdict"] == "unknown" and garbage["findings"] == []
