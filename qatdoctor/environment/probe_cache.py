"""The stand-in probe's result, cached by a fingerprint of the target, so a second `check` of an unchanged
environment is instant. The user's model (`--model`) is never cached: its file and inputs are not in the key.

An entry proves what it claims before it is believed:
- the key and the entry both carry the interpreter's identity as the collector (run in the target on every
  check) reports it: executable, version, implementation, ABI, the digest of every installed distribution and
  .pth file, the torch and aimet-torch versions; an entry made for another interpreter is a miss;
- the entry carries a stat fingerprint of the files of the distributions the probe imports (torch, aimet-torch:
  their RECORD and every module they list), so editing an installed file is a miss;
- the key also covers the probe script, the models asked for and the environment variables AIMET and torch read;
- an entry is read only if it is a regular file (opened without following links or blocking on a FIFO) under
  `MAX_ENTRY` bytes; anything odd is a miss with a reason (shown with -v), never a hang or an error.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from qatdoctor import __version__, atomic
from qatdoctor.jsonio import probe_from_dict, probe_to_dict
from qatdoctor.records import Facts, ProbeRun

CACHE_ENV = "QATDOCTOR_CACHE"
FORMAT = 2
MAX_ENTRY = 4 << 20  # bytes; a probe result is ~20 KB
MAX_RECORD = 16 << 20  # bytes of a RECORD file read (torch's is ~2 MB)
# Variables that change what the probe sees (API choice, devices, libraries, import paths).
KEYED_ENV = ("AIMET_DEFAULT_API", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME")
CACHEABLE = ("ran", "import-failed")  # a crash or a hang is rerun: it may have been the machine, not the env
IDENTITY_FACTS = (
    "python-executable", "python", "python-implementation", "python-abi", "python-dists", "torch", "aimet-torch",
)  # fmt: skip
# The distributions the probe imports, as their .dist-info directories are named, and the fact saying each is there.
IMPORTED = {"torch": "torch", "aimet_torch": "aimet-torch"}
MODULE_SUFFIXES = (".py", ".so", ".pyd", ".pth")
MAX_FILES = 200_000  # module files walked for the fingerprint (aimet-torch 2.42 with torch 2.14: ~2,800)
_ADDSITEDIR = re.compile(r"""addsitedir\(\s*['"]([^'"]+)['"]\s*\)""")
_DIST_INFO = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-[^-]+\.dist-info$")


class Lookup(NamedTuple):
    """What `load` found: the cached run and when it was saved, or why there is none (`None`: simply absent)."""

    probe: ProbeRun | None
    saved: str | None = None
    miss: str | None = None


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "qatdoctor" / "probe"


def identity(facts: Facts) -> dict[str, str] | None:
    """The interpreter as it reported itself, or None when it did not say enough (then nothing is cached)."""
    found = {name: facts.value(name) for name in IDENTITY_FACTS}
    if any(found[name] is None for name in ("python-executable", "python", "python-dists")):
        return None
    return {name: value or "" for name, value in found.items()}


def key(python: str, facts: Facts, models: Sequence[str], script: Path) -> str | None:
    """The fingerprint, or None when the target's identity could not be read (then nothing is cached)."""
    who = identity(facts)
    if who is None:
        return None
    material = {
        "qatdoctor": __version__,
        "python": python,
        "identity": who,
        "script": hashlib.sha256(script.read_bytes()).hexdigest(),
        "models": sorted(models),
        "env": {name: os.environ.get(name) for name in KEYED_ENV},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:40]


def load(fingerprint: str, facts: Facts) -> Lookup:
    """The cached run if the entry is sound and made for this very interpreter and these very files."""
    path = cache_dir() / f"{fingerprint}.json"
    text, problem = _read_regular(path)
    if text is None:
        return Lookup(None, miss=problem)
    try:
        payload = json.loads(text)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            return Lookup(None, miss="the entry is from another format (or qatdoctor version)")
        recorded, roots, files = payload["identity"], payload["roots"], payload["files"]
        if not (isinstance(roots, list) and all(isinstance(root, str) for root in roots)):
            raise TypeError("roots")
        probe = probe_from_dict(payload["probe"])
        saved = str(payload["saved"])
    except Exception as error:  # malformed, too deep, another format: a miss, never an error
        return Lookup(None, miss=f"the entry is malformed ({type(error).__name__})")
    if recorded != identity(facts):
        return Lookup(None, miss="the entry was made for another interpreter")
    if probe is None or probe.state not in CACHEABLE:
        return Lookup(None, miss="the entry holds no cacheable result")
    if (lie := _contradiction(probe, facts)) is not None:
        return Lookup(None, miss=lie)
    infos = _imported_infos(facts)
    if infos is None or files != files_fingerprint(infos, roots):
        return Lookup(None, miss="installed files of torch or aimet-torch changed since it was saved")
    return Lookup(probe, saved)


def save(fingerprint: str, probe: ProbeRun, facts: Facts) -> None:
    """Write atomically (temp file in the same directory, fsync, rename); a cache that cannot be written, or an
    environment whose files cannot be fingerprinted, is simply not written."""
    if probe.state not in CACHEABLE or probe.model is not None:
        return
    who, manifest = identity(facts), files_manifest(facts)
    if who is None or manifest is None:
        return
    saved = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    entry = {
        "format": FORMAT, "saved": saved, "identity": who, "roots": manifest[0], "files": manifest[1],
        "probe": probe_to_dict(probe),
    }  # fmt: skip
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(folder / f"{fingerprint}.json", json.dumps(entry))
    except OSError:
        return


def _read_regular(path: Path, limit: int = MAX_ENTRY) -> tuple[str | None, str | None]:
    """The text of a regular file of at most `limit` bytes, or (None, why not); never blocks on a FIFO."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None, None
    except OSError as error:  # a symlink (ELOOP), no permission, ...
        return None, f"the entry cannot be opened ({error.strerror or error})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "the entry is not a regular file"
        if info.st_size > limit:
            return None, f"the entry is larger than {limit} bytes"
        data = os.read(fd, limit + 1)
    except OSError as error:
        return None, f"the entry cannot be read ({error.strerror or error})"
    finally:
        os.close(fd)
    if len(data) > limit:
        return None, f"the entry is larger than {limit} bytes"
    return data.decode("utf-8", errors="replace"), None


def _contradiction(probe: ProbeRun, facts: Facts) -> str | None:
    """A version the cached run reports that the collector, run just now, contradicts."""
    for name in ("python", "torch", "aimet-torch"):
        cached, now = probe.versions.get(name), facts.value(name)
        if cached and now and cached.split("+")[0] != now.split("+")[0]:
            return f"the entry reports {name} {cached}, the environment has {now}"
    return None


def site_dirs(facts: Facts) -> list[Path]:
    """Where the target's distributions live, from what it reported (its executable and version): the prefix's
    site-packages (a venv's, and its base's with system site packages), .pth-added directories, PYTHONPATH."""
    executable, version = facts.value("python-executable"), facts.value("python")
    if not executable or not version:
        return []
    minor = ".".join(version.split(".")[:2])
    executable = str(Path(executable).expanduser())  # the fact shows the home directory as ~
    prefixes = [Path(executable).parent.parent]
    config = _venv_config(prefixes[0] / "pyvenv.cfg")
    if config is not None and config.get("include-system-site-packages", "").lower() == "true" and config.get("home"):
        prefixes.append(Path(config["home"]).parent)
    if config is None:
        prefixes.append(Path(os.path.realpath(executable)).parent.parent)
    found: dict[Path, None] = {}
    for prefix in prefixes:
        for lib in ("lib", "lib64"):
            for sub in (f"python{minor}/site-packages", f"python{minor}/dist-packages", "python3/dist-packages"):
                found[prefix / lib / sub] = None
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            found[Path(entry)] = None
    real: dict[Path, None] = {}
    queue = [folder for folder in found if folder.is_dir()]
    while queue:  # a .pth may add a directory whose own .pth files add more (as site.addsitedir does)
        folder = Path(os.path.realpath(queue.pop(0)))
        if folder not in real:
            real[folder] = None
            queue += [extra for extra in _pth_dirs(folder) if extra.is_dir()]
    return list(real)


def _venv_config(path: Path) -> dict[str, str] | None:
    text, _ = _read_regular(path, 1 << 16)
    if text is None:
        return None
    pairs = (line.partition("=") for line in text.splitlines())
    return {name.strip().lower(): value.strip() for name, sep, value in pairs if sep}


def _pth_dirs(folder: Path) -> Iterator[Path]:
    """Directories a site directory's .pth files add: path lines, and `site.addsitedir('…')` with a literal path
    (other `import` lines run code qatdoctor does not run)."""
    with contextlib.suppress(OSError):
        for pth in sorted(folder.glob("*.pth")):
            text, _ = _read_regular(pth, 1 << 16)
            for line in (text or "").splitlines():
                line = line.strip()
                if line.startswith(("import ", "import\t")):
                    yield from (Path(path) for path in _ADDSITEDIR.findall(line))
                elif line and not line.startswith("#"):
                    yield folder / line


def _dist_infos(folders: Sequence[Path]) -> dict[str, list[Path]]:
    """The .dist-info directories of the imported distributions, by distribution."""
    found: dict[str, list[Path]] = {name: [] for name in IMPORTED}
    for folder in folders:
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                match = _DIST_INFO.match(entry.name)
                if match and (name := match["name"].lower().replace("-", "_").replace(".", "_")) in found:
                    found[name].append(Path(entry.path))
    return found


def _imported_infos(facts: Facts) -> list[Path] | None:
    """Every imported distribution's .dist-info; None when one the collector found is not where it should be."""
    infos = _dist_infos(site_dirs(facts))
    if any(facts.value(fact) is not None and not infos[name] for name, fact in IMPORTED.items()):
        return None
    return sorted(info for found in infos.values() for info in found)


def files_manifest(facts: Facts) -> tuple[list[str], str] | None:
    """What `save` records: the package directories the imported distributions' RECORDs install (read once,
    when the probe ran) and their fingerprint; None when they cannot be found or read."""
    infos = _imported_infos(facts)
    if infos is None:
        return None
    roots: dict[str, None] = {}
    for info in infos:
        text, _ = _read_regular(info / "RECORD", MAX_RECORD)
        if text is None:
            return None
        tops = {top for top, sep, _ in (line.partition("/") for line in text.splitlines()) if sep}
        for top in sorted(tops - {"", ".."}):
            if not top.endswith((".dist-info", ".data")) and (info.parent / top).is_dir():
                roots[str(info.parent / top)] = None
    digest = files_fingerprint(infos, list(roots))
    return (list(roots), digest) if digest is not None else None


def files_fingerprint(infos: Sequence[Path], roots: Sequence[str]) -> str | None:
    """A digest of (path, size, mtime, inode) of each .dist-info's RECORD and of every module file under the
    package directories `roots` (a directory walk: new, edited and removed files all change it); None when a
    root is not inside the site directory of one of `infos`, or the walk exceeds `MAX_FILES`."""
    sites = {info.parent for info in infos}
    if any(Path(root).parent not in sites for root in roots):
        return None
    lines = [_stat_line(str(info / "RECORD")) for info in infos]
    stack = list(roots)
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name != "__pycache__":
                            stack.append(entry.path)
                    elif entry.name.endswith(MODULE_SUFFIXES) or ".so." in entry.name:
                        lines.append(_stat_line(entry.path))
        except OSError:
            lines.append(f"{folder}\0-\n")
        if len(lines) > MAX_FILES:
            return None
    lines.sort()
    return hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _stat_line(path: str) -> str:
    try:
        info = os.stat(path, follow_symlinks=False)  # noqa: PTH116 - thousands per check: no Path objects
    except OSError:
        return f"{path}\0-\n"
    return f"{path}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}\n"


def describe_miss(lookup: Lookup) -> str | None:
    """A note for -v when a cache entry was there but not believed."""
    return f"probe: cached result not used: {lookup.miss}" if lookup.miss else None

