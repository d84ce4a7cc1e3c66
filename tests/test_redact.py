"""Redaction of what leaves the machine: every secret kind, on data (values only, never keys), JSON stays valid."""

from __future__ import annotations

import json
import socket
from pathlib import Path, PurePosixPath

import pytest
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.records import Fact, Facts, FactState
from qatdoctor.transform import redact as redact_module
from qatdoctor.transform.controls import printable, printable_data
from qatdoctor.transform.redact import redact, redact_data

SECRETS = [
    # (text, the secret that must go, what must stay)
    ("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789", "hf_abc", "HF_TOKEN="),
    ('HF_TOKEN="abc"', "abc", "HF_TOKEN="),
    ("export AWS_SECRET_ACCESS_KEY='abc/def+ghi'", "abc/def", "AWS_SECRET_ACCESS_KEY="),
    ("AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP", "AKIAABCD", "AWS_ACCESS_KEY_ID="),
    ("OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz", "sk-abc", "OPENAI_API_KEY="),
    ("WANDB_API_KEY: 0123456789abcdef", "0123456789abcdef", "WANDB_API_KEY"),
    ("DB_PASSWORD=hunter2", "hunter2", "DB_PASSWORD="),
    ("password: hunter2", "hunter2", "password:"),
    ("MYSQL_PWD=s3cr3t", "s3cr3t", "MYSQL_PWD="),
    ("SIGNING_KEY=abcdef123", "abcdef123", "SIGNING_KEY="),
    ("client_secret=xyz789&grant=1", "xyz789", "client_secret="),
    ("https://example.com/cb?access_token=zzz111 done", "zzz111", "done"),
    ("token ghp_" + "a" * 36 + " used", "ghp_a", "used"),
    ("github_pat_" + "b" * 50, "github_pat_b", ""),
    ("xoxb-123456789012-abcdef", "xoxb-1234", ""),
    ("glpat-abcdefghijklmnopqrstu", "glpat-abc", ""),
    ("npm_" + "c" * 36, "npm_ccc", ""),
    ("pypi-" + "d" * 60, "pypi-ddd", ""),
    ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "eyJhbGci", "jwt"),
    ("Authorization: Bearer eyJhbGciOi.x.y", "eyJhb", "Authorization: Bearer"),
    ('curl -H "Authorization: token abc123" https://api', "abc123", "Authorization: token"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "Authorization: Basic"),
    ("X-Api-Key: kkk999", "kkk999", "X-Api-Key"),
    ("Cookie: session=abc", "session=abc", "Cookie"),
    ("pip install git+https://user:pass@github.com/org/repo", "user:pass", "github.com/org/repo"),
    ("postgres://u:p@db:5432/x", "u:p", "db:5432/x"),
    ("https://oauth2:tok123@gitlab.example/x.git", "tok123", "gitlab.example"),
    ("--index-url https://__token__:pypi-zz@upload.example/simple", "pypi-zz", "upload.example"),
    ("GPU 0: H100 (UUID: GPU-12345678-abcd-ef01-2345-6789abcdef01)", "12345678", "H100"),
]


@pytest.mark.parametrize(("text", "gone", "kept"), SECRETS, ids=[s[0][:30] for s in SECRETS])
def test_every_secret_kind_is_removed(text: str, gone: str, kept: str) -> None:
    out = redact(text, home="/nonexistent-home")
    assert gone not in out and kept in out, out
    assert "redacted" in out


@pytest.mark.parametrize(
    "text",
    [
        "torch 2.2.2+cu121 on Ubuntu 22.04",
        "max_tokens=512 num_tokens: 1024",
        "sorted(layers, key=len)",
        "https://download.pytorch.org/whl/cu121",
        "RuntimeError: The function 'native_batch_norm' is not differentiable",
        "aimet-torch==2.42.0 torch==2.14.1",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text, home="/nonexistent-home") == text


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        ("/home/alice/venv/bin/python", "alice", "/bin/python"),
        ("/Users/bob/x", "bob", "/Users/[user]/x"),
        ("/root/.cache/qatdoctor/envs/x", "/root/", "~/.cache/qatdoctor"),
    ],
)
def test_home_directories(text: str, gone: str, kept: str) -> None:
    out = redact(text, home="/root")
    assert gone not in out and kept in out, out


def test_host_name_is_replaced_as_a_whole_word() -> None:
    host = socket.gethostname().split(".")[0]
    if host.lower() in redact_module._COMMON or len(host) < 2:
        pytest.skip(f"host name {host!r} is a common word here")
    out = redact(f"built on {host} ({host}-builder is another host)")
    assert f"on {host} " not in out and "[host]" in out and f"{host}-builder" in out


def test_user_name_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_users", lambda: ("zelda",))
    assert redact("/scratch/zelda/venv: owned by zelda", home="/x") == "/scratch/[user]/venv: owned by [user]"
    assert redact("/scratch/zelda/venv", home="/x", names=False) == "/scratch/zelda/venv"


def test_data_is_redacted_in_values_never_in_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_module, "_hosts", lambda: ("known", "python"))
    facts = Facts(
        {
            "python": Fact.known("3.10.13", detail="on known, HF_TOKEN=\"abc\""),
            "python-executable": Fact.known("/home/alice/venv/bin/python"),
        }
    )
    data = {"known": {"python": "host known", "state": "known"}, "list": ["postgres://u:p@db/x"]}
    out = redact_data({"facts": facts, "data": data}, home="/nonexistent-home")
    assert set(out["data"]) == {"known", "list"} and set(out["data"]["known"]) == {"python", "state"}
    assert out["data"]["known"]["python"] == "host [host]"
    assert out["data"]["known"]["state"] == "known"  # a vocabulary field: the word is qatdoctor's, not the host
    assert out["data"]["list"] == ["postgres://[redacted]@db/x"]
    redacted = out["facts"]
    assert isinstance(redacted, Facts) and set(redacted.values) == {"python", "python-executable"}
    assert redacted.get("python").state is FactState.KNOWN and redacted.value("python") == "3.10.13"
    assert redacted.get("python").detail == "on [host], HF_TOKEN=\"[redacted]\""  # the quotes stay
    assert redacted.value("python-executable") == "/home/[user]/venv/bin/[host]"


def _saved_report(tmp_path: Path) -> Path:
    """A real saved report (resolve -f json) with secrets planted in the values a target could have produced."""
    saved = CliRunner().invoke(
        app, ["resolve", "-a", "aimet-torch=2.42.0", "-a", "torch=2.14.1", "-a", "python=3.11", "-f", "json"]
    )
    payload = json.loads(saved.stdout)
    payload["notes"] = ['probe said: HF_TOKEN="abc" at https://user:pass@host/x', "Authorization: Bearer tok999"]
    payload["target"] = "/home/alice/venv/bin/python"
    payload["facts"]["numpy"] = {"state": "known", "value": "1.26.4", "origin": "collected",
                                 "detail": "GITHUB_TOKEN=ghp_" + "a" * 36}  # fmt: skip
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize("host", ["python", "known", "facts"])
def test_report_json_stays_valid_and_replays_whatever_the_host_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setattr(redact_module, "_hosts", lambda: (host,))
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--from-report", str(_saved_report(tmp_path)), "-f", "json"])
    payload = json.loads(result.stdout)  # valid JSON
    text = result.stdout
    for secret in ('"abc"', "user:pass", "tok999", "ghp_aaa", "alice"):
        assert secret not in text, secret
    assert "facts" in payload and "findings" in payload and "verdict" in payload
    assert all(isinstance(f["status"], str) for f in payload["findings"])
    replayed = tmp_path / "replayed.json"
    replayed.write_text(result.stdout)
    again = runner.invoke(app, ["report", "--from-report", str(replayed), "-f", "json"])
    assert again.exit_code in (0, 1), again.stderr
    assert json.loads(again.stdout)["facts"].keys() == payload["facts"].keys()


def test_markdown_bundle_is_redacted_and_its_json_replays(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--from-report", str(_saved_report(tmp_path))])
    for secret in ('HF_TOKEN="abc"', "user:pass", "tok999", "ghp_aaa", "/home/alice"):
        assert secret not in result.stdout, secret
    bundle = tmp_path / "bundle.md"
    bundle.write_text(result.stdout)
    replay = runner.invoke(app, ["report", "--from-report", str(bundle), "-f", "json"])
    assert replay.exit_code in (0, 1), replay.stderr
    json.loads(replay.stdout)


def test_printable_strips_terminal_control() -> None:
    hostile = "a\x1b[32mverdict: OK\x1b[0m\x1b]0;title\x07 b\x1b[2J\x1bc c\u202e\x9b31m\x07\x08d\te\nf"
    assert printable(hostile) == "averdict: OK b cd\te\nf"
    assert printable_data({"k\x1b[1m": ["v\x1b[2J", 3]}) == {"k": ["v", 3]}


# --- what the mutation run showed untested ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token ghp_" + "a" * 36 + " used", "token [redacted-token] used"),
        ("Authorization: abc123", "Authorization: [redacted]"),
        ("Authorization: Bearer abc123", "Authorization: Bearer [redacted]"),
        ('max_tokens="512" top_k=5', 'max_tokens="512" top_k=5'),
        ("MIG-12345678-abcd-ef01-2345-6789abcdef01 and GPU-12345678-abcd-ef01-2345-6789abcdef01",
         "GPU-[redacted] and GPU-[redacted]"),
        ("/custom/home/venv and /custom/homely", "~/venv and /custom/homely"),
        ("MIG-12345678-abcd-ef01-2345-6789abcdef01 alone", "GPU-[redacted] alone"),
        ("API_TOKEN=X1234X", "API_TOKEN=[redacted]"),
        ("API_TOKEN='1234'", "API_TOKEN='1234'"),
    ],
)  # fmt: skip
def test_exact_replacements(text: str, expected: str) -> None:
    assert redact(text, home="/custom/home", names=False) == expected


def test_redact_data_keeps_types_and_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import MappingProxyType

    from qatdoctor.records import Finding, Fix, Severity

    monkeypatch.setattr(redact_module, "_hosts", lambda: ("buildbox",))
    finding = Finding(
        id="x", title="buildbox in a title", severity=Severity.ERROR, origin="probe", summary="s",
        evidence=("crashed on buildbox at /custom/home/x",),
        fixes=(Fix("version", "upgrade", ("ssh buildbox", "/custom/home/venv/bin/python -m pip")),),
    )  # fmt: skip
    data = {
        "finding": finding,
        "counts": [1, 2.5, True, None],
        "path": Path("/custom/home/file"),
        "proxy": MappingProxyType({"k": "on buildbox"}),
        "tuple": ("on buildbox",),
    }
    out = redact_data(data, home="/custom/home")
    assert out["counts"] == [1, 2.5, True, None]
    assert out["path"] == Path("~/file")
    assert isinstance(out["proxy"], MappingProxyType) and out["proxy"]["k"] == "on [host]"
    assert out["tuple"] == ("on [host]",)
    redacted = out["finding"]
    assert isinstance(redacted, Finding) and redacted.severity is Severity.ERROR
    assert redacted.title == "buildbox in a title"  # a vocabulary field: matrix text, not a host
    assert redacted.evidence == ("crashed on [host] at ~/x",)
    assert redacted.fixes[0].commands == ("ssh buildbox", "~/venv/bin/python -m pip")  # commands: home only
    assert redact_data(data, home="/custom/home", names=False)["tuple"] == ("on buildbox",)


def test_printable_data_keeps_other_values() -> None:
    assert printable_data({1: [2.5, None, "a\x07b"]}) == {1: [2.5, None, "ab"]}
    assert printable("plain text") == "plain text"


def test_redact_data_rebuilds_each_container_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setattr(redact_module, "_hosts", lambda: ("buildbox",))

    @dataclasses.dataclass(frozen=True)
    class Note:
        text: str
        summary: str

    out = redact_data(
        {
            "plain": {"k": "on buildbox"},
            "path": PurePosixPath("/srv/buildbox/x"),
            # under a vocabulary field nothing is a host name, however deep
            "summary": {"nested": Note("on buildbox", "buildbox")},
            "entry": Note("on buildbox", "buildbox"),
        },
        home="/nonexistent-home",
    )
    assert type(out["plain"]) is dict and out["plain"] == {"k": "on [host]"}
    assert out["path"] == PurePosixPath("/srv/[host]/x")
    assert out["summary"]["nested"] == Note("on buildbox", "buildbox")
    assert out["entry"] == Note("on [host]", "buildbox")


# --- issue 25: JSON, flag, netrc and pip.conf forms; what only looks like a secret; redacting twice ---------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"password": "hunter2", "user": "u"}', '{"password": "[redacted]", "user": "u"}'),
        ('{"api_key": "a\\"b", "n": 1}', '{"api_key": "[redacted]", "n": 1}'),
        ("machine h login u password p", "machine h login u password [redacted]"),
        ("machine h password p login u", "machine h password [redacted] login u"),
        ("login\nu\n  password p\n", "login\nu\n  password [redacted]\n"),
        ("--password X --verbose", "--password [redacted] --verbose"),
        ("--password=X", "--password=[redacted]"),
        ("--api-key 'a b'", "--api-key '[redacted]'"),
        ("[global]\npassword = s3cret\n", "[global]\npassword = [redacted]\n"),
        ("index-url = https://u:p@host/simple", "index-url = https://[redacted]@host/simple"),
        ("key ASIAABCDEFGHIJKLMNOP", "key [redacted-token]"),
    ],
)  # fmt: skip
def test_secret_forms(text: str, expected: str) -> None:
    assert redact(text, home="/custom/home", names=False) == expected


@pytest.mark.parametrize(
    "text",
    [
        "passwordless sudo", "passwordless: true", "--password-file /run/pw", "PASSWORD_FILE=/run/pw",
        "the password is wrong", 'password: ""', "--token-count 5", "password: none", "--password --verbose",
        "PASSWORD_ENV=MY_PW",
    ],
)  # fmt: skip
def test_what_only_looks_like_a_secret_is_kept(text: str) -> None:
    assert redact(text, home="/nonexistent-home", names=False) == text


@pytest.mark.parametrize("text", [s[0] for s in SECRETS], ids=[s[0][:30] for s in SECRETS])
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = redact(text, home="/nonexistent-home")
    assert redact(once, home="/nonexistent-home") == once and "<redacted" not in once
