"""The versions a pasted text states: pip list/freeze, conda list, collect_env, error messages, paths, prose."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.versions import try_parse_version

HEAD = 16 << 20  # characters read for versions from the start of the input ...
TAIL = 1 << 20  # ... and from its end (a pip freeze pasted after a long log)
LINE_MAX = 1000  # longer lines are only read around the keyword that selected them
PARTIAL_MAX = 4096
EVIDENCE_MAX = 200
PER_NAME = 16  # distinct values kept per fact
LINE_BUDGET = 50_000  # keyword lines read from the head; past that (a pip list repeated for megabytes) only the tail

STRUCTURED, PROSE, INFERRED = 0, 1, 2
KEYWORDS = (
    "torch", "aimet", "numpy", "python", "cuda", "libc", "ubuntu", "driver", "onnx", "mmcv", "mmengine",
    "shared object", "timm",
)  # fmt: skip
PACKAGES = {
    "aimet-torch": "aimet-torch", "aimet_torch": "aimet-torch", "aimet-onnx": "aimet-onnx",
    "aimet_onnx": "aimet-onnx", "aimet-common": "aimet-common", "aimet_common": "aimet-common",
    "torch": "torch", "pytorch": "torch", "torchvision": "torchvision", "numpy": "numpy", "onnx": "onnx",
    "mmengine": "mmengine", "mmcv": "mmcv", "mmcv-full": "mmcv", "mmcv-lite": "mmcv", "python": "python",
    "pytorch-cuda": "cuda", "timm": "timm",
}  # fmt: skip
PROSE_NAMES = {
    "aimet": "aimet-torch", "aimettorch": "aimet-torch", "aimet torch": "aimet-torch", "driver": "driver",
    "nvidia driver": "driver", "cuda": "cuda", "glibc": "glibc", "ubuntu": "ubuntu",
}  # fmt: skip
STRUCTURED_SOURCES = ("package list", "pip freeze", "conda list", "collect_env")

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
_GLIBC_MISSING = re.compile(r"version .GLIBC_(?P<v>\d+\.\d+). not found")
_PATH_PYTHON = re.compile(r"lib(?:64)?/python(?P<v>\d\.\d+)/")
_SO_PYTHON = re.compile(r"\.cpython-(?P<major>\d)(?P<minor>\d+)-[\w-]*\.so\b")
_API = re.compile(r"aimet_torch[./](?P<api>v[12])\b|AIMET_DEFAULT_API\s*=\s*(?P<default>v[12])\b")
_OS_UBUNTU = re.compile(r"^OS:\s*Ubuntu\s+(?P<v>\d+\.\d+)")
_PROSE = re.compile(
    r"(?<![\w./\\-])(?P<name>aimet[-_ ]?torch|aimet[-_](?:onnx|common)|aimet|pytorch|torchvision|torch|numpy|python"
    r"|cuda|glibc|onnx|mmcv(?:[-_](?:full|lite))?|mmengine|timm|ubuntu|(?:nvidia\s+)?driver)(?![A-Za-z_-])"
    rf"[ \t]*(?:version[ \t]*)?(?:is[ \t]+|==[ \t]*|[:=][ \t]*|(?=v\d))?(?P<v>{_VERSION})",
    re.IGNORECASE,
)
_NOT_INSTALLED = re.compile(
    r"(?:compiled (?:with|using|against)|built (?:with|for|against)|requires?|required|requirements?|needs?"
    r"|supports?|expects?|upgrade to|downgrade to|instead of|older than|newer than|>=|<=|[<>]|~=)\s*$",
    re.IGNORECASE,
)
_SANE = {
    "python": re.compile(r"[23]\.\d+"),
    "cuda": re.compile(r"(?:[7-9]|1[0-4])\.\d+"),
    "glibc": re.compile(r"2\.\d+"),
    "driver": re.compile(r"[3-9]\d\d\.\d+"),
}


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


_Claim = tuple[str, str, int, str]


class Lexicon(NamedTuple):
    """What the matrix tells the extractor: the library facts a loader error can state ([[system_lib]]), and the
    glibc an OS release ships ([[os_release]]: distro in lower case, version, glibc, basis)."""

    missing_lib: re.Pattern[str] | None
    os_glibc: tuple[tuple[str, str, str, str], ...]

    @classmethod
    def of(cls, matrix: Matrix) -> Lexicon:
        sonames = list(matrix.checked_libraries())
        alternatives = "|".join(re.escape(soname) for soname in sonames)
        pattern = re.compile(rf"(?P<lib>{alternatives}): cannot open shared object file") if sonames else None
        return cls(pattern, tuple((r.distro.lower(), r.version, r.glibc, r.basis) for r in matrix.os_releases))

    def glibc_of(self, distro: str, release: str) -> tuple[str, str] | None:
        """(glibc, basis) of a distro release, or None when the matrix does not list it."""
        return next(((g, b) for d, v, g, b in self.os_glibc if d == distro and v == release), None)


def matrix_lexicon() -> Lexicon:
    """The lexicon of the matrix qatdoctor uses by default."""
    from qatdoctor.knowledge.load import load

    return Lexicon.of(load())


class VersionExtractor:
    """Feed text pieces in order, then `finish()`; `statements` holds every value found, in input order.

    Reads the first HEAD and the last TAIL characters, so a multi-GB log costs no more than a short one.
    """

    def __init__(self, head: int = HEAD, tail: int = TAIL, lexicon: Lexicon | None = None) -> None:
        self._lexicon = lexicon if lexicon is not None else matrix_lexicon()
        self._found: dict[tuple[str, str], Statement] = {}
        self.truncated = False
        self._head_left = head
        self._tail_size = tail
        self.mentions_aimet = False
        self._partial = ""
        self._tail: list[str] = []
        self._tail_chars = 0
        self._tail_cut = False
        self._line = 1  # number of the first line of the text not consumed yet
        self._tail_line = 1
        self._lines_left = [LINE_BUDGET]  # keyword lines the head may still examine

    def feed(self, text: str) -> None:
        """Read one piece: fully while in the head, else only keep it as a candidate for the tail."""
        if self._head_left > 0:
            self._head_left -= len(text)
            self._consume(self._partial + text, self._lines_left)
            if self._lines_left[0] <= 0:  # keyword-dense input: the head has said what it will say
                self._head_left = 0
                self.truncated = True
            if self._head_left <= 0:
                self._tail, self._tail_chars = [self._partial], len(self._partial)
                self._tail_line, self._partial = self._line, ""
            return
        self.truncated = True
        self._tail.append(text)
        self._tail_chars += len(text)
        while self._tail_chars - len(self._tail[0]) >= self._tail_size:
            dropped = self._tail.pop(0)
            self._tail_cut = True
            self._tail_chars -= len(dropped)
            self._tail_line += dropped.count("\n")

    def finish(self) -> None:
        """Read the last line of the head, or the tail."""
        if self._head_left > 0:
            self._consume(self._partial + "\n", self._lines_left)
        else:
            self._line = self._tail_line
            tail = "".join(self._tail)
            start = tail.find("\n") + 1 if self._tail_cut else 0  # skip a line cut in the middle
            self._line += 1 if start else 0
            self._consume(tail[start:] + "\n")
        self._partial, self._tail = "", []

    def _consume(self, text: str, budget: list[int] | None = None) -> None:
        """Read the complete lines of `text`; keep the unfinished last line for the next piece."""
        end = text.rfind("\n") + 1
        body, self._partial = text[:end], text[end:][-PARTIAL_MAX:]
        if body:
            low = lowered(body)
            self.mentions_aimet = self.mentions_aimet or "aimet" in low
            for line, line_text, claims in _claimed_lines(body, low, self._line, self._lexicon, budget):
                shown = ""
                for name, value, rank, source in claims:
                    kept = self._found.get((name, value))
                    if kept is not None and kept.rank <= rank:
                        continue  # the first, most trusted wording of each value is enough
                    if kept is None and sum(1 for known, _ in self._found if known == name) >= PER_NAME:
                        continue
                    shown = shown or _shown(line_text)
                    self._found[(name, value)] = Statement(name, value, rank, source, line, shown)
            self._line += body.count("\n")

    @property
    def statements(self) -> list[Statement]:
        """Distinct (fact, value) statements, the most trusted wording of each, in input order."""
        return sorted(self._found.values(), key=lambda s: s.line)


def lowered(text: str) -> str:
    """`text.lower()` with the same length, so offsets stay valid (U+0130 lower-cases to two characters)."""
    low = text.lower()
    return low if len(low) == len(text) else text.replace("\u0130", "i").lower()


def _claimed_lines(
    body: str, low: str, first_line: int, lexicon: Lexicon, budget: list[int] | None = None
) -> Iterator[tuple[int, str, tuple[_Claim, ...]]]:
    """(line number, text, claims) for the lines of `body` (ending in a newline; `low` lower-cased) with a keyword.

    With `budget` (a one-item list, decremented), at most that many lines are selected."""
    selected: dict[int, tuple[int, int]] = {}
    limit = budget[0] if budget is not None else -1
    for keyword in KEYWORDS:
        at = low.find(keyword)
        while at != -1 and len(selected) != limit:
            start, end = low.rfind("\n", 0, at) + 1, low.find("\n", at)
            selected.setdefault(start, (end, at))
            at = low.find(keyword, end)
    if budget is not None:
        budget[0] -= len(selected)
    line, counted = first_line, 0
    for start in sorted(selected):
        end, at = selected[start]
        line += body.count("\n", counted, start)
        counted = start
        text = body[start:end] if end - start <= LINE_MAX else body[max(start, at - LINE_MAX // 2) : at + LINE_MAX // 2]
        claims = _claims(text, lexicon)
        if claims:
            yield line, text, claims


def _shown(text: str) -> str:
    """A line as evidence: whitespace collapsed, clipped."""
    shown = " ".join(text.split())
    return shown if len(shown) <= EVIDENCE_MAX else shown[: EVIDENCE_MAX - 1] + "…"


@lru_cache(maxsize=4096)  # logs repeat the same warning line thousands of times
def _claims(text: str, lexicon: Lexicon) -> tuple[_Claim, ...]:
    """(fact, value, rank, source) for everything one line states; prose only when it is not a table row."""
    found = [c for c in _structured(text, lexicon) if c is not None]
    if not any(c[3] in STRUCTURED_SOURCES for c in found):
        found += [c for c in _prose(text, lexicon) if c is not None]
    return tuple(found)


def _claim(name: str, value: str, rank: int, source: str) -> _Claim | None:
    """A plausible value for the fact, or None."""
    value = value.rstrip(".,;:)")
    bare = value.lstrip("<")
    if name in _SANE and not _SANE[name].match(bare):
        return None
    if name != "aimet-api" and not name.startswith("lib:") and try_parse_version(bare) is None:
        return None
    return name, value, rank, source


def _structured(text: str, lexicon: Lexicon) -> Iterator[_Claim | None]:
    """Whole-line formats (package rows, collect_env fields) and what error messages and paths reveal."""
    stripped = text.strip()
    if ":" in stripped[:40]:
        for pattern, name in _COLLECT_ENV:
            if match := pattern.match(stripped):
                yield _claim(name, match["v"], STRUCTURED, "collect_env")
        if match := _OS_UBUNTU.match(stripped):
            yield _ubuntu(match["v"], lexicon)
    if (match := _ROW.match(text)) and (package := PACKAGES.get(match["name"].lower())):
        if match["pinned"] is not None:
            yield _claim(package, match["pinned"], STRUCTURED, "pip freeze" if not match["tool"] else "collect_env")
        elif _row_columns_ok(match["rest"] or ""):
            rest = (match["rest"] or "").split()
            source = "conda list" if rest and rest[0][0] not in "/~." else "package list"
            yield _claim(package, match["version"], STRUCTURED, "collect_env" if match["tool"] else source)
    if "@" in text and (match := _WHEEL_URL.match(text)) and (package := PACKAGES.get(match["name"].lower())):
        yield _claim(package, match["version"], STRUCTURED, "pip freeze")
    if "currently you have" in text or "(from " in text:
        for pattern, name in _MESSAGES:
            for match in pattern.finditer(text):
                yield _claim(name, match["v"], STRUCTURED, "error message")
        for match in _CURRENT_ABI.finditer(text):
            yield _claim("python", f"{match['major']}.{match['minor']}", STRUCTURED, "error message")
    if "cannot open shared object" in text and lexicon.missing_lib is not None:
        for match in lexicon.missing_lib.finditer(text):
            yield _claim(f"lib:{match['lib']}", "absent", STRUCTURED, "error message")
    if "GLIBC_" in text:
        for match in _GLIBC_MISSING.finditer(text):
            yield _claim("glibc", f"<{match['v']}", INFERRED, f"the loader lacks GLIBC_{match['v']}")
    if "/python" in text:
        for match in _PATH_PYTHON.finditer(text):
            yield _claim("python", match["v"], INFERRED, "install path")
    if ".cpython-" in text:
        for match in _SO_PYTHON.finditer(text):
            yield _claim("python", f"{match['major']}.{match['minor']}", INFERRED, "extension module name")
    if "aimet_torch" in text or "AIMET_DEFAULT_API" in text:
        for match in _API.finditer(text):
            if match["default"]:
                yield _claim("aimet-api", match["default"], PROSE, "AIMET_DEFAULT_API")
            else:
                yield _claim("aimet-api", match["api"], INFERRED, f"the text goes through aimet_torch.{match['api']}")


def _row_columns_ok(rest: str) -> bool:
    """A pip list row may end in a location; a conda row in a build string and a channel."""
    columns = rest.split()
    if not columns:
        return True
    if len(columns) == 1 and (columns[0][0] in "/~." or re.match(r"[A-Za-z]:\\", columns[0])):
        return True  # pip list's location column (editable installs)
    return len(columns) <= 2 and _CONDA_BUILD.fullmatch(columns[0]) is not None


def _prose(text: str, lexicon: Lexicon) -> Iterator[_Claim | None]:
    """`aimet-torch 1.32.2`, `PyTorch version: 2.2.2`, `CUDA 12.0`, `python3.10`, `Ubuntu 22.04` (→ glibc)."""
    for match in _PROSE.finditer(text):
        if _NOT_INSTALLED.search(text[max(0, match.start() - 24) : match.start()]):
            continue  # "compiled with NumPy 2.0", "requires torch 2.1": a requirement, not the installed version
        raw = " ".join(match["name"].lower().replace("_", "-").split())
        name = PROSE_NAMES.get(raw.replace("-", " ")) or PACKAGES.get(raw) or raw
        if name == "ubuntu":
            yield _ubuntu(match["v"], lexicon)
        elif name == "cuda" and "driver version" in text.lower():
            continue  # nvidia-smi's "CUDA Version" is what the driver supports, not what torch was built with
        else:
            yield _claim(name, match["v"].lstrip("vV"), PROSE, "prose")


def _ubuntu(release: str, lexicon: Lexicon) -> _Claim | None:
    """The glibc of an Ubuntu release the matrix lists ([[os_release]]), as an inference."""
    known = lexicon.glibc_of("ubuntu", ".".join(release.split(".")[:2]))
    if known is None:
        return None
    glibc, basis = known
    return _claim("glibc", glibc, INFERRED, f"{basis}: Ubuntu {release} ships glibc {glibc}")
