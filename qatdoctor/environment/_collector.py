"""Stdlib-only environment collector, run as a script inside the target interpreter; prints one JSON object.

Usage: TARGET_PYTHON _collector.py --request '{"packages": [...], "libraries": [...]}'
The request says what to look for: the distributions to read the versions of (qatdoctor's package facts) and the
shared libraries to find (every soname the matrix tests: [[aimet]] system_libs and the `lib:` facts of its rules).
Without one, no package or library is looked for. The response's sections are described in environment/facts.py.
"""

# Runs under the *target* Python, 3.8 or newer: Python 3.8 syntax and stdlib only. Annotations are never
# evaluated (the __future__ import), so builtin generics are fine there, but nowhere else. It must never
# import torch, aimet or numpy: packages are found with importlib.metadata / find_spec and read as text.
from __future__ import annotations

import sys

if __name__ == "__main__" and sys.path and not sys.flags.isolated and not getattr(sys.flags, "safe_path", 0):
    del sys.path[0]  # this file's own directory: nothing beside it may shadow a stdlib or site module

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

COLLECTOR_VERSION = 1
MIN_PYTHON = (3, 8)
# (top-level package, file inside it): the first one found records the torch aimet was built against.
AIMET_BUILD_FILES = (
    ("aimet_torch", "_version.py"),
    ("aimet_common", "_deps.py"),
    ("aimet_torch", "common/_deps.py"),
)
ENV_VARS = ("AIMET_DEFAULT_API", "CUDA_VISIBLE_DEVICES")
DRIVER_FILES = ("/sys/module/nvidia/version", "/proc/driver/nvidia/version")
NVIDIA_SMI_FALLBACKS = ("/usr/bin/nvidia-smi", "/usr/lib/wsl/lib/nvidia-smi")
LDCONFIGS = ("/sbin/ldconfig", "/usr/sbin/ldconfig")
NVIDIA_SMI_TIMEOUT = 5
LDCONFIG_TIMEOUT = 3
# `ldconfig -p` flag that marks a library usable by this machine's 64-bit loader.
LDCONFIG_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64", "ppc64le": "64bit", "s390x": "64bit"}
# Values from a fixed vocabulary (versions, OS and GPU names) are not searched for the host name, so a host
# called "ubuntu" or "h100" cannot turn "Ubuntu 22.04" or "NVIDIA H100" into "<host>".
VOCABULARY = (
    "python.version",
    "python.implementation",
    "python.soabi",
    "platform.",
    "packages.",
    "torch_build.cuda",
    "torch_build.hip",
    "aimet_build.torch",
    "aimet_build.python_abi",
    "nvidia.driver",
    "nvidia.gpus.",
)
GPU_UUID = re.compile(r"\b(?:MIG-GPU|MIG|GPU)-[0-9A-Fa-f]{4,}[0-9A-Fa-f-]*(?:/\d+/\d+)?(?![0-9A-Za-z])")


def describe(exc: BaseException) -> str:
    """One line for an exception: `TypeName: message`."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8", errors="replace")


def run(argv: list[str], timeout: float) -> tuple[int | None, str, str]:
    """Run argv; a None return code means it timed out (then it is killed, and not waited for long)."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # stuck in the kernel: leave it behind
            proc.communicate(timeout=1)
        return None, "", ""
    return proc.returncode, out, err


def first_line(*texts: str) -> str:
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return "no output"


def which(name: str, fallbacks: tuple[str, ...] = ()) -> str | None:
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    for candidate in [Path(d, name) for d in dirs] + [Path(f) for f in fallbacks]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def package_dirs(top_level: str) -> list[Path]:
    """Directories of a top-level (possibly namespace) package, found without executing it."""
    import importlib.util

    spec = importlib.util.find_spec(top_level)
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(location) for location in spec.submodule_search_locations]
    return [Path(spec.origin).parent] if spec.origin else []


def assigned_string(text: str, name: str) -> tuple[bool, str | None]:
    """Find `name = 'x'`, `name: Optional[str] = 'x'` or `name = None`: (found, value)."""
    pattern = r"^[ \t]*" + re.escape(name) + r"[ \t]*(?::[^=\n]*)?=[ \t]*(?:(['\"])(.*?)\1|(None)\b)"
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        return False, None
    return True, (None if match.group(3) else match.group(2))


# --- probes: each returns its section and records in `unknown` what it could not determine -------------


def probe_python(unknown: dict[str, str]) -> dict[str, Any]:
    import platform
    import sysconfig

    soabi = sysconfig.get_config_var("SOABI") or None
    if soabi is None:
        unknown["python.soabi"] = "sysconfig has no SOABI"
    executable = sys.executable or None
    if executable is None:
        unknown["python.executable"] = "sys.executable is empty"
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "soabi": soabi,
        "executable": executable,
        "prefix": sys.prefix,
        "venv": sys.prefix != getattr(sys, "base_prefix", sys.prefix) or hasattr(sys, "real_prefix"),
        "dists": installed_digest(),
    }


def installed_digest() -> str:
    """A digest of every distribution (name-version) and .pth file on sys.path: what changes when anything is
    installed, upgraded or removed (qatdoctor keys its cached probe result on it)."""
    import hashlib

    names = []
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        names += [f"{entry}/{item}" for item in listing if _DIST_DIR.match(item) or item.endswith(".pth")]
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def os_pretty_name(unknown: dict[str, str]) -> str | None:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = read_text(path)
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "PRETTY_NAME" and value.strip().strip("\"'"):
                return value.strip().strip("\"'")
        unknown["platform.os"] = f"{path} has no PRETTY_NAME"
        return None
    return None  # no os-release at all: a known absence


def glibc_version() -> str | None:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        text = None
    if text:
        name, _, version = text.partition(" ")
        return version.strip() if name == "glibc" and version.strip() else None
    import platform

    lib, version = platform.libc_ver()
    return version if lib == "glibc" and version else None  # musl and friends: not glibc, a known absence


def probe_platform(unknown: dict[str, str]) -> dict[str, Any]:
    import platform

    result: dict[str, Any] = {"system": platform.system() or None, "machine": platform.machine() or None}
    for key in ("system", "machine"):
        if result[key] is None:
            unknown[f"platform.{key}"] = f"platform.{key}() is empty"
    try:
        result["os"] = os_pretty_name(unknown)
    except Exception as exc:
        result["os"] = None
        unknown["platform.os"] = describe(exc)
    try:
        result["glibc"] = glibc_version()
    except Exception as exc:
        result["glibc"] = None
        unknown["platform.glibc"] = describe(exc)
    return result


_DIST_DIR = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+?)(?:-py\d[\d.]*)?\.(?:dist|egg)-info$", re.IGNORECASE)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def scan_distributions(wanted: list[str]) -> tuple[dict[str, str], list[str]]:
    """name -> version from the *.dist-info / *.egg-info directories on sys.path, first entry wins.

    This is what importlib.metadata.version() finds, without its ~45 ms import; the version comes from the
    directory name (pip writes `name-version.dist-info`). Returns what it found and the names it could not
    decide here (zip/egg path entries), for the slow path.
    """
    found: dict[str, str] = {}
    targets = {canonical(n): n for n in wanted}
    undecided = False
    for entry in sys.path:
        if len(found) == len(targets):
            break
        try:
            names = os.listdir(entry or ".")
        except NotADirectoryError:
            undecided = True  # a zip or egg on sys.path: let importlib.metadata look inside
            continue
        except OSError:
            continue
        for item in names:
            match = _DIST_DIR.match(item)
            if match is None:
                continue
            key = canonical(match.group("name"))
            if key in targets and targets[key] not in found:
                found[targets[key]] = match.group("version")
    missing = [n for n in wanted if n not in found] if undecided else []
    return found, missing


def probe_packages(unknown: dict[str, str], packages: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = dict.fromkeys(packages)
    found, slow = scan_distributions(list(packages))
    result.update(found)
    if slow:
        from importlib import metadata

        for name in slow:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
            except Exception as exc:
                unknown[f"packages.{name}"] = "reading its metadata failed: " + describe(exc)
                continue
            if version:
                result[name] = str(version)
            else:
                unknown[f"packages.{name}"] = "installed, but its metadata has no version"
    if "mmcv" in result and result["mmcv"] is None and result.get("mmcv-lite"):  # mmcv-lite: `mmcv`, minus ops
        result["mmcv"] = result["mmcv-lite"]
    return result


def probe_torch_build(unknown: dict[str, str], torch_installed: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"cuda": None, "hip": None, "version": None, "source": None}
    roots = package_dirs("torch")
    if not roots:
        if torch_installed:
            unknown["torch_build.cuda"] = "torch is installed but find_spec('torch') found nothing"
        return result
    try:
        text = read_text(roots[0] / "version.py")
    except OSError as exc:
        unknown["torch_build.cuda"] = "cannot read torch/version.py: " + describe(exc)
        return result
    result["source"] = "torch/version.py"
    found, result["cuda"] = assigned_string(text, "cuda")  # None: a CPU build
    if not found:
        unknown["torch_build.cuda"] = "torch/version.py has no cuda entry"
    result["hip"] = assigned_string(text, "hip")[1]
    # PyPI wheels record `2.2.2` in their metadata but `2.2.2+cu121` here: keep the local tag.
    result["version"] = assigned_string(text, "__version__")[1]
    return result


def probe_aimet_build(unknown: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"torch": None, "python_abi": None, "source": None}
    for top_level, relative in AIMET_BUILD_FILES:
        source = f"{top_level}/{relative}"
        try:
            roots = package_dirs(top_level)
            path = next((root / relative for root in roots if (root / relative).is_file()), None)
            if path is None:
                continue
            text = read_text(path)
        except Exception as exc:
            unknown["aimet_build.torch"] = f"cannot read {source}: {describe(exc)}"
            continue
        has_torch, torch_value = assigned_string(text, "torch")
        has_abi, abi_value = assigned_string(text, "python_abi")
        if has_torch or has_abi:
            unknown.pop("aimet_build.torch", None)
            result.update(torch=torch_value, python_abi=abi_value, source=source)
            return result
    return result  # not installed, or a build that records nothing (aimet 1.x): a known absence


def parse_driver(text: str) -> str | None:
    match = re.search(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)*)\b", text)
    if match is None:
        match = re.search(r"\b(\d{2,4}\.\d{1,3}(?:\.\d{1,3})?)\b", text)
    return match.group(1) if match else None


def parse_nvidia_smi(out: str, with_capability: bool) -> tuple[list[dict[str, Any]], str | None]:
    """GPUs and driver from `--format=csv,noheader` lines: `name, compute_cap, driver_version`."""
    gpus: list[dict[str, Any]] = []
    driver = None
    width = 3 if with_capability else 2
    for line in out.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) < width:
            continue
        capability = parts[-2] if with_capability else None
        if capability is not None and not re.match(r"^\d+\.\d+$", capability):
            capability = None  # "[N/A]"
        gpus.append({"name": ", ".join(parts[: len(parts) - width + 1]), "compute_capability": capability})
        if driver is None and re.match(r"^\d+(\.\d+)+$", parts[-1]):
            driver = parts[-1]
    return gpus, driver


def run_nvidia_smi(smi: str) -> tuple[list[dict[str, Any]] | None, str | None, str | None]:
    """(gpus, driver, error). Only names, capabilities and the driver are asked for: no UUIDs or bus ids."""
    for with_capability in (True, False):
        fields = "name,compute_cap,driver_version" if with_capability else "name,driver_version"
        try:
            code, out, err = run([smi, "--query-gpu=" + fields, "--format=csv,noheader"], NVIDIA_SMI_TIMEOUT)
        except OSError as exc:
            return None, None, "nvidia-smi could not start: " + describe(exc)
        if code is None:
            return None, None, f"nvidia-smi timed out after {NVIDIA_SMI_TIMEOUT}s"
        if code == 0:
            gpus, driver = parse_nvidia_smi(out, with_capability)
            return gpus, driver, None
        if "No devices were found" in out + err:
            return [], None, None
        if not (with_capability and "compute_cap" in out + err):  # drivers before ~510 lack compute_cap
            return None, None, f"nvidia-smi failed (exit status {code}): {first_line(out, err)}"
    return None, None, "nvidia-smi cannot list GPUs"


def probe_nvidia(unknown: dict[str, str]) -> dict[str, Any]:
    driver, source = None, "none"
    for path in DRIVER_FILES:
        try:
            driver = parse_driver(read_text(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            unknown["nvidia.driver_file"] = f"{path}: {describe(exc)}"
            continue
        if driver:
            source = path
            break
    smi = which("nvidia-smi", NVIDIA_SMI_FALLBACKS)
    if smi is None:
        if driver is None:
            return {"driver": None, "driver_source": "none", "gpus": []}  # no NVIDIA driver: a known absence
        unknown["nvidia.gpus"] = "nvidia-smi not found"
        return {"driver": driver, "driver_source": source, "gpus": None}
    gpus, smi_driver, error = run_nvidia_smi(smi)
    if error is not None:
        unknown["nvidia.gpus"] = error
    if driver is None and smi_driver is not None:
        driver, source = smi_driver, "nvidia-smi"
    if driver is None and error is not None:
        unknown["nvidia.driver"] = error
        return {"driver": None, "driver_source": None, "gpus": gpus}
    return {"driver": driver, "driver_source": source, "gpus": gpus}


def loader_cache(machine: str) -> tuple[dict[str, str] | None, str | None]:
    """soname -> path from `ldconfig -p`, keeping only entries this machine's 64-bit loader would use."""
    ldconfig = next((path for path in LDCONFIGS if Path(path).is_file()), None) or which("ldconfig")
    if ldconfig is None:
        return None, "ldconfig not found"
    try:
        code, out, err = run([ldconfig, "-p"], LDCONFIG_TIMEOUT)
    except OSError as exc:
        return None, "ldconfig could not start: " + describe(exc)
    if code is None:
        return None, f"ldconfig -p timed out after {LDCONFIG_TIMEOUT}s"
    if code != 0:
        return None, "ldconfig -p failed: " + first_line(err, out)
    arch = LDCONFIG_ARCH.get(machine)
    cache: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^\s+(\S+) \(([^)]*)\) => (.+)$", line)
        if match is None or match.group(1) in cache:
            continue
        if arch is None or arch in match.group(2).split(","):
            cache[match.group(1)] = match.group(3).strip()
    return cache, None


def nvidia_wheel_lib(soname: str) -> str | None:
    """pip's nvidia-* wheels (which torch preloads) put their libraries in site-packages/nvidia/<name>/lib."""
    try:
        roots = package_dirs("nvidia")  # a namespace package: nothing is executed
        for root in roots:
            for sub in sorted(os.listdir(root)):
                if (root / sub / "lib" / soname).is_file():
                    return f"site-packages nvidia/{sub}/lib"
    except Exception:
        return None
    return None


def probe_libraries(unknown: dict[str, str], machine: str, libraries: list[str]) -> dict[str, Any]:
    if not libraries:
        return {}
    cache, cache_error = loader_cache(machine)
    ld_dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    default_dirs = ["/lib64", "/usr/lib64", "/lib", "/usr/lib", f"/lib/{machine}-linux-gnu"]
    default_dirs.append(f"/usr/lib/{machine}-linux-gnu")
    result: dict[str, Any] = {}
    for soname in libraries:
        where = cache.get(soname) if cache is not None else None
        if where is None:
            where = next((str(Path(d, soname)) for d in ld_dirs if Path(d, soname).is_file()), None)
        if where is None:
            where = nvidia_wheel_lib(soname)
        if where is None and cache is None:  # no loader cache to ask: try the loader's default directories
            where = next((str(Path(d, soname)) for d in default_dirs if Path(d, soname).is_file()), None)
            if where is None:
                result[soname] = None
                unknown[f"libraries.{soname}"] = f"{cache_error}; not in LD_LIBRARY_PATH or default directories"
                continue
        result[soname] = {"found": where is not None, "where": where}
    return result


# --- redaction: nothing leaves this process with the home directory, host name or a GPU UUID in it -----


def home_dirs() -> list[str]:
    homes = set()
    with contextlib.suppress(Exception):
        homes.add(str(Path.home()))
    with contextlib.suppress(Exception):
        import pwd

        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    homes |= {os.path.realpath(home) for home in homes if home}
    return sorted({h.rstrip("/") for h in homes if h.rstrip("/")}, key=len, reverse=True)


def host_names() -> list[str]:
    try:
        name = os.uname().nodename  # the same as socket.gethostname(), without importing socket
    except Exception:
        import socket

        name = socket.gethostname()
    return sorted({n for n in (name, name.split(".")[0]) if n}, key=len, reverse=True)


class Redactor:
    """Home directory -> `~`, host name -> `<host>`, GPU UUIDs -> `<gpu-uuid>`, in every string value."""

    def __init__(self, homes: list[str], hosts: list[str]) -> None:
        self.homes = [re.compile(r"(?<![\w.~/-])" + re.escape(h) + r"(?=/|$|[^\w.-])") for h in homes]
        self.hosts = [re.compile(r"(?<![A-Za-z0-9-])" + re.escape(h) + r"(?![A-Za-z0-9-])", re.I) for h in hosts]

    def text(self, value: str, path: str) -> str:
        value = GPU_UUID.sub("<gpu-uuid>", value)
        for pattern in self.homes:
            value = pattern.sub("~", value)
        if not any(path == v or (v.endswith(".") and path.startswith(v)) for v in VOCABULARY):
            for pattern in self.hosts:
                value = pattern.sub("<host>", value)
        return value

    def walk(self, value: Any, path: str = "") -> Any:
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, dict):
            return {key: self.walk(item, f"{path}.{key}" if path else str(key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, path + ".") for item in value]
        return value


def read_request(argv: list[str]) -> dict[str, list[str]]:
    """`--request JSON` -> {"packages": [...], "libraries": [...]} (names only; anything else is ignored)."""
    request: Any = {}
    if len(argv) == 2 and argv[0] == "--request":
        with contextlib.suppress(ValueError):
            request = json.loads(argv[1])
    if not isinstance(request, dict):
        request = {}
    lists = {key: request.get(key) for key in ("packages", "libraries")}
    return {key: [str(v) for v in value] if isinstance(value, list) else [] for key, value in lists.items()}


def collect(request: dict[str, list[str]]) -> dict[str, Any]:
    unknown: dict[str, str] = {}
    payload: dict[str, Any] = {"collector": COLLECTOR_VERSION}

    def section(name: str, probe: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        try:
            payload[name] = probe(unknown, *args)
        except Exception as exc:
            payload[name] = None
            unknown[name] = describe(exc)
        return payload[name] or {}

    section("python", probe_python)
    machine = section("platform", probe_platform).get("machine") or ""
    packages = section("packages", probe_packages, request["packages"])
    section("torch_build", probe_torch_build, bool(packages.get("torch")))
    section("aimet_build", probe_aimet_build)
    section("nvidia", probe_nvidia)
    section("libraries", probe_libraries, machine, request["libraries"])
    payload["env"] = {name: os.environ.get(name) for name in ENV_VARS}
    payload["unknown"] = unknown
    return payload


def main() -> int:
    if sys.version_info < MIN_PYTHON:
        found = ".".join(str(part) for part in sys.version_info[:3])
        sys.stderr.write(f"qatdoctor collector: Python {found} is too old: qatdoctor needs 3.8+ in the target\n")
        return 3
    payload = collect(read_request(sys.argv[1:]))
    try:
        payload = Redactor(home_dirs(), host_names()).walk(payload)
    except Exception as exc:  # never let anything out unredacted
        payload = {"collector": COLLECTOR_VERSION, "error": "redaction failed: " + describe(exc)}
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
