"""Secrets never leave (issue 25, item 4): every secret form in every output — the doctor view, -v, JSON,
markdown, the `report` bundle (from a saved report), `explain`'s text and JSON, stderr — is redacted, and the JSON
stays valid JSON. The secrets are planted where an environment or a pasted log puts them (hostilekit)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hostilekit import hostile_report
from typer.testing import CliRunner

from qatdoctor import console
from qatdoctor.cli import app
from qatdoctor.jsonio import report_to_dict
from qatdoctor.render import Format, render

runner = CliRunner()
# (id, the text an environment or a log says, the secret that must not be in any output)
FORMS = [
    ("json-password", '{"password": "hunter2x", "user": "alice"}', "hunter2x"),
    ("json-api-key", '{"api_key": "k3yabc123xyz"}', "k3yabc123xyz"),
    ("key-colon", "password: hunter2x", "hunter2x"),
    ("key-equals", "HF_TOKEN=abcdef123456", "abcdef123456"),
    ("flag-space", "pip install --password hunter2x pkg", "hunter2x"),
    ("flag-equals", "twine upload --password=hunter2x dist/*", "hunter2x"),
    ("flag-api-key", "tool --api-key k3yabc123xyz run", "k3yabc123xyz"),
    ("netrc-one-line", "machine pypi.example login alice password hunter2x", "hunter2x"),
    ("netrc-own-line", "machine pypi.example\nlogin alice\npassword hunter2x\n", "hunter2x"),
    ("pip-conf-password", "[global]\npassword = hunter2x\n", "hunter2x"),
    ("pip-conf-index-url", "index-url = https://alice:hunter2x@pypi.example/simple", "hunter2x"),
    ("pip-freeze-url", "aimet-torch @ https://alice:ghp_" + "a" * 36 + "@git.example/aimet.whl", "ghp_aaaa"),
    ("url-user-only", "git+https://ghp_" + "b" * 36 + "@github.com/org/repo", "ghp_bbbb"),
    ("token-ghp", "token ghp_" + "c" * 36, "ghp_cccc"),
    ("token-github-pat", "github_pat_" + "d" * 60, "github_pat_dddd"),
    ("token-hf", "using hf_" + "e" * 34, "hf_eeee"),
    ("token-glpat", "glpat-" + "f" * 20, "glpat-ffff"),
    ("token-aws", "key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("token-slack", "xoxb-123456789012-abcdefABCDEF and xoxp-123456789012-abcdef", "xox"),
    ("token-openai", "sk-proj-" + "g" * 40, "sk-proj-gggg"),
    ("url-password", "postgres://u:hunter2x@db.example:5432/x", "hunter2x"),
]


def _report_outputs(text: str) -> dict[str, str]:
    report = hostile_report(text)
    return {
        "doctor": render(report, Format.text),
        "verbose": render(report, Format.text, verbose=1),
        "json": render(report, Format.json),
        "markdown": render(report, Format.markdown),
    }


def _bundle(text: str, tmp_path: Path) -> str:
    saved = tmp_path / "saved.json"
    payload = report_to_dict(hostile_report(text))
    saved.write_text(json.dumps(payload))
    result = runner.invoke(app, ["report", "--from-report", str(saved)])
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def _explain(text: str, tmp_path: Path, fmt: str) -> str:
    log = tmp_path / "log.txt"
    log.write_text(f"aimet-torch==1.32.2\ntorch version 2.2.2 {' '.join(text.splitlines())}\n")  # evidence: one line
    result = runner.invoke(app, ["explain", str(log), "-f", fmt])
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def _view(name: str) -> Callable[[str, Path], str]:
    return lambda text, _tmp: _report_outputs(text)[name]


OUTPUTS: dict[str, Callable[[str, Path], str]] = {
    **{name: _view(name) for name in ("doctor", "verbose", "json", "markdown")},
    "bundle": _bundle,
    "explain-text": lambda text, tmp: _explain(text, tmp, "text"),
    "explain-json": lambda text, tmp: _explain(text, tmp, "json"),
}


@pytest.mark.parametrize("output", list(OUTPUTS), ids=list(OUTPUTS))
@pytest.mark.parametrize(("text", "secret"), [form[1:] for form in FORMS], ids=[form[0] for form in FORMS])
def test_no_secret_form_reaches_any_output(tmp_path: Path, output: str, text: str, secret: str) -> None:
    shown = OUTPUTS[output](text, tmp_path)
    assert secret not in shown, f"{output} shows the secret"
    assert "[redacted" in shown
    if output in ("json", "explain-json"):
        json.loads(shown)  # still valid JSON
    if output == "bundle":
        json.loads(shown.rsplit("```json\n", 1)[1].split("\n```", 1)[0])


@pytest.mark.parametrize(("text", "secret"), [form[1:] for form in FORMS], ids=[form[0] for form in FORMS])
def test_no_secret_reaches_stderr(capsys: pytest.CaptureFixture[str], text: str, secret: str) -> None:
    console.say(f"error: cannot read {text}")
    assert secret not in capsys.readouterr().err


def test_what_only_looks_like_a_secret_stays_readable() -> None:
    """Low false positives: a flag that names a file, a word that contains `password`, counts of tokens."""
    kept = "use --password-file /run/secrets/pw (passwordless sudo, max_tokens=512, the password is wrong)"
    out = render(hostile_report(f"{kept}; --password hunter2x"), Format.json)
    assert json.loads(out)["notes"][0].endswith(f"{kept}; --password [redacted]")
