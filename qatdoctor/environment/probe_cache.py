"""The stand-in probe's result, cached by a fingerprint of the target, so a second `check` of an unchanged
environment is instant. The key covers what decides the result: the interpreter, every installed distribution
and .pth file on its sys.path (the collector's digest), the probe script itself, the models asked for and the
environment variables AIMET and torch read. The user's model (`--model`) is never cached: its file and inputs are
not in the key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from qatdoctor import __version__, atomic
from qatdoctor.jsonio import probe_from_dict, probe_to_dict
from qatdoctor.records import Facts, ProbeRun

CACHE_ENV = "QATDOCTOR_CACHE"
# Variables that change what the probe sees (API choice, devices, libraries, import paths).
KEYED_ENV = ("AIMET_DEFAULT_API", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME")
CACHEABLE = ("ran", "import-failed")  # a crash or a hang is rerun: it may have been the machine, not the env


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "qatdoctor" / "probe"


def key(python: str, facts: Facts, models: Sequence[str], script: Path) -> str | None:
    """The fingerprint, or None when the target's installed set could not be read (then nothing is cached)."""
    dists = facts.value("python-dists")
    if dists is None:
        return None
    material = {
        "qatdoctor": __version__,
        "python": python,
        "dists": dists,
        "script": hashlib.sha256(script.read_bytes()).hexdigest(),
        "models": sorted(models),
        "env": {name: os.environ.get(name) for name in KEYED_ENV},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:40]


def load(fingerprint: str) -> tuple[ProbeRun, str] | None:
    """The cached run and when it was saved, or None (missing, unreadable or from another format)."""
    path = cache_dir() / f"{fingerprint}.json"
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        probe = probe_from_dict(payload["probe"])
        saved = str(payload["saved"])
    except Exception:  # missing, unreadable or malformed: a miss, never an error
        return None
    return (probe, saved) if probe is not None and probe.state in CACHEABLE else None


def save(fingerprint: str, probe: ProbeRun) -> None:
    """Write atomically (temp file in the same directory, fsync, rename); a cache that cannot be written is
    simply not written."""
    if probe.state not in CACHEABLE or probe.model is not None:
        return
    folder = cache_dir()
    saved = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    text = json.dumps({"saved": saved, "probe": probe_to_dict(probe)})
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(folder / f"{fingerprint}.json", text)
    except OSError:
        return
