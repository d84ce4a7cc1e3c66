"""Redaction of what leaves the machine."""

from __future__ import annotations

import socket

import pytest

from qatdoctor.redact import redact


@pytest.mark.parametrize(
    ("text", "gone", "kept"),
    [
        pytest.param("/home/alice/venv/bin/python", "alice", "/bin/python", id="other-home"),
        pytest.param("/root/.cache/qatdoctor/envs/x", "/root/", "~/.cache/qatdoctor", id="own-home"),
        pytest.param("GPU 0: H100 (UUID: GPU-12345678-abcd-ef01-2345-6789abcdef01)", "12345678", "H100", id="gpu-uuid"),
        pytest.param("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz0123456789", "hf_abc", "HF_TOKEN=", id="env-token"),
        pytest.param("export AWS_SECRET_ACCESS_KEY='abc/def+ghi'", "abc/def", "AWS_SECRET_ACCESS_KEY=", id="quoted-secret"),
        pytest.param("token ghp_" + "a" * 36 + " used", "ghp_a", "used", id="github-token-shape"),
        pytest.param("Authorization: Bearer eyJhbGciOi.x.y", "eyJhb", "Authorization: Bearer", id="bearer"),
        pytest.param("torch 2.2.2+cu121 on Ubuntu 22.04", "\x00", "Ubuntu 22.04", id="versions-untouched"),
    ],
)
def test_redact(text: str, gone: str, kept: str) -> None:
    out = redact(text, home="/root")
    assert gone not in out and kept in out, out


def test_host_name_is_replaced_as_a_whole_word() -> None:
    host = socket.gethostname().split(".")[0]
    out = redact(f"built on {host} ({host}-builder is another host)")
    assert f"on {host} " not in out and "<host>" in out
