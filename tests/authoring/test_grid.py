"""`qatdoctor matrix grid`: cells against the matrix and against `resolve`, the filters, the terminal folding, JSON,
and the static page's data, size and atomic write (the page in a real browser: tests/integration)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor.authoring import grid
from qatdoctor.authoring.grid import DriverMark, Filters, State
from qatdoctor.cli import app
from qatdoctor.core import infer_missing
from qatdoctor.diagnose.evaluate import evaluate
from qatdoctor.environment.assume import what_if_facts
from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.entries import Matrix, ProbeMatch
from qatdoctor.knowledge.load import load
from qatdoctor.render import grid_html, grid_text
from tests.matrixkit import aimet, good, small, torch, write_small

runner = CliRunner()
SILU_ROWS = {f"2.{minor}.0" for minor in range(10)}  # 2.0.0 … 2.9.0: the SiLU QuantSim failure (measured)


@cache
def matrix() -> Matrix:
    return load()


@cache
def evaluator() -> grid.Evaluator:
    return grid.Evaluator(matrix())


@cache
def built(python: str | None = None, driver: str | None = None, construct: str | None = None) -> grid.Grid:
    return grid.build(matrix(), Filters(python, driver, construct), evaluator())


def cell(g: grid.Grid, aimet: str, series: str) -> grid.Cell:
    i = next(i for i, r in enumerate(g.rows) if r.version == aimet)
    j = next(j for j, c in enumerate(g.columns) if c.series == series)
    return g.cells[i][j]


# --- cells say what the matrix says ------------------------------------------------------------------------------

KNOWN = [
    # (aimet-torch, torch series, --python, state, reason, decided by, python evaluated)
    ("1.32.2", "2.2", "3.10", State.MEASURED, None, "good-aimet-1.32.2-1.35.0-torch-2.2.2-py310", "3.10"),
    ("1.32.2", "2.2", None, State.MEASURED, None, "good-aimet-1.32.2-1.35.0-torch-2.2.2-py310", "3.10"),
    # the cp38 wheel links CUDA 11 and PyPI's torch 2.2.2 is a CUDA 12 build: the requirement check fails first
    ("1.32.2", "2.2", "3.8", State.BAD, "CUDA", "req.cuda-major", "3.8"),
    ("1.32.2", "2.3", None, State.NOT_INSTALLABLE, "pin", "req.torch", "3.10"),
    ("1.32.2", "2.15", None, State.NOT_INSTALLABLE, "Python", "req.python", None),
    ("1.32.2", "2.2", "3.12", State.NOT_INSTALLABLE, "Python", "req.python", "3.12"),  # Requires-Python <3.11
    ("1.30.1", "1.13", None, State.VENDOR, None, "aimet-torch 1.30.1 pins torch==1.13.1", "3.8"),
    ("1.30.1", "1.13", "3.10", State.NOT_INSTALLABLE, "Python", "aimet-1.30-1.31.1-python-not-3.8", "3.10"),
    ("2.42.0", "2.2", None, State.BAD, "import", "aimet-2.42-torch-2.2-import-error", "3.12"),
    ("2.42.0", "2.2", "3.10", State.BAD, "import", "aimet-2.42-torch-2.2-import-error", "3.10"),
    ("2.42.0", "2.4", "3.11", State.BAD, "import", "aimet-2.42-torch-2.2-import-error", "3.11"),
    ("2.42.0", "2.14", None, State.MEASURED, None, "good-aimet-2.42.0-torch-2.14.1-py311", "3.11"),
    ("2.42.0", "2.14", "3.10", State.VENDOR, None, "aimet-torch 2.42.0 wheel was built with torch 2.14.1+cu126", "3.10"),
    ("2.42.0", "2.8", None, State.MEASURED, None, "good-measured-aimet-2.42.0-torch-2.8.0-py311", "3.11"),
    ("2.42.0", "2.15", "3.10", State.NOT_INSTALLABLE, "Python", "req.python", "3.10"),
    ("2.0.0", "2.14", None, State.BAD, "import", "aimet-2.0.0-torch-2.14-import-error", "3.14"),
    ("2.17.0", "2.9", None, State.NOT_INSTALLABLE, "pin", "aimet-2.17-torch-2.9-cap", "3.14"),
    ("2.10.0", "2.5", None, State.UNTESTED, None, None, "3.13"),
]  # fmt: skip


@pytest.mark.parametrize(("aimet", "series", "python", "state", "reason", "decided", "evaluated"), KNOWN)
def test_known_cells(
    aimet: str,
    series: str,
    python: str | None,
    state: State,
    reason: str | None,
    decided: str | None,
    evaluated: str | None,
) -> None:
    found = cell(built(python), aimet, series)
    outcome = found.plan.outcome
    assert (found.state, outcome.reason, outcome.decided_by, found.plan.python) == (state, reason, decided, evaluated)


def test_measured_cells_cite_their_probe_runs() -> None:
    good = cell(built("3.10"), "1.32.2", "2.2").plan.outcome
    assert "repro-aimet-1.32.2-torch-2.2.2-py310" in good.evidence
    bad = cell(built(), "2.42.0", "2.2").plan.outcome
    assert "probe-aimet-2.42.0-torch-2.2.2-py311" in bad.evidence
    assert bad.rules[0] == "aimet-2.42-torch-2.2-import-error"


def test_every_cell_agrees_with_resolve() -> None:
    """The facts `resolve -a aimet-torch=A -a torch=T -a python=P` builds, through the whole matrix (no pre-filter),
    decide every cell the same way."""
    m = matrix()
    g = built("3.10")
    for found in grid.iter_cells(g):
        if found.plan.python is None or found.plan.outcome.note:
            continue
        facts = infer_missing(
            what_if_facts([f"aimet-torch={found.aimet}", f"torch={found.plan.torch}", "python=3.10"]), m
        )
        theirs = grid.classify(evaluate(facts, m), m)
        ours = found.plan.outcome
        assert (ours.state, ours.reason, ours.decided_by, ours.rules) == (
            theirs.state,
            theirs.reason,
            theirs.decided_by,
            theirs.rules,
        ), (found.aimet, found.series)


@pytest.mark.parametrize(
    ("assume", "verdict", "finding", "status"),
    [
        (["aimet-torch=2.42.0", "torch=2.2.2", "python=3.10"], "problems", "aimet-2.42-torch-2.2-import-error", "fail"),
        (
            ["aimet-torch=1.32.2", "torch=2.2.2", "python=3.10"],
            None,
            "good-aimet-1.32.2-1.35.0-torch-2.2.2-py310",
            "pass",
        ),
    ],
)
def test_the_cli_resolve_says_the_same(assume: list[str], verdict: str | None, finding: str, status: str) -> None:
    args = [a for item in assume for a in ("-a", item)]
    payload = json.loads(runner.invoke(app, ["resolve", *args, "--format", "json"]).stdout)
    assert verdict is None or payload["verdict"] == verdict
    assert any(f["id"] == finding and f["status"] == status for f in payload["findings"])


def test_reason_words_come_from_the_rules_data() -> None:
    """The word is the failing rule's earliest probe stage: change the data and the word follows."""
    m = matrix()
    rule = m.rule("aimet-2.42-torch-2.2-import-error")
    assert rule is not None and {p.stage for p in rule.probes} == {"import"}
    moved = rule._replace(probes=(ProbeMatch("baseline", "qat_step", "fail"),))
    other = m._replace(rules=tuple(moved if r.id == rule.id else r for r in m.rules))
    assert cell(grid.build(other), "2.42.0", "2.2").plan.outcome.reason == "QAT"
    for found in grid.iter_cells(built()):
        outcome = found.plan.outcome
        if outcome.state in (State.BAD, State.NOT_INSTALLABLE) and outcome.decided_by:
            decider = m.rule(outcome.decided_by)
            if decider is not None and decider.probes:
                assert outcome.reason == grid.STAGE_WORDS[decider.probes[0].stage] or outcome.reason in (
                    grid.STAGE_WORDS.values()
                )
            elif decider is None:
                assert outcome.reason == grid.CHECK_WORDS[outcome.decided_by]


def test_model_scope_rules_never_decide_a_cell() -> None:
    for found in grid.iter_cells(built()):
        decider = matrix().rule(found.plan.outcome.decided_by or "")
        assert decider is None or decider.scope == "environment"


# --- filters --------------------------------------------------------------------------------------------------------


def test_construct_filter_flags_the_silu_releases() -> None:
    g = built(construct="silu-activation")
    flagged = {c.aimet for c in grid.iter_cells(g) if c.flagged}
    assert flagged == SILU_ROWS
    for row in g.cells:
        if row[0].aimet in SILU_ROWS:
            assert all(c.flagged == ("silu-quantsim-valueerror-2.0.0",) for c in row)
    assert not any(c.flagged for c in grid.iter_cells(built()))  # only with --model-construct
    assert "silu-quantsim-valueerror-2.0.0" in cell(built(), "2.0.0", "2.2").plan.outcome.caveats
    # the construct flags, the state stays: 2.0.0 × 2.2 is still measured good for models without SiLU
    assert cell(g, "2.0.0", "2.2").state is State.MEASURED


def test_driver_filter_picks_builds_like_the_recommender() -> None:
    g = built(driver="535.104.05")
    assert cell(g, "2.42.0", "2.2").driver is DriverMark.OK
    on_214 = cell(g, "2.42.0", "2.14")
    assert (on_214.driver, on_214.plan.variant, on_214.plan.build) == (DriverMark.VARIANT, "cu126", "cu126")
    assert on_214.plan.pip is not None and '"torch==2.14.1+cu126"' in on_214.plan.pip
    assert on_214.plan.pip.endswith("--extra-index-url https://download.pytorch.org/whl/cu126")
    on_215 = cell(g, "2.42.0", "2.15")
    assert (on_215.driver, on_215.driver_min) == (DriverMark.TOO_OLD, "580.65.06")
    assert on_215.state is State.MEASURED  # still what the versions say; the mark says this driver cannot run it
    assert cell(built(), "2.42.0", "2.15").driver is None


def test_an_older_cuda_build_can_change_the_cell() -> None:
    """Driver 500 runs only CUDA 11 builds: 1.32.2's cp310 wheel links CUDA 12, its cp38 wheel CUDA 11."""
    found = cell(built(driver="500.0"), "1.32.2", "2.2")
    assert (found.plan.variant, found.plan.python, found.state) == ("cu118", "3.8", State.VENDOR)
    on_310 = cell(built(python="3.10", driver="500.0"), "1.32.2", "2.2")
    assert (on_310.state, on_310.plan.outcome.reason) == (State.BAD, "CUDA")


def test_python_filter() -> None:
    g = built("3.10")
    assert {c.plan.python for c in grid.iter_cells(g)} <= {"3.10"}
    note = cell(g, "2.42.0", "2.15").plan.outcome.note
    assert note is not None and "torch 2.15 has no wheel for Python 3.10" in note


# --- terminal ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("filters", [Filters(), Filters("3.10", "535.104.05", "silu-activation"), Filters("3.11")])
def test_terminal_grid_fits_100_columns_and_folds(filters: Filters) -> None:
    g = built(*filters)
    text = grid_text.render(g, matrix(), width=100)
    assert max(len(line) for line in text.splitlines()) <= 100
    headers = [line for line in text.splitlines() if line.startswith("aimet-torch \\ torch")]
    assert len(headers) >= 2  # folded into blocks
    series = [s for line in headers for s in line.split()[3:]]
    assert series == [c.series for c in g.columns]
    for row in g.rows:  # every block repeats every row label
        assert len(re.findall(rf"(?m)^(?:\S+\.x)?\s+{re.escape(row.version)}\s+[^\s\d]", text)) == len(headers)


def test_terminal_cells_and_legend() -> None:
    text = grid_text.render(built(construct="silu-activation"), matrix(), width=100)
    assert re.search(r"(?m)^\s+1\.32\.2 .*✓ measured", text)
    assert re.search(r"(?m)^2\.42\.x 2\.42\.0\s+·\s+·\s+·\s+✗ import\s+✗ import\s+✗ import", text)
    assert re.search(r"(?m)^2\.0\.x\s+2\.0\.0\s+·!", text)
    assert "! a model-scope rule about silu-activation applies" in text
    for word in ("measured", "vendor", "known-bad", "not installable", "untested"):
        assert word in text
    plain = grid_text.render(built(), matrix(), width=100, glyphs=grid_text.ASCII)
    assert plain.isascii() and "+ measured" in plain


def test_wide_terminals_get_fewer_blocks() -> None:
    narrow = grid_text.render(built(), matrix(), width=100).count("aimet-torch \\ torch")
    wide = grid_text.render(built(), matrix(), width=240).count("aimet-torch \\ torch")
    assert wide == 1 < narrow


# --- CLI and JSON -----------------------------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["matrix", "grid", *args], env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_json_has_the_same_cells() -> None:
    code, out, _ = invoke("--format", "json", "--python", "3.10", "--model-construct", "silu-activation")
    payload = json.loads(out)
    assert code == 0 and payload["command"] == "matrix grid" and payload["schema_version"] == 1
    m = matrix()
    assert len(payload["cells"]) == len(m.aimet) * len(m.torch)
    by_key = {(c["aimet_torch"], c["torch_series"]): c for c in payload["cells"]}
    good = by_key["1.32.2", "2.2"]
    assert (good["state"], good["python"], good["rules"]) == (
        "measured",
        "3.10",
        ["good-aimet-1.32.2-1.35.0-torch-2.2.2-py310"],
    )
    assert good["pip"] == (
        'python -m pip install "aimet-torch==1.32.2" "torch==2.2.2" "torchvision==0.17.2" "numpy<1.24,>=1.20.5"'
    )
    assert by_key["2.42.0", "2.2"]["reason"] == "import"
    assert by_key["2.5.0", "2.1"]["construct_rules"] == ["silu-quantsim-valueerror-2.0.0"]
    assert payload["filters"] == {"python": "3.10", "driver": None, "model_construct": "silu-activation"}


@pytest.mark.parametrize(
    "args", [["--python", "3"], ["--python", "py3.10"], ["--driver", "new"], ["--model-construct", "no-such-construct"]]
)
def test_bad_filters_are_bad_input(args: list[str]) -> None:
    code, out, err = invoke(*args)
    assert code == ExitCode.BAD_INPUT and not out and "error:" in err


def test_unwritable_page_is_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = invoke("--html", str(blocker / "index.html"))
    assert code == ExitCode.BAD_INPUT and "cannot write" in err


def test_check_never_imports_the_grid() -> None:
    code = "import sys, qatdoctor.cli, qatdoctor.core; print(sorted(m for m in sys.modules if 'grid' in m))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_each_set_is_evaluated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """evaluate() runs once per (release, torch, Python, CUDA build): the page and every filter reuse it."""
    seen: list[tuple[str | None, ...]] = []
    real = grid.evaluate

    def counting(facts, matrix):  # type: ignore[no-untyped-def]
        seen.append(tuple(facts.value(n) for n in ("aimet-torch", "torch", "python", "cuda")))
        return real(facts, matrix)

    monkeypatch.setattr(grid, "evaluate", counting)
    shared = grid.Evaluator(matrix())
    grid.build(matrix(), Filters(), shared)
    first = len(seen)
    grid.build(matrix(), Filters("3.10", None, "silu-activation"), shared)
    assert len(seen) == first  # a filter on Python or a construct evaluates nothing new
    grid_html.page_data(matrix(), shared)
    assert len(seen) == len(set(seen))
    pairs = len(matrix().aimet) * len(matrix().torch)
    assert first < 5 * pairs and len(seen) < 8 * pairs, (first, len(seen))


# --- the page ---------------------------------------------------------------------------------------------------------


@cache
def page() -> str:
    return grid_html.render(matrix(), evaluator=evaluator())


def page_data() -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="grid-data">(.*?)</script>', page(), re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_page_is_small_and_self_contained() -> None:
    text = page()
    assert len(text.encode()) <= 300 * 1024
    assert not re.search(r"<(script|img|iframe)[^>]+src=|<link[^>]+href=|@import|url\(\s*['\"]?(https?:)?//", text)
    assert text.count("<script") == 2 and "</script>" not in page_data().__repr__()


def lookup(data: dict, i: int, j: int, python: str, tier: int) -> tuple[str, str | None]:  # type: ignore[type-arg]
    """The page's lookup (page.js `lookup`), in Python: outcome state and the Python minor it is on."""
    cols, pythons = data["cols"], data["pythons"]
    best, entries, *_ = data["cells"][i * len(cols) + j]
    slot = cols[j]["tiers"][tier][0]
    p = best[slot] if python == "best" else pythons.index(python)
    for k in range(0, len(entries), 3):
        if entries[k] == p and entries[k + 1] == slot:
            return data["outcomes"][entries[k + 2]][0], pythons[p]
    return "not-installable", None if python == "best" else python


@pytest.mark.parametrize("python", ["best", "3.8", "3.10", "3.11", "3.13"])
@pytest.mark.parametrize("tier", [0, 2, 3])
def test_page_data_holds_every_filter_value(python: str, tier: int) -> None:
    data = page_data()
    driver = data["tiers"][tier][1]  # type: ignore[index]
    g = built(None if python == "best" else python, driver)
    for i, row in enumerate(g.cells):
        for j, found in enumerate(row):
            assert lookup(data, i, j, python, tier) == (found.state.value, found.plan.python), (
                found.aimet,
                found.series,
            )


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "site" / "index.html"
    size = grid_html.write(target, matrix())
    assert size == target.stat().st_size and oct(target.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in target.parent.iterdir()] == ["index.html"]

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    target.write_text("old page")
    with pytest.raises(OSError):
        grid_html.write(target, matrix())
    assert target.read_text() == "old page" and [p.name for p in target.parent.iterdir()] == ["index.html"]


def test_cli_writes_the_page(tmp_path: Path) -> None:
    target = tmp_path / "index.html"
    code, out, err = invoke("--html", str(target), "--python", "3.10")
    assert code == 0 and not out and "wrote" in err
    assert '"init":{"python":"3.10"' in target.read_text()


def test_readme_sample_is_real_output() -> None:
    """The grid doc's terminal sample: every line it shows (cuts are marked […]) is in today's output."""
    readme = (Path(__file__).resolve().parents[2] / "docs" / "grid.md").read_text()
    section = readme.split("# The compatibility grid", 1)[1].split("\n## ", 1)[0]
    sample = section.split("```text\n", 1)[1].split("```", 1)[0]
    command = re.search(r"`(qatdoctor matrix grid [^`]*)`, piped", section)
    assert command is not None
    code, out, _ = invoke(*command.group(1).split()[3:], "--width", "100")
    assert code == 0
    missing = [line for line in sample.splitlines() if "[…" not in line and line not in out.splitlines()]
    assert not missing, f"docs/grid.md sample is stale; rerun `{command.group(1)}` and update it: {missing}"


# --- proposed entries are marked and never known-good ------------------------------------------------------------


PROPOSED = (
    [aimet("2.10.0"), aimet("2.11.0", proposed=True)],
    [torch("2.5", 1, 2, proposed_releases=["2.5.2"]), torch("2.6", 0, proposed=True)],
    [good("good-2.x", {"aimet-torch": ">=2.10"})],
)


def test_the_grid_marks_proposed_entries_and_never_calls_them_good() -> None:
    m = small(*PROPOSED)
    g = grid.build(m, Filters())
    assert [(r.version, r.proposed) for r in g.rows] == [("2.10.0", False), ("2.11.0", True)]
    # a series' column stands for its newest reviewed patch; a proposed series is marked
    assert [(c.series, c.torch, c.proposed) for c in g.columns] == [("2.5", "2.5.1", False), ("2.6", "2.6.0", True)]
    states = {(c.aimet, c.series): c.state for row in g.cells for c in row}
    assert states == {("2.10.0", "2.5"): State.VENDOR, ("2.10.0", "2.6"): State.UNTESTED,
                      ("2.11.0", "2.5"): State.UNTESTED, ("2.11.0", "2.6"): State.UNTESTED}  # fmt: skip
    text = grid_text.render(g, m, width=100)
    assert re.search(r"(?m)^2\.10\.x 2\.10\.0\s+✓", text) and re.search(r"(?m)^2\.11\.x 2\.11\.0 \*\s", text)
    assert re.search(r"(?m)^aimet-torch \\ torch\s+2\.5\s+2\.6$", text) and re.search(r"(?m)^\s+2\.5\.1\s+2\.6\.0\*$", text)
    assert text.startswith("qatdoctor matrix grid — 1 aimet-torch releases × 1 torch series")  # reviewed ones
    assert f"* {grid.PROPOSED_NOTE}:\n  aimet-torch 2.11.0, torch 2.6.0 (3 cells, not counted above)\n" in text
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "✓ vendor    known-good as documented" in text and re.search(r"(?m)^· .*untested.*\(0\)$", text)
    data = grid_html.page_data(m)
    assert [r.get("p") for r in data["rows"]] == [None, 1] and [c.get("p") for c in data["cols"]] == [None, 1]
    assert data["proposed"] == grid.PROPOSED_NOTE
    assert json.loads(json.dumps(grid.grid_to_dict(g, m)))["rows"][1]["proposed"] is True


@pytest.mark.parametrize(
    ("entry", "note"),
    [("2.11.0", "aimet-torch 2.11.0: proposed"), ("2.6", "torch series 2.6: proposed"), ("2.5", "torch 2.5.2: proposed"),
     ("2.10.0", None)],
    ids=["aimet-release", "torch-series", "torch-release", "reviewed"],
)  # fmt: skip
def test_matrix_show_marks_proposed_entries(tmp_path: Path, entry: str, note: str | None) -> None:
    path = write_small(tmp_path / "compat_matrix.toml", *PROPOSED)
    result = runner.invoke(app, ["matrix", "show", entry, "--matrix", str(path)])
    assert result.exit_code == ExitCode.OK, result.output
    shown = json.loads(result.stdout)
    assert (note is not None) is bool(shown.get("proposed") or shown.get("proposed_releases"))
    assert (note in result.stderr) if note else ("proposed" not in result.stderr)
