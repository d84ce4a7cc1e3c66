"""The versions a pasted text states: pip list/freeze, conda list, collect_env, error messages, paths, prose."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from qatdoctor.versions import try_parse_version

HEAD = 16 << 20  # characters read for versions from the start of the input ...
TAIL = 1 << 20  # ... and from its end (a pip freeze pasted after a long log)
LINE_MAX = 1000  # longer lines are only read around the keyword that selected them
PARTIAL_MAX = 4096
EVIDENCE_MAX = 200
PER_NAME = 16  # distinct values kept per fact

STRUCTURED, PROSE, INFERRED = 0, 1, 2
KEYWORDS = (
    "torch", "aimet", "numpy", "python", "cuda", "libc", "ubuntu", "driver", "onnx", "mmcv", "mmengine",
    "shared object",
)  # fmt: skip
PACKAGES = {
    "aimet-torch": "aimet-torch", "aimet_torch": "aimet-torch", "aimet-onnx": "aimet-onnx",
    "aimet_onnx": "aimet-onnx", "aimet-common": "aimet-common", "aimet_common": "aimet-common",
    "torch": "torch", "pytorch": "torch", "torchvision": "torchvision", "numpy": "numpy", "onnx": "onnx",
    "mmengine": "mmengine", "mmcv": "mmcv", "mmcv-full": "mmcv", "python": "python", "pytorch-cuda": "cuda",
}  # fmt: skip
PROSE_NAMES = {
    "aimet": "aimet-torch", "aimettorch": "aimet-torch", "aimet torch": "aimet-torch", "driver": "driver",
    "nvidia driver": "driver", "cuda": "cuda", "glibc": "glibc", "ubuntu": "ubuntu",
}  # fmt: skip
UBUNTU_GLIBC = {"20.04": "2.31", "22.04": "2.35", "24.04": "2.39"}
LIBS = ("liblapacke.so.3", "libcublas.so.12")

_VERSION = r"v?\d+(?:\.\d+)+(?:(?:a|b|rc)\d+|\.?post\d+|\.?dev\d+)*(?:\.cu\d+|\.cpu)?(?:\+[A-Za-z0-9_.]+)?"
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_ROW = re.compile(
    rf"^\s*(?:\[(?P<tool>pip3?|conda)\]\s+)?(?P<name>{_NAME})"
    r"(?:\s*==\s*(?P<pinned>\S+)|\s+(?P<version>\S+)(?P<rest>(?:\s+\S+){0,3}))\s*$"
)
_CONDA_BUILD = re.compile(r"[A-Za-z0-9_.+]*[_\d][A-Za-z0-9_.+]*")
_WHEEL_URL = re.compile(rf"^\s*(?P<name>{_NAME})\s*@\s*\S*?/[A-Za-z0-9_.]+-(?P<version>[^-/\s]+)-(?:cp|py)\d")
_COLLECT_ENV = (
    (re.compile(r"^PyTorch version:\s*(?P<v>\S+)"), "torch"),
    (re.compile(r"^CUDA used to build PyTorch:\s*(?P<v>\d\S*)"), "cuda"),
    (re.compile(r"^Python version:\s*(?P<v>\d+\.\d+(?:\.\d+)?)"), "python"),
    (re.compile(r"^Nvidia driver version:\s*(?P<v>\d\S*)"), "driver"),
    (re.compile(r"^Libc version:\s*glibc-(?P<v>\d\S*)"), "glibc"),
)
_MESSAGES = (
    (re.compile(r"currently you have torch==(?P<v>[^\s)]+)"), "torch"),
    (re.compile(r"\(from (?:aimet[-_]?torch)==(?P<v>[^\s)]+)\)"), "aimet-torch"),
)
_CURRENT_ABI = re.compile(r"currently you have cpython-(?P<major>\d)(?P<minor>\d+)-")
_MISSING_LIB = re.compile(r"(?P<lib>liblapacke\.so\.3|libcublas\.so\.12): cannot open shared object file")
_GLIBC_MISSING = re.compile(r"version .GLIBC_(?P<v>\d+\.\d+). not found")
_PATH_PYTHON = re.compile(r"lib(?:64)?/python(?P<v>\d\.\d+)/")
_SO_PYTHON = re.compile(r"\.cpython-(?P<major>\d)(?P<minor>\d+)-[\w-]*\.so\b")
_API = re.compile(r"aimet_torch[./](?P<api>v[12])\b")
_OS_UBUNTU = re.compile(r"^OS:\s*Ubuntu\s+(?P<v>\d+\.\d+)")
_PROSE = re.compile(
    r"(?<![\w./\\-])(?P<name>aimet[-_ ]?torch|aimet[-_](?:onnx|common)|aimet|pytorch|torchvision|torch|numpy|python"
    r"|cuda|glibc|onnx|mmcv|mmengine|ubuntu|(?:nvidia\s+)?driver)(?![A-Za-z_-])"
    rf"[ \t]*(?:version[ \t]*)?(?:is[ \t]+|[:=][ \t]*|(?=v\d))?(?P<v>{_VERSION})",
    re.IGNORECASE,
)
_SANE = {
    "python": re.compile(r"[23]\.\d+"),
    "cuda": re.compile(r"(?:[7-9]|1[0-4])\.\d+"),
    "glibc": re.compile(r"2\.\d+"),
    "driver": re.compile(r"[3-9]\d\d\.\d+"),
}


STRUCTURED_SOURCES = ("package list", "pip freeze", "conda list", "collect_env")


@dataclass(frozen=True)
class Statement:
    """One value the input states for a fact, where, and how much to trust it (lower rank wins)."""

    name: str
    value: str
    rank: int
    source: str
    line: int
    text: str

    def where(self) -> str:
        return f"line {self.line} ({self.source}): {self.text}"


_Maker = Callable[[str, str, int, str], Statement | None]


class VersionExtractor:
    """Feed text pieces in order, then `finish()`; `statements` holds every value found, in input order.

    Reads the first HEAD and the last TAIL characters, so a multi-GB log costs no more than a short one.
    """

    def __init__(self, head: int = HEAD, tail: int = TAIL) -> None:
        self._found: dict[tuple[str, str], Statement] = {}
        self.truncated = False
        self._head_left = head
        self._tail_size = tail
        self._partial = ""
        self._tail = ""
        self._line = 1  # number of the first line of the text not consumed yet
        self._tail_line = 1

    def feed(self, text: str) -> None:
        if self._head_left > 0:
            self._head_left -= len(text)
            self._consume(self._partial + text)
            if self._head_left <= 0:
                self._tail, self._tail_line, self._partial = self._partial, self._line, ""
            return
        self.truncated = True
        self._tail += text
        if len(self._tail) > 2 * self._tail_size:
            cut = len(self._tail) - self._tail_size
            newline = self._tail.find("\n", cut)
            cut = newline + 1 if newline != -1 else cut
            self._tail_line += self._tail.count("\n", 0, cut)
            self._tail = self._tail[cut:]

    def finish(self) -> None:
        if self._head_left > 0:
            self._consume(self._partial + "\n")
        else:
            self._line = self._tail_line
            self._consume(self._tail + "\n")
        self._partial = self._tail = ""

    def _consume(self, text: str) -> None:
        """Read the complete lines of `text`; keep the unfinished last line for the next piece."""
        end = text.rfind("\n") + 1
        body, self._partial = text[:end], text[end:][-PARTIAL_MAX:]
        if body:
            for statement in _statements(body, self._line):
                key = (statement.name, statement.value)
                kept = self._found.get(key)
                if kept is None and sum(1 for name, _ in self._found if name == statement.name) >= PER_NAME:
                    continue
                if kept is None or statement.rank < kept.rank:
                    self._found[key] = statement
            self._line += body.count("\n")

    @property
    def statements(self) -> list[Statement]:
        """Distinct (fact, value) statements, the most trusted wording of each, in input order."""
        return sorted(self._found.values(), key=lambda s: s.line)


def _statements(body: str, first_line: int) -> Iterator[Statement]:
    """Statements from the lines of `body` (ending in a newline) that contain a keyword."""
    low = body.lower()
    if len(low) != len(body):  # U+0130 lower-cases to two characters: keep offsets aligned
        low = body.replace("\u0130", "i").lower()
    selected: dict[int, tuple[int, int]] = {}
    for keyword in KEYWORDS:
        at = low.find(keyword)
        while at != -1:
            start, end = low.rfind("\n", 0, at) + 1, low.find("\n", at)
            selected.setdefault(start, (end, at))
            at = low.find(keyword, end)
    line, counted = first_line, 0
    for start in sorted(selected):
        end, at = selected[start]
        line += body.count("\n", counted, start)
        counted = start
        text = body[start:end] if end - start <= LINE_MAX else body[max(start, at - LINE_MAX // 2) : at + LINE_MAX // 2]
        yield from _line_statements(text, line)


def _line_statements(text: str, line: int) -> Iterator[Statement]:
    """Every statement one line makes."""
    shown = " ".join(text.split())
    shown = shown if len(shown) <= EVIDENCE_MAX else shown[: EVIDENCE_MAX - 1] + "…"

    def make(name: str, value: str, rank: int, source: str) -> Statement | None:
        value = value.rstrip(".,;:)")
        if name in _SANE and not _SANE[name].match(value.lstrip("<")):
            return None
        if name not in ("glibc", "aimet-api") and not name.startswith("lib:") and try_parse_version(value) is None:
            return None
        if name == "glibc" and try_parse_version(value.lstrip("<")) is None:
            return None
        return Statement(name, value, rank, source, line, shown)

    found = [s for s in _structured(text, make) if s is not None]
    if not any(s.source in STRUCTURED_SOURCES for s in found):
        found += [s for s in _prose(text, make) if s is not None]
    yield from found


def _structured(text: str, make: _Maker) -> Iterator[Statement | None]:
    """Whole-line formats (package rows, collect_env fields) and what error messages and paths reveal."""
    stripped = text.strip()
    for pattern, name in _COLLECT_ENV:
        if match := pattern.match(stripped):
            yield make(name, match["v"], STRUCTURED, "collect_env")
    if match := _OS_UBUNTU.match(stripped):
        yield _ubuntu(match["v"], make)
    if (match := _ROW.match(text)) and (package := PACKAGES.get(match["name"].lower())):
        if match["pinned"] is not None:
            yield make(package, match["pinned"], STRUCTURED, "pip freeze" if not match["tool"] else "collect_env")
        elif _row_columns_ok(match["rest"] or ""):
            rest = (match["rest"] or "").split()
            source = "conda list" if rest and rest[0][0] not in "/~." else "package list"
            yield make(package, match["version"], STRUCTURED, "collect_env" if match["tool"] else source)
    if (match := _WHEEL_URL.match(text)) and (package := PACKAGES.get(match["name"].lower())):
        yield make(package, match["version"], STRUCTURED, "pip freeze")
    for pattern, name in _MESSAGES:
        for match in pattern.finditer(text):
            yield make(name, match["v"], STRUCTURED, "error message")
    for match in _CURRENT_ABI.finditer(text):
        yield make("python", f"{match['major']}.{match['minor']}", STRUCTURED, "error message")
    for match in _MISSING_LIB.finditer(text):
        yield make(f"lib:{match['lib']}", "absent", STRUCTURED, "error message")
    for match in _GLIBC_MISSING.finditer(text):
        yield make("glibc", f"<{match['v']}", INFERRED, f"the loader lacks GLIBC_{match['v']}")
    for match in _PATH_PYTHON.finditer(text):
        yield make("python", match["v"], INFERRED, "install path")
    for match in _SO_PYTHON.finditer(text):
        yield make("python", f"{match['major']}.{match['minor']}", INFERRED, "extension module name")
    for match in _API.finditer(text):
        yield make("aimet-api", match["api"], INFERRED, f"the text goes through aimet_torch.{match['api']}")


def _row_columns_ok(rest: str) -> bool:
    """A pip list row may end in a location; a conda row in a build string and a channel."""
    columns = rest.split()
    if not columns:
        return True
    if len(columns) == 1 and (columns[0][0] in "/~." or re.match(r"[A-Za-z]:\\", columns[0])):
        return True  # pip list's location column (editable installs)
    return len(columns) <= 2 and _CONDA_BUILD.fullmatch(columns[0]) is not None


def _prose(text: str, make: _Maker) -> Iterator[Statement | None]:
    for match in _PROSE.finditer(text):
        raw = " ".join(match["name"].lower().replace("_", "-").split())
        name = PROSE_NAMES.get(raw.replace("-", " ")) or PACKAGES.get(raw) or raw
        if name == "ubuntu":
            yield _ubuntu(match["v"], make)
        elif name == "cuda" and "driver version" in text.lower():
            continue  # nvidia-smi's "CUDA Version" is what the driver supports, not what torch was built with
        else:
            yield make(name, match["v"].lstrip("vV"), PROSE, "prose")


def _ubuntu(release: str, make: _Maker) -> Statement | None:
    glibc = UBUNTU_GLIBC.get(".".join(release.split(".")[:2]))
    return make("glibc", glibc, INFERRED, f"inferred: Ubuntu {release} ships glibc {glibc}") if glibc else None
