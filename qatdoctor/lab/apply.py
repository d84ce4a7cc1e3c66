"""`qatdoctor fix`'s policy: apply a recommendation to the target only after `verify` proved it in a throwaway
copy; save the previous set first (`backup`), check the result with the same probe, and put the saved set back
(`restore`) when pip fails or the result is worse than what verify proved.

Like pip-audit's `--fix` and `expo install --fix`, but a change is never made blind: the same probe (and the
user's model) ran on the new set first, and the recommendation must have fixed what it targeted.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from qatdoctor import core
from qatdoctor.environment.runner import Runner, run
from qatdoctor.lab.backup import Backup, backup_dir
from qatdoctor.lab.restore import (
    PIP_TIMEOUT,
    ChangeError,
    changed_pins,
    check_restorable,
    execute,
    freeze,
    inspect,
    noise,
    rollback_plan,
)
from qatdoctor.lab.verify import VerifyResult
from qatdoctor.records import Recommendation, Report, Scope, Severity

Log = Callable[[str], None]


class InstallFailed(ChangeError):
    """pip failed, or the applied set was worse than verify's; the previous set was put back."""


def proved(result: VerifyResult) -> Recommendation:
    """The recommendation verify proved; raises ChangeError when it did not fix what it targeted."""
    if result.recommendation is None or not result.fixes:
        raise ChangeError("refusing to change the environment: verify did not fix what the recommendation targeted")
    return result.recommendation


def command_argv(rec: Recommendation, python: str) -> list[str]:
    """The recommendation's own command, as printed and as verify built it, for this interpreter only."""
    if len(rec.commands) != 1:
        raise ChangeError(f"recommendation {rec.id!r} has no single pip command to apply")
    argv = shlex.split(rec.commands[0])
    if argv[:4] != [python, "-m", "pip", "install"]:
        raise ChangeError(f"recommendation {rec.id!r} is not a pip install in {python}: {rec.commands[0]}")
    return argv


def apply(
    rec: Recommendation, python: str, root: Path, *, runner: Runner = run, log: Log = lambda line: None
) -> Backup:
    """Save the current set, run the recommendation's command, record what it installed; on failure put the
    saved set back and raise InstallFailed."""
    argv = command_argv(rec, python)
    target = inspect(python, runner)
    check_restorable(target, hint="apply the printed command yourself with the tool that owns the environment "
                                  "(e.g. conda)")  # fmt: skip
    saved = freeze(python, runner)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    backup = Backup(backup_dir(root, python) / f"{stamp}.json", target.identity, stamp, rec.commands[0], saved)
    backup.save()
    log(f"saved the current set ({len(saved)} packages) to {backup.path}")
    log(f"running: {rec.commands[0]}")
    done = runner(argv, timeout=PIP_TIMEOUT, on_stderr_line=lambda line: None if noise(line) else log(line))
    if not done.ok:
        log("pip failed: restoring the previous set")
        _put_back(backup, python, runner, log, f"pip install failed ({done.describe_exit()}): "
                  f"{done.stderr_tail(3) or done.stdout[-500:]}")  # fmt: skip
    recorded = replace(backup, installed=changed_pins(saved, freeze(python, runner)))
    recorded.save()
    return recorded


def apply_checked(
    rec: Recommendation,
    result: VerifyResult,
    check: core.Options,
    python: str,
    root: Path,
    *,
    runner: Runner = run,
    log: Log = lambda line: None,
) -> tuple[Backup, Report]:
    """`apply`, then check the target itself: pip changed it in place, next to packages verify's fresh env did
    not have. A result worse than what verify proved is put back (InstallFailed)."""
    backup = apply(rec, python, root, runner=runner, log=log)
    log("checking the environment after the install (the same probe as verify)")
    after = core.run_check(replace(check, use_cache=False))
    found = regressions(result.after, after)
    if found:
        _put_back(backup, python, runner, log,
                  "the environment after the install is not what verify proved: " + "; ".join(found))  # fmt: skip
    return backup, after


def _put_back(backup: Backup, python: str, runner: Runner, log: Log, why: str) -> None:
    """Roll the fix back and raise InstallFailed saying why, and whether the rollback took."""
    try:
        plan = rollback_plan(python, backup, runner)
        execute(plan, runner=runner, log=log)
    except ChangeError as error:
        raise InstallFailed(f"{why}; putting the saved set back failed too: {error.message}",
                            hint=f"the saved set is in {backup.path}") from None  # fmt: skip
    if plan.by_hand:
        rest = ", ".join(f"{e.name} (was `{e.shown}`)" for e in plan.by_hand)
        raise InstallFailed(why, hint=f"the previous set was restored ({backup.path}) except {rest}: pip only "
                                      "gets `name==version` from a backup, reinstall those by hand")  # fmt: skip
    raise InstallFailed(why, hint=f"the previous set was restored ({backup.path}); nothing changed")


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
