"""Every printed fix must work: each pip command `check`, `explain` and `resolve` print lands on a set the
matrix does not call problems, and (integration) pip itself would install exactly the set the command claims."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import pytest

from qatdoctor import core
from qatdoctor.explain import explain_stream
from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.versions import try_parse_version
from qatdoctor.records import Fact, Facts, Report, Verdict
from tests.conftest import reference_python
from tests.test_resolve import HOST, ROWS, resolve

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r'"([A-Za-z0-9_.-]+)(==[^"]+|[<>!~][^"]*)"')
SET = ("aimet-torch", "torch", "torchvision", "numpy")
# A real release that stands for a planned range (`numpy<1.24`), newest first.
NUMPY = ("2.4.6", "2.2.6", "1.26.4", "1.24.4", "1.23.5", "1.22.4")


def printed_commands(report: Report) -> list[str]:
    """Every pip install a report prints: recommendations and the fixes of its findings."""
    out = [c for r in report.recommendations for c in r.commands]
    out += [c for f in report.findings for fx in f.fixes for c in fx.commands]
    return [c for c in dict.fromkeys(out) if " -m pip install " in c]


def pins(command: str) -> dict[str, str]:
    return {name.lower(): spec for name, spec in PIN.findall(command)}


def applied(facts: Facts, command: str) -> Facts:
    """The facts after running `command`: its pins replace the installed versions; CUDA follows torch's build."""
    from packaging.specifiers import SpecifierSet

    updates: dict[str, Fact] = {}
    for name, spec in pins(command).items():
        if name not in SET:
            continue
        if spec.startswith("=="):
            updates[name] = Fact.known(spec[2:])
        else:
            updates[name] = Fact.known(next(v for v in NUMPY if SpecifierSet(spec).contains(v)))
    values = dict(facts.values)
    if "torch" in updates:
        values.pop("cuda", None)
    # An API the user chose carries over only to a release that ships it (AIMET then uses its default).
    aimet = try_parse_version((updates.get("aimet-torch") or facts.get("aimet-torch")).value or "")
    release = load().aimet_release(aimet) if aimet else None
    api = values.get("aimet-api")
    if api is not None and (api.origin == "derived" or (release is not None and api.value not in release.apis)):
        values.pop("aimet-api")
    values.update(updates)
    return Facts(values, facts.gpus, facts.gpus_reason)


def assert_lands_well(report: Report) -> None:
    matrix = load()
    for command in printed_commands(report):
        after = core.diagnose(applied(report.facts, command), matrix, command="resolve", target="after")
        failing = [f.id for f in after.findings if f.failed and f.severity.value == "error"]
        assert after.verdict is not Verdict.PROBLEMS, (command, failing)


@pytest.mark.parametrize("row", ROWS)
def test_resolve_commands_land_on_sets_that_are_not_problems(row: object) -> None:
    assert_lands_well(resolve(row.facts))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "name", sorted(str(p.relative_to(ROOT / "tests" / "data" / "explain")) for p in (ROOT / "tests" / "data" / "explain").rglob("*") if p.is_file())
)
def test_explain_commands_land_on_sets_that_are_not_problems(name: str) -> None:
    with (ROOT / "tests" / "data" / "explain" / name).open("rb") as stream:
        report = explain_stream(stream, load(), target=name)
    assert_lands_well(report)


def test_the_3152_stack_caveat_fix_is_a_whole_set() -> None:
    """The BN-crash upgrade (`aimet-torch>=2.30`) once printed alone: pip kept torch 2.2.2 and aimet broke."""
    report = resolve({"aimet-torch": "1.32.2", "torch": "2.2.2+cu121", "torchvision": "0.17.2", "mmengine": "0.10.7"})
    crash = next(f for f in report.findings if f.id == "bn-subclass-qat-crash-v1")
    upgrade = next(fx for fx in crash.fixes if fx.kind == "upgrade")
    assert upgrade.commands and upgrade.lands_on
    pinned = pins(upgrade.commands[0])
    assert pinned["aimet-torch"].startswith("==2.") and pinned["torch"].startswith("==2.")
    assert pinned["torch"] != "==2.2.2", "torch moves with aimet-torch"


def test_the_cuda_major_is_kept_unless_the_driver_is_known() -> None:
    """torch 2.14's PyPI build is CUDA 13 (driver >= 580): from a CUDA 12 env the move takes the cu12x build from
    the PyTorch index, unless the target driver is known to run CUDA 13 — then PyPI's build, and no index."""
    stack = {"aimet-torch": "2.42.0", "torch": "2.2.2+cu121", "python": "3.11.7", "numpy": "1.26.4"}
    unknown = next(r for r in resolve(stack).recommendations if r.kind == "newest")
    known = next(r for r in resolve({**stack, "driver": "580.95.05"}).recommendations if r.kind == "newest")
    assert '"torch==2.14.1+cu12' in unknown.commands[0] and "--extra-index-url" in unknown.commands[0]
    assert '"torch==2.14.1"' in known.commands[0] and "--extra-index-url" not in known.commands[0]
    assert any("moves torch from CUDA 12 to CUDA 13" in n for n in known.notes)


def test_no_command_names_a_bare_interpreter_when_the_target_is_known() -> None:
    facts = Facts({**{k: Fact.known(v) for k, v in HOST.items() if v not in ("absent", "present", "none")},
                   "aimet-torch": Fact.known("1.32.2"), "torch": Fact.known("2.2.2"),
                   "numpy": Fact.known("2.2.6")})  # fmt: skip
    report = core.diagnose(facts, load(), command="check", target="/opt/venv/bin/python", python="/opt/venv/bin/python")
    commands = printed_commands(report)
    assert commands and all(c.startswith("/opt/venv/bin/python -m pip install ") for c in commands), commands


# --- integration: pip itself, in the reference environments ----------------------------------------------------


@cache
def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=10).close()
    except (urllib.error.URLError, OSError):
        return False
    return True


@cache
def printed_in(env: str, *args: str) -> tuple[str, ...]:
    python = reference_python(env)
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--no-probe", "--python", python, "--format", "json", *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    report = json.loads(done.stdout)
    commands = [c for r in report["recommendations"] for c in r["commands"]]
    commands += [c for f in report["findings"] for fx in f["fixes"] for c in fx["commands"]]
    return tuple(c for c in dict.fromkeys(commands) if " -m pip install " in c)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("env", "args"),
    [
        # the caveats' upgrades, as for a GPU host whose driver runs CUDA 13 (PyPI's builds, no index needed)
        pytest.param("aimet-1.32.2-models", ("--target-driver", "580.95.05"), id="1.32.2-caveat-upgrades"),
        # the same with the driver unknown: the CUDA 12 builds of the PyTorch index (skipped where unreachable)
        pytest.param("aimet-1.32.2", (), id="1.32.2-cuda-12-kept"),
        pytest.param("broken-2.42.0-torch-2.2.2", (), id="broken-recommendations"),
    ],
)
def test_pip_would_install_exactly_the_set_each_command_claims(env: str, args: tuple[str, ...], tmp_path: Path) -> None:
    python = reference_python(env)
    commands = printed_in(env, *args)
    assert commands, "this env prints version fixes (a caveat's or a recommendation's)"
    checked = 0
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == python, "the target's own interpreter, as an absolute path"
        index = argv[argv.index("--extra-index-url") + 1] if "--extra-index-url" in argv else None
        if index is not None and not reachable(index + "/"):
            continue  # counted below: this machine reaches PyPI only
        report = tmp_path / f"report-{checked}.json"
        done = subprocess.run(
            [*argv, "--dry-run", "--quiet", "--report", str(report)], capture_output=True, text=True, timeout=600,
            check=False, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )  # fmt: skip
        assert done.returncode == 0, (command, done.stderr[-2000:])
        installs = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
        claimed = pins(command)
        for name in SET:  # nothing of the set moves that the command did not claim
            if name in installs:
                assert name in claimed, (command, name, installs[name])
                from packaging.specifiers import SpecifierSet

                assert SpecifierSet(claimed[name]).contains(installs[name], prereleases=True), (command, installs)
        checked += 1
    unreachable = len(commands) - checked
    if not checked:
        pytest.skip(f"all {unreachable} commands of {env} need the PyTorch index, which this machine cannot reach")
