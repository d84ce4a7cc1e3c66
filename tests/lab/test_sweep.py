"""`qatdoctor sweep`: grid expansion, skipped cells, the CI matrix, and runs with fake and small real envs."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet
from typer.testing import CliRunner

from qatdoctor.cli import app
from qatdoctor.environment.probe import from_payload
from qatdoctor.environment.runner import Runner
from qatdoctor.errors import InputError
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.load import load
from qatdoctor.lab import evidence
from qatdoctor.lab.cellplan import plan_cell
from qatdoctor.lab.cellrun import Tools, run_cell
from qatdoctor.lab.envbuild import EnvSpec, InstallError, Log, build_env
from qatdoctor.lab.sweep import SweepOptions, ci_matrix, render_text, run_sweep
from qatdoctor.lab.sweep_grid import expand, parse_pythons, resolve_aimet, resolve_torch, split_items
from qatdoctor.records import Fact, Facts, ProbeRun

DATA = Path(__file__).resolve().parents[1] / "data" / "probe"
MATRIX = load()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


# ---- grid expansion ---------------------------------------------------------------------------------


def test_split_items_groups_range_clauses() -> None:
    assert split_items("2.8.0,>=2.10,<2.12", "torch") == ["2.8.0", SpecifierSet(">=2.10,<2.12")]
    assert split_items(" 2.1.0 , 2.5.0 ", "aimet") == ["2.1.0", "2.5.0"]
    assert split_items("2.12.*", "torch") == [SpecifierSet("==2.12.*")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (">=2.10,<2.15", ["2.10.0", "2.11.0", "2.12.1", "2.13.0", "2.14.1"]),  # newest patch per series
        ("2.12", ["2.12.1"]),  # a series
        ("2.12.0,2.12.1", ["2.12.0", "2.12.1"]),  # exact patches stay exact
        ("2.8.0,>=2.14", ["2.8.0", "2.14.1", "2.15.0"]),
    ],
)
def test_resolve_torch(text: str, expected: list[str]) -> None:
    assert resolve_torch(text, MATRIX) == (expected, [])


def test_resolve_aimet_range_is_every_release() -> None:
    assert resolve_aimet(">=2.0,<2.5", MATRIX)[0] == ["2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0"]


def test_unknown_exact_version_is_tried_with_a_warning() -> None:
    versions, warnings = resolve_torch("2.16.0", MATRIX)
    assert versions == ["2.16.0"] and "not a release the matrix knows" in warnings[0]


@pytest.mark.parametrize("text", [">>2", ">=9", "", "latest"])
def test_bad_ranges_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        resolve_torch(text, MATRIX)


def test_python_minors() -> None:
    assert parse_pythons("3.10, 3.11") == ["3.10", "3.11"]
    assert parse_pythons(None) == ["auto"]
    with pytest.raises(InputError):
        parse_pythons("3")


def test_uninstallable_cells_are_skipped_with_reasons() -> None:
    grid = expand(MATRIX, ["1.32.2", "2.42.0"], ["2.2.2", "2.15.0"], ["3.10", "3.11"])
    planned = {p.id for p in grid.plans}
    assert planned == {
        "aimet-1.32.2-torch-2.2.2-py310",
        "aimet-2.42.0-torch-2.2.2-py310",
        "aimet-2.42.0-torch-2.2.2-py311",
        "aimet-2.42.0-torch-2.15.0-py311",
    }
    reasons = {s.id: " / ".join(s.reasons) for s in grid.skipped}
    assert "requires Python" in reasons["aimet-1.32.2-torch-2.2.2-py311"]
    assert "requires torch==2.2.2" in reasons["aimet-1.32.2-torch-2.15.0-py310"]
    assert "torch 2.15 has no wheel for Python 3.10" in reasons["aimet-2.42.0-torch-2.15.0-py310"]
    assert len(grid.plans) + len(grid.skipped) == 8  # nothing dropped silently


def test_missing_interpreter_is_a_skip_reason() -> None:
    grid = expand(MATRIX, ["2.42.0"], ["2.14.1"], ["3.11"], available=lambda minor: False)
    assert not grid.plans and "no Python 3.11 interpreter" in grid.skipped[0].reasons[0]


def test_auto_python_prefers_310_then_newer() -> None:
    grid = expand(MATRIX, ["1.32.2", "2.42.0"], ["2.2.2", "2.15.0"], ["auto"])
    assert {p.id for p in grid.plans} == {
        "aimet-1.32.2-torch-2.2.2-py310", "aimet-2.42.0-torch-2.2.2-py310", "aimet-2.42.0-torch-2.15.0-py311",
    }  # fmt: skip


def test_plan_pins_torchvision_and_system_libs() -> None:
    plan = plan_cell(MATRIX, "1.32.2", "2.2.2+cu121", "3.10")
    assert plan.requirements() == ("aimet-torch==1.32.2", "torch==2.2.2", "torchvision==0.17.2")
    assert plan.system_libs == ("liblapacke.so.3",) and plan.index_url is None
    other = plan_cell(MATRIX, "2.0.0", "2.2.2+cu118", "3.10")
    assert other.requirements()[-2:] == ("--extra-index-url", "https://download.pytorch.org/whl/cu118")
    assert "torchvision==0.17.2+cu118" in other.requirements()


# ---- --emit-ci-matrix -------------------------------------------------------------------------------


def test_emit_ci_matrix_is_a_github_strategy_matrix() -> None:
    result = invoke("sweep", "--aimet", "1.32.2,2.42.0", "--torch", "2.2.2,2.15.0", "--emit-ci-matrix")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert list(payload) == ["include"]
    assert all(set(job) == {"aimet", "torch", "python", "id"} for job in payload["include"])
    assert {job["id"] for job in payload["include"]} == {
        "aimet-1.32.2-torch-2.2.2-py310", "aimet-2.42.0-torch-2.2.2-py310", "aimet-2.42.0-torch-2.15.0-py311",
    }  # fmt: skip
    assert "skipping aimet-1.32.2-torch-2.15.0" in result.stderr and "requires torch==2.2.2" in result.stderr


def test_ci_jobs_reproduce_their_cell() -> None:
    """Each job runs `sweep --aimet X --torch Y --python Z`: that grid is exactly its one cell."""
    payload, _ = ci_matrix(SweepOptions(aimet=">=2.40", torch=">=2.13", python="3.11"))
    for job in payload["include"]:
        again, _ = ci_matrix(SweepOptions(aimet=job["aimet"], torch=job["torch"], python=job["python"]))
        assert again["include"] == [job]


def test_bad_range_exits_6() -> None:
    result = invoke("sweep", "--aimet", "2.42.0", "--torch", ">>2.10", "--emit-ci-matrix")
    assert result.exit_code == ExitCode.BAD_INPUT and result.stdout == ""
    assert "invalid --torch range" in result.stderr


# ---- running cells with fakes ---------------------------------------------------------------------


class FakeCell:
    """Builds an empty env dir; probes answer from the recorded 2.42.0 run; one torch fails to install."""

    def __init__(self, fail_torch: str | None = None) -> None:
        self.fail_torch = fail_torch
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()

    def builder(
        self, spec: EnvSpec, root: Path, *, installer: str = "auto", runner: Runner | None = None, log: Log | None = None
    ) -> Path:
        if self.fail_torch and f"torch=={self.fail_torch}" in spec.requirements:
            raise InstallError(f"building {spec.name}: uv install failed: No matching distribution found")
        python = root / spec.name / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("")
        (root / spec.name / "pyvenv.cfg").write_text("")
        return python

    def prober(self, python: str, **kwargs: Any) -> ProbeRun:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        threading.Event().wait(0.05)
        with self.lock:
            self.active -= 1
        probe = from_payload(json.loads((DATA / "aimet-2.42.0.json").read_text()))
        return probe._replace(versions={k: v.value or "" for k, v in self.collector(python).values.items()})

    def collector(self, python: str | None = None, **kwargs: Any) -> Facts:
        name = Path(str(python)).parent.parent.name  # aimet-2.42.0-torch-2.14.1-py311-<digest>
        torch, py = name.split("-torch-")[1].split("-py")[0], name.split("-py")[1].split("-")[0]
        return Facts({"aimet-torch": Fact.known("2.42.0"), "torch": Fact.known(torch),
                      "python": Fact.known(f"{py[0]}.{py[1:]}.7"), "platform": Fact.known("linux-x86_64")})  # fmt: skip

    def tools(self) -> Tools:
        return Tools(builder=self.builder, prober=self.prober, collector=self.collector)  # type: ignore[arg-type]


def sweep_options(tmp_path: Path, fake: FakeCell, **kw: Any) -> SweepOptions:
    defaults: dict[str, Any] = {"aimet": "2.42.0", "torch": "2.12.1,2.13.0,2.14.1", "python": "3.11", "jobs": 2}
    defaults.update(kw)
    return SweepOptions(root=tmp_path / "envs", tools=fake.tools(), output=tmp_path / "ev.json", **defaults)


def test_sweep_writes_evidence_and_deletes_envs(tmp_path: Path) -> None:
    fake = FakeCell()
    result = run_sweep(sweep_options(tmp_path, fake, torch="2.12.1,2.13.0,2.14.1,2.15.0", python="3.10,3.11"))
    assert [c.id for c in result.cells] == [
        "aimet-2.42.0-torch-2.12.1-py310", "aimet-2.42.0-torch-2.12.1-py311", "aimet-2.42.0-torch-2.13.0-py310",
        "aimet-2.42.0-torch-2.13.0-py311", "aimet-2.42.0-torch-2.14.1-py310", "aimet-2.42.0-torch-2.14.1-py311",
        "aimet-2.42.0-torch-2.15.0-py311",
    ]  # fmt: skip
    assert fake.peak == 2, "two cells at a time"
    header, cells = evidence.read(tmp_path / "ev.json")
    assert len(cells) == len(result.cells) and all(c.outcome == "problems" for c in cells)
    assert header["skipped"][0]["id"] == "aimet-2.42.0-torch-2.15.0-py310"
    assert "no wheel for Python 3.10" in header["skipped"][0]["reasons"][0]
    assert header["sweep"]["torch"] == "2.12.1,2.13.0,2.14.1,2.15.0"
    assert cells[0].install["installer"] in ("uv", "pip") and "requirements" in cells[0].install
    assert list((tmp_path / "envs" / "sweep").iterdir()) == [], "environments are deleted after probing"
    assert "skipped" in render_text(result)


def test_install_failure_is_a_cell_not_a_crash(tmp_path: Path) -> None:
    result = run_sweep(sweep_options(tmp_path, FakeCell(fail_torch="2.13.0")))
    failed = [c for c in result.cells if c.outcome == "install-failed"]
    assert [c.id for c in failed] == ["aimet-2.42.0-torch-2.13.0-py311"]
    assert "No matching distribution" in failed[0].install["error"]
    assert len(result.failed_builds) == 1


def test_keep_envs(tmp_path: Path) -> None:
    run_sweep(sweep_options(tmp_path, FakeCell(), torch="2.14.1", keep_envs=True))
    kept = list((tmp_path / "envs" / "sweep").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("aimet-2.42.0-torch-2.14.1-py311-")


def test_nothing_installable_is_exit_7(tmp_path: Path) -> None:
    result = invoke("sweep", "--aimet", "1.32.2", "--torch", "2.15.0", "--python", "3.11",
                    "--output", str(tmp_path / "x.json"), env={"QATDOCTOR_ENVS": str(tmp_path)})  # fmt: skip
    assert result.exit_code == ExitCode.ENV_BUILD_FAILED and "nothing to run" in result.stderr
    assert not (tmp_path / "x.json").exists()


# ---- a small real environment ---------------------------------------------------------------------


def test_real_cell_without_torch_is_an_import_failure(tmp_path: Path) -> None:
    """The real builder (a bare venv, no downloads), the real probe and the real collector, end to end."""
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    plan = plan_cell(MATRIX, "2.42.0", "2.14.1", minor)

    def bare(spec: EnvSpec, root: Path, **kw: Any) -> Path:
        return build_env(replace(spec, python=sys.executable, requirements=()), root, **{**kw, "installer": "pip"})

    run = run_cell(plan, tmp_path, tools=Tools(builder=bare), installer="pip", probe_timeout=120)  # type: ignore[arg-type]
    assert run.error is None and run.probe is not None and run.probe.state == "import-failed"
    cell = evidence.make_cell(run.facts, run.probe, install=run.install_record())
    assert cell.outcome == "import-failed" and "torch" in cell.summary["*"]
    assert cell.versions["python"].startswith(minor) and run.freeze
    assert [p.name for p in tmp_path.iterdir()] == [], "the env and its lock file are gone"
