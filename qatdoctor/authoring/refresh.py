"""`qatdoctor matrix refresh`: the aimet-torch and torch releases the index has and the matrix lacks.

For each missing aimet-torch release it downloads the wheels (or reads them from `--wheels DIR`, offline) and
proposes an `[[aimet]]` entry from what they say about themselves: Requires-Python, Requires-Dist (core and the
v1-deps extra), wheel tags and the manylinux floor, the NEEDED sonames and highest GLIBC_x.y of every compiled
module (pyelftools), and the torch recorded in `_version.py`. A missing torch release becomes a new `[[torch]]`
series or a release added to its series, with the torchvision release that pins it (torch/torchvision metadata is
read with HTTP range requests, never by downloading those wheels).

The matrix is read and edited with tomlkit, so comments, spacing and quoting inside entries are kept and every
other byte is left as it was; new entries are rendered in the file's own style and placed in version order. They
carry `proposed = true` (a release added to a series: its `proposed_releases`), so the engine never recommends
them or calls them known-good until a maintainer reviews them and deletes the flag. The result is validated
before it is written. `--check` only reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import tomlkit
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Table
from tomlkit.toml_document import TOMLDocument

from qatdoctor import atomic, bounded
from qatdoctor.authoring.wheels import WheelFacts, parse_filename, read_metadata, read_wheel
from qatdoctor.errors import InputError
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import MatrixError
from qatdoctor.knowledge.versions import parse_version

PYPI = "https://pypi.org"
PROPOSED = "Proposed by `qatdoctor matrix refresh`"
_TIMEOUT = 60.0
_CUDA_RUNTIME = re.compile(r"^(?:nvidia-cuda-runtime(?:-cu\d+)?|cuda-toolkit)$")


class IndexReadError(InputError):
    """The package index could not be read."""


@dataclass(frozen=True)
class IndexFile:
    """One file of a release on the index (or in a wheel directory)."""

    filename: str
    url: str
    sha256: str | None = None
    uploaded: dt.date | None = None
    yanked: str | None = None


@dataclass(frozen=True)
class Release:
    """One version of a package on the index, with its files and (for torch/torchvision) its metadata."""

    name: str
    version: str
    files: tuple[IndexFile, ...]
    requires_python: str | None = None
    requires_dist: tuple[str, ...] = ()
    built: dt.date | None = None  # offline: the build date inside the wheel, in place of the upload date

    @property
    def yanked(self) -> str | None:
        """The yank reason when every file is yanked."""
        if self.files and all(f.yanked is not None for f in self.files):
            return self.files[0].yanked or "yanked"
        return None

    @property
    def uploaded(self) -> dt.date | None:
        return min((f.uploaded for f in self.files if f.uploaded), default=None)

    @property
    def wheels(self) -> tuple[IndexFile, ...]:
        return tuple(f for f in self.files if f.filename.endswith(".whl"))


class Index(Protocol):
    """Where releases come from: PyPI's JSON API, or a directory of wheels."""

    def releases(self, name: str) -> dict[str, Release]: ...

    def wheel(self, file: IndexFile, scratch: Path) -> Path: ...

    def describe(self) -> str: ...


class PyPIIndex:
    """PyPI's JSON API (stdlib urllib); metadata of torch/torchvision comes from the per-release JSON."""

    def __init__(self, base: str = PYPI, opener: Callable[[str], bytes] | None = None) -> None:
        self.base = base.rstrip("/")
        self.opener = opener or _fetch

    def describe(self) -> str:
        return f"{self.base} (JSON API)"

    def _json(self, url: str) -> dict[str, Any]:
        try:
            data = self.opener(url)
        except OSError as error:
            raise IndexReadError(f"cannot read {url}: {error}") from None
        payload = bounded.loads(data, what=url, error=IndexReadError)  # bounded nesting, whatever the index sent
        if not isinstance(payload, dict):
            raise IndexReadError(f"{url}: not a JSON object")
        return payload

    def releases(self, name: str) -> dict[str, Release]:
        url = f"{self.base}/pypi/{name}/json"
        payload = self._json(url)
        out: dict[str, Release] = {}
        for version, files in (payload.get("releases") or {}).items():
            out[version] = Release(name, version, tuple(_index_file(f, url) for f in files or ()))
        return out

    def metadata(self, release: Release) -> Release:
        """The release with Requires-Python/Requires-Dist: from its own JSON, else from one wheel's METADATA read
        with HTTP range requests (the zip directory and one member, never the whole wheel)."""
        try:
            info = self._json(f"{self.base}/pypi/{release.name}/{release.version}/json").get("info") or {}
        except IndexReadError:
            info = {}
        if info.get("requires_dist") is not None:
            requires = tuple(info.get("requires_dist") or ())
            return Release(release.name, release.version, release.files, info.get("requires_python"), requires)
        wheel = _linux_wheel(release)
        if wheel is None:
            return release
        try:
            with zipfile.ZipFile(RangeFile(wheel.url)) as archive:
                facts = read_metadata(archive, wheel.filename)
        except (OSError, zipfile.BadZipFile, InputError) as error:
            raise IndexReadError(f"cannot read the METADATA of {wheel.filename}: {error}") from None
        return Release(release.name, release.version, release.files, facts.requires_python, facts.requires_dist)

    def wheel(self, file: IndexFile, scratch: Path) -> Path:
        target = scratch / file.filename
        data = self.opener(file.url)
        if file.sha256 and hashlib.sha256(data).hexdigest() != file.sha256:
            raise IndexReadError(f"{file.filename}: sha256 mismatch (download corrupted?)")
        target.write_bytes(data)
        return target


def _linux_wheel(release: Release) -> IndexFile | None:
    """A manylinux x86_64 CPython wheel of the release (their METADATA is what Linux users install), else any."""
    wheels = release.wheels
    linux = [f for f in wheels if "manylinux" in f.filename and "x86_64" in f.filename]
    found = linux or list(wheels)
    return found[0] if found else None


class RangeFile(io.RawIOBase):
    """A remote file read with HTTP range requests, enough for zipfile to find one member of a large wheel."""

    def __init__(self, url: str, block: int = 256 * 1024) -> None:
        self.url, self.block, self.position = url, block, 0
        self.blocks: dict[int, bytes] = {}
        request = urllib.request.Request(url, headers={"Range": "bytes=-1", "User-Agent": "qatdoctor-matrix-refresh"})
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            total = str(response.headers.get("Content-Range", "")).rpartition("/")[2]
        if not total.isdigit():
            raise OSError(f"{url}: the server does not answer range requests")
        self.size = int(total)

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        end = self.size if size is None or size < 0 else min(self.size, self.position + size)
        out = bytearray()
        while self.position < end:
            index = self.position // self.block
            data = self._block(index)
            start = self.position - index * self.block
            chunk = data[start : start + (end - self.position)]
            if not chunk:
                break
            out += chunk
            self.position += len(chunk)
        return bytes(out)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _block(self, index: int) -> bytes:
        if index not in self.blocks:
            first = index * self.block
            last = min(self.size, first + self.block) - 1
            headers = {"Range": f"bytes={first}-{last}", "User-Agent": "qatdoctor-matrix-refresh"}
            with urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=_TIMEOUT) as r:
                self.blocks[index] = r.read()
        return self.blocks[index]


def _fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "qatdoctor-matrix-refresh"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            data: bytes = response.read()
            return data
    except urllib.error.URLError as error:
        raise OSError(str(error.reason)) from None


def _index_file(raw: Mapping[str, Any], base: str) -> IndexFile:
    uploaded = str(raw.get("upload_time_iso_8601") or raw.get("upload_time") or "")[:10]
    yanked = (raw.get("yanked_reason") or "yanked") if raw.get("yanked") else None
    return IndexFile(
        filename=str(raw.get("filename", "")),
        url=urljoin(base, str(raw.get("url", ""))),
        sha256=(raw.get("digests") or {}).get("sha256"),
        uploaded=dt.date.fromisoformat(uploaded) if uploaded else None,
        yanked=yanked,
    )


class WheelDir:
    """A directory of downloaded wheels, read offline (`--wheels DIR`); metadata comes from the wheels."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise InputError(f"--wheels {root}: not a directory")
        self.root = root

    def describe(self) -> str:
        return f"wheels in {self.root}"

    def releases(self, name: str) -> dict[str, Release]:
        found: dict[str, list[IndexFile]] = {}
        for path in sorted(self.root.glob("*.whl")):
            wheel_name, version, _ = parse_filename(path.name)
            if wheel_name == canonicalize_name(name):
                found.setdefault(version, []).append(IndexFile(path.name, str(path)))
        out = {}
        for version, files in found.items():
            meta = read_wheel(Path(files[0].url), read_elf=False)
            out[version] = Release(name, version, tuple(files), meta.requires_python, meta.requires_dist, meta.built)
        return out

    def wheel(self, file: IndexFile, scratch: Path) -> Path:
        return Path(file.url)


# ---- what the matrix lacks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Missing:
    """Releases on the index that the matrix has no entry for (yanked and pre-releases are listed apart)."""

    aimet: tuple[Release, ...] = ()
    torch: tuple[Release, ...] = ()
    yanked: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.aimet or self.torch)

    def lines(self) -> list[str]:
        out = [f"aimet-torch {r.version}" for r in self.aimet] + [f"torch {r.version}" for r in self.torch]
        return out + [f"(not proposed) {y}" for y in self.yanked]


def _stable(version: str) -> Version | None:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    return None if parsed.is_prerelease or parsed.is_devrelease or parsed.local else parsed


def missing_releases(matrix: Matrix, index: Index) -> Missing:
    """Stable aimet-torch releases not in `[[aimet]]`; torch releases from the oldest series on, not in `[[torch]]`."""
    known_aimet = {a.version.comparable for a in matrix.aimet}
    known_torch = {r.comparable for t in matrix.torch for r in t.releases}
    oldest = min((Version(t.series) for t in matrix.torch), default=Version("0"))
    aimet: list[Release] = []
    torch: list[Release] = []
    yanked: list[str] = []
    for release in _sorted(index.releases("aimet-torch").values()):
        version = _stable(release.version)
        if version is None or version in known_aimet or not release.wheels:
            continue
        if release.yanked:
            yanked.append(f"aimet-torch {release.version} (yanked: {release.yanked})")
        else:
            aimet.append(release)
    for release in _sorted(index.releases("torch").values()):
        version = _stable(release.version)
        if version is None or version in known_torch or Version(f"{version.major}.{version.minor}") < oldest:
            continue
        if not release.wheels:
            continue
        if release.yanked:
            yanked.append(f"torch {release.version} (yanked: {release.yanked})")
        else:
            torch.append(release)
    return Missing(tuple(aimet), tuple(torch), tuple(yanked))


def _sorted(releases: Iterable[Release]) -> list[Release]:
    return sorted(releases, key=lambda r: _stable(r.version) or Version("0"))


# ---- proposals --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One entry to write: a new [[aimet]] or [[torch]] table, or a release added to an existing series."""

    kind: str  # "aimet" | "torch" | "torch-release"
    key: str
    entry: Mapping[str, Any]
    wheels: tuple[WheelFacts, ...] = ()
    series: str | None = None


@dataclass(frozen=True)
class RefreshResult:
    """What refresh found, proposed, wrote, and could not propose."""

    missing: Missing
    proposals: tuple[Proposal, ...] = ()
    skipped: tuple[str, ...] = ()
    written: bool = False
    wheels: tuple[WheelFacts, ...] = field(default=())


def primary_wheel(wheels: Sequence[WheelFacts]) -> WheelFacts:
    """The file pip picks for CPython 3.10 (the matrix's reference): a cp310 wheel, else a pure/any one, else the
    first (a cp38-only release)."""

    def rank(w: WheelFacts) -> tuple[int, str]:
        tags = " ".join(w.tags)
        if "cp310-cp310" in tags:
            return 0, w.filename
        if "none-any" in tags and any(t.startswith(("py3-", "py310-", "cp310-", "py38-")) for t in w.tags):
            return 1, w.filename
        return 2, w.filename

    return sorted(wheels, key=rank)[0]


def propose_aimet(release: Release, wheels: Sequence[WheelFacts], matrix: Matrix, *, today: dt.date) -> Proposal:
    """An [[aimet]] entry from a release's wheels (every field read from them), marked as proposed; its APIs are
    its [[api_line]]'s, plus the optional ones the wheel ships."""
    main = primary_wheel(wheels)
    line = matrix.api_line(parse_version(release.version))
    if line is None:
        raise MatrixError(matrix.path, f"no [[api_line]] covers aimet-torch {release.version}")
    shipped = {"v1"} if main.has_v1 else set()
    extra = {api for api in line.optional_apis if api in shipped}
    entry: dict[str, Any] = {
        "version": release.version,
        "proposed": True,  # not reviewed: never recommended, never known-good, until a maintainer deletes it
        "released": release.uploaded or main.built or today,
        "requires_python": _compact(main.requires_python or ">=3"),
        "apis": sorted({*line.apis, *extra}),
    }
    for name in ("torch", "torchvision", "numpy"):
        spec = main.requirement(name)
        if spec:
            entry[name] = _compact(spec)
    if main.cuda_major is not None:
        entry["cuda_major"] = main.cuda_major
    if main.platform_floor:
        entry["glibc_min"] = main.platform_floor
    v1 = _v1(main) if "v1" in extra else None
    if v1:
        entry["v1"] = v1
    variants = _python_wheels(main, wheels)
    if variants:
        entry["python_wheels"] = variants
    system = {lib.soname for lib in matrix.system_libs if lib.pip is None}
    libs = sorted({n for e in main.elf for n in e.needed if n in system})
    if libs:
        entry["system_libs"] = libs
    if main.build_torch:
        entry["built_with_torch"] = main.build_torch
    entry["wheel"] = main.tags[0] if len(main.tags) == 1 else ".".join(main.tags)
    entry["notes"] = _aimet_notes(main, wheels, release, today)
    entry["sources"] = _aimet_sources(release, main, wheels)
    return Proposal("aimet", release.version, entry, tuple(wheels))


def _compact(spec: str) -> str:
    return ",".join(part.strip().replace(" ", "") for part in spec.split(","))


def _v1(main: WheelFacts) -> dict[str, Any] | None:
    torch = main.build_torch
    if not torch:
        return None
    parsed = Version(torch)
    out: dict[str, Any] = {"torch": f"=={parsed.major}.{parsed.minor}.*"}
    cuda = re.match(r"^cu(\d+)\d$", parsed.local or "")
    if cuda:
        out["cuda_major"] = int(cuda.group(1))
    abi = re.match(r"^cpython-3(\d+)", main.python_abi or "")
    if abi:
        out["python"] = f"==3.{abi.group(1)}.*"
    if "v1-deps" in main.extras:
        out["extra"] = "v1-deps"
    return out


def _python_wheels(main: WheelFacts, wheels: Sequence[WheelFacts]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for other in wheels:
        minor = other.cpython if other is not main and any(t.startswith("cp") for t in other.tags) else None
        if minor is None or minor == main.cpython:
            continue
        variant: dict[str, Any] = {}
        if other.platform_floor and other.platform_floor != main.platform_floor:
            variant["glibc_min"] = other.platform_floor
        if other.cuda_major is not None and other.cuda_major != main.cuda_major:
            variant["cuda_major"] = other.cuda_major
        numpy = other.requirement("numpy")
        if numpy and numpy != main.requirement("numpy"):
            variant["numpy"] = _compact(numpy)
        variant["wheel"] = other.tags[0]
        out[minor] = variant
    return out


def _aimet_notes(main: WheelFacts, wheels: Sequence[WheelFacts], release: Release, today: dt.date) -> str:
    parts = [f"{PROPOSED} on {today.isoformat()} from {', '.join(w.filename for w in wheels)}; not reviewed yet."]
    if main.glibc and main.glibc != main.platform_floor:
        parts.append(
            f"Its compiled modules bind up to GLIBC_{main.glibc} (the platform tag says "
            f"{main.platform_floor or 'nothing'})."
        )
    if not release.uploaded:
        parts.append("`released` is the build date inside the wheel (read offline), not the upload date.")
    return " ".join(parts)


def _aimet_sources(release: Release, main: WheelFacts, wheels: Sequence[WheelFacts]) -> list[dict[str, str]]:
    named = [n for n in ("torch", "torchvision", "numpy") if main.requirement(n) is not None]
    deps = ", ".join(f"{n}{main.requirement(n)}" for n in named)
    meta = f"wheel METADATA: Requires-Python {main.requires_python}; Requires-Dist {deps or 'no torch'}"
    extra = main.requirement("torch", "v1-deps")
    if extra:
        meta += f"; extra v1-deps: torch{extra}"
    sources = [{"kind": "pypi", "ref": f"{PYPI}/project/{release.name}/{release.version}/", "note": meta}]
    for wheel in wheels:
        cuda = " ".join(wheel.cuda_sonames) or "none"
        note = f"{wheel.filename}: {len(wheel.elf)} compiled modules; CUDA libs: {cuda}"
        if wheel.glibc:
            note += f"; highest GLIBC symbol version GLIBC_{wheel.glibc}"
        if wheel.build_torch:
            note += f"; _version.py torch {wheel.build_torch}"
        files = f"{PYPI}/project/{release.name}/{release.version}/#files"
        sources.append({"kind": "wheel", "ref": files, "note": note})
    return sources


def propose_torch(release: Release, matrix: Matrix, pairs: Mapping[str, str]) -> Proposal | str:
    """A new [[torch]] series or a release added to its series; a string says why it cannot be proposed yet."""
    version = Version(release.version)
    series = f"{version.major}.{version.minor}"
    pair = pairs.get(release.version)
    if pair is None:
        return f"torch {release.version}: no torchvision release on the index pins it yet"
    existing = matrix.torch_series(series)
    if existing is not None:
        return Proposal("torch-release", release.version, {"release": release.version, "torchvision": pair},
                        series=series)  # fmt: skip
    linux = [f.filename for f in release.wheels if "manylinux" in f.filename and "x86_64" in f.filename]
    pythons = sorted({f"3.{m.group(1)}" for name in linux if (m := re.search(r"-cp3(\d+)-cp3\d+t?-", name))},
                     key=_version_key)  # fmt: skip
    entry: dict[str, Any] = {"series": series, "proposed": True, "releases": [release.version]}
    if release.uploaded or release.built:
        entry["released"] = release.uploaded or release.built
    entry["python"] = pythons or ["3.10"]
    if release.requires_python:
        entry["requires_python"] = _compact(release.requires_python)
    cuda = _pypi_cuda(release.requires_dist)
    if cuda:
        entry["pypi_cuda"] = cuda
    entry["torchvision"] = {release.version: pair}
    entry["notes"] = (
        f"{PROPOSED}: python, requires_python, pypi_cuda and the torchvision pair are read from PyPI; CUDA "
        "variants and compiled GPU architectures (cuda_variants, sm, variant_sm) need the PyTorch index and "
        "the wheel's libtorch_python.so and are not filled in yet."
    )
    entry["sources"] = [
        {"kind": "pypi", "ref": f"{PYPI}/project/torch/{release.version}/",
         "note": f"wheel tags, Requires-Python {release.requires_python}, Requires-Dist "
                 f"{_cuda_runtime_pin(release.requires_dist) or 'without a CUDA runtime pin'}"},
        {"kind": "pypi", "ref": f"{PYPI}/project/torchvision/{pair}/",
         "note": f"Requires-Dist torch=={release.version}"},
    ]  # fmt: skip
    return Proposal("torch", release.version, entry, series=series)


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text))


def _requirements(lines: Iterable[str]) -> Iterable[Requirement]:
    for line in lines:
        try:
            yield Requirement(line)
        except InvalidRequirement:
            continue


def _cuda_runtime_pin(requires_dist: Iterable[str]) -> str | None:
    for req in _requirements(requires_dist):
        if _CUDA_RUNTIME.match(canonicalize_name(req.name)):
            return str(req)
    return None


def _pypi_cuda(requires_dist: Iterable[str]) -> str | None:
    """`cu128` from a `nvidia-cuda-runtime-cu12==12.8.90` pin (the CUDA build PyPI's default wheel carries)."""
    for req in _requirements(requires_dist):
        if not _CUDA_RUNTIME.match(canonicalize_name(req.name)):
            continue
        pinned = [s.version for s in req.specifier if s.operator in ("==", "~=")]
        parts = re.match(r"^(\d+)\.(\d+)", pinned[0]) if pinned else None
        if parts:
            return f"cu{parts.group(1)}{parts.group(2)}"
    return None


def torchvision_pairs(index: Index, wanted: Iterable[str], newer_than: Version | None = None) -> dict[str, str]:
    """torch release → the torchvision release whose Requires-Dist pins it exactly. Only torchvision releases
    newer than `newer_than` (the newest the matrix pairs already) are read: one metadata request each."""
    wanted = set(wanted)
    pairs: dict[str, str] = {}
    if not wanted:
        return pairs
    metadata = getattr(index, "metadata", None)
    for release in reversed(_sorted(index.releases("torchvision").values())):
        version = _stable(release.version)
        if version is None or not release.wheels:
            continue
        if newer_than is not None and version <= newer_than:
            break
        if not release.requires_dist and metadata is not None:
            release = metadata(release)
        for req in _requirements(release.requires_dist):
            if canonicalize_name(req.name) != "torch":
                continue
            exact = [s.version for s in req.specifier if s.operator == "=="]
            # an exact pin pairs one torch; a range (torchvision 0.29.1+: torch>=2.14.0) pairs the torch releases
            # it admits that no newer torchvision pairs already (the newest torchvision is read first)
            hits = [v for v in wanted if (v in exact if exact else req.specifier.contains(v))]
            for torch_version in hits:
                pairs.setdefault(torch_version, release.version)
        if wanted <= set(pairs):
            break
    return pairs


# ---- writing --------------------------------------------------------------------------------------------------


def apply_proposals(text: str, proposals: Sequence[Proposal]) -> str:
    """The matrix text with the proposals written in through tomlkit, every other byte as it was: a new entry
    goes right after the entry it follows in version order (the comment block that heads the next section stays
    above that section), rendered in the file's own style; a release added to a series edits that one table and
    lists the release in its `proposed_releases`."""
    doc = _parse(text)
    for proposal in proposals:
        if proposal.kind == "aimet":
            _insert_entry(doc, "aimet", "version", proposal.entry)
        elif proposal.kind == "torch":
            _insert_entry(doc, "torch", "series", proposal.entry)
        else:
            _add_release(doc, proposal)
    return doc.as_string()


def _parse(text: str) -> TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as error:
        raise MatrixError("compat_matrix.toml", f"not valid TOML: {error}") from None


def _tables(doc: TOMLDocument, table: str) -> AoT | None:
    found = doc.get(table)
    if found is not None and not isinstance(found, AoT):
        raise MatrixError("compat_matrix.toml", f"{table}: not an array of [[{table}]] tables")
    return found


def _insert_entry(doc: TOMLDocument, table: str, key: str, entry: Mapping[str, Any]) -> None:
    new = tomlkit.parse(render_entry(table, entry))[table][0]
    entries = _tables(doc, table)
    if entries is None:
        doc.append(table, AoT([new]))
        return
    versions = [Version(str(e.get(key, "0"))) for e in entries]
    mine = Version(str(entry[key]))
    before = [i for i, v in enumerate(versions) if v < mine]
    if not before:
        new.value.append(None, tomlkit.ws("\n"))
        entries.insert(min(range(len(versions)), key=versions.__getitem__, default=0), new)
        return
    after = max(before, key=versions.__getitem__)
    _take_trailing_comments(entries[after], new)
    entries.insert(after + 1, new)


def _take_trailing_comments(previous: Table, new: Table) -> None:
    """`previous` keeps its own lines and one blank line; the comment block after them (the heading of what
    follows) moves below `new`, so that heading stays above the section it heads."""
    body = _innermost(previous.value).body
    cut = len(body)
    while cut and body[cut - 1][0] is None:
        cut -= 1
    first_comment = next((i for i in range(cut, len(body)) if isinstance(body[i][1], Comment)), len(body))
    moved = body[first_comment:]
    del body[first_comment:]
    if not moved:
        new.value.append(None, tomlkit.ws("\n"))  # the entries are separated by one blank line
        return
    if first_comment == cut:  # a comment right after the entry: give the entry its blank line
        body.append((None, tomlkit.ws("\n")))
    new.value.append(None, tomlkit.ws("\n"))
    for _, item in moved:
        new.value.append(None, item)


def _innermost(container: Container) -> Container:
    """The container whose lines come last in an entry's text: that of its last sub-table, if any."""
    while container.body and isinstance(container.body[-1][1], (Table, AoT)):
        item = container.body[-1][1]
        container = item.value if isinstance(item, Table) else item[-1].value
    return container


def _add_release(doc: TOMLDocument, proposal: Proposal) -> None:
    entries: Sequence[Table] = _tables(doc, "torch") or []
    series = next((e for e in entries if str(e.get("series")) == proposal.series), None)
    if series is None:
        raise InputError(f"no [[torch]] series {proposal.series} to add {proposal.key} to")
    release = str(proposal.entry["release"])
    releases = series["releases"]
    releases.insert(sum(1 for r in releases if Version(str(r)) < Version(release)), release)
    series["torchvision"][release] = proposal.entry["torchvision"]
    if "proposed_releases" in series:
        series["proposed_releases"].append(release)
    else:
        series["proposed_releases"] = [release]


def render_entry(table: str, entry: Mapping[str, Any]) -> str:
    """One `[[table]]` entry as TOML text in the style of compat_matrix.toml."""
    lines = [f"[[{table}]]"]
    for name, value in entry.items():
        if name == "sources":
            lines.append("sources = [")
            lines.append(",\n".join(f"  {_inline(source)}" for source in value))
            lines.append("]")
        else:
            lines.append(f"{_key(name)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _key(name: str) -> str:
    return name if re.match(r"^[A-Za-z0-9_-]+$", name) else json.dumps(name)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, dt.date)):
        return str(value) if not isinstance(value, dt.datetime) else value.date().isoformat()
    if isinstance(value, Mapping):
        return _inline(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _inline(table: Mapping[str, Any]) -> str:
    return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in table.items()) + " }"


# ---- the command ------------------------------------------------------------------------------------------------


def refresh(
    matrix_path: Path,
    index: Index,
    *,
    check: bool = False,
    today: dt.date | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> RefreshResult:
    """Find what the matrix lacks; unless `check`, propose entries from the wheels and write them."""
    from qatdoctor.knowledge.load import load

    matrix = load(matrix_path)
    missing = missing_releases(matrix, index)
    if check or not missing.any:
        return RefreshResult(missing)
    today = today or dt.date.today()
    proposals: list[Proposal] = []
    skipped: list[str] = []
    read: list[WheelFacts] = []
    with tempfile.TemporaryDirectory(prefix="qatdoctor-refresh-") as scratch:
        for release in missing.aimet:
            progress(f"reading the wheels of aimet-torch {release.version}")
            wheels = [read_wheel(index.wheel(f, Path(scratch))) for f in release.wheels if f.yanked is None]
            read += wheels
            proposals.append(propose_aimet(release, wheels, matrix, today=today))
    metadata = getattr(index, "metadata", None)
    torch = [metadata(r) if metadata is not None and not r.requires_dist else r for r in missing.torch]
    known_tv = [Version(v) for t in matrix.torch for v in t.torchvision.values()]
    pairs = torchvision_pairs(index, (r.version for r in torch), max(known_tv, default=None))
    for release in torch:
        proposal = propose_torch(release, matrix, pairs)
        if isinstance(proposal, str):
            skipped.append(proposal)
        else:
            proposals.append(proposal)
    proposals = _merge_series(proposals)
    if proposals:
        text = apply_proposals(matrix_path.read_text(encoding="utf-8"), proposals)
        _validate(text, matrix_path)
        try:
            atomic.write_text(matrix_path, text)  # complete or untouched; a symlinked matrix stays a symlink
        except OSError as error:
            raise InputError(f"cannot write {matrix_path}: {error.strerror or error}") from None
    return RefreshResult(missing, tuple(proposals), tuple(skipped), bool(proposals), tuple(read))


def _merge_series(proposals: list[Proposal]) -> list[Proposal]:
    """Two new releases of one new series become one [[torch]] entry with both releases."""
    out: list[Proposal] = []
    for proposal in proposals:
        first = next((p for p in out if p.kind == "torch" and p.series == proposal.series), None)
        if first is not None and proposal.kind == "torch":
            entry = dict(first.entry)
            entry["releases"] = [*entry["releases"], proposal.entry["releases"][0]]
            entry["torchvision"] = {**entry["torchvision"], **proposal.entry["torchvision"]}
            out[out.index(first)] = Proposal("torch", first.key, entry, series=first.series)
        else:
            out.append(proposal)
    return out


def _validate(text: str, matrix_path: Path) -> None:
    from qatdoctor.knowledge import schema
    from qatdoctor.knowledge.load import build, parse_toml

    doc = parse_toml(text, str(matrix_path))
    problems = schema.validate(doc)
    if problems:
        raise MatrixError(str(matrix_path), problems)
    build(doc, path=str(matrix_path))


def wheel_evidence(wheels: Sequence[WheelFacts], source: str) -> dict[str, Any]:
    """An evidence file of what was read from each wheel (`matrix merge-evidence` records it)."""
    return {
        "qatdoctor_wheels": 1,
        "created": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "source": source,
        "reader": "qatdoctor.authoring.wheels (zipfile + pyelftools: DT_NEEDED, .gnu.version_r, .gnu.version)",
        "wheels": [w.to_dict() for w in wheels],
    }


def read_all(directory: Path) -> tuple[WheelFacts, ...]:
    """Every wheel in a directory, read (aimet-torch wheels with their ELF files, others their metadata)."""
    out = []
    for path in sorted(directory.glob("*.whl")):
        name, _, _ = parse_filename(path.name)
        out.append(read_wheel(path, read_elf=name == "aimet-torch"))
    return tuple(out)


def write_evidence(path: Path, wheels: Sequence[WheelFacts], source: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps(wheel_evidence(wheels, source), indent=1) + "\n")
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None


def result_to_dict(result: RefreshResult) -> dict[str, Any]:
    return {
        "missing": [{"package": r.name, "version": r.version} for r in (*result.missing.aimet, *result.missing.torch)],
        "not_proposed": [*result.missing.yanked, *result.skipped],
        "proposed": [{"kind": p.kind, "key": p.key, "series": p.series} for p in result.proposals],
        "written": result.written,
    }


def render_text(result: RefreshResult, index: Index, check: bool) -> str:
    lines: list[str] = []
    if not result.missing.any:
        lines.append(f"the matrix has every stable aimet-torch and torch release on {index.describe()}")
        lines += [f"  (not proposed) {y}" for y in result.missing.yanked]
    else:
        lines.append(f"{index.describe()} has releases the matrix lacks:")
        lines += [f"  {line}" for line in result.missing.lines()]
    for proposal in result.proposals:
        what = {"aimet": "[[aimet]]", "torch": "[[torch]]", "torch-release": f"release in [[torch]] {proposal.series}"}
        lines.append(f"proposed {what[proposal.kind]} {proposal.key}")
    lines += [f"not proposed: {s}" for s in result.skipped]
    if check and result.missing.any:
        lines.append("run `qatdoctor matrix refresh` to write proposed entries, then review them")
    return "\n".join(lines) + "\n"
