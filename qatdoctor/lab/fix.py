"""`qatdoctor fix`: apply a recommendation to the target environment — only after `verify` proved it in a
throwaway copy — with the previous set saved so that `qatdoctor fix --undo` restores it exactly.

Like pip-audit's `--fix` and `expo install --fix`, but a change is never made blind: the same probe (and the
user's model) ran on the new set first, and the recommendation must have fixed what it targeted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qatdoctor import atomic
from qatdoctor.environment.runner import Runner, run
from qatdoctor.errors import QatdoctorError
from qatdoctor.records import Recommendation, Report, Scope, Severity

PIP_TIMEOUT = 3600.0
FREEZE_TIMEOUT = 120.0
# Asks the target how torch got there: a conda-managed torch cannot be restored with pip (conda owns it).
_OWNER_PROBE = (
    "import json, os, sys\n"
    "from importlib import metadata\n"
    "def installer(name):\n"
    "    try:\n"
    "        return (metadata.distribution(name).read_text('INSTALLER') or '').strip() or None\n"
    "    except Exception:\n"
    "        return None\n"
    "print(json.dumps({'prefix': sys.prefix, 'conda': os.path.isdir(os.path.join(sys.prefix, 'conda-meta')),\n"
    "    'torch': installer('torch'), 'aimet-torch': installer('aimet-torch')}))\n"
)


class FixError(QatdoctorError):
    """The fix was refused or could not be applied (the environment is left as it was)."""


class InstallFailed(QatdoctorError):
    """pip failed while applying the fix; the previous set was restored."""


@dataclass(frozen=True)
class Backup:
    """The set before a fix: `pip freeze` of the target, and the index the fix used."""

    path: Path
    python: str
    freeze: tuple[str, ...]
    created: str
    recommendation: str

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"python": self.python, "freeze": list(self.freeze), "created": self.created,
                   "recommendation": self.recommendation}  # fmt: skip
        atomic.write_text(self.path, json.dumps(payload, indent=2))


def backup_dir(root: Path, python: str) -> Path:
    """Where the backups of one target interpreter live (`$QATDOCTOR_ENVS/../fix/<hash of its path>/`)."""
    digest = hashlib.sha256(python.encode()).hexdigest()[:16]
    return root / "fix" / digest


def check_restorable(python: str, runner: Runner = run) -> None:
    """Refuse a target qatdoctor could not put back: torch or aimet-torch installed by conda, not pip."""
    done = runner([python, "-c", _OWNER_PROBE], timeout=FREEZE_TIMEOUT)
    if not done.ok:
        raise FixError(f"cannot ask {python} how its packages were installed ({done.describe_exit()})")
    owners = json.loads(done.stdout)
    for name in ("torch", "aimet-torch"):
        installer = owners.get(name)
        if installer is not None and installer != "pip" and installer != "uv":
            raise FixError(
                f"{name} in {owners['prefix']} was installed by {installer}, not pip: qatdoctor will not change an "
                "environment it cannot restore",
                hint="apply the printed command yourself with the tool that owns the environment (e.g. conda)",
            )
    if owners.get("conda") and owners.get("torch") is None:
        raise FixError(
            f"{owners['prefix']} is a conda environment whose torch is not a pip package: qatdoctor will not change it",
            hint="use conda to change torch, or a venv made for qatdoctor fix",
        )


def freeze(python: str, runner: Runner = run) -> tuple[str, ...]:
    done = runner([python, "-m", "pip", "freeze", "--all"], timeout=FREEZE_TIMEOUT)
    if not done.ok:
        raise FixError(f"pip freeze failed in {python}: {done.describe_exit()}: {done.stderr_tail(3)}")
    return tuple(line for line in done.stdout.splitlines() if line.strip() and not line.startswith("#"))


def command_argv(rec: Recommendation, python: str) -> list[str]:
    """The recommendation's own command, as printed and as verify built it, for this interpreter only."""
    if len(rec.commands) != 1:
        raise FixError(f"recommendation {rec.id!r} has no single pip command to apply")
    argv = shlex.split(rec.commands[0])
    if argv[:4] != [python, "-m", "pip", "install"]:
        raise FixError(f"recommendation {rec.id!r} is not a pip install in {python}: {rec.commands[0]}")
    return argv


def apply(
    rec: Recommendation,
    python: str,
    root: Path,
    *,
    runner: Runner = run,
    log: Callable[[str], None] = lambda line: None,
) -> Backup:
    """Save the current set, run the recommendation's command; on failure restore the set and raise."""
    argv = command_argv(rec, python)
    check_restorable(python, runner)
    before = freeze(python, runner)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    backup = Backup(backup_dir(root, python) / f"{stamp}.json", python, before, stamp, rec.commands[0])
    backup.save()
    log(f"saved the current set ({len(before)} packages) to {backup.path}")
    log(f"running: {rec.commands[0]}")
    done = runner(argv, timeout=PIP_TIMEOUT, on_stderr_line=lambda line: None if _noise(line) else log(line))
    if not done.ok:
        log("pip failed: restoring the previous set")
        restore(backup, runner=runner, log=log)
        raise InstallFailed(
            f"pip install failed ({done.describe_exit()}): {done.stderr_tail(3) or done.stdout[-500:]}",
            hint="the previous set was restored; nothing changed",
        )
    return backup


def regressions(proved: Report, applied: Report) -> list[str]:
    """Environment failures the applied target has and verify's throwaway env did not (pip moved other packages
    in place, e.g. a protobuf an older set pinned): reasons to put the saved set back."""
    def failing(report: Report) -> dict[str, str]:
        return {
            f.id: f.title
            for f in report.findings
            if f.failed and f.severity is Severity.ERROR and f.scope is Scope.ENVIRONMENT
        }

    before = failing(proved)
    return [f"{title} ({fid})" for fid, title in failing(applied).items() if fid not in before]


def latest_backup(root: Path, python: str) -> Backup:
    folder = backup_dir(root, python)
    saved = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not saved:
        raise FixError(
            f"no saved set for {python}: nothing to undo", hint="`qatdoctor fix` saves one before it changes anything"
        )
    data = json.loads(saved[-1].read_text(encoding="utf-8"))
    return Backup(saved[-1], data["python"], tuple(data["freeze"]), data["created"], data["recommendation"])


def restore(backup: Backup, *, runner: Runner = run, log: Callable[[str], None] = lambda line: None) -> Sequence[str]:
    """Put the saved set back: remove what the fix added, reinstall exactly the saved versions."""
    now = freeze(backup.python, runner)
    saved = {_name(line): line for line in backup.freeze}
    added = [name for name in (_name(line) for line in now) if name not in saved]
    if added:
        log(f"removing what the fix added: {', '.join(added)}")
        done = runner([backup.python, "-m", "pip", "uninstall", "-y", *added], timeout=PIP_TIMEOUT)
        if not done.ok:
            raise FixError(f"pip uninstall failed while restoring: {done.stderr_tail(3)}")
    changed = [line for line in backup.freeze if line not in set(now)]
    if changed:
        log(f"reinstalling {len(changed)} saved versions")
        done = runner(
            [backup.python, "-m", "pip", "install", "--no-deps", *changed],
            timeout=PIP_TIMEOUT,
            on_stderr_line=lambda line: None if _noise(line) else log(line),
        )
        if not done.ok:
            raise FixError(f"pip install of the saved set failed: {done.stderr_tail(3)}",
                           hint=f"the saved set is in {backup.path}")  # fmt: skip
    return changed


def _noise(line: str) -> bool:
    """pip's warnings about configured index locations that do not exist: not progress."""
    return line.startswith("WARNING: Location ") or not line.strip()


def _name(line: str) -> str:
    """`Torch==2.2.2` / `pkg @ file://…` → `torch` (pip's normalised project name)."""
    for separator in ("==", " @ ", "==="):
        if separator in line:
            line = line.split(separator, 1)[0]
            break
    return line.strip().lower().replace("_", "-").replace(".", "-")
