"""The probe on the user's own model (`_probe.py --model`): loading it, the construct scan, the AIMET stages with
the user's layer names, the rerun with qatdoctor's fixes, and every failure as data.

Integration tests: each case is one real probe run in a reference environment (factories in tests/data/models/).
The runs of an environment are started together, two at a time, by one module-scoped fixture (each run pays the
AIMET import: ~3 s on 2.42.0, ~10 s on 1.32.2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.knowledge.load import load
from tests.conftest import reference_python

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "qatdoctor" / "environment" / "_probe.py"
MODELS = ROOT / "tests" / "data" / "models"
CONSTRUCTS = MODELS / "constructs.json"
FIXES = ROOT / "qatdoctor" / "fixes.py"
EVENT_PREFIX = "@qatdoctor-probe "
USER_STAGES = ("prepare", "quantsim", "compute_encodings", "qat_step", "fold", "fold_prepared")
STATUSES = {"pass", "fail", "silent-fail", "skipped", "unknown"}
MODEL_KEYS = {"spec", "status", "stage", "error", "reason", "class", "modules", "parameters", "input", "scan", "stages", "fold",
              "bn", "timings", "fixed"}  # fmt: skip
STAGE_KEYS = {"stage", "status", "seconds", "error", "check", "measured", "reason", "layers"}
FOLD_KEYS = {"pairs", "unfolded", "max_abs_diff", "output_scale", "relative", "randomized_stats"}
FIXED_KEYS = {"status", "stage", "error", "reason", "fixes", "scan", "stages", "fold", "bn", "timings"}

NATIVE_BN = (
    "The function 'native_batch_norm' is not differentiable with respect to argument 'running_mean'. "
    "This input cannot have requires_grad True."
)
NONE_DETACH = "'NoneType' object has no attribute 'detach'"
DICT_TRACE = "Encountering a dict at the output of the tracer"
ALL_PASS = ("pass",) * 6


def spec(name: str) -> str:
    return f"{MODELS / name}"


@dataclass(frozen=True)
class Case:
    """One probe run: --model SPEC and further arguments (the stand-ins are off unless `models` says otherwise)."""

    model: str
    args: tuple[str, ...] = ()
    models: str = ""
    cwd: Path | None = None  # default: an empty temp dir (checked to stay empty)


@dataclass(frozen=True)
class Run:
    payload: dict[str, Any]
    stderr: str
    code: int
    cwd: Path

    @property
    def model(self) -> dict[str, Any]:
        result: dict[str, Any] = self.payload["model"]
        return result

    def stage(self, name: str, fixed: bool = False) -> dict[str, Any]:
        stages = (self.model["fixed"] if fixed else self.model)["stages"]
        return next(s for s in stages if s["stage"] == name)

    def statuses(self, fixed: bool = False) -> tuple[str, ...]:
        stages = (self.model["fixed"] if fixed else self.model)["stages"]
        return tuple(s["status"] for s in stages)

    def found(self, fixed: bool = False) -> dict[str, list[str]]:
        scan = (self.model["fixed"] if fixed else self.model)["scan"]
        return {cid: entry["layers"] for cid, entry in scan["constructs"].items() if entry["count"]}

    def events(self) -> list[dict[str, Any]]:
        lines = self.stderr.splitlines()
        return [json.loads(line[len(EVENT_PREFIX) :]) for line in lines if line.startswith(EVENT_PREFIX)]


def run_probe(python: str, *args: str, cwd: Path, timeout: float = 600) -> tuple[dict[str, Any], str, int]:
    """Run the script as qatdoctor does; stdout must be exactly one JSON object on one line."""
    environ = {k: v for k, v in os.environ.items() if k != "AIMET_DEFAULT_API"}
    proc = subprocess.run(
        [python, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.stdout.endswith("\n") and proc.stdout.count("\n") == 1, f"one JSON line on stdout: {proc.stdout!r}"
    payload = json.loads(proc.stdout)
    assert isinstance(payload, dict)
    return payload, proc.stderr, proc.returncode


def run_cases(python: str, cases: dict[str, Case], scratch: Path) -> dict[str, Run]:
    """All cases of one environment, two processes at a time (the AIMET import dominates each)."""

    def one(item: tuple[str, Case]) -> tuple[str, Run]:
        name, case = item
        cwd = case.cwd or scratch / name
        cwd.mkdir(parents=True, exist_ok=True)
        args = ["--models", case.models, "--model", case.model, *case.args]
        payload, stderr, code = run_probe(python, *args, cwd=cwd)
        return name, Run(payload, stderr, code, cwd)

    workers = max(1, min(2, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, cases.items()))


# --- contract checks --------------------------------------------------------------------------------------------


def check_error(error: Any) -> None:
    assert isinstance(error, dict) and set(error) == {"type", "message", "frames"}
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and len(error["message"]) <= 2000
    assert "site-packages/" not in error["message"]
    assert isinstance(error["frames"], list) and len(error["frames"]) <= 8
    assert all(isinstance(f, str) and " in " in f and "site-packages/" not in f for f in error["frames"])


def check_stages(stages: Any) -> None:
    assert [s["stage"] for s in stages] == list(USER_STAGES)
    for result in stages:
        assert set(result) == STAGE_KEYS, result
        assert result["status"] in STATUSES and result["seconds"] >= 0
        assert isinstance(result["layers"], list) and all(isinstance(n, str) and n for n in result["layers"])
        assert len(result["layers"]) <= 200
        if result["status"] == "fail":
            check_error(result["error"])
        else:
            assert result["error"] is None
        if result["status"] == "silent-fail":
            assert result["check"] in load().probe_vocabulary("check") and result["measured"], result
        else:
            assert result["check"] is None and result["measured"] is None and result["layers"] == [], result
        if result["status"] in ("skipped", "unknown"):
            assert result["reason"], result


def check_fold(fold: Any, stages: list[dict[str, Any]]) -> None:
    assert set(fold) == {"original", "prepared"}
    for key, stage in (("original", "fold"), ("prepared", "fold_prepared")):
        status = next(s["status"] for s in stages if s["stage"] == stage)
        if status in ("fail", "skipped"):
            assert fold[key] is None
            continue
        assert set(fold[key]) == FOLD_KEYS
        assert isinstance(fold[key]["unfolded"], list)


def check_scan(scan: Any) -> None:
    assert set(scan) == {"constructs", "errors"}
    assert all(isinstance(e, str) for e in scan["errors"])
    for entry in scan["constructs"].values():
        assert set(entry) - {"feeds"} == {"count", "layers", "classes"}
        assert entry["count"] == len(entry["layers"]) == sum(entry["classes"].values())


def check_contract(run: Run) -> None:
    """Everything qatdoctor's side relies on, for any run with --model."""
    assert run.code == 0
    assert "probe_error" not in run.payload, run.payload.get("probe_error")
    model = run.model
    assert set(model) == MODEL_KEYS
    assert model["status"] in ("ran", "bad-spec", "factory-failed", "bad-input")
    assert all(isinstance(v, float | int) for v in model["timings"].values())
    if model["status"] != "ran":
        assert model["reason"] and model["stages"] == [] and model["fold"] is None and model["bn"] is None
        if model["error"] is not None:
            check_error(model["error"])
        return
    assert model["error"] is None and model["reason"] is None
    assert isinstance(model["class"], str) and model["modules"] > 0 and model["parameters"] > 0
    assert model["input"]["source"] in ("factory", "--input-shape") and model["input"]["shapes"]
    for part in [model] + ([model["fixed"]] if model["fixed"] and model["fixed"]["status"] == "ran" else []):
        check_stages(part["stages"])
        check_fold(part["fold"], part["stages"])
        if part["scan"] is not None:
            check_scan(part["scan"])
        if part["bn"] is not None:
            assert set(part["bn"]) == {"buffers", "changed", "frozen_layers"}
        ran = [s["stage"] for s in part["stages"] if s["status"] != "skipped"]
        assert {f"stage.{s}" for s in ran} <= set(part["timings"])
    if model["fixed"] is not None:
        assert set(model["fixed"]) == FIXED_KEYS
        assert model["fixed"]["status"] in ("ran", "factory-failed", "fixes-failed")


def check_events(run: Run) -> None:
    """model-start … model-end around the model's events; stage events as the JSON reports them."""
    seen = run.events()
    kinds = [e["event"] for e in seen]
    start = kinds.index("model-start")
    assert seen[start]["spec"] == run.model["spec"]
    assert seen[-1] == {"event": "model-end", "status": run.model["status"]}
    for label, part in (("@model", run.model), ("@model-fixed", run.model["fixed"])):
        if not part or part.get("status") != "ran":
            continue
        got = [e for e in seen[start:] if e["event"].startswith("stage-") and e["model"] == label]
        expected = []
        for result in part["stages"]:
            common = {"model": label, "mode": "train", "stage": result["stage"]}
            expected += [{"event": "stage-start", **common, "status": None},
                         {"event": "stage-end", **common, "status": result["status"]}]  # fmt: skip
        assert got == expected
        if part["scan"] is not None:
            scan_events = [e for e in seen if e["event"].startswith("scan-") and e["model"] == label]
            assert [e["event"] for e in scan_events] == ["scan-start", "scan-end"]
            assert scan_events[1]["found"] == sorted(k for k, v in part["scan"]["constructs"].items() if v["count"])


# --- the cases ------------------------------------------------------------------------------------------------

WITH_SCAN = ("--constructs", str(CONSTRUCTS))
BOTH = {
    "bn_subclass": Case(spec("bn_subclass.py:build"), (*WITH_SCAN, "--with-fixes", str(FIXES)), models="baseline"),
    "functional_bn": Case(spec("functional_bn.py:build"), (*WITH_SCAN, "--input-shape", "1,3,8,8")),
    "shared_conv": Case(spec("shared_conv.py:build"), WITH_SCAN),
    "no_stats": Case(spec("no_stats.py:build"), WITH_SCAN),
    "plain": Case(spec("plain.py:build"), (*WITH_SCAN, "--input-shape", "1,3,8,8")),
}
ONLY_2_42 = {
    "norm_eval": Case(spec("norm_eval.py:build"), WITH_SCAN),
    "dict_io": Case(spec("outputs.py:build_dict"), ("--with-fixes", str(MODELS / "no_such_fixes.py"))),
    "lists_out": Case(spec("outputs.py:build_lists")),
    "module_spec": Case("plain:build_with_input", cwd=MODELS),
    "bn_subclass_shape": Case(spec("bn_subclass.py:build_module_only"), ("--input-shape", "1x3x8x8")),
}
# name -> (case, status, reason starts with, error (type, message start) or None)
FAILURES: dict[str, tuple[Case, str, str, tuple[str, str] | None]] = {
    "missing_file": (Case(spec("nope.py:build")), "bad-spec", "no such file: ", None),
    "missing_attr": (Case(spec("broken.py:nope")), "bad-spec", f"{MODELS / 'broken.py'} has no attribute nope", None),
    "not_callable": (Case(spec("broken.py:NOT_CALLABLE")), "bad-spec", f"{MODELS / 'broken.py'}:NOT_CALLABLE is an object of type int, not callable", None),
    "import_fails": (Case(spec("import_fails.py:build")), "bad-spec", "importing ", ("ModuleNotFoundError", "No module named 'qatdoctor_no_such_package'")),
    "malformed": (Case("just-a-name"), "bad-spec", "expected path/to/file.py:callable or package.module:callable", None),
    "missing_module": (Case("qatdoctor_no_such_module:build"), "bad-spec", "importing qatdoctor_no_such_module raised ModuleNotFoundError", ("ModuleNotFoundError", "No module named 'qatdoctor_no_such_module'")),
    "raises": (Case(spec("broken.py:raises")), "factory-failed", "the factory raised ValueError", ("ValueError", "cannot build the model without its config")),
    "not_a_module": (Case(spec("broken.py:not_a_module")), "factory-failed", "the factory returned an object of type dict, not an nn.Module", None),
    "no_input": (Case(spec("broken.py:no_input")), "bad-input", "the factory returned no example input and no --input-shape was given", None),
    "bad_shape": (Case(spec("broken.py:no_input"), ("--input-shape", "1,3,x")), "bad-input", "the factory returned no example input and --input-shape was invalid", None),
    "wrong_input": (Case(spec("broken.py:wrong_input")), "bad-input", "the model's forward raised on the example input", ("RuntimeError", "Given groups=1")),
    "odd_input": (Case(spec("broken.py:odd_input")), "bad-input", "the factory's example input is an object of type object", None),
}  # fmt: skip

# model -> statuses of USER_STAGES
EXPECTED: dict[str, dict[str, tuple[str, ...]]] = {
    "aimet-1.32.2": {
        "bn_subclass": ("silent-fail", "pass", "pass", "fail", "silent-fail", "silent-fail"),
        "functional_bn": ("silent-fail", "pass", "pass", "fail", "pass", "silent-fail"),
        "shared_conv": ("pass", "pass", "pass", "pass", "silent-fail", "pass"),
        "no_stats": ("pass", "pass", "pass", "pass", "fail", "fail"),
        "plain": ALL_PASS,
    },
    "aimet-2.42.0": {
        "bn_subclass": ("silent-fail", "pass", "pass", "silent-fail", "silent-fail", "silent-fail"),
        "functional_bn": ("silent-fail", "fail", "skipped", "skipped", "pass", "silent-fail"),
        "shared_conv": ("pass", "pass", "pass", "pass", "silent-fail", "pass"),
        "no_stats": ("pass", "pass", "pass", "pass", "fail", "fail"),
        "plain": ALL_PASS,
        "norm_eval": ("silent-fail", "pass", "pass", "pass", "pass", "pass"),
        "dict_io": ("pass", "fail", "skipped", "skipped", "fail", "fail"),
        "lists_out": ALL_PASS,
        "module_spec": ALL_PASS,
        "bn_subclass_shape": ("silent-fail", "pass", "pass", "silent-fail", "silent-fail", "silent-fail"),
    },
}
# model -> construct -> layers (the same on every stack; nothing else may be found)
SCAN = {
    "bn_subclass": {"bn-subclass": ["backbone.stem.bn"], "silu-activation": ["backbone.stem.act"]},
    "functional_bn": {"functional-bn": ["neck.norm"], "functional-bn-without-stats": ["head.norm"]},
    "shared_conv": {"shared-conv-multi-bn": ["head.shared"]},
    "no_stats": {"bn-without-running-stats": ["bn2"]},
    "plain": {},
    "norm_eval": {"frozen-bn-norm-eval": ["backbone.bn"]},
}
# Every construct of constructs.json but "typo", whose detectors cannot run.
CHECKED = {"bn-subclass", "functional-bn", "functional-bn-without-stats", "bn-without-running-stats",
           "shared-conv-multi-bn", "mmcv-efficient-conv-bn-eval", "silu-activation", "frozen-bn-norm-eval",
           "mmengine-bn"}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], dict[str, Run]]]:
    """env -> {case name: Run}, all cases of an env run once, on first use."""
    cache: dict[str, dict[str, Run]] = {}

    def get(env: str) -> dict[str, Run]:
        if env not in cache:
            python = reference_python(env)
            cases = dict(BOTH)
            if env == "aimet-2.42.0":
                cases.update(ONLY_2_42)
                cases.update({name: row[0] for name, row in FAILURES.items()})
            cache[env] = run_cases(python, cases, tmp_path_factory.mktemp(env))
        return cache[env]

    yield get


ENVS = ("aimet-1.32.2", "aimet-2.42.0")


# --- integration: the reference environments --------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_every_run_follows_the_contract_and_writes_nothing(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    for name, run in runs(env).items():
        check_contract(run)
        check_events(run)
        if name != "module_spec":
            assert list(run.cwd.iterdir()) == [], f"{name}: the probe writes no file"


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_stage_statuses_match_the_evidence(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    got = {name: run.statuses() for name, run in runs(env).items() if name in EXPECTED[env]}
    assert got == EXPECTED[env]


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_the_scan_finds_exactly_the_expected_layers(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    for name, expected in SCAN.items():
        if name not in runs(env):
            continue
        run = runs(env)[name]
        assert run.found() == expected, name
        scan = run.model["scan"]
        assert set(scan["constructs"]) == CHECKED, name
        assert any(e.startswith("typo: not checked") for e in scan["errors"])
        assert any("mmengine is not imported" in e for e in scan["errors"])
    classes = runs(env)["bn_subclass"].model["scan"]["constructs"]
    assert classes["bn-subclass"]["classes"] == {"bn_subclass._BatchNormXd": 1}, "a model file shows as its stem"
    assert classes["silu-activation"]["classes"] == {"torch.nn.modules.activation.SiLU": 1}
    shared = runs(env)["shared_conv"].model["scan"]["constructs"]["shared-conv-multi-bn"]
    assert shared["feeds"] == {"head.shared": ["head.bn_levels.0", "head.bn_levels.1"]}, "head.proj feeds no BN"


@pytest.mark.integration
def test_bn_subclass_crashes_the_qat_step_on_1_32_2(runs: Callable[[str], dict[str, Run]]) -> None:
    run = runs("aimet-1.32.2")["bn_subclass"]
    assert run.payload["versions"]["aimet-torch"] == "1.32.2" and run.payload["api"]["selected"] == "v1"
    prepare = run.stage("prepare")
    assert (prepare["check"], prepare["layers"]) == ("training_false_baked", ["backbone.stem.bn"])
    assert prepare["measured"].startswith("graph calls batch_norm with training=False (1 layer: backbone.stem.bn)")
    error = run.stage("qat_step")["error"]
    assert (error["type"], error["message"]) == ("RuntimeError", NATIVE_BN)
    assert error["frames"][-1].startswith("torch/nn/functional.py:")
    assert run.model["bn"] is None
    for stage in ("fold", "fold_prepared"):
        assert (run.stage(stage)["check"], run.stage(stage)["layers"]) == ("not_folded", ["backbone.stem.bn"])
    for fold in run.model["fold"].values():
        assert (fold["pairs"], fold["unfolded"]) == (1, ["backbone.stem.bn"])


@pytest.mark.integration
def test_bn_subclass_freezes_silently_on_2_42_0(runs: Callable[[str], dict[str, Run]]) -> None:
    for name in ("bn_subclass", "bn_subclass_shape"):
        run = runs("aimet-2.42.0")[name]
        assert run.stage("prepare")["layers"] == ["backbone.stem.bn"]
        qat = run.stage("qat_step")
        assert (qat["check"], qat["layers"]) == ("bn_stats_frozen", ["backbone.stem.bn"])  # head.bn still learns
        assert qat["measured"] == (
            "2 of 4 BatchNorm running-stat buffers changed during the QAT step; 1 layer frozen: backbone.stem.bn"
        )
        assert run.model["bn"] == {"buffers": 4, "changed": 2, "frozen_layers": ["backbone.stem.bn"]}
    assert runs("aimet-2.42.0")["bn_subclass_shape"].model["input"] == {"shapes": [[1, 3, 8, 8]],
                                                                         "source": "--input-shape"}  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_the_fixed_model_passes_every_stage(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    run = runs(env)["bn_subclass"]
    fixed = run.model["fixed"]
    assert fixed["status"] == "ran", fixed
    assert "backbone.stem.bn" in json.dumps(fixed["fixes"])
    assert "_qatdoctor_user_model" not in json.dumps(fixed["fixes"]), "the private module name is not shown"
    assert run.statuses(fixed=True) == ALL_PASS
    assert run.found(fixed=True) == {"silu-activation": ["backbone.stem.act"]}
    assert fixed["bn"] == {"buffers": 4, "changed": 4, "frozen_layers": []}
    assert fixed["fold"]["original"]["pairs"] == fixed["fold"]["prepared"]["pairs"] == 2
    assert {"build", "fixes", "scan", "stage.qat_step"} <= set(fixed["timings"])


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_the_stand_ins_still_run_first_and_unchanged(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    run = runs(env)["bn_subclass"]
    assert [(c["model"], c["mode"]) for c in run.payload["cases"]] == [("baseline", "train"), ("baseline", "eval")]
    for case in run.payload["cases"]:
        assert all(s["status"] == "pass" and "layers" not in s for s in case["stages"])
    kinds = [e["event"] for e in run.events()]
    assert kinds.index("model-start") > max(i for i, e in enumerate(run.events()) if e.get("model") == "baseline")


@pytest.mark.integration
@pytest.mark.parametrize("env", ENVS)
def test_functional_bn_and_fold_findings_name_layers(env: str, runs: Callable[[str], dict[str, Run]]) -> None:
    functional = runs(env)["functional_bn"]
    assert functional.stage("prepare")["layers"] == ["neck.norm"]  # head.norm passes training=True itself
    assert functional.stage("fold_prepared")["layers"] == ["neck.norm", "head.norm"]
    assert functional.model["fold"]["original"]["unfolded"] == []  # no BN module: only the prepared fold shows it
    assert functional.payload["notes"] == ["--input-shape ignored: the factory returned an example input"]
    if env == "aimet-1.32.2":
        error = functional.stage("qat_step")["error"]
        assert (error["type"], error["message"]) == ("RuntimeError", NATIVE_BN)
    else:
        error = functional.stage("quantsim")["error"]
        assert (error["type"], error["message"]) == ("AttributeError", NONE_DETACH)
        assert functional.stage("qat_step")["reason"] == "quantsim failed"

    shared = runs(env)["shared_conv"]
    fold = shared.stage("fold")
    assert fold["check"] == "fold_output_changed"
    assert len(fold["layers"]) == 1 and fold["layers"][0] in ("head.bn_levels.0", "head.bn_levels.1")
    original, prepared = shared.model["fold"]["original"], shared.model["fold"]["prepared"]
    assert original["pairs"] == 1 and original["relative"] > 0.01 and original["randomized_stats"] == 2
    assert prepared["pairs"] == 2 and prepared["unfolded"] == [] and prepared["relative"] < 1e-4

    no_stats = runs(env)["no_stats"]
    for stage in ("fold", "fold_prepared"):
        error = no_stats.stage(stage)["error"]
        assert (error["type"], error["message"]) == ("AttributeError", NONE_DETACH)
    assert no_stats.model["fold"] == {"original": None, "prepared": None}

    plain = runs(env)["plain"]
    assert plain.model["input"] == {"shapes": [[1, 3, 8, 8]], "source": "--input-shape"}
    assert plain.model["class"] == "torch.nn.modules.container.Sequential"
    assert plain.model["bn"] == {"buffers": 4, "changed": 4, "frozen_layers": []}


@pytest.mark.integration
def test_norm_eval_and_odd_outputs_on_2_42_0(runs: Callable[[str], dict[str, Run]]) -> None:
    got = runs("aimet-2.42.0")
    prepare = got["norm_eval"].stage("prepare")
    assert prepare["check"] == "train_output_mismatch", "the prepared graph trains the BN norm_eval keeps frozen"
    assert "training=False" not in prepare["measured"]

    dict_io = got["dict_io"].model
    assert dict_io["input"] == {"shapes": [[2, 4], [2, 3, 8, 8]], "source": "factory"}
    for stage in ("quantsim", "fold", "fold_prepared"):
        error = got["dict_io"].stage(stage)["error"]
        assert error["type"] == "RuntimeError" and error["message"].startswith(DICT_TRACE)
    assert dict_io["fixed"]["status"] == "fixes-failed"
    assert dict_io["fixed"]["error"]["type"] == "FileNotFoundError"
    assert dict_io["fixed"]["stages"] == []

    assert got["lists_out"].model["bn"] == {"buffers": 2, "changed": 2, "frozen_layers": []}
    assert got["module_spec"].model["class"] == "torch.nn.modules.container.Sequential"


@pytest.mark.integration
@pytest.mark.parametrize("name", list(FAILURES))
def test_factory_failures_are_data(name: str, runs: Callable[[str], dict[str, Run]]) -> None:
    _, status, reason, error = FAILURES[name]
    run = runs("aimet-2.42.0")[name]
    check_contract(run)
    assert run.model["status"] == status
    assert run.model["reason"].startswith(reason), run.model["reason"]
    if error is None:
        assert run.model["error"] is None
    else:
        assert run.model["error"]["type"] == error[0] and run.model["error"]["message"].startswith(error[1])
    assert run.payload["import"]["status"] == "pass" and run.payload["cases"] == []
    if name == "bad_shape":
        assert run.payload["notes"] == [
            "invalid --input-shape ignored: '1,3,x' (expected positive integers such as 1,3,320,320)"
        ]


@pytest.mark.integration
def test_without_aimet_the_scan_still_runs(tmp_path: Path) -> None:
    payload, stderr, code = run_probe(
        reference_python("broken-2.42.0-torch-2.2.2"), "--model", spec("bn_subclass.py:build"), *WITH_SCAN,
        cwd=tmp_path,
    )  # fmt: skip
    run = Run(payload, stderr, code, tmp_path)
    check_contract(run)
    assert payload["import"]["status"] == "fail" and payload["cases"] == []
    assert run.model["status"] == "ran"
    assert run.found() == SCAN["bn_subclass"]
    assert run.statuses() == ("skipped",) * 6
    assert run.stage("prepare")["reason"].startswith("aimet_torch could not be imported: ImportError: ")


# --- without torch (the dev venv) ---------------------------------------------------------------------------------


def test_without_torch_the_model_is_data_and_stray_options_are_notes(tmp_path: Path) -> None:
    payload, _, code = run_probe(sys.executable, "--model", spec("plain.py:build"), cwd=tmp_path, timeout=60)
    assert code == 0
    model = payload["model"]
    assert set(model) == MODEL_KEYS
    assert (model["status"], model["error"]["type"]) == ("factory-failed", "ModuleNotFoundError")
    assert model["reason"] == "torch could not be imported in the target, so no model can be built"

    payload, _, code = run_probe(
        sys.executable, "--constructs", "c.json", "--with-fixes=f.py", "--input-shape", "1,3", "--model", cwd=tmp_path,
        timeout=60,
    )  # fmt: skip
    assert code == 0 and "model" not in payload
    assert payload["notes"] == [
        "--model ignored: it needs a value",
        "--input-shape ignored: no --model",
        "--constructs ignored: no --model",
        "--with-fixes ignored: no --model",
    ]
    assert list(tmp_path.iterdir()) == []
