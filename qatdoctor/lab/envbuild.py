"""Build cached, idempotent Python virtual environments for the real probes.

An env lives at `<root>/<name>`; `<root>/<name>/.qatdoctor-env.json` (the stamp) is written last, so a
directory without a stamp whose digest matches the spec is a partial or stale build and is rebuilt.
Envs are built in place because venvs are not relocatable: after a rename `bin/python -m pip` still
works, but every console script (`bin/pip`, `bin/torchrun`, ...) keeps the old path in its shebang.

An overlay (`EnvSpec.base` names another env under the same root) adds packages to a base env without
touching it: a venv on the base's interpreter, without pip, whose site-packages holds a `.pth` file that
runs `site.addsitedir(<base site-packages>)`. So torch and aimet are the base's own files, and the base's
pip installs the overlay's requirements into the overlay, constrained to the base's `pip freeze`: pip
counts the base's distributions as installed (it walks sys.path), and a requirement that would need a
different version fails to resolve instead of installing a shadowing copy. The build then fails unless
the overlay sees every base distribution at the base's version and location, and the base is unchanged.
uv is never used for overlays: it only looks at the venv's own site-packages, not at sys.path.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from qatdoctor.environment.runner import Completed, Runner, run
from qatdoctor.errors import InputError, QatdoctorError

STAMP_NAME = ".qatdoctor-env.json"
STAMP_FORMAT = 1
OVERLAY_PTH_NAME = "_qatdoctor_base.pth"
CONSTRAINTS_NAME = ".qatdoctor-constraints.txt"
Installer = Literal["auto", "pip", "uv"]
EnvState = Literal["built", "missing", "stale", "partial", "broken"]
Log = Callable[[str], None]

GB = 1024**3
BASE_ESTIMATE_BYTES = 1 * GB
TORCH_ESTIMATE_BYTES = 7 * GB
_TORCH_NAMES = frozenset({"torch", "torchvision", "torchaudio", "aimet-torch"})

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
_REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_VERSION_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
_SITE_PROBE = "import json, sysconfig; p = sysconfig.get_paths(); print(json.dumps([p['purelib'], p['platlib']]))"
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")
_STEP_TIMEOUT = 60.0
_NOISE_RE = re.compile(r"^WARNING: Location '.*' is ignored")
# Environment variables that would leak the caller's packages or interpreter into the new env.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX", "PIP_USER")


class EnvBuildError(QatdoctorError):
    """An environment could not be built."""


class PythonNotFoundError(EnvBuildError):
    """No interpreter of the requested version could be found."""


class InstallError(EnvBuildError):
    """Creating the venv or installing requirements failed (resolution, download, build, timeout)."""


class DiskSpaceError(EnvBuildError):
    """Not enough free disk space for the build."""


class SystemLibError(EnvBuildError):
    """A required system shared library is missing and could not be installed."""


@dataclass(frozen=True)
class EnvSpec:
    """What to put in one environment: interpreter, pip requirements, system libraries, optional base env.

    With `base`, the env is an overlay on the env of that name (see the module docstring); its `python`
    is then only informative, as the overlay always runs on the interpreter its base was built from.
    """

    name: str
    python: str
    requirements: tuple[str, ...]
    system_libs: tuple[str, ...] = ()
    no_deps: tuple[str, ...] = ()
    base: str | None = None

    def __post_init__(self) -> None:
        for name in (self.name, self.base):
            if name is not None and not _NAME_RE.match(name):
                raise EnvBuildError(f"invalid environment name {name!r}: use letters, digits, '.', '_', '+', '-'")
        if self.base == self.name:
            raise EnvBuildError(f"environment {self.name!r} cannot be its own base")
        for field in ("requirements", "system_libs", "no_deps"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise EnvBuildError(f"EnvSpec.{field} must be a sequence of strings, not a string")
            object.__setattr__(self, field, tuple(value))

    def canonical(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (`base` only when set, so plain envs keep their digests)."""
        canonical: dict[str, Any] = {
            "name": self.name,
            "python": self.python,
            "requirements": list(self.requirements),
            "system_libs": list(self.system_libs),
            "no_deps": list(self.no_deps),
        }
        if self.base is not None:
            canonical["base"] = self.base
        return canonical

    def digest(self) -> str:
        """Stable sha256 of the canonical JSON of the spec."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def overlay_of(base: EnvSpec, name: str, requirements: Sequence[str], no_deps: Sequence[str] = ()) -> EnvSpec:
    """An overlay spec adding `requirements` to `base`."""
    return EnvSpec(name, base.python, tuple(requirements), no_deps=tuple(no_deps), base=base.name)


def default_root() -> Path:
    """`$QATDOCTOR_ENVS`, else `~/.cache/qatdoctor/envs`."""
    configured = os.environ.get("QATDOCTOR_ENVS")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "qatdoctor" / "envs"


def env_dir(spec: EnvSpec, root: Path) -> Path:
    """Where the env for `spec` lives under `root`."""
    return root / spec.name


def interpreter_path(env: Path) -> Path:
    """The interpreter inside an env directory."""
    return env / "bin" / "python"


def read_stamp(env: Path) -> dict[str, Any] | None:
    """The env's stamp as a dict, or None when absent or unreadable."""
    from qatdoctor import bounded

    try:
        data = bounded.read_json(env / STAMP_NAME, limit=1 << 20, what="env stamp", regular=True)
    except InputError:
        return None
    return data if isinstance(data, dict) else None


def base_fingerprint(stamp: Mapping[str, Any]) -> str:
    """sha256 naming one build of a base env: its digest, build time and freeze (a rebuild changes it)."""
    identity = {key: stamp.get(key) for key in ("digest", "built_at", "freeze")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def expected_digest(spec: EnvSpec, root: Path) -> str | None:
    """The digest a current stamp carries: the spec's, for an overlay mixed with its base's build.

    None for an overlay whose base has no stamp (missing or being rebuilt): no overlay is current then.
    """
    if spec.base is None:
        return spec.digest()
    base_stamp = read_stamp(root / spec.base)
    if base_stamp is None:
        return None
    text = f"{spec.digest()}:{base_fingerprint(base_stamp)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def env_state(spec: EnvSpec, root: Path, *, runner: Runner = run) -> EnvState:
    """built, missing, stale (other digest or base), partial (no stamp) or broken (interpreter does not run)."""
    env = env_dir(spec, root)
    if not env.exists():
        return "missing"
    stamp = read_stamp(env)
    if stamp is None:
        return "partial"
    digest = expected_digest(spec, root)
    if digest is None or stamp.get("digest") != digest:
        return "stale"
    python = interpreter_path(env)
    if not python.exists():
        return "broken"
    done = runner([str(python), "-I", "-c", "pass"], timeout=_STEP_TIMEOUT)
    return "built" if done.ok else "broken"


# --------------------------------------------------------------------------- finding Python


def _python_version(path: str, runner: Runner) -> tuple[str | None, str]:
    """(X.Y.Z, "") when `path` runs, else (None, why not)."""
    done = runner([path, "-c", _VERSION_PROBE], timeout=_STEP_TIMEOUT)
    if not done.ok:
        detail = done.stderr_tail(1).strip()
        return None, done.describe_exit() + (f" ({detail})" if detail else "")
    version = done.stdout.strip()
    if not _VERSION_RE.match(version):
        return None, f"printed {version!r} instead of a version"
    return version, ""


def _pyenv_root() -> Path:
    configured = os.environ.get("PYENV_ROOT")
    return Path(configured).expanduser() if configured else Path.home() / ".pyenv"


def _pyenv_candidates(major: int, minor: int, patch: int | None) -> list[Path]:
    versions = _pyenv_root() / "versions"
    found: list[tuple[int, Path]] = []
    with contextlib.suppress(OSError):
        for entry in versions.iterdir():
            match = _VERSION_RE.match(entry.name)
            if not match or (int(match[1]), int(match[2])) != (major, minor) or match[3] is None:
                continue
            if patch is not None and int(match[3]) != patch:
                continue
            found.append((int(match[3]), entry / "bin" / f"python{major}.{minor}"))
    return [path for _, path in sorted(found, reverse=True)]


def find_python(version: str, runner: Runner = run) -> str:
    """Path of a working interpreter: an explicit path, `pythonX.Y` on PATH, pyenv, then `uv python find`."""
    version = version.strip()
    match = _VERSION_RE.match(version)
    if match is None:
        path = Path(version).expanduser()
        if not path.exists():
            raise PythonNotFoundError(
                f"Python {version!r} not found: it is neither an X.Y version nor an existing interpreter path"
            )
        found, why = _python_version(str(path), runner)
        if found is None:
            raise PythonNotFoundError(f"interpreter {path} does not run: {why}")
        return str(path)

    major, minor = int(match[1]), int(match[2])
    patch = int(match[3]) if match[3] is not None else None
    wanted = f"{major}.{minor}" if patch is None else f"{major}.{minor}.{patch}"
    tried: list[str] = []

    def accept(path: str, source: str) -> bool:
        found, why = _python_version(path, runner)
        if found is None:
            tried.append(f"{source} {path}: {why}")
            return False
        if found != wanted and not found.startswith(wanted + "."):
            tried.append(f"{source} {path}: is Python {found}")
            return False
        return True

    exe = f"python{major}.{minor}"
    on_path = shutil.which(exe)
    if on_path is None:
        tried.append(f"{exe} on PATH: not found")
    elif accept(on_path, "PATH"):
        return on_path

    candidates = [p for p in _pyenv_candidates(major, minor, patch) if p.exists()]
    if not candidates:
        tried.append(f"pyenv: no {_pyenv_root() / 'versions' / (wanted + '*')}")
    for candidate in candidates:
        if accept(str(candidate), "pyenv"):
            return str(candidate)

    uv = find_uv()
    if uv is None:
        tried.append("uv python find: uv not on PATH")
    else:
        done = runner([uv, "python", "find", wanted], timeout=_STEP_TIMEOUT)
        found_path = done.stdout.strip().splitlines()[-1] if done.ok and done.stdout.strip() else ""
        if not found_path:
            tried.append(f"uv python find {wanted}: {done.describe_exit()}")
        elif accept(found_path, "uv"):
            return found_path

    raise PythonNotFoundError(
        f"no working Python {wanted} found; tried: " + "; ".join(tried),
        hint=f"install it (e.g. `pyenv install {wanted}` or `uv python install {wanted}`) "
        "or give the interpreter path instead of a version",
    )


# --------------------------------------------------------------------------- system libraries


def _ldconfig_names(runner: Runner) -> set[str] | None:
    ldconfig = shutil.which("ldconfig") or next(
        (p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if Path(p).exists()), None
    )
    if ldconfig is None:
        return None
    done = runner([ldconfig, "-p"], timeout=_STEP_TIMEOUT)
    if not done.ok:
        return None
    names: set[str] = set()
    for line in done.stdout.splitlines()[1:]:
        head = line.strip().split(" ", 1)[0]
        if head:
            names.add(head)
    return names


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_retryable(done: Completed) -> bool:
    text = done.stdout + done.stderr
    return any(
        marker in text
        for marker in ("Unable to locate package", "has no installation candidate", "Failed to fetch", "404")
    )


def apt_packages() -> dict[str, str]:
    """soname → the Debian/Ubuntu package that provides it, from the matrix's [[system_lib]] table."""
    from qatdoctor.knowledge.load import load

    return {lib.soname: lib.apt for lib in load().system_libs}


def ensure_system_libs(
    libs: Sequence[str], runner: Runner = run, log: Log | None = None, packages: Mapping[str, str] | None = None
) -> None:
    """Make sure each soname is known to `ldconfig -p`, installing via apt-get when root. `packages` (soname → apt
    package) defaults to the [[system_lib]] table of the matrix."""
    emit = log or _stderr_log
    if not libs:
        return
    present = _ldconfig_names(runner)
    if present is None:
        emit(f"warning: cannot run `ldconfig -p`; not checking system libraries {', '.join(libs)}")
        return
    missing = [lib for lib in libs if lib not in present]
    if not missing:
        return
    packages = apt_packages() if packages is None else packages
    unknown = [lib for lib in missing if lib not in packages]
    if unknown:
        raise SystemLibError(
            f"missing system librar{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}",
            hint="install the distribution package that provides it",
        )
    names = sorted({packages[lib] for lib in missing})
    command = f"sudo apt-get install -y {' '.join(names)}"
    apt = shutil.which("apt-get")
    if apt is None or not _is_root():
        reason = "apt-get is not available" if apt is None else "not running as root"
        raise SystemLibError(
            f"missing system library {', '.join(missing)} ({reason}); run: {command}", hint=f"run: {command}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = [apt, "install", "-y", "--no-install-recommends", *names]
    emit(f"installing system packages: {' '.join(names)}")
    done = runner(argv, timeout=900, env=env, on_stderr_line=emit)
    if not done.ok and _apt_retryable(done):
        emit("apt-get install failed; running apt-get update once and retrying")
        runner([apt, "update"], timeout=900, env=env, on_stderr_line=emit)
        done = runner(argv, timeout=900, env=env, on_stderr_line=emit)
    if not done.ok:
        raise SystemLibError(
            f"`apt-get install -y {' '.join(names)}` failed ({done.describe_exit()}): "
            f"{_last_line(done.stderr or done.stdout)}",
            hint=f"run: {command}",
        )
    present = _ldconfig_names(runner) or set()
    still = [lib for lib in missing if lib not in present]
    if still:
        raise SystemLibError(
            f"installed {' '.join(names)} but {', '.join(still)} is still not known to ldconfig",
            hint=f"run: {command}",
        )


# --------------------------------------------------------------------------- building


def estimate_bytes(spec: EnvSpec) -> int:
    """Rough disk need of a build: ~7 GB more when torch (with its CUDA wheels) is involved."""
    names = {_requirement_name(r) for r in (*spec.requirements, *spec.no_deps)}
    return BASE_ESTIMATE_BYTES + (TORCH_ESTIMATE_BYTES if names & _TORCH_NAMES else 0)


def _requirement_name(requirement: str) -> str:
    match = _REQ_NAME_RE.match(requirement)
    return re.sub(r"[-_.]+", "-", match[1]).lower() if match else ""


def check_disk_space(spec: EnvSpec, root: Path) -> None:
    """Raise DiskSpaceError when `root`'s filesystem has less free space than the build needs."""
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = estimate_bytes(spec)
    if free < need:
        raise DiskSpaceError(
            f"not enough disk space to build {spec.name} in {root}: {free / GB:.1f} GB free, "
            f"about {need / GB:.0f} GB needed",
            hint="free some space or set QATDOCTOR_ENVS to a directory on a larger disk",
        )


def _stderr_log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def installer_error_line(output: str) -> str:
    """The most useful line of pip or uv output explaining why an install failed."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip() and not _NOISE_RE.match(line)]
    for line in reversed(lines):  # the most specific pip messages first
        if "requires a different Python" in line or "No matching distribution found" in line:
            return line.strip()
    for index, line in enumerate(lines):  # pip's resolver conflict: name the cause
        if "The conflict is caused by:" in line:
            causes = [c.strip() for c in lines[index + 1 : index + 4] if c.startswith("    ")]
            if causes:
                return "dependency conflict: " + "; ".join(causes)
    for index, line in enumerate(lines):  # uv: "× No solution found ..." then "╰─▶ Because ..."
        if "╰─▶" in line:
            return " ".join([line.split("╰─▶", 1)[1].strip(), *(c.strip() for c in lines[index + 1 : index + 3])])
    for line in reversed(lines):
        stripped = line.strip()
        if stripped.startswith(("ERROR:", "error:")) and "ResolutionImpossible" not in stripped:
            return stripped
    return _last_line("\n".join(lines))


def _merged(argv: Sequence[str]) -> list[str]:
    """argv run with stdout folded into stderr, so pip's progress ("Collecting ...") streams."""
    return [shutil.which("sh") or "/bin/sh", "-c", 'exec "$@" 1>&2', "sh", *argv]


def _build_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def find_uv() -> str | None:
    """`uv` on PATH, else the one installed beside this interpreter (`pip install uv` into qatdoctor's venv)."""
    return shutil.which("uv") or _uv_beside_python()


def _uv_beside_python() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def resolve_installer(installer: str) -> Literal["pip", "uv"]:
    """What `installer` (auto, pip, uv) means here: auto is uv when it is available, else pip."""
    return _resolve_installer(installer)[0]


def _resolve_installer(installer: str) -> tuple[Literal["pip", "uv"], str | None]:
    if installer not in ("auto", "pip", "uv"):
        raise EnvBuildError(f"unknown installer {installer!r}: use auto, pip or uv")
    uv = find_uv()
    if installer == "pip" or (installer == "auto" and uv is None):
        return "pip", None
    if uv is None:
        raise EnvBuildError("installer uv requested but `uv` is not on PATH", hint="pip install uv")
    return "uv", uv


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def remove_env(path: Path | str) -> None:
    """Delete an env directory (refuses directories that do not look like a venv)."""
    env = Path(path)
    if env.name == "python" and env.parent.name == "bin":
        env = env.parent.parent
    if not env.exists() and not env.is_symlink():
        return
    looks_like_env = env.is_dir() and (
        (env / "pyvenv.cfg").exists() or (env / STAMP_NAME).exists() or not any(env.iterdir())
    )
    if not looks_like_env:
        raise EnvBuildError(f"refusing to remove {env}: it does not look like a qatdoctor environment")
    _rmtree(env)


@contextlib.contextmanager
def _build_lock(root: Path, name: str, emit: Log) -> Iterator[None]:
    """Serialise builds of one env across processes."""
    with (root / f".{name}.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            emit(f"[{name}] waiting for another build of this environment to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Steps:
    """Runs the build's subprocesses against one overall deadline, raising InstallError on failure."""

    def __init__(self, runner: Runner, env: Mapping[str, str], emit: Log, name: str, timeout: float) -> None:
        self.runner, self.env, self.emit, self.name = runner, env, emit, name
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout

    def __call__(self, what: str, argv: Sequence[str], *, stream: bool = False) -> Completed:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise InstallError(f"building {self.name} timed out after {self.timeout:.0f}s (before: {what})")

        def show(line: str) -> None:
            if line.strip() and not _NOISE_RE.match(line):
                self.emit(f"  {line}")

        done = self.runner(
            _merged(argv) if stream else argv,
            timeout=left,
            env=self.env,
            on_stderr_line=show if stream else None,
        )
        if done.timed_out:
            raise InstallError(f"building {self.name}: {what} timed out after {self.timeout:.0f}s overall")
        if not done.ok:
            detail = installer_error_line(done.stderr + "\n" + done.stdout)
            raise InstallError(f"building {self.name}: {what} failed ({done.describe_exit()}): {detail}")
        return done


def build_env(
    spec: EnvSpec,
    root: Path,
    *,
    installer: str = "auto",
    runner: Runner = run,
    log: Log | None = None,
    timeout: float = 1800,
) -> Path:
    """Build (or reuse, when its stamp matches) the env for `spec`; return its interpreter path.

    An overlay's base must already be built; the base's lock is held while the overlay builds.
    """
    emit = log or _stderr_log
    env = env_dir(spec, root)
    python_in_env = interpreter_path(env)
    if env_state(spec, root, runner=runner) == "built":
        return python_in_env

    kind, uv = _resolve_installer(installer)
    if spec.base is not None:
        if kind == "uv":
            emit(f"[{spec.name}] using the base env's pip: uv does not see the base's packages on sys.path")
        kind, uv = "pip", None
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as locks:
        if spec.base is not None:
            locks.enter_context(_build_lock(root, spec.base, emit))
        locks.enter_context(_build_lock(root, spec.name, emit))
        state = env_state(spec, root, runner=runner)
        if state == "built":  # another process finished it while we waited
            return python_in_env
        base_stamp = _overlay_base_stamp(spec, root) if spec.base is not None else None
        base_python = (
            _stamped_python(base_stamp, runner) if base_stamp is not None else find_python(spec.python, runner)
        )
        if state != "missing":
            emit(f"[{spec.name}] removing {state} environment at {env}")
            _rmtree(env)
        check_disk_space(spec, root)
        ensure_system_libs(spec.system_libs, runner, emit)
        started = time.monotonic()
        on = f" on {spec.base}" if spec.base is not None else ""
        emit(f"[{spec.name}] building with {kind} from {base_python}{on} into {env}")
        step = _Steps(runner, _build_environ(), emit, spec.name, timeout)
        try:
            if spec.base is not None:
                freeze = _install_overlay(spec, env, root / spec.base, base_python, step)
            else:
                freeze = _install(spec, env, base_python, kind, uv, step)
            extra = {"base": _base_record(spec, base_stamp)} if base_stamp is not None else {}
            digest = expected_digest(spec, root) or spec.digest()
            _write_stamp(env, spec, kind, base_python, freeze, time.monotonic() - started, digest, extra)
        except BaseException:
            with contextlib.suppress(OSError):
                _rmtree(env)
            raise
        emit(f"[{spec.name}] built in {time.monotonic() - started:.0f}s")
    return python_in_env


def _overlay_base_stamp(spec: EnvSpec, root: Path) -> dict[str, Any]:
    """The stamp of the overlay's base env; EnvBuildError when the base is not built."""
    assert spec.base is not None
    stamp = read_stamp(root / spec.base)
    if stamp is None:
        raise EnvBuildError(
            f"{spec.name} is an overlay on {spec.base}, which is not built",
            hint=f"build {spec.base} first (python scripts/refenvs.py build {spec.base})",
        )
    return stamp


def _stamped_python(stamp: Mapping[str, Any], runner: Runner) -> str:
    """The interpreter a base env was built from, checked to still run."""
    python = stamp.get("base_python")
    if not isinstance(python, str) or not python:
        raise EnvBuildError("the base env's stamp records no base_python", hint="rebuild the base env")
    found, why = _python_version(python, runner)
    if found is None:
        raise PythonNotFoundError(f"the base env's interpreter {python} does not run: {why}")
    return python


def _base_record(spec: EnvSpec, stamp: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": spec.base, "digest": stamp.get("digest"), "fingerprint": base_fingerprint(stamp)}


def _install(
    spec: EnvSpec, env: Path, base_python: str, kind: Literal["pip", "uv"], uv: str | None, step: _Steps
) -> list[str]:
    python = str(interpreter_path(env))
    if kind == "uv":
        assert uv is not None
        step("uv venv", [uv, "venv", "--seed", "--python", base_python, str(env)], stream=True)
        install = [uv, "pip", "install", "--python", python]
        freeze_argv = [uv, "pip", "freeze", "--python", python]
    else:
        step("python -m venv", [base_python, "-m", "venv", str(env)])
        install = [python, "-m", "pip", "install", "--upgrade-strategy", "only-if-needed"]
        freeze_argv = [python, "-m", "pip", "freeze", "--all"]
    if spec.requirements:
        step(f"{kind} install", [*install, *spec.requirements], stream=True)
    if spec.no_deps:
        step(f"{kind} install --no-deps", [*install, "--no-deps", *spec.no_deps], stream=True)
    return step(f"{kind} freeze", freeze_argv).stdout.splitlines()


# --------------------------------------------------------------------------- overlays


def _site_dirs(python: Path, step: _Steps) -> list[str]:
    """An interpreter's purelib and platlib directories, without duplicates."""
    done = step(f"{python} site directories", [str(python), "-I", "-c", _SITE_PROBE])
    try:
        paths = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError):
        raise InstallError(f"{python} printed {done.stdout.strip()!r} instead of its site directories") from None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InstallError(f"{python} printed {done.stdout.strip()!r} instead of its site directories")
    return list(dict.fromkeys(paths))


def overlay_pth(base_dirs: Sequence[str]) -> str:
    """The `.pth` text adding the base's site directories, with their own `.pth` files, after the overlay's."""
    return "".join(f"import site; site.addsitedir({d!r})\n" for d in base_dirs)


def pins(freeze: Sequence[str]) -> list[str]:
    """The `name==version` lines of a freeze (editable and URL lines cannot be constraints)."""
    return [line.strip() for line in freeze if _PIN_RE.match(line.strip())]


Listing = dict[str, tuple[str, str]]


def parse_listing(text: str) -> Listing:
    """canonical name -> (version, location) from `pip list --format json -v`."""
    try:
        rows = json.loads(text)
    except (ValueError, RecursionError):
        raise InstallError(f"pip list printed something other than JSON: {_last_line(text)}") from None
    if not isinstance(rows, list):
        raise InstallError("pip list printed JSON that is not a list")
    listing: Listing = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("version"), str):
            listing[_requirement_name(row["name"])] = (row["version"], str(row.get("location") or ""))
    return listing


def overlay_problems(base: Listing, overlay: Listing, base_after: Listing) -> list[str]:
    """What the overlay got wrong: every base distribution seen at the base's version and location, base unchanged."""
    problems: list[str] = []
    for name, (version, location) in sorted(base.items()):
        seen = overlay.get(name)
        if seen is None:
            problems.append(f"{name} {version} is not visible in the overlay")
        elif seen[0] != version:
            problems.append(f"{name} is {seen[0]} in the overlay, {version} in the base")
        elif os.path.normpath(seen[1]) != os.path.normpath(location):
            problems.append(f"{name} {version} is shadowed by a copy in {seen[1]}")
    if base_after != base:
        changed = sorted(set(base.items()) ^ set(base_after.items()))
        problems.append("the base env changed: " + ", ".join(sorted({name for name, _ in changed})))
    return problems


def _listing(python: Path, step: _Steps, what: str) -> Listing:
    return parse_listing(step(what, [str(python), "-m", "pip", "list", "--format", "json", "-v"]).stdout)


def _install_overlay(spec: EnvSpec, env: Path, base_env: Path, base_python: str, step: _Steps) -> list[str]:
    base_py, python = interpreter_path(base_env), interpreter_path(env)
    step("python -m venv --without-pip", [base_python, "-m", "venv", "--without-pip", str(env)])
    own_site = Path(_site_dirs(python, step)[0])
    own_site.mkdir(parents=True, exist_ok=True)
    (own_site / OVERLAY_PTH_NAME).write_text(overlay_pth(_site_dirs(base_py, step)), encoding="utf-8")
    freeze = step("pip freeze (base)", [str(base_py), "-m", "pip", "freeze", "--all"]).stdout.splitlines()
    (env / CONSTRAINTS_NAME).write_text("".join(f"{line}\n" for line in pins(freeze)), encoding="utf-8")
    base = _listing(base_py, step, "pip list (base)")
    install = [str(python), "-m", "pip", "install", "--upgrade-strategy", "only-if-needed"]
    install += ["--constraint", str(env / CONSTRAINTS_NAME)]
    if spec.requirements:
        step("pip install", [*install, *spec.requirements], stream=True)
    if spec.no_deps:
        step("pip install --no-deps", [*install, "--no-deps", *spec.no_deps], stream=True)
    problems = overlay_problems(base, _listing(python, step, "pip list"), _listing(base_py, step, "pip list (base)"))
    if problems:
        more = f"; and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise InstallError(
            f"building {spec.name}: the overlay does not leave {spec.base} as it is: " + "; ".join(problems[:8]) + more
        )
    return step("pip freeze", [str(python), "-m", "pip", "freeze", "--all"]).stdout.splitlines()


def _write_stamp(
    env: Path,
    spec: EnvSpec,
    kind: str,
    base_python: str,
    freeze: list[str],
    seconds: float,
    digest: str,
    extra: Mapping[str, Any],
) -> None:
    stamp = {
        **extra,
        "format": STAMP_FORMAT,
        "spec": asdict(spec),
        "digest": digest,
        "installer": kind,
        "base_python": base_python,
        "freeze": freeze,
        "build_seconds": round(seconds, 1),
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    from qatdoctor import atomic

    try:
        atomic.write_text(env / STAMP_NAME, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        raise InstallError(f"building {spec.name}: cannot write its stamp: {error.strerror or error}") from None
