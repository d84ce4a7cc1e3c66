"""`qatdoctor fix --undo` against backups a careless or hostile user left (issue 25, item 6): another
interpreter's backup, lines pip would read as options, damaged files, packages installed after the fix, and a
torch conda owns. Each runs the real CLI on small throwaway venvs (six/idna from the index, ~5 s a pip run);
the reference environments are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from qatdoctor.cli import app
from qatdoctor.exitcodes import ExitCode

SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with pip and six 1.16.0, copied for each test (a venv runs from a copy: `python -m pip`)."""
    home = tmp_path_factory.mktemp("undo-template") / "venv"
    uv = Path(sys.executable).parent / "uv"
    make = [str(uv), "venv", "-q", "--seed", str(home)] if uv.exists() else [sys.executable, "-m", "venv", str(home)]
    subprocess.run(make, check=True)
    _pip(home, "install", "six==1.16.0")
    return home


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "-q", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip {' '.join(args)} failed in the test venv: {done.stderr[-500:]}")


@pytest.fixture(scope="module")
def fixed(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the template after a real fix (six 1.16.0 → 1.17.0, idna 3.6 added), and its backup's text."""
    root = tmp_path_factory.mktemp("undo-fixed")
    venv = Path(shutil.copytree(template, root / "venv", symlinks=True))
    return venv, fix(venv, root, "six==1.17.0", "idna==3.6").read_text()


def stage(fixed: tuple[Path, str], tmp_path: Path, *, copy: str | None = None) -> tuple[Path, Path]:
    """The fixed venv (a copy of it when `copy` names one) and its backup under `tmp_path`, bound to it."""
    from qatdoctor.lab.backup import backup_dir

    venv = fixed[0] if copy is None else Path(shutil.copytree(fixed[0], tmp_path / copy, symlinks=True))
    path = backup_dir(tmp_path, python(venv)) / "20260101T000000000000Z.json"
    path.parent.mkdir(parents=True)
    path.write_text(fixed[1])
    rewrite(path, lambda content: content["interpreter"].update(path=python(venv), prefix=str(venv.resolve())))
    return venv, path


def python(venv: Path) -> str:
    return str(venv / "bin" / "python")


def installed(venv: Path) -> dict[str, str]:
    """What is installed, read off the dist-info folders (what pip freeze reads, without its second per call)."""
    folders = (venv / SITE).glob("*.dist-info")
    return dict(folder.name[: -len(".dist-info")].split("-", 1) for folder in folders)


def fix(venv: Path, root: Path, *pins: str) -> Path:
    """What `qatdoctor fix` does once verify proved `pins`: save the set, install, record; the backup's path."""
    from qatdoctor.lab import apply
    from qatdoctor.records import Change, Recommendation

    command = " ".join([python(venv), "-m", "pip", "install", *pins])
    rec = Recommendation("rec.newest", "newest", "test", (Change("six", "1.16.0", "1.17.0"),), (command,))
    return apply.apply(rec, python(venv), root).path


def undo(venv: Path, root: Path) -> Result:
    env = {"NO_COLOR": "1", "QATDOCTOR_ENVS": str(root / "envs")}  # backups live beside the envs: root/fix/
    return CliRunner().invoke(app, ["fix", "--undo", "--yes", "--python", python(venv)], env=env)


def rewrite(path: Path, edit: object) -> None:
    """Edit a backup's content and store it with a valid checksum: what a forger (or a bug) would write."""
    from qatdoctor.lab import backup

    data = json.loads(path.read_text())
    edit(data["content"])  # type: ignore[operator]
    data["sha256"] = backup._digest(data["content"])
    path.write_text(json.dumps(data))


def clean(result: Result) -> None:
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr


# --- the staged backup is good: each refusal below is the attack's doing ---------------------------------------------


def test_a_staged_backup_undoes_the_fix(fixed: tuple[Path, str], tmp_path: Path) -> None:
    venv, _ = stage(fixed, tmp_path, copy="copy")
    result = undo(venv, tmp_path)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert installed(venv)["six"] == "1.16.0" and "idna" not in installed(venv)


# --- 1. a backup is bound to the interpreter it was taken from -------------------------------------------------


@pytest.mark.parametrize("how", ["copied", "path rewritten"])
def test_another_interpreters_backup_is_refused(fixed: tuple[Path, str], tmp_path: Path, how: str) -> None:
    """It uninstalled idna from venv A and printed "restored" for venv B, whose backup was A's."""
    from qatdoctor.lab.backup import backup_dir

    a, saved = stage(fixed, tmp_path, copy="a")
    b = Path(shutil.copytree(fixed[0], tmp_path / "b", symlinks=True))
    forged = backup_dir(tmp_path, python(b)) / saved.name
    forged.parent.mkdir(parents=True)
    shutil.copy(saved, forged)
    if how == "path rewritten":
        rewrite(forged, lambda content: content["interpreter"].update(path=python(b)))
    a_before, b_before = installed(a), installed(b)
    result = undo(b, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "another interpreter" in result.stderr and "prefix" in result.stderr
    assert "restored" not in result.stdout
    assert installed(a) == a_before and installed(b) == b_before, "neither venv changed"


# --- 2. nothing in a backup reaches pip as an option -------------------------------------------------------------


@pytest.mark.parametrize("field", ["saved", "installed"])
@pytest.mark.parametrize("line", ["--target={dir}", "-r {dir}/reqs.txt", "--index-url=file://{dir}", "-e --target={dir}",
                                  "six==1.16.0 --target={dir}", "six==1.16.0\n--target={dir}"])
def test_a_backup_line_pip_would_read_as_an_option_is_refused(
    fixed: tuple[Path, str], tmp_path: Path, field: str, line: str
) -> None:
    """It passed a saved `--target=DIR` to `pip install`: pip installed the saved set into DIR."""
    venv, saved = stage(fixed, tmp_path)
    planted = tmp_path / "planted"
    rewrite(saved, lambda content: content[field].append(line.format(dir=planted)))
    before = installed(venv)
    result = undo(venv, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert "will not pass to pip" in result.stderr
    assert not planted.exists() and installed(venv) == before


def test_a_saved_editable_is_named_for_the_user_not_passed_to_pip(template: Path, tmp_path: Path) -> None:
    """A saved `-e` line is listed with the command that puts it back; pip never sees `-e` from a backup."""
    venv = Path(shutil.copytree(template, tmp_path / "venv", symlinks=True))
    source = tmp_path / "src"
    source.mkdir()
    _fake_dist(venv, "idna", "3.0", direct_url={"url": source.as_uri(), "dir_info": {"editable": True}})
    fix(venv, tmp_path, "six==1.17.0", "idna==3.6")  # pip replaces the editable idna with the index's
    result = undo(venv, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.PROBLEMS, result.stderr
    assert f"reinstall idna by hand: {python(venv)} -m pip install --no-deps -e {source}" in result.stderr
    now = installed(venv)
    assert now["six"] == "1.16.0" and now["idna"] == "3.6", "six restored; idna left for the user, not removed"


# --- 3. a damaged backup is bad input, never an internal error ---------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


DAMAGE = {
    "cut short": lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
    "edited": lambda path: path.write_text(path.read_text().replace('"six==1.16.0"', '"six==1.15.0"')),
    "empty": lambda path: path.write_bytes(b""),
    "binary": lambda path: path.write_bytes(bytes(range(256)) * 4),
    "a JSON list": lambda path: path.write_text("[1, 2]"),
    "deeply nested": lambda path: path.write_text("[" * 200_000),
    "no checksum (today's format)": lambda path: path.write_text(json.dumps(
        {"python": "/elsewhere/bin/python", "freeze": ["six==1.16.0"], "created": "x", "recommendation": "y"})),
    "a FIFO": lambda path: (path.unlink(), _fifo(path)),
    "a symlink": lambda path: (path.unlink(), path.symlink_to("/etc/hostname")),
    "5 MiB": lambda path: path.write_text(" " * (5 << 20)),
    "wrong types": lambda path: rewrite(path, lambda content: content.update(saved="six==1.16.0")),
    "an escape sequence": lambda path: rewrite(path, lambda content: content.update(command="\x1b]52;c;aGk=\x07")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_backup_is_refused_as_bad_input(fixed: tuple[Path, str], tmp_path: Path, damage: str) -> None:
    """A malformed backup ended in an internal error (exit 70); an edited one was believed."""
    venv, saved = stage(fixed, tmp_path)
    DAMAGE[damage](saved)
    before = installed(venv)
    result = undo(venv, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.BAD_INPUT, result.stderr
    assert str(saved) in result.stderr and "\x1b" not in result.stderr
    assert installed(venv) == before


# --- 4. undo removes only what the fix installed, at the version it installed -----------------------------------


def test_what_was_installed_or_changed_after_the_fix_is_left_alone(fixed: tuple[Path, str], tmp_path: Path) -> None:
    """It removed packages the user installed after the fix, calling them "what the fix added"."""
    venv, _ = stage(fixed, tmp_path, copy="copy")
    _pip(venv, "install", "idna==3.7", "iniconfig")  # the user, after the fix
    result = undo(venv, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.OK, result.stderr
    now = installed(venv)
    assert now["six"] == "1.16.0", "the fix's six is put back"
    assert now["idna"] == "3.7" and "iniconfig" in now, "the user's own changes stay"
    assert "leave alone idna: changed after the fix" in result.stderr
    assert "leave alone iniconfig: installed after the fix" in result.stderr
    assert "removing" not in result.stderr


# --- 5. what conda owns is never touched ---------------------------------------------------------------------------


CONDA = [  # (what conda owns, torch's INSTALLER, the conda-meta record, the fix is recorded to have installed torch)
    ("torch, by its INSTALLER", "conda", None, True),
    ("torch, by a conda-meta record", "pip", "pytorch-2.2.2-py3.11_cpu_0.json", True),
    ("idna, by a conda-meta record (torch is pip's)", "pip", "idna-3.6-pyhd8ed1ab_0.json", False),
]


@pytest.mark.parametrize(("owned", "installer", "record", "torch_ours"), CONDA, ids=[c[0] for c in CONDA])
def test_undo_refuses_what_conda_owns(
    fixed: tuple[Path, str], tmp_path: Path, owned: str, installer: str, record: str | None, torch_ours: bool
) -> None:
    """It ran `pip uninstall` on a conda-owned torch, which `fix` itself refuses to touch."""
    from qatdoctor.lab import backup

    venv, saved = stage(fixed, tmp_path, copy="copy")
    _fake_dist(venv, "torch", "2.2.2", installer=installer)
    (venv / "conda-meta").mkdir()
    if record is not None:
        (venv / "conda-meta" / record).write_text("{}")
    if torch_ours:  # the backup says the fix installed this torch: without the refusal, undo would remove it
        content = backup.decode(saved.read_text(), saved)
        torch = backup.parse_freeze(["torch==2.2.2"])
        replace(content, installed={**(content.installed or {}), **torch}).save()
    before = installed(venv)
    result = undo(venv, tmp_path)
    clean(result)
    assert result.exit_code == ExitCode.PROBLEMS, result.stderr
    assert f"{owned.split(',')[0]} in {venv}" in result.stderr and "conda, not pip" in result.stderr
    assert installed(venv) == before and (venv / SITE / "torch" / "__init__.py").exists()


def _fake_dist(venv: Path, name: str, version: str, *, installer: str = "pip", direct_url: object = None) -> None:
    """A pure-Python distribution written by hand, complete enough for pip to freeze and uninstall it."""
    site = venv / SITE
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (site / name).mkdir()
    (site / name / "__init__.py").write_text("")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text(installer + "\n")
    files = [f"{name}/__init__.py", *(f"{info.name}/{f}" for f in ("METADATA", "INSTALLER", "RECORD"))]
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
        files.append(f"{info.name}/direct_url.json")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
