"""What undo does (lab/restore.py), decided from the saved set, what the fix installed and what is there now:
only the fix's own packages, still at the versions it installed, are put back or removed; conda's are never."""

from __future__ import annotations

from pathlib import Path

import pytest

from qatdoctor.lab import restore
from qatdoctor.lab.backup import Backup, Identity, parse_freeze
from qatdoctor.lab.restore import ChangeError, Target

WHO = Identity("/v/bin/python", "/usr/bin/python3.11", "/v", "/usr", "3.11.7")
SAVED = ["six==1.16.0", "idna==3.6", "pip==24.0", "# Editable install with no version control (mine==0.1)",
         "-e /src/mine", "dref @ file:///w/dref-1.0-py3-none-any.whl"]  # fmt: skip

PLANS = [
    # (what the fix installed, what is there now) -> (put back, removed, by hand, left alone)
    ("the fix's own changes are undone",
     ["six==1.17.0", "certifi==2024.2.2"], ["six==1.17.0", "idna==3.6", "pip==24.0", "certifi==2024.2.2"],
     (["six==1.16.0"], ["certifi"], [], [])),
    ("a package the fix installed, changed since, is left alone",
     ["six==1.17.0", "idna==3.7"], ["six==1.17.0", "idna==3.8", "pip==24.0"],
     (["six==1.16.0"], [], [], [("idna", "changed after the fix")])),
    ("a package the fix added, upgraded since, is not removed",
     ["certifi==2024.2.2"], ["six==1.16.0", "idna==3.6", "pip==24.0", "certifi==2025.1.1"],
     ([], [], [], [("certifi", "changed after the fix")])),
    ("a package installed after the fix stays",
     ["six==1.17.0"], ["six==1.17.0", "idna==3.6", "pip==24.0", "attrs==25.1.0"],
     (["six==1.16.0"], [], [], [("attrs", "installed after the fix")])),
    ("a saved package changed after the fix stays changed",
     ["six==1.17.0"], ["six==1.17.0", "idna==3.6", "pip==25.0"],
     (["six==1.16.0"], [], [], [("pip", "changed after the fix")])),
    ("a package the fix upgraded, removed since, is not put back",
     ["six==1.17.0"], ["idna==3.6", "pip==24.0"],
     ([], [], [], [("six", "removed after the fix")])),
    ("a saved package removed after the fix is not put back",
     ["six==1.17.0"], ["six==1.17.0", "pip==24.0"],
     (["six==1.16.0"], [], [], [("idna", "removed after the fix")])),
    ("a package the fix added, removed since, is already as saved",
     ["certifi==2024.2.2"], ["six==1.16.0", "idna==3.6", "pip==24.0"],
     ([], [], [], [])),
    ("already undone: nothing to do",
     ["six==1.17.0"], ["six==1.16.0", "idna==3.6", "pip==24.0"],
     ([], [], [], [])),
    ("a saved editable or direct reference the fix replaced is for the user",
     ["mine==0.2", "dref==1.1"], ["six==1.16.0", "idna==3.6", "pip==24.0", "mine==0.2", "dref==1.1"],
     ([], [], ["mine", "dref"], [])),
]


def _backup() -> Backup:
    return Backup(Path("/b.json"), WHO, "t", "cmd", parse_freeze(SAVED))


@pytest.mark.parametrize(("case", "installed", "now", "expected"), PLANS, ids=[p[0] for p in PLANS])
def test_undo_plans_only_the_fixs_own_packages(
    case: str, installed: list[str], now: list[str], expected: tuple[list[str], ...]
) -> None:
    saved = parse_freeze(SAVED)
    current = {**{n: e for n, e in saved.items() if e.kind != "pin"}, **parse_freeze(now)}
    plan = restore.plan("/v/bin/python", _backup(), parse_freeze(installed), current)
    put_back, removed, by_hand, left = expected
    assert [e.requirement for e in plan.reinstall] == put_back
    assert list(plan.remove) == removed
    assert [e.name for e in plan.by_hand] == by_hand
    assert [(u.name, u.why) for u in plan.left_alone] == left


def test_a_rollback_treats_everything_pip_changed_as_the_fixs() -> None:
    saved = parse_freeze(["six==1.16.0", "pip==24.0"])
    after = parse_freeze(["six==1.17.0", "pip==24.0", "idna==3.6", "-e git+https://x/y#egg=y"])
    assert list(restore.changed_pins(saved, after)) == ["six", "idna"], "pins only: an editable is not ours"


def _target(installers: dict[str, str | None], records: frozenset[str] = frozenset(), conda: bool = False) -> Target:
    return Target(WHO, conda, installers, records)


OWNERS = [
    ("pip's torch", _target({"torch": "pip"}), None),
    ("uv's torch", _target({"torch": "uv", "aimet-torch": "uv"}), None),
    ("conda's torch by INSTALLER", _target({"torch": "conda"}), "torch in /v was installed by conda"),
    ("conda's torch by its conda-meta record", _target({"torch": "pip"}, frozenset({"torch"}), conda=True),
     "installed by conda"),
    ("conda's aimet-torch", _target({"torch": "pip", "aimet-torch": "conda"}), "aimet-torch in /v"),
    ("a conda env without a pip torch", _target({"six": "pip"}, conda=True), "torch is not a pip package"),
    ("a venv without torch", _target({"six": "pip"}), None),
]


@pytest.mark.parametrize(("case", "target", "refused"), OWNERS, ids=[o[0] for o in OWNERS])
def test_what_conda_owns_is_refused(case: str, target: Target, refused: str | None) -> None:
    if refused is None:
        restore.check_restorable(target, hint="h")
        return
    with pytest.raises(ChangeError, match=refused):
        restore.check_restorable(target, hint="h")


def test_the_command_for_the_user_quotes_what_it_shows() -> None:
    (mine, dref) = (e for e in parse_freeze(SAVED).values() if e.kind != "pin")
    assert restore.by_hand_command("/v/bin/python", mine) == "/v/bin/python -m pip install --no-deps -e /src/mine"
    assert restore.by_hand_command("/my venv/bin/python", dref) == (
        "'/my venv/bin/python' -m pip install --no-deps 'dref @ file:///w/dref-1.0-py3-none-any.whl'"
    )
