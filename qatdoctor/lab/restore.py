"""Putting a saved set back (`qatdoctor fix --undo`, and fix's own rollback): only what the fix installed,
and only where it is still the version the fix installed; what was installed or changed since is left alone.

Nothing from a backup reaches pip but `name==version` requirements and canonical names, on the interpreter
given (never the one a backup names, which must be the same one). What conda owns is never touched.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from packaging.utils import canonicalize_name

from qatdoctor.environment.runner import Runner, run
from qatdoctor.errors import QatdoctorError
from qatdoctor.lab import backup as store
from qatdoctor.lab.backup import Backup, BackupError, Entry, Identity, UnreadableLine

PIP_TIMEOUT = 3600.0
FREEZE_TIMEOUT = 120.0
PIP_INSTALLERS = (None, "pip", "uv")  # None: no INSTALLER file (pip can still remove it)
# Asks the target who it is and who installed each distribution (conda-owned ones cannot be changed with pip).
_TARGET_PROBE = (
    "import json, os, sys\n"
    "from importlib import metadata\n"
    "def installer(d):\n"
    "    try:\n"
    "        return (d.read_text('INSTALLER') or '').strip() or None\n"
    "    except Exception:\n"
    "        return None\n"
    "meta = os.path.join(sys.prefix, 'conda-meta')\n"
    "records = [f[:-5].rsplit('-', 2)[0] for f in os.listdir(meta) if f.endswith('.json')] "
    "if os.path.isdir(meta) else []\n"
    "owners = {}\n"
    "for d in metadata.distributions():\n"
    "    owners.setdefault(d.metadata['Name'] or '', installer(d))\n"
    "print(json.dumps({'prefix': os.path.realpath(sys.prefix), 'base_prefix': os.path.realpath(sys.base_prefix),\n"
    "    'version': sys.version, 'conda': os.path.isdir(meta), 'conda_records': records, 'installers': owners}))\n"
)
_CONDA_NAMES = {"pytorch": "torch"}  # a conda package's name → the pip distribution it ships, where they differ


class ChangeError(QatdoctorError):
    """qatdoctor refused to change the target, or pip could not (what was changed is said)."""


@dataclass(frozen=True)
class Target:
    """The interpreter's identity and, per distribution, who installed it."""

    identity: Identity
    conda: bool
    installers: Mapping[str, str | None]
    conda_records: frozenset[str]

    def owner(self, name: str) -> str | None:
        """`conda` when a conda-meta record names it, else its INSTALLER (None: no INSTALLER file)."""
        return "conda" if name in self.conda_records else self.installers.get(name)


class Untouched(NamedTuple):
    """A package undo leaves alone: `why` is "installed after the fix", "changed after the fix" or "removed
    after the fix"; `now` is its freeze line today (None: not installed)."""

    name: str
    why: str
    now: str | None


@dataclass(frozen=True)
class Plan:
    """What putting `backup` back on `python` does, decided from what the fix installed and what is there now."""

    python: str
    backup: Backup
    installed: Mapping[str, Entry]
    reinstall: tuple[Entry, ...]  # saved pins the fix replaced
    remove: tuple[str, ...]  # what the fix added, still at the version it installed
    by_hand: tuple[Entry, ...]  # saved editables and direct references the fix replaced: pip gets only pins
    left_alone: tuple[Untouched, ...]

    @property
    def actions(self) -> tuple[object, ...]:
        return self.reinstall, self.remove, self.by_hand

    @property
    def changes(self) -> bool:
        return bool(self.reinstall or self.remove)


def inspect(python: str, runner: Runner = run) -> Target:
    """Ask the target who it is and who installed what (one short run)."""
    done = runner([python, "-c", _TARGET_PROBE], timeout=FREEZE_TIMEOUT)
    try:
        answer: Any = json.loads(done.stdout) if done.ok else {}
        identity = Identity(python, os.path.realpath(python), str(answer["prefix"]), str(answer["base_prefix"]),
                            str(answer["version"]))  # fmt: skip
        installers = {str(canonicalize_name(str(k))): (None if v is None else str(v))
                      for k, v in dict(answer["installers"]).items()}  # fmt: skip
        records = frozenset(_CONDA_NAMES.get(str(r), canonicalize_name(str(r))) for r in answer["conda_records"])
        return Target(identity, bool(answer["conda"]), installers, records)
    except (TypeError, KeyError, ValueError):
        said = done.stderr_tail(3) or repr(done.stdout[:200])
        raise ChangeError(f"cannot ask {python} who it is and how its packages were installed "
                          f"({done.describe_exit()}: {said})") from None  # fmt: skip


def freeze(python: str, runner: Runner = run) -> dict[str, Entry]:
    """`pip freeze --all` of the target, parsed strictly."""
    done = runner([python, "-m", "pip", "freeze", "--all"], timeout=FREEZE_TIMEOUT)
    if not done.ok:
        raise ChangeError(f"pip freeze failed in {python}: {done.describe_exit()}: {done.stderr_tail(3)}")
    try:
        return store.parse_freeze(done.stdout.splitlines())
    except UnreadableLine as error:
        raise ChangeError(f"pip freeze in {python} printed what qatdoctor cannot record: {error}",
                          hint="nothing was changed") from None  # fmt: skip


def check_restorable(target: Target, *, hint: str) -> None:
    """Refuse a target qatdoctor could not put back: torch or aimet-torch installed by conda, not pip."""
    prefix = target.identity.prefix
    for name in ("torch", "aimet-torch"):
        owner = target.owner(name)
        if owner not in PIP_INSTALLERS:
            raise ChangeError(f"{name} in {prefix} was installed by {owner}, not pip: qatdoctor will not change an "
                              "environment it cannot restore", hint=hint)  # fmt: skip
    if target.conda and target.owner("torch") is None:
        raise ChangeError(f"{prefix} is a conda environment whose torch is not a pip package: qatdoctor will "
                          "not change it", hint=hint)  # fmt: skip


def plan(python: str, backup: Backup, installed: Mapping[str, Entry], now: Mapping[str, Entry]) -> Plan:
    """Undo `installed` where it is still there as installed; list everything else that differs from the saved
    set as left alone."""
    saved = backup.saved
    reinstall: list[Entry] = []
    remove: list[str] = []
    by_hand: list[Entry] = []
    left: list[Untouched] = []
    for name, ours in installed.items():
        current, before = now.get(name), saved.get(name)
        if current == ours:
            if before is None:
                remove.append(name)
            else:
                (reinstall if before.kind == "pin" else by_hand).append(before)
        elif current != before:
            why = "removed after the fix" if current is None else "changed after the fix"
            left.append(Untouched(name, why, current.shown if current else None))
    for name, current in now.items():
        before = saved.get(name)
        if name not in installed and current != before:
            why = "installed after the fix" if before is None else "changed after the fix"
            left.append(Untouched(name, why, current.shown))
    left += [Untouched(n, "removed after the fix", None) for n in saved if n not in now and n not in installed]
    return Plan(python, backup, installed, tuple(reinstall), tuple(remove), tuple(by_hand), tuple(left))


def changed_pins(saved: Mapping[str, Entry], after: Mapping[str, Entry]) -> dict[str, Entry]:
    """What a pip run put there: the pins in `after` that `saved` does not have as they are."""
    return {name: entry for name, entry in after.items() if entry.kind == "pin" and saved.get(name) != entry}


def plan_undo(root: Path, python: str, runner: Runner = run) -> Plan:
    """The newest backup for `python`, checked against the interpreter itself, as a plan; nothing changes."""
    backup = store.latest(root, python)
    target = inspect(python, runner)
    if backup.identity != target.identity:
        raise BackupError(f"{backup.path} was saved from another interpreter than {python} ("
                          + "; ".join(backup.identity.differences(target.identity)) + "): nothing changed",
                          hint="undo with the --python the fix was run with")  # fmt: skip
    if backup.installed is None:
        raise ChangeError(f"the fix that saved {backup.path} did not finish recording what it installed: "
                          "qatdoctor cannot tell its changes from later ones, so it changes nothing",
                          hint="the saved set is in that file: reinstall what you need by hand")  # fmt: skip
    return _checked(plan(python, backup, backup.installed, freeze(python, runner)), target)


def rollback_plan(python: str, backup: Backup, runner: Runner = run) -> Plan:
    """Fix's own rollback: what it recorded, or (pip failed half-way, seconds ago) all that changed since."""
    now = freeze(python, runner)
    installed = changed_pins(backup.saved, now) if backup.installed is None else backup.installed
    return _checked(plan(python, backup, installed, now), inspect(python, runner))


def _checked(p: Plan, target: Target) -> Plan:
    hint = "restore it with the tool that owns the environment (e.g. conda)"
    check_restorable(target, hint=hint)
    owned = [n for n in (*p.remove, *(e.name for e in p.reinstall)) if target.owner(n) not in PIP_INSTALLERS]
    if owned:
        raise ChangeError(f"{', '.join(owned)} in {target.identity.prefix} belong to "
                          f"{target.owner(owned[0])}, not pip: qatdoctor will not change them", hint=hint)  # fmt: skip
    return p


def execute(p: Plan, *, runner: Runner = run, log: Callable[[str], None] = lambda line: None) -> None:
    """Carry out `p` if the target still is as it was planned on; then check that it took."""
    if plan(p.python, p.backup, p.installed, freeze(p.python, runner)).actions != p.actions:
        raise ChangeError(f"{p.python} changed since the undo was planned: nothing changed", hint="run it again")
    if p.remove:
        log(f"removing what the fix added: {', '.join(p.remove)}")
        _pip(p, ["uninstall", "-y", "--", *p.remove], runner, log)
    if p.reinstall:
        log(f"reinstalling {len(p.reinstall)} saved versions")
        _pip(p, ["install", "--no-deps", "--", *(str(e.requirement) for e in p.reinstall)], runner, log)
    after = freeze(p.python, runner)
    wrong = [n for n in p.remove if n in after] + [e.name for e in p.reinstall if after.get(e.name) != e]
    if wrong:
        raise ChangeError(f"pip ran but {', '.join(wrong)} in {p.python} are not as saved",
                          hint=f"the saved set is in {p.backup.path}")  # fmt: skip


def _pip(p: Plan, args: list[str], runner: Runner, log: Callable[[str], None]) -> None:
    done = runner([p.python, "-m", "pip", *args], timeout=PIP_TIMEOUT,
                  on_stderr_line=lambda line: None if noise(line) else log(line))  # fmt: skip
    if not done.ok:
        raise ChangeError(f"pip {args[0]} failed while restoring ({done.describe_exit()}): {done.stderr_tail(3)}",
                          hint=f"the saved set is in {p.backup.path}")  # fmt: skip


def by_hand_command(python: str, entry: Entry) -> str:
    """The command that puts back a saved editable or direct reference: shown to the user, never run."""
    line = entry.shown
    requirement = f"-e {shlex.quote(line[3:])}" if entry.kind == "editable" else shlex.quote(line)
    return f"{shlex.quote(python)} -m pip install --no-deps {requirement}"


def noise(line: str) -> bool:
    """pip's warnings about configured index locations that do not exist: not progress."""
    return line.startswith("WARNING: Location ") or not line.strip()
