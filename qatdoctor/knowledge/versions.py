"""Parsing the version strings found in the wild, and matching them against PEP 440 ranges.

Ranges are evaluated on the release (plus post) segment: `2.2.2+cu121` and NGC's `2.3.0a0+git1234` are
compared as `2.2.2` and `2.3.0`, and the local tag / pre-release is kept beside it (anchors.md §5.3: a
pre-release of 2.3 sits on neither side of a `<2.3` / `>=2.3` split otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from qatdoctor.errors import InputError

# AIMET's GitHub-release wheels carry versions pip >= 24.1 rejects (qualcomm/aimet#3584, #3037).
_AIMET_VARIANT_SUFFIX = re.compile(r"^(?P<release>\d+(?:\.\d+)+)\.(?P<variant>cu\d+|cpu)$")
_AIMET_VARIANT_PREFIX = re.compile(r"^(?P<variant>torch[-_](?:gpu|cpu)(?:[-_]pt\d+)?)[-_](?P<release>\d+(?:\.\d+)+)$")


MAX_VERSION_LENGTH = 128  # longer text is not a version (and 5,000-digit numbers hit int()'s limit)
MAX_NUMBER_DIGITS = 18


class VersionError(InputError):
    """A version or range that cannot be understood."""


@dataclass(frozen=True)
class ParsedVersion:
    """A version as written, the PEP 440 version it stands for, and what ranges are evaluated on."""

    raw: str
    version: Version
    variant: str | None = None

    @cached_property
    def comparable(self) -> Version:
        """Release (and post) segment only: what range checks use."""
        text = ".".join(str(part) for part in self.version.release)
        if self.version.post is not None:
            text += f".post{self.version.post}"
        return Version(text)

    @property
    def local(self) -> str | None:
        return self.version.local or self.variant

    @property
    def is_prerelease(self) -> bool:
        return self.version.is_prerelease

    @property
    def series(self) -> str:
        """`major.minor`, e.g. `2.2` for `2.2.2+cu121`."""
        release = self.version.release
        return f"{release[0]}.{release[1] if len(release) > 1 else 0}"

    def __str__(self) -> str:
        return self.raw


@lru_cache(maxsize=4096)  # evaluation parses the same few fact values thousands of times
def parse_version(raw: str, *, what: str = "version") -> ParsedVersion:
    """Parse a version string, accepting AIMET's non-PEP-440 GitHub variants; raise VersionError otherwise."""
    text = raw.strip()
    shown = raw if len(raw) <= 60 else raw[:57] + "..."
    if len(text) > MAX_VERSION_LENGTH or any(len(part) > MAX_NUMBER_DIGITS for part in re.findall(r"\d+", text)):
        raise VersionError(f"unparseable {what} {shown!r}: too long to be a version")
    if text.startswith("v") and text[1:2].isdigit():
        text = text[1:]
    try:
        return ParsedVersion(raw=raw.strip(), version=Version(text))
    except InvalidVersion:
        pass
    for pattern in (_AIMET_VARIANT_SUFFIX, _AIMET_VARIANT_PREFIX):
        match = pattern.match(text)
        if match:
            return ParsedVersion(
                raw=raw.strip(), version=Version(match["release"]), variant=match["variant"].replace("_", "-")
            )
    raise VersionError(f"unparseable {what} {shown!r}: not a PEP 440 version")


def try_parse_version(raw: str) -> ParsedVersion | None:
    """Like parse_version, but None instead of an error."""
    try:
        return parse_version(raw)
    except VersionError:
        return None


def parse_specifier(raw: str, *, what: str = "range") -> SpecifierSet:
    """Parse a PEP 440 specifier set; raise VersionError with the offending text."""
    try:
        return SpecifierSet(raw)
    except InvalidSpecifier as exc:
        raise VersionError(f"invalid {what} {raw!r}: {exc}") from None


def in_range(version: ParsedVersion, spec: SpecifierSet) -> bool:
    """Whether the version's release segment lies in the range (pre-releases included).

    A range that itself names a local build (`==2.1.2+cu118`) is compared with the full version.
    """
    if any("+" in s.version for s in spec):
        return spec.contains(version.version, prereleases=True)
    return spec.contains(version.comparable, prereleases=True)
