"""Turning the collector's JSON into `Facts`: pure functions, strict about the payload's shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qatdoctor.errors import CollectError
from qatdoctor.knowledge.vocab import PACKAGES, library_fact
from qatdoctor.records import Fact, Facts, Gpu

# The collector's protocol. `_collector.py` runs in the target and cannot import qatdoctor; what it looks for
# (packages, libraries) comes in its request (collect.py), the rest of its shape is checked here.
COLLECTOR_VERSION = 1
ENV_VARS = ("AIMET_DEFAULT_API", "CUDA_VISIBLE_DEVICES")

SECTIONS = ("python", "platform", "packages", "torch_build", "aimet_build", "nvidia", "libraries", "env")

# Collector key (a section, or section.key) -> the facts it feeds; "gpus" is Facts.gpus. The collector
# reports an unreadable aimet build file as "aimet_build.torch", so that one feeds both aimet facts.
_FEEDS: dict[str, tuple[str, ...]] = {
    "python": ("python", "python-implementation", "python-abi", "python-executable", "python-dists"),
    "python.version": ("python",),
    "python.implementation": ("python-implementation",),
    "python.soabi": ("python-abi",),
    "python.executable": ("python-executable",),
    "python.dists": ("python-dists",),
    "platform": ("platform", "os", "glibc"),
    "platform.system": ("platform",),
    "platform.machine": ("platform",),
    "platform.os": ("os",),
    "platform.glibc": ("glibc",),
    "packages": PACKAGES,
    **{f"packages.{name}": (name,) for name in PACKAGES},
    "torch_build": ("cuda",),
    "torch_build.cuda": ("cuda",),
    "aimet_build": ("aimet-built-with-torch", "aimet-python-abi"),
    "aimet_build.torch": ("aimet-built-with-torch", "aimet-python-abi"),
    "aimet_build.python_abi": ("aimet-python-abi",),
    "nvidia": ("driver", "gpus"),
    "nvidia.driver": ("driver",),
    "nvidia.gpus": ("gpus",),
    "env": tuple(f"env:{name}" for name in ENV_VARS),
    **{f"env.{name}": (f"env:{name}",) for name in ENV_VARS},
}


class _Payload:
    """Typed, path-reporting access to the collector JSON; every shape error is a CollectError."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload

    def section(self, name: str) -> Mapping[str, Any] | None:
        """The section, or None when the collector recorded it as unknown as a whole."""
        if name not in self.payload:
            raise CollectError(f"collector output has no {name!r} section")
        value = self.payload[name]
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise CollectError(f"collector output: {name!r} is a {type(value).__name__}, not an object")
        return value

    def string(self, section: Mapping[str, Any], path: str) -> str | None:
        key = path.split(".", 1)[1]
        if key not in section:
            raise CollectError(f"collector output has no {path!r}")
        value = section[key]
        if value is not None and not isinstance(value, str):
            raise CollectError(f"collector output: {path!r} is a {type(value).__name__}, not a string")
        return value


def facts_from_collector(payload: Mapping[str, Any], *, libraries: tuple[str, ...] = ()) -> Facts:
    """Map the collector's JSON object to canonical facts (`libraries`: the sonames it was asked to find, by default
    those its `libraries` section reports); raise CollectError on a malformed payload."""
    if not isinstance(payload, Mapping):
        raise CollectError(f"collector output is a {type(payload).__name__}, not a JSON object")
    if "error" in payload and "python" not in payload:
        raise CollectError(f"the collector failed: {payload['error']}")
    if payload.get("collector") != COLLECTOR_VERSION:
        raise CollectError(f"collector output has version {payload.get('collector')!r}, expected {COLLECTOR_VERSION}")
    unknown = _unknown_entries(payload)
    data = _Payload(payload)
    values: dict[str, Fact] = {}
    sections = {name: data.section(name) for name in SECTIONS}
    for name, section in sections.items():
        if section is None and name not in unknown:
            raise CollectError(f"collector output: {name!r} is null without a reason")
    if (python := sections["python"]) is not None:
        values.update(_python_facts(data, python))
    if (platform := sections["platform"]) is not None:
        values.update(_platform_facts(data, platform))
    packages = sections["packages"]
    if packages is not None:
        values.update(_package_facts(data, packages))
    torch_installed = None if packages is None else data.string(packages, "packages.torch") is not None
    if (torch_build := sections["torch_build"]) is not None:
        values["cuda"] = _cuda_fact(data, torch_build, torch_installed)
        local = _torch_with_local(torch_build, values.get("torch"))
        if local is not None:
            values["torch"] = local
    if (aimet_build := sections["aimet_build"]) is not None:
        values.update(_aimet_facts(data, aimet_build, packages))
    reported = sections["libraries"]
    asked = libraries or (tuple(str(k) for k in reported) if reported is not None else ())
    feeds = {**_FEEDS, "libraries": tuple(map(library_fact, asked)),
             **{f"libraries.{soname}": (library_fact(soname),) for soname in asked}}  # fmt: skip
    if (found := sections["libraries"]) is not None:
        values.update(_library_facts(found, asked))
    if (env := sections["env"]) is not None:
        values.update(_env_facts(data, env))
    gpus: tuple[Gpu, ...] | None = None
    gpus_reason: str | None = None
    if (nvidia := sections["nvidia"]) is not None:
        values["driver"], gpus = _nvidia_facts(data, nvidia)
    for key, reason in unknown.items():
        for fact in feeds.get(key, ()):
            if fact == "gpus":
                gpus, gpus_reason = None, reason
            else:
                values[fact] = Fact.unknown(reason)
    if gpus is None and gpus_reason is None:
        gpus_reason = "not collected"
    return Facts(values, gpus, gpus_reason)


def _unknown_entries(payload: Mapping[str, Any]) -> dict[str, str]:
    raw = payload.get("unknown")
    if not isinstance(raw, Mapping):
        raise CollectError("collector output has no 'unknown' object")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in raw.items()):
        raise CollectError("collector output: 'unknown' must map names to reasons (strings)")
    return dict(raw)


def _known_or(value: str | None, absent_reason: str) -> Fact:
    return Fact.known(value) if value is not None else Fact.absent(absent_reason)


def _python_facts(data: _Payload, section: Mapping[str, Any]) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    for key, fact in (
        ("version", "python"),
        ("implementation", "python-implementation"),
        ("soabi", "python-abi"),
        ("executable", "python-executable"),
        ("dists", "python-dists"),
    ):
        if key == "dists" and key not in section:  # a payload saved by an older collector
            facts[fact] = Fact.unknown("not reported by the collector that ran")
            continue
        value = data.string(section, f"python.{key}")
        facts[fact] = Fact.known(value) if value else Fact.unknown("not reported by the collector")
    return facts


def _platform_facts(data: _Payload, section: Mapping[str, Any]) -> dict[str, Fact]:
    system = data.string(section, "platform.system")
    machine = data.string(section, "platform.machine")
    platform = (
        Fact.known(f"{system.lower()}-{machine}")
        if system and machine
        else Fact.unknown("not reported by the collector")
    )
    return {
        "platform": platform,
        "os": _known_or(data.string(section, "platform.os"), "no /etc/os-release"),
        "glibc": _known_or(data.string(section, "platform.glibc"), "not a glibc system"),
    }


def _package_facts(data: _Payload, section: Mapping[str, Any]) -> dict[str, Fact]:
    """Installed versions; a package an older collector did not look for (a saved payload) stays unknown."""
    return {
        name: _known_or(data.string(section, f"packages.{name}"), "not installed")
        if name in section
        else Fact.unknown("not reported by the collector that ran")
        for name in PACKAGES
    }


def _torch_with_local(torch_build: Mapping[str, Any], installed: Fact | None) -> Fact | None:
    """torch's version.py `2.2.2+cu121` when its public part is the installed `2.2.2`."""
    recorded = torch_build.get("version")
    if not isinstance(recorded, str) or installed is None or not installed.is_known or installed.value is None:
        return None
    if recorded != installed.value and recorded.split("+", 1)[0] == installed.value.split("+", 1)[0]:
        return Fact.known(recorded, detail="local tag from torch/version.py")
    return None


def _cuda_fact(data: _Payload, section: Mapping[str, Any], torch_installed: bool | None) -> Fact:
    cuda = data.string(section, "torch_build.cuda")
    source = data.string(section, "torch_build.source")
    if cuda is not None:
        return Fact.known(cuda, detail=source)
    if source is not None:
        return Fact.absent("CPU build of torch")
    if torch_installed is False:
        return Fact.absent("torch not installed")
    return Fact.unknown("torch's build information was not found")


def _aimet_facts(data: _Payload, section: Mapping[str, Any], packages: Mapping[str, Any] | None) -> dict[str, Fact]:
    source = data.string(section, "aimet_build.source")
    if source is None:
        installed = packages is None or any(packages.get(name) is not None for name in ("aimet-torch", "aimet-common"))
        reason = "not recorded by this aimet build" if installed else "aimet not installed"
        return {"aimet-built-with-torch": Fact.absent(reason), "aimet-python-abi": Fact.absent(reason)}
    facts: dict[str, Fact] = {}
    for key, fact in (("torch", "aimet-built-with-torch"), ("python_abi", "aimet-python-abi")):
        value = data.string(section, f"aimet_build.{key}")
        facts[fact] = (
            Fact.known(value, detail=source) if value is not None else Fact.absent(f"not recorded in {source}")
        )
    return facts


def _library_facts(section: Mapping[str, Any], asked: tuple[str, ...]) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    for soname in asked:
        if soname not in section:
            raise CollectError(f"collector output has no 'libraries.{soname}'")
        entry = section[soname]
        if entry is None:
            continue  # recorded in "unknown"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("found"), bool):
            raise CollectError(f"collector output: 'libraries.{soname}' needs a boolean 'found'")
        where = entry.get("where")
        if where is not None and not isinstance(where, str):
            raise CollectError(f"collector output: 'libraries.{soname}.where' is not a string")
        facts[library_fact(soname)] = (
            Fact.known("present", detail=where) if entry["found"] else Fact.absent("not found by the dynamic loader")
        )
    return facts


def _env_facts(data: _Payload, section: Mapping[str, Any]) -> dict[str, Fact]:
    return {f"env:{name}": _known_or(data.string(section, f"env.{name}"), "not set") for name in ENV_VARS}


def _nvidia_facts(data: _Payload, section: Mapping[str, Any]) -> tuple[Fact, tuple[Gpu, ...] | None]:
    driver = data.string(section, "nvidia.driver")
    source = data.string(section, "nvidia.driver_source")
    if driver is not None:
        fact = Fact.known(driver, detail=source)
    elif source == "none":
        fact = Fact.absent("no NVIDIA driver")
    else:
        fact = Fact.unknown("the NVIDIA driver version could not be read")
    if "gpus" not in section:
        raise CollectError("collector output has no 'nvidia.gpus'")
    raw = section["gpus"]
    if raw is None:
        return fact, None
    if not isinstance(raw, list):
        raise CollectError(f"collector output: 'nvidia.gpus' is a {type(raw).__name__}, not a list")
    gpus: list[Gpu] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise CollectError(f"collector output: 'nvidia.gpus[{index}]' is not an object")
        name, capability = item.get("name"), item.get("compute_capability")
        if not isinstance(name, str) or not (capability is None or isinstance(capability, str)):
            raise CollectError(f"collector output: 'nvidia.gpus[{index}]' needs a name and a capability")
        gpus.append(Gpu(name=name, compute_capability=capability))
    return fact, tuple(gpus)
