"""What the collector looks for comes from the matrix it is given: a new [[system_lib]] a release requires is a fact
(found or missing, not unknown) with no Python change, and `--assume` accepts its name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qatdoctor.environment.assume import parse_assumption
from qatdoctor.environment.collect import collect
from qatdoctor.knowledge.load import checked_libraries, load
from qatdoctor.records import FactState
from tests.environment.matrix_copies import NEW_LIB, with_new_system_lib

FACT = f"lib:{NEW_LIB}"


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_new_system_lib(tmp_path_factory.mktemp("matrix"))


def test_a_library_a_release_requires_is_checked(matrix: Path) -> None:
    assert NEW_LIB in load(matrix).checked_libraries()
    assert NEW_LIB in checked_libraries(matrix), "also without a compiled sidecar"


@pytest.mark.parametrize(("installed", "state"), [(True, FactState.KNOWN), (False, FactState.ABSENT)])
def test_the_collector_reports_the_new_library(
    matrix: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installed: bool, state: FactState
) -> None:
    libdir = tmp_path / "lib"
    libdir.mkdir()
    if installed:
        (libdir / NEW_LIB).write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(libdir))
    fact = collect(sys.executable, matrix=matrix).get(FACT)
    assert fact.state is state, fact
    assert fact.detail == (str(libdir / NEW_LIB) if installed else None)


@pytest.mark.parametrize("name", [NEW_LIB, FACT])
@pytest.mark.parametrize(("value", "state"), [("present", FactState.KNOWN), ("absent", FactState.ABSENT)])
def test_assume_accepts_the_new_library(name: str, value: str, state: FactState) -> None:
    fact_name, fact = parse_assumption(f"{name}={value}")
    assert fact_name == FACT and getattr(fact, "state", None) is state


def test_check_with_the_copy_reports_the_library_and_takes_the_assumption(matrix: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qatdoctor", "check", "--no-probe", "--matrix", str(matrix), "--format", "json",
         "--assume", f"{NEW_LIB}=present"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-2000:]
    facts = json.loads(done.stdout)["facts"]
    assert facts[FACT]["state"] == "known" and facts[FACT]["origin"] == "assumed", facts.get(FACT)
