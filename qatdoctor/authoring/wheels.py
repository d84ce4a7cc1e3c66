"""What a wheel says about itself: METADATA, tags, and the ELF facts of its compiled modules.

Read with the stdlib (zipfile, email) and pyelftools (the `authoring` extra): the NEEDED sonames of every
ELF file and the highest GLIBC_x.y symbol version it binds to, with the symbols that need it. The glibc a
wheel really needs is that maximum, not its manylinux tag (a `py38-none-any` wheel can carry CPython 3.10
extensions needing GLIBC_2.34). Used by `matrix refresh` and for the wheel evidence files it writes.

Every read is bounded: a wheel is a regular file of at most `MAX_WHEEL_BYTES` (a symlink to /dev/zero or a
FIFO is refused, not read); each member is read with a cap, checked on the ZipInfo size and again on the bytes
that come out (a header can lie: a 255 KiB wheel whose METADATA inflates to 256 MiB), and all members of one
wheel together at most `MAX_READ_BYTES`.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import io
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from qatdoctor.errors import InputError

ELF_MAGIC = b"\x7fELF"
MAX_WHEEL_BYTES = 8 << 30  # the archive: torch's CUDA wheels are ~2.5 GB (zipfile seeks, it reads no more)
MAX_METADATA_BYTES = 4 << 20  # METADATA and `_version.py`: torch's METADATA is ~40 KB
MAX_ELF_BYTES = 256 << 20  # one compiled module, read whole for pyelftools (aimet-torch's largest: 44 MB)
MAX_READ_BYTES = 1 << 30  # every member read from one wheel together
# what zipfile and its decompressors raise on a crafted archive (encrypted: RuntimeError; unknown method:
# NotImplementedError; truncated: EOFError, zlib.error, struct.error)
_ZIP_ERRORS = (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, ValueError,
               EOFError, zlib.error, struct.error)  # fmt: skip
_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$")
_SO_NAME = re.compile(r"\.so(\.[\w.-]+)?$")
_CUDA_SONAME = re.compile(r"^lib(cublas|cublasLt|cudart|cudnn|cufft|curand|cusolver|cusparse|nvrtc)[-\w]*\.so\.(\d+)")
_VERSION_FILES = ("/_version.py", "/_deps.py")
_ASSIGNMENT = re.compile(r"""^(torch|python_abi|min_glibc)\s*=\s*['"]([^'"]*)['"]""", re.MULTILINE)
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_")
_LEGACY_MANYLINUX = {"manylinux1": "2.5", "manylinux2010": "2.12", "manylinux2014": "2.17"}


@dataclass(frozen=True)
class ElfFacts:
    """One compiled module: its path in the wheel, NEEDED sonames, and its glibc floor."""

    path: str
    needed: tuple[str, ...]
    glibc: str | None = None
    glibc_symbols: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "needed": list(self.needed), "glibc": self.glibc,
                "glibc_symbols": list(self.glibc_symbols)}  # fmt: skip


@dataclass(frozen=True)
class WheelFacts:
    """Everything `matrix refresh` reads from one wheel file."""

    filename: str
    name: str
    version: str
    tags: tuple[str, ...]
    requires_python: str | None
    requires_dist: tuple[str, ...]
    elf: tuple[ElfFacts, ...] = ()
    build_torch: str | None = None
    python_abi: str | None = None
    has_v1: bool = False
    built: dt.date | None = None
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def platform_floor(self) -> str | None:
        """The glibc its platform tag promises (manylinux_2_34 → 2.34); None for `any`."""
        floors = [_tag_floor(tag.split("-")[-1]) for tag in self.tags]
        found = [f for f in floors if f]
        return max(found, key=_version_key) if found else None

    @property
    def glibc(self) -> str | None:
        """The highest GLIBC_x.y any of its ELF files binds to (what the loader really needs)."""
        found = [e.glibc for e in self.elf if e.glibc]
        return max(found, key=_version_key) if found else None

    @property
    def cuda_sonames(self) -> tuple[str, ...]:
        return tuple(sorted({n for e in self.elf for n in e.needed if _CUDA_SONAME.match(n)}))

    @property
    def cuda_major(self) -> int | None:
        majors = {int(m.group(2)) for n in self.cuda_sonames if (m := _CUDA_SONAME.match(n))}
        return max(majors) if majors else None

    @property
    def cpython(self) -> str | None:
        """The CPython minor its compiled modules are built for: from the wheel tag, else the `_version.py` ABI."""
        for tag in self.tags:
            found = re.match(r"^cp3(\d+)-cp3\d+", tag)
            if found:
                return f"3.{found.group(1)}"
        abi = re.match(r"^cpython-3(\d+)", self.python_abi or "")
        if abi and self.elf:
            return f"3.{abi.group(1)}"
        names = {m.group(1) for e in self.elf if (m := re.search(r"cpython-3(\d+)-", e.path))}
        return f"3.{names.pop()}" if len(names) == 1 else None

    def requirement(self, name: str, extra: str | None = None) -> str | None:
        """The specifier of a Requires-Dist on `name` (core, or of one extra); '' when it is unbounded."""
        lines = self.extras.get(extra, ()) if extra else self.requires_dist
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) == canonicalize_name(name):
                return str(req.specifier)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename, "name": self.name, "version": self.version, "tags": list(self.tags),
            "requires_python": self.requires_python, "requires_dist": list(self.requires_dist),
            "extras": {k: list(v) for k, v in self.extras.items()}, "build_torch": self.build_torch,
            "python_abi": self.python_abi, "has_v1": self.has_v1,
            "built": self.built.isoformat() if self.built else None,
            "platform_floor": self.platform_floor, "glibc": self.glibc, "cuda_sonames": list(self.cuda_sonames),
            "elf": [e.to_dict() for e in self.elf],
        }  # fmt: skip


def _tag_floor(platform: str) -> str | None:
    found = _MANYLINUX.match(platform)
    if found:
        return f"{found.group(1)}.{found.group(2)}"
    return next((v for k, v in _LEGACY_MANYLINUX.items() if platform.startswith(k + "_")), None)


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def parse_filename(filename: str) -> tuple[str, str, tuple[str, ...]]:
    """(canonical name, version, tags as `py-abi-platform` strings) of a wheel file name."""
    try:
        name, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as error:
        raise InputError(f"{filename}: not a wheel file name ({error})") from None
    return str(name), str(version), tuple(sorted(str(t) for t in tags))


def read_wheel(path: Path, *, read_elf: bool = True) -> WheelFacts:
    """The facts of one wheel; InputError when it is not a readable wheel."""
    name, version, tags = parse_filename(path.name)
    try:
        with _open_regular(path) as handle, zipfile.ZipFile(handle) as archive:
            return _read_archive(archive, path.name, name, version, tags, read_elf)
    except _ZIP_ERRORS as error:
        raise InputError(f"cannot read wheel {path}: {error}") from None
    except InputError as error:  # a member past its cap: name the wheel too
        raise InputError(error.message if path.name in error.message else f"{path}: {error.message}") from None


def _open_regular(path: Path) -> IO[bytes]:
    """The wheel, opened: a regular file within `MAX_WHEEL_BYTES` (checked on the open descriptor)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)  # a FIFO: no hang
    except OSError as error:
        raise InputError(f"cannot read wheel {path}: {error.strerror or error}") from None
    info = os.fstat(descriptor)
    problem = (
        "not a regular file" if not stat.S_ISREG(info.st_mode)
        else f"larger than {MAX_WHEEL_BYTES >> 30} GiB" if info.st_size > MAX_WHEEL_BYTES
        else None
    )  # fmt: skip
    if problem:
        os.close(descriptor)
        raise InputError(f"cannot read wheel {path}: {problem}")
    return os.fdopen(descriptor, "rb")


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, budget: list[int] | None = None) -> bytes:
    """One member's bytes, at most `cap` (on the header's size and on what inflates) and what is left of
    `budget` (a one-item list, decremented); InputError past either."""
    limit = min(cap, budget[0]) if budget is not None else cap
    if info.file_size > limit:
        raise InputError(f"{info.filename}: {info.file_size} bytes uncompressed, more than the {limit} read")
    with archive.open(info) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{info.filename}: inflates past its recorded size (more than {limit} bytes)")
    if budget is not None:
        budget[0] -= len(data)
    return data


def read_metadata(archive: zipfile.ZipFile, filename: str) -> WheelFacts:
    """Only the METADATA of a wheel (Requires-Python, Requires-Dist, extras): what a range-read wheel gives."""
    name, version, tags = parse_filename(filename)
    infos = archive.infolist()
    meta = next((i for i in infos if i.filename.endswith(".dist-info/METADATA")), None)
    if meta is None:
        raise InputError(f"{filename}: no .dist-info/METADATA")
    try:
        text = _member(archive, meta, MAX_METADATA_BYTES).decode("utf-8", "replace")
    except _ZIP_ERRORS as error:
        raise InputError(f"{filename}: cannot read its METADATA ({error})") from None
    message = email.parser.Parser().parsestr(text, headersonly=True)
    core: list[str] = []
    extras: dict[str, list[str]] = {}
    for line in message.get_all("Requires-Dist") or []:
        extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", line)
        if extra:
            extras.setdefault(extra.group(1), []).append(line.split(";")[0].strip())
        else:
            core.append(line.strip())
    stamp = meta.date_time
    return WheelFacts(
        filename=filename,
        name=name,
        version=version,
        tags=tags,
        requires_python=message.get("Requires-Python"),
        requires_dist=tuple(core),
        built=dt.date(*stamp[:3]) if stamp[0] >= 1980 else None,
        extras={k: tuple(v) for k, v in extras.items()},
    )


def _read_archive(
    archive: zipfile.ZipFile, filename: str, name: str, version: str, tags: tuple[str, ...], read_elf: bool
) -> WheelFacts:
    infos = archive.infolist()
    meta = read_metadata(archive, filename)
    budget = [MAX_READ_BYTES]
    build: dict[str, str] = {}
    for info in infos:
        if info.filename.endswith(_VERSION_FILES) and "/aimet" in "/" + info.filename:
            text = _member(archive, info, MAX_METADATA_BYTES, budget).decode("utf-8", "replace")
            build.update(dict(_ASSIGNMENT.findall(text)))
    elf = tuple(_elf_members(archive, infos, budget)) if read_elf else ()
    return replace(
        meta,
        elf=elf,
        build_torch=build.get("torch"),
        python_abi=build.get("python_abi"),
        has_v1=any(i.filename.endswith("aimet_torch/v1/__init__.py") for i in infos),
    )


def _elf_members(archive: zipfile.ZipFile, infos: Iterable[zipfile.ZipInfo], budget: list[int]) -> Iterable[ElfFacts]:
    for info in infos:
        base = info.filename.rsplit("/", 1)[-1]
        if not _SO_NAME.search(base) or info.file_size > MAX_ELF_BYTES:
            continue
        data = _member(archive, info, MAX_ELF_BYTES, budget)
        if data[:4] == ELF_MAGIC:
            yield read_elf(data, info.filename)


def read_elf(data: bytes, path: str) -> ElfFacts:
    """NEEDED sonames and the highest GLIBC version (with the symbols bound to it) of one ELF file."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
    from elftools.elf.sections import SymbolTableSection

    try:
        elf = ELFFile(io.BytesIO(data))
        needed: list[str] = []
        versions: dict[int, str] = {}
        versym = None
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                needed += [str(getattr(tag, "needed", "")) for tag in section.iter_tags("DT_NEEDED")]
            elif isinstance(section, GNUVerNeedSection):
                for _, auxes in section.iter_versions():
                    for aux in auxes:
                        versions[int(aux.entry["vna_other"])] = str(aux.name)
            elif isinstance(section, GNUVerSymSection):
                versym = section
        glibc = [v for v in versions.values() if _GLIBC.match(v)]
        top = max(glibc, key=lambda v: _version_key(v.removeprefix("GLIBC_")), default=None)
        symbols: list[str] = []
        dynsym = elf.get_section_by_name(".dynsym")
        if top is not None and versym is not None and isinstance(dynsym, SymbolTableSection):
            wanted = {i for i, v in versions.items() if v == top}
            for index in range(min(versym.num_symbols(), dynsym.num_symbols())):
                ndx = versym.get_symbol(index).entry["ndx"]
                if isinstance(ndx, int) and (ndx & 0x7FFF) in wanted:
                    symbols.append(str(dynsym.get_symbol(index).name))
    except (ELFError, ValueError, KeyError, IndexError) as error:
        raise InputError(f"{path}: unreadable ELF file ({error})") from None
    return ElfFacts(path, tuple(needed), top.removeprefix("GLIBC_") if top else None, tuple(sorted(symbols)))
