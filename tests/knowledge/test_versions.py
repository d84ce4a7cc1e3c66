"""Version parsing: PEP 440, AIMET's GitHub variants, and the strings that must be rejected."""

from __future__ import annotations

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor.knowledge.versions import VersionError, in_range, parse_specifier, parse_version


@pytest.mark.parametrize(
    ("raw", "comparable", "local", "series"),
    [
        pytest.param("2.2.2+cu121", "2.2.2", "cu121", "2.2", id="torch-local-tag"),
        pytest.param("2.3.0a0+git1234", "2.3.0", "git1234", "2.3", id="source-build-prerelease"),
        pytest.param("2.3.0a0+40ec155e58.nv24.3", "2.3.0", "40ec155e58.nv24.3", "2.3", id="ngc-container"),
        pytest.param("1.34.0.cu121", "1.34.0", "cu121", "1.34", id="aimet-github-suffix"),
        pytest.param("torch-gpu-1.31.0", "1.31.0", "torch-gpu", "1.31", id="aimet-github-prefix"),
        pytest.param("torch_gpu_pt21_1.32.0", "1.32.0", "torch-gpu-pt21", "1.32", id="aimet-pt21-variant"),
        pytest.param("1.32.1.post1", "1.32.1.post1", None, "1.32", id="post-release-kept"),
        pytest.param("535.104.05", "535.104.5", None, "535.104", id="driver"),
        pytest.param(" v2.14.1 ", "2.14.1", None, "2.14", id="v-prefix-and-space"),
    ],
)
def test_parse_version(raw: str, comparable: str, local: str | None, series: str) -> None:
    parsed = parse_version(raw)
    assert str(parsed.comparable) == comparable
    assert parsed.local == local
    assert parsed.series == series


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("latest", id="word"),
        pytest.param("2.x", id="wildcard"),
        pytest.param("torch==2.2.2", id="requirement-not-version"),
        pytest.param("\x00\x01", id="binary"),
        pytest.param("1" * 500 + "a" * 10, id="huge"),
    ],
)
def test_parse_version_rejects(raw: str) -> None:
    with pytest.raises(VersionError, match="unparseable"):
        parse_version(raw)


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        pytest.param("2.2.2+cu121", "==2.2.2", True, id="local-ignored-by-exact-pin"),
        pytest.param("2.3.0a0+git1234", ">=2.3", True, id="prerelease-counts-as-release"),
        pytest.param("2.3.0a0+git1234", "<2.3", False, id="prerelease-not-below-its-release"),
        pytest.param("1.34.0.cu121", ">=1.26,<2.0", True, id="github-variant-in-1x-range"),
        pytest.param("1.32.1.post1", "==1.32.1", False, id="post-release-is-not-base"),
        pytest.param("2.1.2", "!=2.1.*", False, id="wildcard-exclusion"),
    ],
)
def test_in_range(version: str, spec: str, expected: bool) -> None:
    assert in_range(parse_version(version), SpecifierSet(spec)) is expected


def test_parse_specifier_reports_text() -> None:
    with pytest.raises(VersionError, match=r"'>=2.2\+cu121'"):
        parse_specifier(">=2.2+cu121")
