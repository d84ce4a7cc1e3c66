"""The probe script itself (`qatdoctor/environment/_probe.py`): its imports, its JSON contract, and what it finds in the
real reference environments (integration tests, `-m integration`; skipped when an env is not built)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.knowledge.load import load

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "qatdoctor" / "environment" / "_probe.py"
DATA = ROOT / "tests" / "data" / "probe"
PYTHON38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
EVENT_PREFIX = "@qatdoctor-probe "
MATRIX = load()
PROBE_MODELS, PROBE_CHECKS = MATRIX.probe_vocabulary("model"), MATRIX.probe_vocabulary("check")
STAGES = tuple(s for s in MATRIX.probe_vocabulary("stage") if s not in ("import", "fold_prepared"))  # the stand-ins fold the original only
MODES = ("train", "eval")
STATUSES = {"pass", "fail", "silent-fail", "skipped", "unknown"}
ENVS = ("aimet-1.32.2", "aimet-2.42.0", "broken-2.42.0-torch-2.2.2")

NATIVE_BN = (
    "The function 'native_batch_norm' is not differentiable with respect to argument 'running_mean'. "
    "This input cannot have requires_grad True."
)
NONE_DETACH = "'NoneType' object has no attribute 'detach'"
BROKEN_IMPORT = "cannot import name '_detect_fake_mode_from_gm' from 'torch._export.utils'"

# model -> statuses of (prepare, quantsim, compute_encodings, qat_step, fold), the same in train and eval mode.
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "aimet-1.32.2": {
        "baseline": ("pass", "pass", "pass", "pass", "pass"),
        "bn_subclass": ("silent-fail", "pass", "pass", "fail", "silent-fail"),
        "functional_bn": ("silent-fail", "pass", "pass", "fail", "silent-fail"),
        "functional_bn_nostats": ("pass", "pass", "pass", "pass", "pass"),
        "bn_no_stats": ("pass", "pass", "pass", "pass", "fail"),
        "conv_silu": ("pass", "pass", "pass", "pass", "pass"),
        "shared_conv": ("pass", "pass", "pass", "pass", "silent-fail"),
    },
    "aimet-2.42.0": {
        "baseline": ("pass", "pass", "pass", "pass", "pass"),
        "bn_subclass": ("silent-fail", "pass", "pass", "silent-fail", "silent-fail"),
        "functional_bn": ("silent-fail", "pass", "pass", "silent-fail", "silent-fail"),
        "functional_bn_nostats": ("pass", "fail", "skipped", "skipped", "pass"),
        "bn_no_stats": ("pass", "pass", "pass", "pass", "fail"),
        "conv_silu": ("pass", "pass", "pass", "pass", "pass"),
        "shared_conv": ("pass", "pass", "pass", "pass", "silent-fail"),
    },
}
# (model, stage) -> the check a silent-fail names, in every env that has one there.
CHECKS = {
    ("bn_subclass", "prepare"): "training_false_baked",
    ("functional_bn", "prepare"): "training_false_baked",
    ("bn_subclass", "qat_step"): "bn_stats_frozen",
    ("functional_bn", "qat_step"): "bn_stats_frozen",
    ("bn_subclass", "fold"): "not_folded",
    ("functional_bn", "fold"): "not_folded",
    ("shared_conv", "fold"): "fold_output_changed",
}


# --- helpers -------------------------------------------------------------------------------------------------


def run_probe(
    python: str, *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str, str, int]:
    """Run the script as qatdoctor does; returns (payload, raw stdout, stderr, exit status)."""
    environ = {k: v for k, v in os.environ.items() if k != "AIMET_DEFAULT_API"}
    proc = subprocess.run(
        [python, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**environ, "OMP_NUM_THREADS": "1", **(env or {})},
        check=False,
    )
    assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1, f"one JSON line on stdout: {proc.stdout!r}"
    payload: dict[str, Any] = json.loads(proc.stdout)
    assert isinstance(payload, dict)
    return payload, proc.stdout, proc.stderr, proc.returncode


def events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line[len(EVENT_PREFIX) :]) for line in stderr.splitlines() if line.startswith(EVENT_PREFIX)]


def statuses(payload: dict[str, Any]) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(c["model"], c["mode"]): tuple(s["status"] for s in c["stages"]) for c in payload["cases"]}


def expected_statuses(env: str) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(model, mode): row for model, row in EXPECTED[env].items() for mode in MODES}


def stage(payload: dict[str, Any], model: str, mode: str, name: str) -> dict[str, Any]:
    case = next(c for c in payload["cases"] if c["model"] == model and c["mode"] == mode)
    return next(s for s in case["stages"] if s["stage"] == name)


def check_error(error: Any) -> None:
    assert isinstance(error, dict) and set(error) == {"type", "message", "frames"}
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and len(error["message"]) <= 2000
    assert "site-packages/" not in error["message"], "package directories are cut from messages too"
    assert isinstance(error["frames"], list) and len(error["frames"]) <= 8
    for frame in error["frames"]:
        assert isinstance(frame, str) and " in " in frame
        assert "site-packages/" not in frame and "dist-packages/" not in frame, frame


def check_contract(payload: dict[str, Any]) -> None:
    """Everything qatdoctor's side relies on, for any probe output."""
    assert payload["probe"] == 1
    assert isinstance(payload["versions"], dict) and "python" in payload["versions"]
    assert all(isinstance(v, str) for v in payload["versions"].values())
    api = payload["api"]
    assert set(api) == {"selected", "requested", "quantsim_module", "reason"}
    assert api["selected"] in ("v1", "v2", None)
    imported = payload["import"]
    assert set(imported) == {"status", "seconds", "error"} and imported["status"] in ("pass", "fail")
    if imported["status"] == "fail":
        check_error(imported["error"])
        assert payload["cases"] == []
    else:
        assert imported["error"] is None and api["quantsim_module"]
    assert all(isinstance(v, float | int) for v in payload["timings"].values())
    assert "total" in payload["timings"]
    for case in payload["cases"]:
        assert case["model"] in PROBE_MODELS and case["mode"] in MODES and case["description"]
        assert tuple(s["stage"] for s in case["stages"]) == STAGES
        for result in case["stages"]:
            assert set(result) == {"stage", "status", "seconds", "error", "check", "measured", "reason"}
            assert result["status"] in STATUSES and result["seconds"] >= 0
            if result["status"] == "fail":
                check_error(result["error"])
            else:
                assert result["error"] is None
            if result["status"] == "silent-fail":
                assert result["check"] in PROBE_CHECKS and result["measured"], result
            else:
                assert result["check"] is None and result["measured"] is None, result
            if result["status"] in ("skipped", "unknown"):
                assert result["reason"], result
    for name in STAGES:
        ran = [s for c in payload["cases"] for s in c["stages"] if s["stage"] == name and s["status"] != "skipped"]
        if ran:
            assert f"stage.{name}" in payload["timings"]


def check_events(payload: dict[str, Any], stderr: str) -> None:
    """Every stage was announced before and after it ran, in order, with the status the JSON reports."""
    seen = events(stderr)
    stage_events = [e for e in seen if e["event"] in ("stage-start", "stage-end")]
    expected = []
    for case in payload["cases"]:
        for result in case["stages"]:
            common = {"model": case["model"], "mode": case["mode"], "stage": result["stage"]}
            expected += [{"event": "stage-start", **common, "status": None}, {"event": "stage-end", **common,
                                                                               "status": result["status"]}]  # fmt: skip
    assert stage_events == expected
    imports = [(e["event"], e["what"]) for e in seen if e["event"].startswith("import-")]
    assert imports[:2] == [("import-start", "torch"), ("import-end", "torch")]


def refenv_python(name: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "refenvs.py"), "path", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"reference env {name} is not built: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


# --- static ---------------------------------------------------------------------------------------------------


def test_the_script_imports_only_stdlib_torch_and_aimet() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the script runs on its own"
            imported.add((node.module or "").split(".")[0])
    assert {"torch", "aimet_torch"} <= imported
    allowed = set(sys.stdlib_module_names) | {"__future__", "torch", "aimet_torch"}
    assert imported <= allowed, imported - allowed


def test_the_script_compiles_as_python_38(tmp_path: Path) -> None:
    if not PYTHON38.exists():
        pytest.skip(f"{PYTHON38} is not installed (pyenv install 3.8.18)")
    proc = subprocess.run(
        [str(PYTHON38), "-m", "py_compile", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)},  # no __pycache__ in the source tree
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- without torch ----------------------------------------------------------------------------------------------


def no_torch_interpreters() -> list[Any]:
    reason = f"{PYTHON38} is not installed"
    return [
        pytest.param(sys.executable, id="dev-venv"),
        pytest.param(str(PYTHON38), id="python-3.8", marks=pytest.mark.skipif(not PYTHON38.exists(), reason=reason)),
    ]


@pytest.mark.parametrize("python", no_torch_interpreters())
def test_without_torch_the_import_failure_is_data(python: str, tmp_path: Path) -> None:
    payload, _, stderr, code = run_probe(python, cwd=tmp_path, timeout=60)
    assert code == 0
    check_contract(payload)
    assert payload["import"]["status"] == "fail"
    error = payload["import"]["error"]
    assert (error["type"], error["message"]) == ("ModuleNotFoundError", "No module named 'torch'")
    assert payload["cases"] == []
    assert payload["api"]["selected"] is None
    assert [(e["event"], e.get("status")) for e in events(stderr)] == [("import-start", None), ("import-end", "fail")]
    assert list(tmp_path.iterdir()) == [], "the probe writes no file"


def test_arguments_it_does_not_know_are_reported_not_fatal(tmp_path: Path) -> None:
    payload, _, _, code = run_probe(
        sys.executable, "--models", "baseline,nope", "--modes=eval,sideways", "--verbose", cwd=tmp_path, timeout=60
    )
    assert code == 0
    assert payload["notes"] == [
        "unknown models ignored: nope (known: " + ", ".join(PROBE_MODELS) + ")",
        "unknown modes ignored: sideways (known: train, eval)",
        "unknown argument ignored: --verbose",
    ]


# --- the saved real outputs (the test data other tests use) -------------------------------------------------------


@pytest.mark.parametrize("env", ENVS)
def test_saved_output_follows_the_contract(env: str) -> None:
    payload = json.loads((DATA / f"{env}.json").read_text(encoding="utf-8"))
    check_contract(payload)
    if env in EXPECTED:
        assert statuses(payload) == expected_statuses(env)
    else:
        assert payload["import"]["status"] == "fail"


# --- integration: the real reference environments ------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One probe run per env, shared by the tests below (a full run costs 5-20 s)."""
    cache: dict[str, Any] = {}

    def get(env: str) -> tuple[dict[str, Any], str, int, Path]:
        if env not in cache:
            cwd = tmp_path_factory.mktemp(env)
            payload, _, stderr, code = run_probe(refenv_python(env), cwd=cwd)
            cache[env] = (payload, stderr, code, cwd)
        result: tuple[dict[str, Any], str, int, Path] = cache[env]
        return result

    yield {"get": get}


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_real_env_output_follows_the_contract(env: str, real_runs: dict[str, Any]) -> None:
    payload, stderr, code, cwd = real_runs["get"](env)
    assert code == 0
    check_contract(payload)
    check_events(payload, stderr)
    assert list(cwd.iterdir()) == [], "the probe writes no file"


@pytest.mark.integration
@pytest.mark.parametrize("env", ["aimet-1.32.2", "aimet-2.42.0"])
def test_real_env_statuses_match_the_evidence(env: str, real_runs: dict[str, Any]) -> None:
    payload, _, _, _ = real_runs["get"](env)
    assert payload["import"]["status"] == "pass"
    assert statuses(payload) == expected_statuses(env)
    for case in payload["cases"]:
        for result in case["stages"]:
            if result["status"] == "silent-fail":
                assert result["check"] == CHECKS[(case["model"], result["stage"])], (case["model"], result)


@pytest.mark.integration
def test_aimet_1_32_2_reproduces_the_qat_crash(real_runs: dict[str, Any]) -> None:
    payload, _, _, _ = real_runs["get"]("aimet-1.32.2")
    assert payload["versions"]["aimet-torch"] == "1.32.2"
    assert payload["versions"]["torch"].startswith("2.2.2")
    assert payload["api"]["selected"] == "v1"
    assert payload["api"]["quantsim_module"] == "aimet_torch.quantsim"
    for model in ("bn_subclass", "functional_bn"):
        for mode in MODES:
            error = stage(payload, model, mode, "qat_step")["error"]
            assert (error["type"], error["message"]) == ("RuntimeError", NATIVE_BN)
            assert error["frames"][-1].startswith("torch/nn/functional.py:")
            assert any(f.startswith("aimet_torch/elementwise_ops.py:") for f in error["frames"])
            prepare = stage(payload, model, mode, "prepare")
            assert "training=False" in prepare["measured"] and "train mode" in prepare["measured"]
            assert stage(payload, model, mode, "fold")["measured"] == "0 conv-BN pairs folded, expected 1"
    error = stage(payload, "bn_no_stats", "train", "fold")["error"]
    assert (error["type"], error["message"]) == ("AttributeError", NONE_DETACH)


@pytest.mark.integration
def test_aimet_2_42_0_freezes_bn_silently(real_runs: dict[str, Any]) -> None:
    payload, _, _, _ = real_runs["get"]("aimet-2.42.0")
    assert payload["versions"]["aimet-torch"] == "2.42.0"
    assert payload["api"]["selected"] == "v2"
    assert payload["api"]["quantsim_module"].startswith("aimet_torch.")
    assert "v1" not in payload["api"]["quantsim_module"]
    for model in ("bn_subclass", "functional_bn"):
        for mode in MODES:
            qat = stage(payload, model, mode, "qat_step")
            assert qat["measured"].startswith("0 of 2 BatchNorm running-stat buffers changed during the QAT step; 1 layer frozen")
    for mode in MODES:
        error = stage(payload, "functional_bn_nostats", mode, "quantsim")["error"]
        assert (error["type"], error["message"]) == ("AttributeError", NONE_DETACH)
        assert stage(payload, "functional_bn_nostats", mode, "qat_step")["reason"] == "quantsim failed"
        error = stage(payload, "bn_no_stats", mode, "fold")["error"]
        assert (error["type"], error["message"]) == ("AttributeError", NONE_DETACH)
        assert "1 of 2 conv-BN pairs folded" in stage(payload, "shared_conv", mode, "fold")["measured"]


@pytest.mark.integration
def test_broken_env_import_failure_is_data(real_runs: dict[str, Any]) -> None:
    payload, stderr, code, _ = real_runs["get"]("broken-2.42.0-torch-2.2.2")
    assert code == 0
    assert payload["import"]["status"] == "fail"
    error = payload["import"]["error"]
    assert error["type"] == "ImportError" and error["message"].startswith(BROKEN_IMPORT)
    assert payload["cases"] == []
    assert payload["versions"]["aimet-torch"] == "2.42.0"
    assert payload["versions"]["torch"].startswith("2.2.2")
    assert [e["what"] for e in events(stderr) if e["event"] == "import-end"] == ["torch", "aimet_torch"]


@pytest.mark.integration
def test_aimet_2_42_0_has_no_v1_api_to_select(tmp_path: Path) -> None:
    payload, _, _, code = run_probe(
        refenv_python("aimet-2.42.0"), "--models", "baseline", cwd=tmp_path, env={"AIMET_DEFAULT_API": "v1"}
    )
    assert code == 0
    check_contract(payload)
    assert (payload["api"]["selected"], payload["api"]["requested"]) == ("v1", "v1")
    error = payload["import"]["error"]
    assert (error["type"], error["message"]) == ("ModuleNotFoundError", "No module named 'aimet_torch.v1'")
    assert not any(frame.startswith("<frozen importlib") for frame in error["frames"])
