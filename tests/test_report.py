"""`qatdoctor report`: a redacted, issue-ready bundle, and `--from-report` replays a saved one."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode

runner = CliRunner()


def test_report_bundle_is_markdown_with_replayable_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--no-probe"])  # qatdoctor's own venv: no aimet-torch, a problem
    assert result.exit_code == ExitCode.PROBLEMS, result.stderr
    assert result.stdout.startswith("### qatdoctor report:")
    assert len(result.stdout) <= 60_000, "fits a GitHub issue body"
    assert "<details>" in result.stdout and "```json" in result.stdout
    bundle = tmp_path / "issue.md"
    bundle.write_text(result.stdout)
    replay = runner.invoke(app, ["report", "--from-report", str(bundle), "--format", "json"])
    assert replay.exit_code == ExitCode.PROBLEMS, replay.stderr
    payload = json.loads(replay.stdout)
    assert payload["command"] == "report" and "re-evaluated issue.md" in payload["notes"][0]


def test_from_report_reevaluates_a_users_json_against_this_matrix(tmp_path: Path) -> None:
    saved = runner.invoke(app, ["resolve", "-a", "aimet-torch=2.42.0", "-a", "torch=2.2.2", "--format", "json"])
    path = tmp_path / "user.json"
    path.write_text(saved.stdout)
    replay = runner.invoke(app, ["report", "--from-report", str(path), "--format", "json"])
    assert replay.exit_code == ExitCode.PROBLEMS
    assert any(f["id"] == "aimet-2.42-torch-2.2-import-error" for f in json.loads(replay.stdout)["findings"])


def test_from_report_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "junk.json"
    path.write_bytes(b"\x00\xffnot json at all")
    result = runner.invoke(app, ["report", "--from-report", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT and "error:" in result.stderr
    path.write_text(json.dumps({"hello": "world"}))
    assert runner.invoke(app, ["report", "--from-report", str(path)]).exit_code == ExitCode.BAD_INPUT


def test_report_is_redacted() -> None:
    result = runner.invoke(app, ["report", "--no-probe"])
    home = str(Path.home())
    assert home + "/" not in result.stdout
