"""Tests for qatdoctor.lab.envbuild: fake-runner unit tests plus one small real build."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from qatdoctor.environment.runner import Completed
from qatdoctor.lab import envbuild
from qatdoctor.lab.envbuild import (
    STAMP_NAME,
    DiskSpaceError,
    EnvBuildError,
    EnvSpec,
    InstallError,
    PythonNotFoundError,
    SystemLibError,
    build_env,
    default_root,
    ensure_system_libs,
    env_state,
    expected_digest,
    find_python,
    installer_error_line,
    overlay_of,
    overlay_problems,
    overlay_pth,
    parse_listing,
    pins,
    remove_env,
)

Handler = Callable[[tuple[str, ...]], Completed | None]


def ok(argv: Sequence[str], stdout: str = "", stderr: str = "") -> Completed:
    return Completed(tuple(argv), 0, stdout, stderr, 0.01)


def fail(argv: Sequence[str], stderr: str = "", code: int = 1, stdout: str = "") -> Completed:
    return Completed(tuple(argv), code, stdout, stderr, 0.01)


class FakeRunner:
    """Records argv; answers from `handlers` (first non-None wins), else simulates venv/pip success."""

    def __init__(self, *handlers: Handler) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.handlers = handlers

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
    ) -> Completed:
        args = _unwrap(tuple(argv))
        self.calls.append(args)
        for handler in self.handlers:
            done = handler(args)
            if done is not None:
                return done
        return default_behaviour(args)

    def commands(self) -> list[tuple[str, ...]]:
        """Calls other than the `-c` interpreter checks."""
        return [c for c in self.calls if "-c" not in c]


def _unwrap(argv: tuple[str, ...]) -> tuple[str, ...]:
    """Strip the `sh -c 'exec "$@" 1>&2' sh` wrapper envbuild uses to stream pip's stdout."""
    if len(argv) > 3 and argv[1] == "-c" and argv[2] == 'exec "$@" 1>&2':
        return argv[4:]
    return argv


def default_behaviour(argv: tuple[str, ...]) -> Completed:
    if "-c" in argv:  # version probe or `-I -c pass`
        if not Path(argv[0]).exists():
            return Completed(argv, None, "", "", 0.0, start_error="No such file or directory")
        return ok(argv, "3.10.13\n")
    if argv[1:3] == ("-m", "venv") or argv[1:2] == ("venv",):
        env = Path(argv[-1])
        (env / "bin").mkdir(parents=True)
        (env / "bin" / "python").write_text("fake")
        (env / "pyvenv.cfg").write_text("home = /x\n")
        return ok(argv)
    if "freeze" in argv:
        return ok(argv, "fakepkg==1.0\n")
    return ok(argv, "Successfully installed fakepkg-1.0\n")


def which_table(table: dict[str, str | None]) -> Callable[[str], str | None]:
    def which(name: str) -> str | None:
        if name == "sh":
            return "/bin/sh"
        return table.get(name)

    return which


@pytest.fixture
def no_uv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({}))
    monkeypatch.setattr(envbuild, "_uv_beside_python", lambda: None)


@pytest.fixture
def base_python(tmp_path: Path) -> str:
    exe = tmp_path / "base" / "python3.10"
    exe.parent.mkdir()
    exe.write_text("fake")
    return str(exe)


def spec_for(python: str, **kw: object) -> EnvSpec:
    return EnvSpec(name="t", python=python, requirements=("fakepkg==1.0",), **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- EnvSpec


def test_digest_is_stable_and_sensitive() -> None:
    a = EnvSpec("x", "3.10", ("a==1", "b"))
    assert a.digest() == EnvSpec("x", "3.10", ("a==1", "b")).digest()
    assert len(a.digest()) == 64
    assert a.digest() != EnvSpec("x", "3.10", ("a==2", "b")).digest()
    assert a.digest() != EnvSpec("x", "3.11", ("a==1", "b")).digest()
    assert a.digest() != EnvSpec("x", "3.10", ("a==1", "b"), no_deps=("c",)).digest()
    assert EnvSpec("x", "3.10", ["a==1", "b"]).requirements == ("a==1", "b")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden"])
def test_bad_names_rejected(name: str) -> None:
    with pytest.raises(EnvBuildError):
        EnvSpec(name, "3.10", ())


def test_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QATDOCTOR_ENVS", str(tmp_path / "envs"))
    assert default_root() == tmp_path / "envs"
    monkeypatch.delenv("QATDOCTOR_ENVS")
    assert default_root() == Path.home() / ".cache" / "qatdoctor" / "envs"


# ----------------------------------------------------------------------------- find_python


def make_pyenv(root: Path, versions: Sequence[str]) -> None:
    for v in versions:
        major_minor = ".".join(v.split(".")[:2])
        exe = root / "versions" / v / "bin" / f"python{major_minor}"
        exe.parent.mkdir(parents=True)
        exe.write_text("fake")


def version_by_path(table: dict[str, str]) -> Handler:
    def handler(argv: tuple[str, ...]) -> Completed | None:
        if "-c" not in argv:
            return None
        for needle, answer in table.items():
            if needle in argv[0]:
                if answer.startswith("FAIL"):
                    return fail(argv, "pyenv: python3.10: command not found", code=127)
                return ok(argv, answer + "\n")
        return None

    return handler


def test_find_python_skips_broken_shim_then_picks_highest_pyenv_patch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    make_pyenv(tmp_path / "pyenv", ["3.10.2", "3.10.13", "3.10.9", "3.11.7", "3.10-dev"])
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"python3.10": "/shims/python3.10"}))
    runner = FakeRunner(version_by_path({"/shims/": "FAIL", "3.10.13": "3.10.13"}))
    found = find_python("3.10", runner)
    assert found == str(tmp_path / "pyenv/versions/3.10.13/bin/python3.10")
    assert [c[0] for c in runner.calls] == ["/shims/python3.10", found]


def test_find_python_prefers_working_path_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    make_pyenv(tmp_path / "pyenv", ["3.10.13"])
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"python3.10": "/usr/bin/python3.10"}))
    runner = FakeRunner(version_by_path({"/usr/bin/": "3.10.12"}))
    assert find_python("3.10", runner) == "/usr/bin/python3.10"


def test_find_python_rejects_wrong_version_and_falls_back_to_uv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "nopyenv"))
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"python3.10": "/usr/bin/python3.10", "uv": "/bin/uv"}))

    def uv_find(argv: tuple[str, ...]) -> Completed | None:
        if argv[:3] == ("/bin/uv", "python", "find"):
            assert argv[3] == "3.10"
            return ok(argv, "/uv/cpython-3.10.16/bin/python3.10\n")
        return None

    runner = FakeRunner(uv_find, version_by_path({"/usr/bin/": "3.12.1", "/uv/": "3.10.16"}))
    assert find_python("3.10", runner) == "/uv/cpython-3.10.16/bin/python3.10"


def test_find_python_not_found_lists_what_was_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "nopyenv"))
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"python3.9": "/shims/python3.9"}))
    monkeypatch.setattr(envbuild, "_uv_beside_python", lambda: None)
    with pytest.raises(PythonNotFoundError) as info:
        find_python("3.9", FakeRunner(version_by_path({"/shims/": "FAIL"})))
    message = info.value.message
    assert "no working Python 3.9 found" in message
    assert "/shims/python3.9: exit status 127 (pyenv: python3.10: command not found)" in message
    assert "pyenv: no" in message
    assert "uv python find: uv not on PATH" in message
    assert info.value.hint is not None and "pyenv install 3.9" in info.value.hint


def test_find_python_explicit_path(tmp_path: Path, base_python: str) -> None:
    assert find_python(base_python, FakeRunner()) == base_python
    with pytest.raises(PythonNotFoundError, match=r"neither an X\.Y version"):
        find_python(str(tmp_path / "nope" / "python"), FakeRunner())
    broken = FakeRunner(lambda a: fail(a, "Segmentation fault", code=-11))
    with pytest.raises(PythonNotFoundError, match="does not run: killed by SIGSEGV"):
        find_python(base_python, broken)


# ----------------------------------------------------------------------------- system libraries

LDCONFIG_WITH = "2 libs found in cache\n\tliblapacke.so.3 (libc6,x86-64) => /lib/liblapacke.so.3\n"
LDCONFIG_WITHOUT = "1 libs found in cache\n\tlibc.so.6 (libc6,x86-64) => /lib/libc.so.6\n"


def test_system_libs_present_means_no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"ldconfig": "/sbin/ldconfig"}))
    runner = FakeRunner(lambda a: ok(a, LDCONFIG_WITH))
    ensure_system_libs(["liblapacke.so.3"], runner)
    assert runner.calls == [("/sbin/ldconfig", "-p")]


def test_system_libs_missing_not_root_gives_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        envbuild.shutil, "which", which_table({"ldconfig": "/sbin/ldconfig", "apt-get": "/usr/bin/apt-get"})
    )
    monkeypatch.setattr(envbuild, "_is_root", lambda: False)
    with pytest.raises(SystemLibError) as info:
        ensure_system_libs(["liblapacke.so.3"], FakeRunner(lambda a: ok(a, LDCONFIG_WITHOUT)))
    assert "not running as root" in info.value.message
    assert "sudo apt-get install -y liblapacke" in info.value.message


def test_system_libs_no_apt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"ldconfig": "/sbin/ldconfig"}))
    monkeypatch.setattr(envbuild, "_is_root", lambda: True)
    with pytest.raises(SystemLibError, match=r"apt-get is not available.*sudo apt-get install -y liblapacke"):
        ensure_system_libs(["liblapacke.so.3"], FakeRunner(lambda a: ok(a, LDCONFIG_WITHOUT)))


def test_system_libs_root_installs_with_update_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        envbuild.shutil, "which", which_table({"ldconfig": "/sbin/ldconfig", "apt-get": "/usr/bin/apt-get"})
    )
    monkeypatch.setattr(envbuild, "_is_root", lambda: True)
    state = {"installed": False, "updated": False}

    def apt(argv: tuple[str, ...]) -> Completed:
        if argv[0] == "/sbin/ldconfig":
            return ok(argv, LDCONFIG_WITH if state["installed"] else LDCONFIG_WITHOUT)
        if argv[1] == "update":
            state["updated"] = True
            return ok(argv)
        if not state["updated"]:
            return fail(argv, "E: Unable to locate package liblapacke", code=100)
        state["installed"] = True
        return ok(argv)

    runner = FakeRunner(apt)
    lines: list[str] = []
    ensure_system_libs(["liblapacke.so.3"], runner, lines.append)
    apt_calls = [c[1:] for c in runner.calls if c[0] == "/usr/bin/apt-get"]
    assert apt_calls == [
        ("install", "-y", "--no-install-recommends", "liblapacke"),
        ("update",),
        ("install", "-y", "--no-install-recommends", "liblapacke"),
    ]


def test_system_libs_unknown_soname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"ldconfig": "/sbin/ldconfig"}))
    with pytest.raises(SystemLibError, match=r"libweird\.so\.9"):
        ensure_system_libs(["libweird.so.9"], FakeRunner(lambda a: ok(a, LDCONFIG_WITHOUT)))


# ----------------------------------------------------------------------------- build_env


def test_build_env_pip_argv_stamp_and_idempotence(tmp_path: Path, base_python: str, no_uv: None) -> None:
    spec = EnvSpec("t", base_python, ("fakepkg==1.0", "other<2"), no_deps=("extra==3",))
    root = tmp_path / "envs"
    runner = FakeRunner()
    lines: list[str] = []
    python = build_env(spec, root, runner=runner, log=lines.append)
    env = root / "t"
    assert python == env / "bin" / "python"
    vpy = str(python)
    assert runner.commands() == [
        (base_python, "-m", "venv", str(env)),
        (vpy, "-m", "pip", "install", "--upgrade-strategy", "only-if-needed", "fakepkg==1.0", "other<2"),
        (vpy, "-m", "pip", "install", "--upgrade-strategy", "only-if-needed", "--no-deps", "extra==3"),
        (vpy, "-m", "pip", "freeze", "--all"),
    ]
    stamp = json.loads((env / STAMP_NAME).read_text())
    assert stamp["digest"] == spec.digest()
    assert stamp["installer"] == "pip"
    assert stamp["freeze"] == ["fakepkg==1.0"]
    assert stamp["spec"]["requirements"] == ["fakepkg==1.0", "other<2"]
    assert "build_seconds" in stamp and "built_at" in stamp
    assert env_state(spec, root, runner=FakeRunner()) == "built"

    again = FakeRunner()
    assert build_env(spec, root, runner=again) == python
    assert again.commands() == []  # only the interpreter check ran
    assert len(again.calls) == 1


def test_build_env_stale_digest_rebuilds(tmp_path: Path, base_python: str, no_uv: None) -> None:
    root = tmp_path / "envs"
    build_env(spec_for(base_python), root, runner=FakeRunner(), log=lambda _: None)
    changed = EnvSpec("t", base_python, ("fakepkg==2.0",))
    assert env_state(changed, root, runner=FakeRunner()) == "stale"
    runner = FakeRunner()
    build_env(changed, root, runner=runner, log=lambda _: None)
    assert any("fakepkg==2.0" in c for c in runner.commands())
    assert json.loads((root / "t" / STAMP_NAME).read_text())["digest"] == changed.digest()


def test_partial_dir_without_stamp_is_rebuilt(tmp_path: Path, base_python: str, no_uv: None) -> None:
    root = tmp_path / "envs"
    (root / "t" / "lib").mkdir(parents=True)
    (root / "t" / "lib" / "leftover").write_text("x")
    spec = spec_for(base_python)
    assert env_state(spec, root, runner=FakeRunner()) == "partial"
    build_env(spec, root, runner=FakeRunner(), log=lambda _: None)
    assert not (root / "t" / "lib" / "leftover").exists()
    assert env_state(spec, root, runner=FakeRunner()) == "built"


def test_failed_install_removes_partial_dir_and_reports_pip_error(
    tmp_path: Path, base_python: str, no_uv: None
) -> None:
    pip_err = (
        "WARNING: Location 'file:///opt/pypi/simple/nope/' is ignored: "
        "it is neither a file nor a directory.\n"
        "ERROR: Ignored the following versions that require a different python version: "
        "1.0 Requires-Python <3.10\n"
        "ERROR: Could not find a version that satisfies the requirement nope==9 (from versions: none)\n"
        "ERROR: No matching distribution found for nope==9\n"
    )

    def pip_fails(argv: tuple[str, ...]) -> Completed | None:
        return fail(argv, pip_err) if "install" in argv else None

    root = tmp_path / "envs"
    with pytest.raises(InstallError) as info:
        build_env(spec_for(base_python), root, runner=FakeRunner(pip_fails), log=lambda _: None)
    assert "No matching distribution found for nope==9" in info.value.message
    assert "exit status 1" in info.value.message
    assert not (root / "t").exists()
    assert [p.name for p in root.iterdir() if not p.name.startswith(".")] == []


def test_timeout_is_reported(tmp_path: Path, base_python: str, no_uv: None) -> None:
    def hang(argv: tuple[str, ...]) -> Completed | None:
        if "install" in argv:
            return Completed(argv, None, "", "", 5.0, timed_out=True)
        return None

    with pytest.raises(InstallError, match="timed out"):
        build_env(spec_for(base_python), tmp_path / "envs", runner=FakeRunner(hang), log=lambda _: None)
    assert not (tmp_path / "envs" / "t").exists()


def test_uv_argv(tmp_path: Path, base_python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"uv": "/bin/uv"}))
    spec = EnvSpec("t", base_python, ("fakepkg==1.0",), no_deps=("extra==3",))
    runner = FakeRunner()
    python = build_env(spec, tmp_path / "envs", runner=runner, log=lambda _: None)  # auto picks uv
    env, vpy = str(tmp_path / "envs" / "t"), str(python)
    assert runner.commands() == [
        ("/bin/uv", "venv", "--seed", "--python", base_python, env),
        ("/bin/uv", "pip", "install", "--python", vpy, "fakepkg==1.0"),
        ("/bin/uv", "pip", "install", "--python", vpy, "--no-deps", "extra==3"),
        ("/bin/uv", "pip", "freeze", "--python", vpy),
    ]
    assert json.loads((Path(env) / STAMP_NAME).read_text())["installer"] == "uv"


def test_uv_requested_but_missing(tmp_path: Path, base_python: str, no_uv: None) -> None:
    with pytest.raises(EnvBuildError, match="uv"):
        build_env(spec_for(base_python), tmp_path, installer="uv", runner=FakeRunner())


def test_pip_forced_even_with_uv(tmp_path: Path, base_python: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"uv": "/bin/uv"}))
    runner = FakeRunner()
    build_env(spec_for(base_python), tmp_path, installer="pip", runner=runner, log=lambda _: None)
    assert runner.commands()[0] == (base_python, "-m", "venv", str(tmp_path / "t"))


def test_disk_space_error_message(
    tmp_path: Path, base_python: str, no_uv: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(envbuild.shutil, "disk_usage", lambda _p: usage(100 * 1024**3, 0, int(3.2 * 1024**3)))
    spec = EnvSpec("t", base_python, ("torch==2.2.2",))
    runner = FakeRunner()
    with pytest.raises(DiskSpaceError) as info:
        build_env(spec, tmp_path / "envs", runner=runner)
    assert "3.2 GB free" in info.value.message
    assert "about 8 GB needed" in info.value.message
    assert runner.commands() == []  # nothing was built
    # without torch the estimate is small enough
    build_env(spec_for(base_python), tmp_path / "envs", runner=FakeRunner(), log=lambda _: None)


def test_broken_interpreter_triggers_rebuild(tmp_path: Path, base_python: str, no_uv: None) -> None:
    root = tmp_path / "envs"
    spec = spec_for(base_python)
    build_env(spec, root, runner=FakeRunner(), log=lambda _: None)
    (root / "t" / "bin" / "python").unlink()
    assert env_state(spec, root, runner=FakeRunner()) == "broken"
    build_env(spec, root, runner=FakeRunner(), log=lambda _: None)
    assert env_state(spec, root, runner=FakeRunner()) == "built"


def test_remove_env(tmp_path: Path, base_python: str, no_uv: None) -> None:
    python = build_env(spec_for(base_python), tmp_path, runner=FakeRunner(), log=lambda _: None)
    remove_env(python)  # the interpreter path is accepted too
    assert not (tmp_path / "t").exists()
    remove_env(tmp_path / "t")  # already gone: fine
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(EnvBuildError, match="refusing"):
        remove_env(precious)
    assert (precious / "thesis.tex").exists()


# ----------------------------------------------------------------------------- overlays

BASE_SITE = "/envs/base/lib/python3.10/site-packages"


def test_overlay_spec_digest_and_validation() -> None:
    base = EnvSpec("base", "3.10", ("torch==2.2.2",))
    over = overlay_of(base, "base-models", ["mmdet==3.3.0"])
    assert (over.python, over.requirements, over.base) == ("3.10", ("mmdet==3.3.0",), "base")
    assert "base" not in base.canonical()  # plain envs keep the digest they had before overlays existed
    assert over.canonical()["base"] == "base"
    assert over.digest() != EnvSpec("base-models", "3.10", ("mmdet==3.3.0",)).digest()
    assert over.digest() != overlay_of(base, "base-models", ["mmdet==3.2.0"]).digest()


@pytest.mark.parametrize(
    ("name", "base", "error"), [("x", "x", "its own base"), ("x", "../y", "invalid environment name")]
)
def test_overlay_spec_rejects(name: str, base: str, error: str) -> None:
    with pytest.raises(EnvBuildError, match=error):
        EnvSpec(name, "3.10", (), base=base)


@pytest.mark.parametrize(
    ("freeze", "expected"),
    [
        (["torch==2.2.2", "numpy==1.23.5"], ["torch==2.2.2", "numpy==1.23.5"]),
        (["-e git+https://x/y.git@abc#egg=y", "six==1.16.0"], ["six==1.16.0"]),
        (["foo @ file:///tmp/foo-1.0-py3-none-any.whl", "PyYAML==6.0.4 "], ["PyYAML==6.0.4"]),
        (["# comment", ""], []),
    ],
)
def test_pins(freeze: list[str], expected: list[str]) -> None:
    assert pins(freeze) == expected


def test_overlay_pth_adds_each_dir_with_its_pth_files() -> None:
    assert overlay_pth(["/a/site-packages", "/b/it's"]) == (
        "import site; site.addsitedir('/a/site-packages')\nimport site; site.addsitedir(\"/b/it's\")\n"
    )


def test_parse_listing() -> None:
    text = json.dumps(
        [
            {"name": "PyYAML", "version": "6.0.4", "location": BASE_SITE, "installer": "pip"},
            {"name": "mmcv_lite", "version": "2.1.0", "location": "/envs/o/site"},
            {"name": "broken"},
        ]
    )
    assert parse_listing(text) == {"pyyaml": ("6.0.4", BASE_SITE), "mmcv-lite": ("2.1.0", "/envs/o/site")}
    with pytest.raises(InstallError, match="other than JSON"):
        parse_listing("WARNING: something\n")


BASE_LIST = {"torch": ("2.2.2", BASE_SITE), "numpy": ("1.23.5", BASE_SITE)}
OWN_SITE = "/envs/base-models/lib/python3.10/site-packages"


@pytest.mark.parametrize(
    ("overlay", "base_after", "expected"),
    [
        ({**BASE_LIST, "mmdet": ("3.3.0", OWN_SITE)}, BASE_LIST, []),
        (
            {**BASE_LIST, "numpy": ("1.26.4", OWN_SITE)},
            BASE_LIST,
            ["numpy is 1.26.4 in the overlay, 1.23.5 in the base"],
        ),
        ({**BASE_LIST, "torch": ("2.2.2", OWN_SITE)}, BASE_LIST, [f"torch 2.2.2 is shadowed by a copy in {OWN_SITE}"]),
        ({"torch": ("2.2.2", BASE_SITE + "/")}, BASE_LIST, ["numpy 1.23.5 is not visible in the overlay"]),
        (BASE_LIST, {**BASE_LIST, "mmengine": ("0.10.7", BASE_SITE)}, ["the base env changed: mmengine"]),
        (BASE_LIST, {"torch": ("2.3.0", BASE_SITE), "numpy": ("1.23.5", BASE_SITE)}, ["the base env changed: torch"]),
    ],
)
def test_overlay_problems(
    overlay: dict[str, tuple[str, str]], base_after: dict[str, tuple[str, str]], expected: list[str]
) -> None:
    assert overlay_problems(BASE_LIST, overlay, base_after) == expected


def make_base(root: Path, base_python: str, built_at: str = "2026-01-01T00:00:00+00:00") -> Path:
    """A built-looking base env `root/base` with a stamp recording `base_python`."""
    env = root / "base"
    (env / "bin").mkdir(parents=True, exist_ok=True)
    (env / "bin" / "python").write_text("fake")
    stamp = {"digest": "d" * 64, "built_at": built_at, "freeze": ["torch==2.2.2"], "base_python": base_python}
    (env / STAMP_NAME).write_text(json.dumps(stamp))
    return env


def listing_json(rows: Mapping[str, tuple[str, str]]) -> str:
    return json.dumps([{"name": n, "version": v, "location": loc} for n, (v, loc) in rows.items()])


class OverlayPip:
    """Answers the overlay build's site probes, freezes and `pip list`s; `overlay_rows` is what the overlay sees."""

    def __init__(self, root: Path, overlay_rows: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.base_py = str(root / "base" / "bin" / "python")
        self.own_site = str(root / "base-models" / "lib" / "python3.10" / "site-packages")
        self.overlay_rows = (
            overlay_rows if overlay_rows is not None else {**BASE_LIST, "mmdet": ("3.3.0", self.own_site)}
        )

    def __call__(self, argv: tuple[str, ...]) -> Completed | None:
        is_base = argv[0] == self.base_py
        if argv[-1] == envbuild._SITE_PROBE:
            site = BASE_SITE if is_base else self.own_site
            return ok(argv, json.dumps([site, site]) + "\n")
        if "list" in argv:
            return ok(argv, listing_json(BASE_LIST if is_base else self.overlay_rows))
        if "freeze" in argv and is_base:
            return ok(argv, "torch==2.2.2\nnumpy==1.23.5\n-e git+https://x/y.git@abc#egg=y\n")
        return None


def test_overlay_build_argv_pth_constraints_stamp(tmp_path: Path, base_python: str, no_uv: None) -> None:
    root = tmp_path / "envs"
    make_base(root, base_python)
    spec = overlay_of(EnvSpec("base", "3.10", ("torch==2.2.2",)), "base-models", ["mmdet==3.3.0"])
    assert env_state(spec, root, runner=FakeRunner()) == "missing"
    pip = OverlayPip(root)
    runner = FakeRunner(pip)
    python = build_env(spec, root, runner=runner, log=lambda _: None)
    env, vpy, bpy = root / "base-models", str(python), pip.base_py
    constraints = str(env / ".qatdoctor-constraints.txt")
    assert runner.commands() == [
        (base_python, "-m", "venv", "--without-pip", str(env)),
        (bpy, "-m", "pip", "freeze", "--all"),
        (bpy, "-m", "pip", "list", "--format", "json", "-v"),
        (
            vpy,
            "-m",
            "pip",
            "install",
            "--upgrade-strategy",
            "only-if-needed",
            "--constraint",
            constraints,
            "mmdet==3.3.0",
        ),
        (vpy, "-m", "pip", "list", "--format", "json", "-v"),
        (bpy, "-m", "pip", "list", "--format", "json", "-v"),
        (vpy, "-m", "pip", "freeze", "--all"),
    ]
    assert Path(pip.own_site, "_qatdoctor_base.pth").read_text() == f"import site; site.addsitedir({BASE_SITE!r})\n"
    assert Path(constraints).read_text() == "torch==2.2.2\nnumpy==1.23.5\n"
    stamp = json.loads((env / STAMP_NAME).read_text())
    assert stamp["digest"] == expected_digest(spec, root) != spec.digest()
    assert stamp["base"]["name"] == "base" and stamp["base"]["digest"] == "d" * 64
    assert (stamp["installer"], stamp["base_python"]) == ("pip", base_python)
    assert env_state(spec, root, runner=FakeRunner()) == "built"
    again = FakeRunner()
    started = time.monotonic()
    assert build_env(spec, root, runner=again) == python
    assert time.monotonic() - started < 1.0
    assert again.commands() == []


@pytest.mark.parametrize(
    ("change", "state"),
    [
        (lambda root, py: None, "built"),
        (lambda root, py: make_base(root, py, built_at="2026-02-02T00:00:00+00:00"), "stale"),  # base rebuilt
        (lambda root, py: (root / "base" / STAMP_NAME).unlink(), "stale"),  # base being rebuilt or removed
        (lambda root, py: (root / "base-models" / STAMP_NAME).unlink(), "partial"),
    ],
)
def test_overlay_state_follows_its_base(
    tmp_path: Path, base_python: str, no_uv: None, change: Callable[[Path, str], object], state: str
) -> None:
    root = tmp_path / "envs"
    make_base(root, base_python)
    spec = overlay_of(EnvSpec("base", "3.10", ()), "base-models", ["mmdet==3.3.0"])
    build_env(spec, root, runner=FakeRunner(OverlayPip(root)), log=lambda _: None)
    change(root, base_python)
    assert env_state(spec, root, runner=FakeRunner()) == state


def test_overlay_needs_built_base(tmp_path: Path, no_uv: None) -> None:
    spec = overlay_of(EnvSpec("base", "3.10", ()), "base-models", ["mmdet==3.3.0"])
    runner = FakeRunner()
    with pytest.raises(EnvBuildError, match="overlay on base, which is not built") as info:
        build_env(spec, tmp_path, runner=runner, log=lambda _: None)
    assert info.value.hint is not None and "refenvs.py build base" in info.value.hint
    assert runner.commands() == []


def test_overlay_that_shadows_its_base_fails_and_is_removed(tmp_path: Path, base_python: str, no_uv: None) -> None:
    root = tmp_path / "envs"
    make_base(root, base_python)
    spec = overlay_of(EnvSpec("base", "3.10", ()), "base-models", ["timm"])
    pip = OverlayPip(root)
    pip.overlay_rows = {**BASE_LIST, "numpy": ("2.1.0", pip.own_site)}
    with pytest.raises(InstallError, match=r"does not leave base as it is: numpy is 2\.1\.0 in the overlay, 1\.23\.5"):
        build_env(spec, root, runner=FakeRunner(pip), log=lambda _: None)
    assert not (root / "base-models").exists()
    assert (root / "base" / STAMP_NAME).exists()


def test_overlay_uses_pip_even_when_uv_is_asked(
    tmp_path: Path, base_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envbuild.shutil, "which", which_table({"uv": "/bin/uv"}))
    root = tmp_path / "envs"
    make_base(root, base_python)
    spec = overlay_of(EnvSpec("base", "3.10", ()), "base-models", ["mmdet==3.3.0"])
    runner = FakeRunner(OverlayPip(root))
    lines: list[str] = []
    build_env(spec, root, installer="uv", runner=runner, log=lines.append)
    assert not any(c[0] == "/bin/uv" for c in runner.calls)
    assert any("uv does not see the base's packages" in line for line in lines)


# ----------------------------------------------------------------------------- error lines


def test_error_line_requires_different_python() -> None:
    out = (
        "Collecting aimet-torch==1.32.2\n"
        "ERROR: Package 'aimet-torch' requires a different Python: 3.11.7 not in '!=3.9.*,<3.11,>=3.8'\n"
    )
    assert installer_error_line(out).startswith("ERROR: Package 'aimet-torch' requires a different Python")


def test_error_line_resolution_conflict() -> None:
    out = (
        "ERROR: Cannot install aimet-torch==1.32.2 and torch==2.3.0 because these package versions have "
        "conflicting dependencies.\n\n"
        "The conflict is caused by:\n"
        "    The user requested torch==2.3.0\n"
        "    aimet-torch 1.32.2 depends on torch==2.2.2\n\n"
        "To fix this you could try to:\n"
        "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution\n"
    )
    line = installer_error_line(out)
    assert line == ("dependency conflict: The user requested torch==2.3.0; aimet-torch 1.32.2 depends on torch==2.2.2")


def test_error_line_uv() -> None:
    out = (
        "  × No solution found when resolving dependencies:\n"
        "  ╰─▶ Because aimet-torch==1.32.2 has no wheels with a matching Python ABI tag and you require\n"
        "      aimet-torch==1.32.2, we can conclude that your requirements are unsatisfiable.\n"
    )
    assert installer_error_line(out).startswith("Because aimet-torch==1.32.2 has no wheels")


def test_error_line_fallback() -> None:
    assert installer_error_line("foo\nERROR: Could not install packages due to an OSError: [Errno 28]\n") == (
        "ERROR: Could not install packages due to an OSError: [Errno 28]"
    )
    assert installer_error_line("") == "(no output)"


# ----------------------------------------------------------------------------- one real build


def _tiny_wheel(directory: Path, name: str = "tinypkg", version: str = "1.0", requires: str = "") -> Path:
    """A minimal pure-Python wheel `qatdoctor-<name>`, so the real builds need no index or network."""
    directory.mkdir(parents=True, exist_ok=True)
    module, info = f"qatdoctor_{name}", f"qatdoctor_{name}-{version}.dist-info"
    wheel = directory / f"{module}-{version}-py3-none-any.whl"
    requires_dist = f"Requires-Dist: {requires}\n" if requires else ""
    files = {
        f"{module}/__init__.py": "VALUE = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: qatdoctor-{name}\nVersion: {version}\n{requires_dist}",
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
        zf.writestr(f"{info}/RECORD", record)
    return wheel


def test_real_build_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = _tiny_wheel(tmp_path / "wheels").parent
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    version = "{}.{}".format(*sys.version_info[:2])
    spec = EnvSpec("tiny", sys.executable, ("qatdoctor-tinypkg==1.0",))
    root = tmp_path / "envs"
    lines: list[str] = []
    python = build_env(spec, root, installer="pip", log=lines.append, timeout=300)
    assert python == root / "tiny" / "bin" / "python"
    from qatdoctor.environment.runner import run

    done = run(
        [str(python), "-c", "import sys, qatdoctor_tinypkg; print(sys.prefix, qatdoctor_tinypkg.VALUE)"],
        timeout=60,
    )
    assert done.ok, done.stderr
    assert done.stdout.split() == [str(root / "tiny"), "42"]
    assert run([str(python), "-m", "pip", "--version"], timeout=60).stdout.endswith(f"(python {version})\n")
    stamp = json.loads((root / "tiny" / STAMP_NAME).read_text())
    assert "qatdoctor-tinypkg==1.0" in stamp["freeze"]
    assert any("Successfully installed qatdoctor-tinypkg-1.0" in line for line in lines)  # streamed

    mtime = (root / "tiny" / STAMP_NAME).stat().st_mtime_ns
    started = time.monotonic()
    again = build_env(spec, root, installer="pip", log=lines.append)
    assert time.monotonic() - started < 1.0
    assert again == python
    assert (root / "tiny" / STAMP_NAME).stat().st_mtime_ns == mtime
    remove_env(root / "tiny")
    assert not (root / "tiny").exists()


def test_real_overlay_sees_its_base_and_leaves_it_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        _tiny_wheel(wheels, version=version)
    _tiny_wheel(wheels, name="tinydep", requires="qatdoctor-tinypkg>=1.0")
    _tiny_wheel(wheels, name="tinyup", requires="qatdoctor-tinypkg>=2.0")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    root, lines = tmp_path / "envs", []
    base = EnvSpec("tiny", sys.executable, ("qatdoctor-tinypkg==1.0",))
    build_env(base, root, installer="pip", log=lines.append, timeout=300)
    python = build_env(overlay_of(base, "tiny-models", ["qatdoctor-tinydep"]), root, log=lines.append, timeout=300)
    from qatdoctor.environment.runner import run

    script = "import qatdoctor_tinypkg as p, qatdoctor_tinydep as d; print(p.__file__); print(d.__file__)"
    done = run([str(python), "-c", script], timeout=60)
    assert done.ok, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(root / "tiny" / "lib"))  # the base's copy, not reinstalled
    assert done.stdout.splitlines()[1].startswith(str(root / "tiny-models" / "lib"))
    assert any("Requirement already satisfied: qatdoctor-tinypkg" in line for line in lines)

    # Needing a newer base package fails against the base's freeze instead of shadowing the base's copy.
    with pytest.raises(InstallError, match="pip install failed"):
        build_env(overlay_of(base, "tiny-up", ["qatdoctor-tinyup"]), root, log=lines.append, timeout=300)
    assert not (root / "tiny-up").exists()
    assert env_state(base, root) == "built"
