"""qatdoctor probe: tiny models through the real AIMET (aimet-torch) QAT pipeline, run in the *target* interpreter.

Usage: TARGET_PYTHON _probe.py --request FILE   (with OMP_NUM_THREADS=1; what qatdoctor runs)
   or, by hand: _probe.py [--models m1,m2] [--modes train,eval] [--model SPEC [--input-shape 1,3,320,320]
                [--constructs FILE] [--with-fixes FIXES_PY]]   (the same request, as options)

This docstring is the protocol, in one place: the request qatdoctor sends, the response it reads
(qatdoctor/environment/probe.py decodes it; tests/environment/test_probe_protocol.py fails when the script writes
a field not listed here, or the decoder ignores one that is).

Contract:
* self-contained: stdlib + torch + aimet_torch only, Python 3.8+; writes no file; never raises; exit status 0;
* everything torch/AIMET print goes to stderr (fd 1 is pointed at fd 2 first thing); ONE JSON object (one line)
  is written to the real stdout at the very end;
* progress on stderr, one flushed line each, `@qatdoctor-probe {json}`: {"event": "import-start"|"import-end",
  "what"}, {"event": "stage-start"|"stage-end", "model", "mode", "stage", "status"} ("model": "@model" or
  "@model-fixed" for the user's model), "model-start" (spec), "scan-start"/"scan-end", "fixes-start"/"fixes-end",
  "model-end", so that a crash or a hang can be placed exactly (in a stage, or in the model's factory, scan, fixes).

Request fields (a JSON object in the file `--request` names; a field left out takes its default):
  protocol                 PROTOCOL; another value is noted in the response's notes
  stand_ins[]              stand-in models to run (default: all of MODELS; [] for none)
  modes[]                  modes for the stand-ins: train, eval (default: both)
  stages[]                 the stages the matrix declares ([[probe_term]] stage); any not implemented -> unsupported
  checks[]                 the silent checks the matrix declares; any not implemented -> unsupported
  detectors[]              the detector kinds the matrix declares; any not implemented -> unsupported
  model                    null, or the user's model: {"spec", "input_shape", "with_fixes"}
  model.spec               `path/to/file.py:callable` or `package.module:callable`
  model.input_shape[]      the example input's shape when the factory returns only a module
  model.with_fixes         path of qatdoctor's fixes.py: rerun the pipeline on a fresh model after apply_fixes
  model.zoo                path of qatdoctor's _zoo.py: a spec FAMILY:NAME whose family it builds (torchvision,
                           timm, mmdet, ultralytics) is built by it, with model.input_shape as its input
  constructs[]             [{"id", "detect": [detector, ...]}]: the matrix's constructs to scan the model for

Response fields (one JSON object; an unset field is null until known):
  probe                    PROTOCOL
  versions.*               python, torch, aimet-torch, numpy, torchvision: those found
  api.selected             v1 | v2 | null: the AIMET API driven
  api.requested            $AIMET_DEFAULT_API as seen
  api.quantsim_module      the module QuantizationSimModel came from
  api.reason               why that API
  import.status            pass | fail: importing torch and aimet_torch
  import.seconds           how long the imports took
  import.error             ERROR
  cases[].model            a stand-in's id
  cases[].mode             train | eval
  cases[].description      what the stand-in is
  cases[].stages[]         STAGE
  timings.*                import_torch, import_aimet, cases, stage.<name>, total (seconds)
  notes[]                  what of the request was ignored, and why
  unsupported.*            request words (stages, checks, detectors) this script does not implement
  probe_error              ERROR: a bug of this script (what it measured before stays)
  model                    MODEL (absent without a model in the request)
  model.fixed              MODEL without spec/class/modules/parameters/input, plus fixes: the rerun after fixes
  model.fixed.fixes        fixes.apply_fixes' report (swapped, refused, ...)
MODEL fields:
  spec                     as requested
  status                   ran | bad-spec | factory-failed | bad-input | fixes-failed (the fixed rerun) |
                           interrupted (a BaseException that is not an Exception) | failed (an exception that
                           escaped a stage or the scan): anything but ran means the model did not run through
  stage                    where a run that is not `ran` stopped: factory, scan, fixes or a stage
  error                    ERROR
  reason                   one line for a person
  class                    the model's class path (a model file's private module shown as its stem)
  modules                  number of modules
  parameters               number of parameters
  input.shapes[]           the example input's tensor shapes
  input.source             factory | --input-shape
  scan                     null (no constructs requested), else the construct scan of the model as it is (train())
  scan.constructs.*        per construct id: count, layers (<= 200 qualified names), classes {class path: n},
                           feeds (shared-module detectors with `feeds`: {shared layer: [BN layers]})
  scan.errors[]            detectors that could not run, and why
  stages[]                 STAGE: prepare, quantsim, compute_encodings, qat_step (train mode, each needs the one
                           before), fold (the original model, eval copy), fold_prepared (the prepared model)
  fold.original            FOLD
  fold.prepared            FOLD
  bn.buffers               BatchNorm running-stat buffers in the QAT step
  bn.changed               how many the step changed
  bn.frozen_layers[]       BN layers none of whose buffers changed
  timings.*                build, scan, fixes, stage.<name> (seconds)
STAGE fields:
  stage                    the stage's name
  status                   pass | fail (it raised) | silent-fail (no exception, a check found the result wrong) |
                           skipped (reason) | unknown (the check could not run, reason)
  seconds                  how long it took
  error                    ERROR
  check                    the silent check that failed (CHECKS)
  measured                 what the check measured
  reason                   why skipped or unknown
  layers[]                 the user's model only: the layers the check names
ERROR fields:
  type                     the exception's class name
  message                  at most 2000 chars, package directories cut (may be empty)
  frames[]                 the last 8 frames as "aimet_torch/x.py:12 in forward"
FOLD fields:
  pairs                    conv-BN pairs fold_all_batch_norms folded
  unfolded[]               BN layers left
  max_abs_diff             output change the fold caused
  output_scale             the output's max |value|
  relative                 max_abs_diff / output_scale
  randomized_stats         BN layers at mean 0 / var 1 given random statistics first (on the fold's own copy), so
                           a wrong fold is visible

Stand-in stages: prepare, quantsim, compute_encodings, qat_step (each needs the one before), fold (independent: it
runs on a fresh copy of the model in eval mode, so its result is computed once per model and shared by the modes).
The user's model runs after the stand-ins in the same process: a file spec puts the file's directory first on
sys.path and imports it under a private module name; a module spec puts cwd on sys.path, like `python -m`. The
callable takes no argument and returns an nn.Module or (module, example_input): a tensor, a tuple/list of
positional inputs or a dict of keyword inputs. Layers carry the user model's qualified names ("<root>" for the
model itself). The scan never changes the model.
"""

import os
import sys


def _drop_own_directory():
    """`python _probe.py` puts this file's directory first on sys.path: nothing beside it may shadow a module."""
    try:
        here = os.path.dirname(os.path.realpath(__file__))
        first = sys.path[0] if sys.path else None
        if first is not None and os.path.realpath(first or os.getcwd()) == here:
            del sys.path[0]
    except Exception:
        pass


_drop_own_directory()
sys.dont_write_bytecode = True  # no __pycache__ writes from this process

import contextlib  # noqa: E402 - only after this file's directory left sys.path


def _redirect_stdout():
    """Keep the real stdout for the JSON result; everything else that prints lands on stderr."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    try:
        real = os.dup(1)
    except OSError:
        real = None
    with contextlib.suppress(OSError):
        os.dup2(2, 1)
    sys.stdout = sys.stderr
    return real


_REAL_STDOUT = _redirect_stdout() if __name__ == "__main__" else None  # imported (tests): leave fd 1 alone

import copy  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

PROBE_VERSION = 1
PROTOCOL = 1  # the request's and the response's shape (the module docstring)
EVENT_PREFIX = "@qatdoctor-probe "
STAGES = ("prepare", "quantsim", "compute_encodings", "qat_step", "fold")
MODES = ("train", "eval")
INPUT_SHAPE = (2, 3, 8, 8)
CHANNELS = 6
MODEL_SEED = 0
INPUT_SEED = 1234
MAX_MESSAGE = 2000
MAX_FRAMES = 8
TRAIN_TOLERANCE = 1e-4  # prepared vs original, train mode
FOLD_TOLERANCE = 1e-3  # relative to the output scale
KNOWN_PACKAGES = ("aimet_torch", "aimet_common", "torchvision", "torch", "numpy")
# The facts the probe reports under "versions" (knowledge/vocab.CELL_FACTS; a test keeps them equal).
VERSION_FACTS = ("python", "torch", "aimet-torch", "numpy", "torchvision")
DIST_NAMES = {"aimet-torch": ("aimet-torch", "aimet_torch", "aimettorch")}  # the default: the fact's name

# The user's own model (--model).
USER_STAGES = ("prepare", "quantsim", "compute_encodings", "qat_step", "fold", "fold_prepared")
USER_MODEL = "@model"  # the "model" of its progress events
FIXED_MODEL = "@model-fixed"  # the same model from a fresh factory call, after qatdoctor's fixes
USER_MODULE = "_qatdoctor_user_model"  # private module name of a model file
FIXES_MODULE = "_qatdoctor_fixes"  # private module name of --with-fixes
ROOT_NAME = "<root>"
MAX_LAYERS = 200  # names per list in the JSON (counts stay exact)
RUNNING_STATS = ("running_mean", "running_var")
WRAPPER_SEGMENTS = ("_module_to_wrap",)  # AIMET's v1 QuantSim wraps layers: bn -> bn._module_to_wrap
# the silent checks a stage reports (its `check`): the matrix's [[probe_term]] kind = "check"
CHECKS = ("training_false_baked", "train_output_mismatch", "bn_stats_frozen", "not_folded", "fold_output_changed")

# id -> (description, BatchNorm pairs fold_all_batch_norms should fold, has BN that uses batch stats in train mode)
MODELS = (
    ("baseline", "Conv2d→BatchNorm2d→ReLU", 1, True, 1),
    ("bn_subclass", "Conv2d→_BatchNormXd (BatchNorm subclass outside torch.nn, like mmengine's)→SiLU", 1, True, 1),
    ("functional_bn", "Conv2d→F.batch_norm(x, running_mean, running_var, w, b, self.training) on own buffers",
     1, True, 1),
    ("functional_bn_nostats", "Conv2d→F.batch_norm(x, None, None, w, b, training=True)", 0, True, 0),
    ("bn_no_stats", "Conv2d→BatchNorm2d(track_running_stats=False)", 0, True, 0),
    ("conv_silu", "Conv2d→SiLU", 0, False, 0),
    ("shared_conv", "one Conv2d shared by two levels, a BatchNorm2d per level (RTMDet SepBN head)", 2, True, 1),
)
MODEL_IDS = tuple(m[0] for m in MODELS)

_START = time.perf_counter()


# --- output helpers -----------------------------------------------------------------------------------------


# Where the user's model run is (the same places the host reads from the events): "factory", "scan", a stage,
# "fixes"; None outside the model. A failure that escapes the model's run is reported at this place.
_WHERE = {"phase": None}
_PHASES = {"model-start": "factory", "scan-start": "scan", "fixes-start": "fixes", "model-end": None}


def _event(**fields):
    kind = fields.get("event")
    if kind in _PHASES:
        _WHERE["phase"] = _PHASES[kind]
    elif kind == "stage-start" and str(fields.get("model")).startswith("@"):
        _WHERE["phase"] = fields.get("stage")
    try:
        sys.stderr.write(EVENT_PREFIX + json.dumps(fields, sort_keys=True) + "\n")
        sys.stderr.flush()
    except Exception:
        pass


def _write_result(result):
    try:
        text = json.dumps(result, ensure_ascii=True, sort_keys=False) + "\n"
    except Exception as exc:  # a value that is not JSON: say so rather than print nothing
        text = json.dumps({"probe": PROBE_VERSION, "probe_error": _error(exc), "cases": []}) + "\n"
    data = text.encode("ascii")
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    if _REAL_STDOUT is None:
        return
    try:
        while data:
            written = os.write(_REAL_STDOUT, data)
            data = data[written:]
    except OSError:
        pass


def _short_path(path):
    """A frame's file from the package directory on (site-packages/… and dist-packages/… stripped)."""
    path = str(path).replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        at = path.rfind(marker)
        if at >= 0:
            return path[at + len(marker) :]
    if path.startswith("<"):
        return path
    try:
        if os.path.realpath(path) == os.path.realpath(__file__):
            return os.path.basename(path)
    except Exception:
        pass
    parts = path.split("/")
    for index in range(len(parts) - 1, -1, -1):  # a source checkout: cut at the last known package directory
        if parts[index] in KNOWN_PACKAGES:
            return "/".join(parts[index:])
    for index in range(len(parts) - 1, 0, -1):  # the standard library: from lib/pythonX.Y/ on
        if parts[index].startswith("python3") and parts[index - 1] in ("lib", "lib64", "Lib"):
            return "/".join(parts[index + 1 :])
    return parts[-1]


_PACKAGE_DIR = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s'\"()<>:]*?[/\\](?:site|dist)-packages[/\\]")


def _error(exc):
    """An exception as data: type, message (at most MAX_MESSAGE chars) and the last frames, paths shortened."""
    try:
        message = str(exc)
    except Exception:
        message = repr(exc)
    if not message and getattr(exc, "args", None):
        message = repr(exc.args)
    message = _PACKAGE_DIR.sub("", message)  # "(/home/u/venv/lib/…/site-packages/torch/a.py)" -> "(torch/a.py)"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    frames = []
    try:
        for frame in traceback.extract_tb(exc.__traceback__):
            if not frame.filename.startswith("<frozen importlib"):  # import machinery: noise
                frames.append(f"{_short_path(frame.filename)}:{frame.lineno} in {frame.name}")
        frames = frames[-MAX_FRAMES:]
    except Exception:
        pass
    return {"type": type(exc).__name__, "message": message, "frames": frames}


def _count(number, noun):
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _rounded(seconds):
    return round(seconds, 4)


def _fmt(value):
    """A number for a human: 3 significant digits, no exponent for ordinary magnitudes."""
    if value is None:
        return "?"
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.2e}"


# --- versions and API selection -----------------------------------------------------------------------------


def _dist_version(*names):
    try:
        from importlib import metadata
    except ImportError:
        return None
    for name in names:
        try:
            return metadata.version(name)
        except Exception:
            continue
    return None


def _major(version):
    try:
        return int(str(version).split(".")[0])
    except (TypeError, ValueError):
        return None


def _select_api(aimet_version):
    """Which AIMET API the probe drives, as AIMET itself would pick it (recorded in `api`)."""
    requested = os.environ.get("AIMET_DEFAULT_API") or None
    wanted = (requested or "").strip().lower()
    major = _major(aimet_version)
    legacy = {
        "quantsim": "aimet_torch.quantsim",
        "model_preparer": "aimet_torch.model_preparer",
        "batch_norm_fold": "aimet_torch.batch_norm_fold",
    }
    if major is not None and major < 2:
        reason = "aimet-torch 1.x only has the legacy API"
        if requested:
            reason += f" (AIMET_DEFAULT_API={requested} is not read by 1.x)"
        return "v1", requested, legacy, reason
    if wanted == "v1":
        modules = {
            "quantsim": "aimet_torch.v1.quantsim",
            "model_preparer": "aimet_torch.model_preparer",
            "batch_norm_fold": "aimet_torch.v1.batch_norm_fold",
        }
        return "v1", requested, modules, "AIMET_DEFAULT_API=v1 selects the legacy API of aimet-torch 2.x"
    if major is None:
        reason = "aimet-torch version unknown: the default modules (aimet_torch.quantsim)"
    else:
        reason = f"aimet-torch {major}.x default API (v2)"
        if requested and wanted != "v2":
            reason += f" (AIMET_DEFAULT_API={requested} is neither v1 nor v2)"
    return "v2", requested, legacy, reason


# --- models ---------------------------------------------------------------------------------------------------


def _define_models(torch):
    """The probe's model classes (module `__main__`, i.e. outside torch.nn: torch.fx traces *into* them)."""
    nn = torch.nn
    F = torch.nn.functional
    c = CHANNELS

    class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
        """Replica of mmengine.model.utils._BatchNormXd (what revert_sync_batchnorm turns SyncBN into)."""

        def _check_input_dim(self, input):
            return

    class Baseline(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class BnSubclass(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.bn = _BatchNormXd(c)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.bn(self.conv(x)))

    class FunctionalBn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.weight = nn.Parameter(torch.ones(c))
            self.bias = nn.Parameter(torch.zeros(c))
            self.register_buffer("running_mean", torch.zeros(c))
            self.register_buffer("running_var", torch.ones(c))

        def forward(self, x):
            x = self.conv(x)
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, 1e-5
            )

    class FunctionalBnNoStats(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.weight = nn.Parameter(torch.ones(c))
            self.bias = nn.Parameter(torch.zeros(c))

        def forward(self, x):
            return F.batch_norm(self.conv(x), None, None, self.weight, self.bias, training=True)

    class BnNoStats(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c, track_running_stats=False)

        def forward(self, x):
            return self.bn(self.conv(x))

    class ConvSilu(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.act = nn.SiLU()

        def forward(self, x):
            return self.act(self.conv(x))

    class SharedConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(c)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            level1 = self.bn1(self.conv(x))
            level2 = self.bn2(self.conv(F.avg_pool2d(x, 2)))
            return torch.cat([level1.flatten(1), level2.flatten(1)], 1)

    return {
        "baseline": Baseline,
        "bn_subclass": BnSubclass,
        "functional_bn": FunctionalBn,
        "functional_bn_nostats": FunctionalBnNoStats,
        "bn_no_stats": BnNoStats,
        "conv_silu": ConvSilu,
        "shared_conv": SharedConv,
    }


def _build(torch, classes, model_id):
    """A fresh model with a fixed seed; BN statistics and affine parameters randomised (train ≠ eval)."""
    torch.manual_seed(MODEL_SEED)
    model = classes[model_id]()
    with torch.no_grad():
        for module in model.modules():
            mean = getattr(module, "running_mean", None)
            var = getattr(module, "running_var", None)
            if isinstance(mean, torch.Tensor) and isinstance(var, torch.Tensor):
                mean.copy_(torch.randn(mean.shape) * 0.5)
                var.copy_(torch.rand(var.shape) + 0.5)
            if isinstance(module, torch.nn.Conv2d):
                continue
            weight = getattr(module, "weight", None)
            bias = getattr(module, "bias", None)
            if isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor) and weight.dim() == 1:
                weight.copy_(torch.rand(weight.shape) + 0.5)
                bias.copy_(torch.randn(bias.shape) * 0.2)
    return model


# --- numeric helpers ------------------------------------------------------------------------------------------


def _tensors(value):
    """The tensors in a model output (a tensor, or nested tuples/lists/dicts of them)."""
    if hasattr(value, "detach") and hasattr(value, "shape"):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        out = []
        for item in value:
            out.extend(_tensors(item))
        return out
    return []


def _max_abs_diff(a, b):
    """max|a-b| over matching output tensors; inf when the structure or shapes differ."""
    left, right = _tensors(a), _tensors(b)
    if len(left) != len(right) or not left:
        return float("inf")
    worst = 0.0
    for x, y in zip(left, right):
        if tuple(x.shape) != tuple(y.shape):
            return float("inf")
        diff = float((x.detach().float() - y.detach().float()).abs().max())
        if not math.isfinite(diff):
            return float("inf")
        worst = max(worst, diff)
    return worst


def _max_abs(value):
    return max((float(t.detach().float().abs().max()) for t in _tensors(value)), default=0.0)


def _loss(out):
    tensors = _tensors(out)
    if len(tensors) == 1 and tensors[0] is out:
        return out.float().pow(2).mean()
    total = None
    for tensor in tensors:
        if tensor.is_floating_point():
            term = tensor.float().pow(2).mean()
            total = term if total is None else total + term
    if total is None:
        raise RuntimeError("the model output has no floating-point tensor to build a loss from")
    return total


# --- checks -------------------------------------------------------------------------------------------------------

_BN_FUNCTION_NAMES = ("batch_norm", "native_batch_norm")


def _training_arg(node):
    """The literal `training` argument of a batch_norm call node (None when absent or not a literal)."""
    if "training" in node.kwargs:
        value = node.kwargs["training"]
    elif len(node.args) > 5:  # F.batch_norm(input, running_mean, running_var, weight, bias, training, ...)
        value = node.args[5]
    else:
        return None
    return value if isinstance(value, bool) else None


def _baked_batch_norms(torch, prepared):
    """Nodes of the prepared graph that call batch_norm with training=False baked in (names)."""
    modules = dict(prepared.named_modules())
    baked = []
    for node in prepared.graph.nodes:
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            is_bn = name in _BN_FUNCTION_NAMES
        elif node.op == "call_module":
            module = modules.get(node.target)
            is_bn = (
                module is not None
                and "batchnorm" in type(module).__name__.lower()
                and not isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
            )
        else:
            is_bn = False
        if is_bn and _training_arg(node) is False:
            baked.append(str(node.target) if node.op == "call_module" else node.name)
    return baked


def _check_prepare(torch, original, prepared, x, uses_batch_stats):
    """(status, check, measured, reason) for the prepare stage's two silent checks."""
    findings = []
    problems = []
    try:
        baked = _baked_batch_norms(torch, prepared)
        names = ", ".join(baked[:4]) + (", …" if len(baked) > 4 else "")
        if baked and uses_batch_stats:
            findings.append(
                (
                    "training_false_baked",
                    f"graph calls batch_norm with training=False ({_count(len(baked), 'node')}: {names})",
                )
            )
    except Exception as exc:
        problems.append(f"training_false_baked could not run: {type(exc).__name__}: {exc}")
    try:
        prep = copy.deepcopy(prepared).train()
        orig = copy.deepcopy(original).train()
        with torch.no_grad():
            diff = _max_abs_diff(prep(x), orig(x))
        if diff > TRAIN_TOLERANCE:
            findings.append(
                ("train_output_mismatch", f"max|Δ| {_fmt(diff)} between prepared and original in train mode")
            )
    except Exception as exc:
        problems.append(f"train_output_mismatch could not run: {type(exc).__name__}: {exc}")
    if findings:
        return "silent-fail", findings[0][0], "; ".join(text for _, text in findings), None
    if problems:
        return "unknown", None, None, "; ".join(problems)[:MAX_MESSAGE]
    return "pass", None, None, None


# --- the pipeline -----------------------------------------------------------------------------------------------


class _Api:
    def __init__(self, prepare_model, sim_class, fold):
        self.prepare_model = prepare_model
        self.sim_class = sim_class
        self.fold = fold
        try:
            params = inspect.signature(fold).parameters
            self.fold_takes_dummy_input = "dummy_input" in params
        except (TypeError, ValueError):
            self.fold_takes_dummy_input = True


class _StageOutcome(Exception):
    """Raised inside a stage body to end it with a non-pass status that is not an exception of the target."""

    def __init__(self, status, check=None, measured=None, reason=None, layers=None):
        super().__init__(measured or reason or status)
        self.status = status
        self.check = check
        self.measured = measured
        self.reason = reason
        self.layers = layers


def _run_stage(case, stage, body, totals, with_layers=False):
    """Run one stage body; records its result in the case and returns (ok, result): ok = later stages may run.

    with_layers (the user's model): the result also has "layers", the layers the check names."""
    model, mode = case["model"], case["mode"]
    _event(event="stage-start", model=model, mode=mode, stage=stage, status=None)
    result = {"stage": stage, "status": "pass", "seconds": 0.0, "error": None, "check": None, "measured": None,
              "reason": None}  # fmt: skip
    if with_layers:
        result["layers"] = []
    started = time.perf_counter()
    try:
        body()
    except _StageOutcome as outcome:
        result.update(status=outcome.status, check=outcome.check, measured=outcome.measured, reason=outcome.reason)
        if with_layers:
            result["layers"] = list(outcome.layers or [])[:MAX_LAYERS]
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        result.update(status="fail", error=_error(exc))
    seconds = time.perf_counter() - started
    result["seconds"] = _rounded(seconds)
    totals[stage] = totals.get(stage, 0.0) + seconds
    case["stages"].append(result)
    _event(event="stage-end", model=model, mode=mode, stage=stage, status=result["status"])
    return result["status"] not in ("fail", "skipped"), result


def _skip(case, stage, reason, with_layers=False):
    _event(event="stage-start", model=case["model"], mode=case["mode"], stage=stage, status=None)
    case["stages"].append({"stage": stage, "status": "skipped", "seconds": 0.0, "error": None, "check": None,
                           "measured": None, "reason": reason})  # fmt: skip
    if with_layers:
        case["stages"][-1]["layers"] = []
    _event(event="stage-end", model=case["model"], mode=case["mode"], stage=stage, status="skipped")


def _qat_step(torch, sim_model, subject):
    """One QAT training step on the QuantSim model (forward, backward, SGD step); sets subject.bn to {"buffers",
    "changed", "frozen_layers"} and raises bn_stats_frozen when a BatchNorm layer's running statistics did not move
    (layers in eval mode by the model's own design excepted). Only running_mean/running_var count:
    num_batches_tracked is a step counter, which can move while the statistics stay frozen (it could hide a freeze)."""
    before = {}
    for name, buf in sim_model.named_buffers():
        if buf is not None and name.rsplit(".", 1)[-1] in RUNNING_STATS:
            before[name] = buf.detach().clone()
    sim_model.train()
    params = [p for p in sim_model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01) if params else None
    if optimizer is not None:
        optimizer.zero_grad()
    loss = _loss(_call(sim_model, subject.inputs))
    loss.backward()
    if optimizer is not None:
        optimizer.step()
    after = dict(sim_model.named_buffers())
    moved_by_layer, changed = {}, 0
    for name, old in before.items():
        new = after.get(name)
        moved = new is None or tuple(new.shape) != tuple(old.shape) or not torch.equal(new.detach(), old)
        changed += int(moved)
        layer = _strip_wrappers(name.rpartition(".")[0]) or ROOT_NAME
        moved_by_layer[layer] = moved_by_layer.get(layer, False) or moved
    frozen = [layer for layer, moved in moved_by_layer.items() if not moved]
    subject.bn = {"buffers": len(before), "changed": changed, "frozen_layers": frozen[:MAX_LAYERS]}
    flagged = [layer for layer in frozen if layer not in subject.frozen_by_design]
    if flagged:
        raise _StageOutcome(
            "silent-fail",
            "bn_stats_frozen",
            f"{changed} of {len(before)} BatchNorm running-stat buffers changed during the QAT step; "
            f"{_count(len(flagged), 'layer')} frozen: {_some(flagged)}",
            layers=flagged,
        )


class _Subject:
    """What the pipeline runs on: a stand-in case or the user's model. It holds the model (in the mode it is run
    in), its example input (as the model takes it, and as AIMET's dummy_input), its layer naming and expectations:
    the prepare stage's silent checks (`check_prepare`) and the fold stages (`fold`)."""

    with_layers = False  # stage results name the layers a check found (the user's model)

    def __init__(self, case, model, inputs, aimet_input, frozen_by_design=()):
        self.case, self.model, self.inputs, self.aimet_input = case, model, inputs, aimet_input
        self.frozen_by_design = set(frozen_by_design)
        self.bn = None

    def after_prepare(self, prepared, state):
        pass

    def check_prepare(self, torch, prepared):
        raise NotImplementedError

    def fold(self, torch, api, state, totals):
        raise NotImplementedError

    def skip(self, stage, reason):
        _skip(self.case, stage, reason, with_layers=self.with_layers)

    def run(self, stage, body, totals):
        return _run_stage(self.case, stage, body, totals, with_layers=self.with_layers)


def _run_pipeline(torch, api, subject, totals):
    """prepare -> quantsim -> compute_encodings -> qat_step (each needs the one before), then the subject's folds;
    every stage is recorded in subject.case. Returns the state the stages left (prepared, sim)."""
    state = {}

    def prepare():
        prepared = api.prepare_model(subject.model)
        state["prepared"] = prepared
        subject.after_prepare(prepared, state)
        subject.check_prepare(torch, prepared)

    ok, _ = subject.run("prepare", prepare, totals)
    prepared = state.get("prepared")

    def quantsim():
        state["sim"] = api.sim_class(prepared, dummy_input=subject.aimet_input)

    def compute_encodings():
        with torch.no_grad():
            state["sim"].compute_encodings(lambda m, _: _call(m, subject.inputs), None)

    def qat_step():
        _qat_step(torch, state["sim"].model, subject)

    chain = (("quantsim", quantsim), ("compute_encodings", compute_encodings), ("qat_step", qat_step))
    blocker = None if ok and prepared is not None else "prepare failed"
    for stage, body in chain:
        if blocker is not None:
            subject.skip(stage, blocker)
            continue
        ok, _ = subject.run(stage, body, totals)
        if not ok:
            blocker = f"{stage} failed"
    subject.fold(torch, api, state, totals)
    return state


class _StandIn(_Subject):
    """A stand-in model (MODELS) in one mode: expected fold counts and whether its BNs use batch statistics."""

    def __init__(self, case, model, x, spec, fold_cache):
        super().__init__(case, model, x, x)
        self.model_id, _, self.expected_folds, self.uses_batch_stats, self.min_folds = spec
        self.fold_source = copy.deepcopy(model).eval()  # untouched by every later stage
        self.fold_cache = fold_cache

    def check_prepare(self, torch, prepared):
        status, check, measured, reason = _check_prepare(torch, self.model, prepared, self.inputs,
                                                         self.uses_batch_stats)  # fmt: skip
        if status != "pass":
            raise _StageOutcome(status, check, measured, reason)

    def fold(self, torch, api, state, totals):
        """Once per model: the fold input does not depend on the mode, the other case reuses the result."""
        earlier = self.fold_cache.get(self.model_id)
        if earlier is None:
            result = self.run("fold", lambda: self._fold(torch, api), totals)[1]
            self.fold_cache[self.model_id] = (result, self.case["mode"])
            return
        _event(event="stage-start", model=self.model_id, mode=self.case["mode"], stage="fold", status=None)
        reused = dict(earlier[0], seconds=0.0)
        reused["reason"] = reused["reason"] or (
            f"same as the {earlier[1]} case: fold always runs on a fresh copy of the model in eval mode"
        )
        self.case["stages"].append(reused)
        _event(event="stage-end", model=self.model_id, mode=self.case["mode"], stage="fold", status=reused["status"])

    def _fold(self, torch, api):
        model, x = self.fold_source, self.inputs
        with torch.no_grad():
            before = model(x)
        if api.fold_takes_dummy_input:
            pairs = api.fold(model, tuple(x.shape), dummy_input=x)
        else:
            pairs = api.fold(model, tuple(x.shape))
        with torch.no_grad():
            after = model(x)
        try:
            folded = len(pairs)
        except TypeError:
            raise _StageOutcome(
                "unknown", reason=f"fold_all_batch_norms returned {type(pairs).__name__}, not a list of pairs"
            ) from None
        diff = _max_abs_diff(before, after)
        scale = _max_abs(before)
        changed = diff > FOLD_TOLERANCE * max(1.0, scale)
        # A conv shared by two levels can fold at most one of its BNs (min_folds): then only the output tells.
        partial = self.min_folds <= folded < self.expected_folds
        if folded < self.expected_folds and not partial:
            raise _StageOutcome(
                "silent-fail",
                "not_folded",
                f"{_count(folded, 'conv-BN pair')} folded, expected {self.expected_folds}",
            )
        if changed:
            extra = f" ({folded} of {self.expected_folds} conv-BN pairs folded)" if partial else ""
            raise _StageOutcome(
                "silent-fail",
                "fold_output_changed",
                f"fold changed the output by max|Δ| {_fmt(diff)} (output scale {_fmt(scale)}){extra}",
            )


def _run_case(torch, api, classes, model_id, mode, x, totals, fold_cache):
    spec = next(m for m in MODELS if m[0] == model_id)
    case = {"model": model_id, "mode": mode, "description": spec[1], "stages": []}
    try:
        model = _build(torch, classes, model_id)
        subject = _StandIn(case, model.train() if mode == "train" else model.eval(), x, spec, fold_cache)
    except Exception as exc:  # cannot happen with these models; still data
        error = _error(exc)
        for stage in STAGES:
            _skip(case, stage, "model could not be built: {}: {}".format(error["type"], error["message"][:200]))
        return case
    _run_pipeline(torch, api, subject, totals)
    return case


# --- the user's model (--model) -------------------------------------------------------------------------------
#
# `--model SPEC` loads the user's factory (a file `path/to/file.py:callable` or a module `package.module:callable`),
# builds the model (nn.Module, or (module, example_input)), scans it for the constructs in `--constructs FILE`, then
# runs the same pipeline as the stand-ins in train mode, plus `fold_prepared`; every layer is named by its qualified
# name in the user's model. `--with-fixes FIXES_PY` repeats all of it on a fresh model after fixes.apply_fixes().

_MODULE_DISPLAY = {}  # private module name -> what to show (a model file's stem)


class _LoadFailure(Exception):
    """The user's model could not be loaded, built or fed: the model run ends with this status (data, not a bug)."""

    def __init__(self, status, reason, error=None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.error = error


def _class_path(cls):
    module = getattr(cls, "__module__", None) or "?"
    module = _MODULE_DISPLAY.get(module, module)
    return "{}.{}".format(module, getattr(cls, "__qualname__", getattr(cls, "__name__", "?")))


def _describe_value(value):
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return "None" if value is None else f"an object of type {type(value).__name__}"


def _some(names, limit=4):
    names = list(names)
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def _exec_file(module_name, path):
    """Import the Python file `path` under `module_name` (kept in sys.modules: pickling, dataclasses)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _is_file_spec(target):
    return target.endswith(".py") or "/" in target or "\\" in target or os.sep in target


def _zoo_factory(spec, options):
    """The factory for `FAMILY:NAME` when the request names the zoo script and it builds FAMILY, else None."""
    path = options.get("zoo")
    family, sep, name = str(spec).partition(":")
    if not path or not sep or _is_file_spec(family) or not os.path.isfile(path):
        return None
    zoo = _exec_file("_qatdoctor_zoo", path)
    if family.strip() not in zoo.FAMILIES:
        return None
    family, name = family.strip(), name.strip()
    if options["input_shape"] is not None:  # the module only: its input is --input-shape's, as for any factory
        return lambda: zoo.build(family, name)[0]
    return lambda: zoo.build(family, name)


def _load_factory(spec):
    """The callable a `--model` spec names (raises _LoadFailure("bad-spec", …))."""
    target, sep, attr = str(spec).rpartition(":")
    target, attr = target.strip(), attr.strip()
    if not sep or not target or not attr:
        raise _LoadFailure("bad-spec", f"expected path/to/file.py:callable or package.module:callable, got {spec!r}")
    try:
        if _is_file_spec(target):
            path = os.path.abspath(os.path.expanduser(target))
            if not os.path.isfile(path):
                raise _LoadFailure("bad-spec", f"no such file: {target}")
            folder = os.path.dirname(path)
            if folder in sys.path:
                sys.path.remove(folder)
            sys.path.insert(0, folder)  # its neighbours import as they would next to it
            module = _exec_file(USER_MODULE, path)
            _MODULE_DISPLAY[USER_MODULE] = os.path.splitext(os.path.basename(path))[0]
        else:
            import importlib

            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # like `python -m`
            module = importlib.import_module(target)
    except _LoadFailure:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _LoadFailure("bad-spec", f"importing {target} raised {type(exc).__name__}", _error(exc)) from None
    obj = module
    walked = []
    for part in attr.split("."):
        walked.append(part)
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _LoadFailure("bad-spec", "{} has no attribute {}".format(target, ".".join(walked))) from None
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            reason = "reading {}:{} raised {}".format(target, ".".join(walked), type(exc).__name__)
            raise _LoadFailure("bad-spec", reason, _error(exc)) from None
    if not callable(obj):
        raise _LoadFailure("bad-spec", f"{target}:{attr} is {_describe_value(obj)}, not callable")
    return obj


def _build_user_model(torch, factory):
    """factory() with a fixed seed -> (model, example input or None); raises _LoadFailure("factory-failed", …)."""
    torch.manual_seed(MODEL_SEED)
    try:
        built = factory()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise _LoadFailure("factory-failed", f"the factory raised {type(exc).__name__}", _error(exc)) from None
    example = None
    if isinstance(built, (tuple, list)) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        built, example = built
    if not isinstance(built, torch.nn.Module):
        raise _LoadFailure(
            "factory-failed",
            f"the factory returned {_describe_value(built)}, not an nn.Module or (module, example_input)",
        )
    return built, example


def _example_input(torch, example, options, notes):
    """(inputs, source): the factory's example input, else torch.randn(--input-shape); raises _LoadFailure."""
    if example is not None:
        if options["input_shape"] is not None:
            notes.append("--input-shape ignored: the factory returned an example input")
        is_kwargs = isinstance(example, dict) and all(isinstance(key, str) for key in example)
        if isinstance(example, (torch.Tensor, tuple, list)) or is_kwargs:
            return example, "factory"
        raise _LoadFailure(
            "bad-input",
            f"the factory's example input is {_describe_value(example)}: expected a tensor, a tuple/list of "
            "positional inputs or a dict of keyword inputs",
        )
    if options["input_shape"] is None:
        why = "no --input-shape was given" if options["input_shape_error"] is None else "--input-shape was invalid"
        raise _LoadFailure("bad-input", f"the factory returned no example input and {why}")
    torch.manual_seed(INPUT_SEED)
    return torch.randn(options["input_shape"]), "--input-shape"


def _call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _eval_forward(torch, model, inputs):
    """model(inputs) in eval mode under no_grad; every module's training flag is restored afterwards."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            return _call(model, inputs)
    finally:
        for module, flag in flags:
            module.training = flag


def _aimet_input(model, inputs):
    """The example input as AIMET's dummy_input (a tensor or a tuple); keyword inputs in forward()'s order."""
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs)
    if not isinstance(inputs, dict):
        return inputs
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return inputs
    remaining, ordered = dict(inputs), []
    for param in params:
        if not remaining:
            break
        if param.name not in remaining or param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            return inputs  # not expressible positionally: let AIMET say what it makes of a dict
        ordered.append(remaining.pop(param.name))
    return inputs if remaining else tuple(ordered)


def _input_shapes(torch, aimet_input):
    if isinstance(aimet_input, torch.Tensor):
        return tuple(aimet_input.shape)
    return [tuple(t.shape) for t in _tensors(aimet_input)]


def _strip_wrappers(name):
    """A QuantSim module/buffer name without AIMET's wrapper levels (bn._module_to_wrap.running_mean -> bn.…)."""
    return ".".join(part for part in name.split(".") if part not in WRAPPER_SEGMENTS)


def _is_batch_norm(torch, module):
    """A BatchNorm module: any torch _BatchNorm, or AIMET's replacement of a functional batch_norm."""
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return True
    cls = type(module)
    return str(cls.__module__).startswith("aimet_torch") and "batchnorm" in cls.__name__.lower()


def _bn_nodes(torch, prepared):
    """[(called module or None, layer, training literal)] for the batch_norm nodes of a prepared GraphModule.

    The layer is the user's module whose running_mean the node reads (a get_attr such as
    `backbone.stem.0.bn.running_mean`), else the BN module the node calls."""
    modules = dict(prepared.named_modules())
    out = []
    for node in prepared.graph.nodes:
        module = None
        if node.op == "call_function":
            is_bn = getattr(node.target, "__name__", str(node.target)) in _BN_FUNCTION_NAMES
        elif node.op == "call_module":
            module = modules.get(node.target)
            is_bn = module is not None and "batchnorm" in type(module).__name__.lower()
        else:
            is_bn = False
        if not is_bn:
            continue
        if "running_mean" in node.kwargs:
            stats = node.kwargs["running_mean"]
        else:
            stats = node.args[1] if len(node.args) > 1 else None
        if getattr(stats, "op", None) == "get_attr":
            layer = str(stats.target).rpartition(".")[0] or ROOT_NAME
        elif node.op == "call_module":
            layer = str(node.target)
            owner, _, last = layer.rpartition(".")
            if not isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and last.startswith("module_"):
                layer = owner or ROOT_NAME  # AIMET's module for a functional call inside `owner`
        else:
            layer = node.name
        out.append((str(node.target) if node.op == "call_module" else None, layer, _training_arg(node)))
    return out


# --- construct scan ---------------------------------------------------------------------------------------------


def _resolve(path):
    """A dotted path -> (object, None, False), or (None, why, absent). Imports nothing new but submodules of
    packages already loaded: a class whose package the model never imported cannot have instances (absent)."""
    if not isinstance(path, str) or not path.strip():
        return None, f"not a dotted path: {path!r}", False
    parts = path.strip().split(".")
    if parts[0] not in sys.modules:
        return None, f"{parts[0]} is not imported in the target, so the model has none", True
    import importlib

    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
        obj = module
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except Exception:
            return None, "not found ({} has no {})".format(name, ".".join(parts[cut:])), False
        return obj, None, False
    return None, "could not be imported", False


def _resolve_classes(paths, label, errors):
    """Class paths -> tuple of classes (unresolvable ones skipped with a note), or None when none is usable."""
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths:
        errors.append(f"{label}: no class paths given")
        return None
    found, absent = [], False
    for path in paths:
        obj, why, missing = _resolve(path)
        if obj is None:
            errors.append(f"{label}: {path} skipped: {why}")
            absent = absent or missing
        elif not isinstance(obj, type):
            errors.append(f"{label}: {path} skipped: not a class")
        else:
            found.append(obj)
    if not found and not absent:
        return None
    return tuple(found)


def _int_or(value, default):
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class _Detector:
    """One detector of the request's constructs, resolved in the target; after the scan, `hits` maps the layers it
    found to their modules. A static kind matches modules one by one (`match`); a dynamic kind reads the record of
    one forward (`detect`). A subclass per kind, registered in _DETECTORS by its `kind`."""

    kind = None
    dynamic = False

    def __init__(self, label):
        self.label = label
        self.hits = {}
        self.feeds = {}
        self.ran = False

    @classmethod
    def build(cls, spec, label, errors):
        """The detector for `spec` (a dict of the request), or None (with a note in `errors`) when it cannot run."""
        if not isinstance(spec, dict):
            errors.append(f"{label}: a detector must be an object, got {_describe_value(spec)}")
            return None
        kind = spec.get("kind")
        label = f"{label}/{kind}"
        chosen = _DETECTORS.get(kind) if isinstance(kind, str) else None
        if chosen is None:
            errors.append("{}: unknown detector kind (known: {})".format(label, ", ".join(DETECTOR_KINDS)))
            return None
        detector = chosen(label)
        return detector if detector.configure(spec, errors) else None

    def configure(self, spec, errors):
        raise NotImplementedError

    def match(self, module):
        return False

    def detect(self, record, names):
        pass


class _ModuleSubclass(_Detector):
    """An instance of `base` whose class is defined outside the `outside` packages (default torch.nn)."""

    kind = "module-subclass"
    default_outside = "torch.nn"

    def configure(self, spec, errors):
        self.base = _resolve_classes(spec.get("base"), self.label, errors)
        outside = spec.get("outside", self.default_outside)
        self.outside = [outside] if isinstance(outside, str) else [str(o) for o in outside or []]
        return self.base is not None

    def match(self, module):
        return isinstance(module, self.base) and _outside(type(module), self.outside)


class _EvalInTrain(_ModuleSubclass):
    """An instance of `base` left in eval mode while the model is in train mode (norm_eval, frozen stages)."""

    kind = "eval-in-train"
    default_outside = ()

    def match(self, module):
        return isinstance(module, self.base) and not module.training


class _ModuleClass(_Detector):
    """An instance of one of `classes`."""

    kind = "module-class"

    def configure(self, spec, errors):
        self.classes = _resolve_classes(spec.get("classes"), self.label, errors)
        return self.classes is not None

    def match(self, module):
        return isinstance(module, self.classes)


class _ModuleAttr(_Detector):
    """A module (of `base`, if given) with attribute `attr`: present, `not_none`, or `equals` a value."""

    kind = "module-attr"

    def configure(self, spec, errors):
        attr = spec.get("attr")
        if not isinstance(attr, str) or not attr:
            errors.append(f"{self.label}: no attr given")
            return False
        self.attr = attr
        self.base = None
        if spec.get("base") is not None:
            self.base = _resolve_classes(spec.get("base"), self.label, errors)
            if self.base is None:
                return False
        self.test = "equals" if "equals" in spec else ("not_none" if spec.get("not_none") else "has")
        self.equals = spec.get("equals")
        return True

    def match(self, module):
        if self.base is not None and not isinstance(module, self.base):
            return False
        try:
            if not hasattr(module, self.attr):
                return False
            value = getattr(module, self.attr)
        except Exception:
            return False
        if self.test == "not_none":
            return value is not None
        if self.test == "equals":
            if isinstance(self.equals, bool) or self.equals is None:
                return value is self.equals
            try:
                return bool(value == self.equals)
            except Exception:
                return False
        return True


class _FunctionCall(_Detector):
    """A call of `function` during the forward (attributed to the innermost named module), optionally only when its
    argument `arg` / `arg_index` is a tensor or None, and not from inside `exclude_inside` modules."""

    kind = "function-call"
    dynamic = True

    def configure(self, spec, errors):
        path = spec.get("function")
        owner_path, _, attr = str(path or "").rpartition(".")
        owner, why, absent = _resolve(owner_path) if owner_path else (None, "not a dotted path", False)
        function = getattr(owner, attr, None) if owner is not None else None
        self.owner = self.function = None
        if function is None or not callable(function):
            errors.append("{}: {} skipped: {}".format(self.label, path, why or f"{path} is not a function"))
            if not absent:
                return False  # its package is loaded, the function is not there: the detector cannot run
        else:
            self.owner, self.attr, self.function = owner, attr, function
        self.arg = spec.get("arg")
        self.arg_index = _int_or(spec.get("arg_index"), None)
        self.arg_is = spec.get("arg_is")
        if self.arg_is not in ("tensor", "none", None):
            errors.append(f"{self.label}: unknown arg_is {self.arg_is!r} (known: tensor, none, null)")
            return False
        excluded = spec.get("exclude_inside") or []
        self.exclude = _resolve_classes(excluded, self.label, errors) if excluded else ()
        return self.exclude is not None

    def argument(self, args, kwargs):
        if self.arg in kwargs:
            return kwargs[self.arg]
        if self.arg_index is not None and len(args) > self.arg_index:
            return args[self.arg_index]
        return None

    def detect(self, record, names):
        if self.owner is None:
            return
        for call in record.function_calls.get((id(self.owner), self.attr), ()):
            if self.exclude and isinstance(call.inner, self.exclude):
                continue
            if self.arg_is is not None:
                kind = call.arguments.get((self.arg, self.arg_index))
                if kind != self.arg_is:
                    continue
            self.hits.setdefault(call.name, call.caller)


class _SharedModule(_Detector):
    """A module of `classes` called at least `min_calls` times in one forward; with `feeds`, only one whose outputs
    reach modules of those classes (recorded in `feeds`: {shared layer: [layers it feeds]})."""

    kind = "shared-module"
    dynamic = True

    def configure(self, spec, errors):
        self.classes = _resolve_classes(spec.get("classes"), self.label, errors)
        if self.classes is None:
            return False
        self.min_calls = _int_or(spec.get("min_calls", 2), 2)
        self.feeds_into = None
        if spec.get("feeds") is not None:
            self.feeds_into = _resolve_classes(spec.get("feeds"), self.label, errors)
            if self.feeds_into is None:
                return False
        return True

    def detect(self, record, names):
        for key, count in record.calls.items():
            module = record.modules[key]
            name = names.get(key)
            if name is None or count < self.min_calls or not isinstance(module, self.classes):
                continue
            if self.feeds_into is not None:
                fed_names = []
                for consumer in record.consumers.get(key, []):
                    consumer_name = names.get(id(consumer)) if isinstance(consumer, self.feeds_into) else None
                    if consumer_name is not None and consumer_name not in fed_names:
                        fed_names.append(consumer_name)
                if not fed_names:
                    continue
                self.feeds[name] = fed_names
            self.hits.setdefault(name, module)


_DETECTORS = {cls.kind: cls for cls in (_ModuleSubclass, _ModuleClass, _ModuleAttr, _FunctionCall, _SharedModule,
                                          _EvalInTrain)}  # fmt: skip
DETECTOR_KINDS = tuple(_DETECTORS)


def _outside(cls, prefixes):
    module = str(getattr(cls, "__module__", ""))
    return not any(module == p or module.startswith(p + ".") for p in prefixes)


class _Call:
    """One call of a watched function: the innermost named module (name, module), the innermost module of any kind,
    and the kind ("tensor", "none", "other") of each argument a detector asks about, by (name, index)."""

    __slots__ = ("arguments", "caller", "inner", "name")

    def __init__(self, name, caller, inner, arguments):
        self.name, self.caller, self.inner, self.arguments = name, caller, inner, arguments


class _CallRecord:
    """What one forward did: calls per module (by id), the modules, which consumer modules took a producer's output,
    and the calls of each watched function ((id(owner), attr) -> [_Call])."""

    def __init__(self):
        self.calls, self.modules, self.consumers, self.function_calls = {}, {}, {}, {}


@contextlib.contextmanager
def _recording(torch, model, names, detectors):
    """Install global module forward hooks (per-module hooks where torch has none) and the watched functions'
    wrappers for `detectors`, yield the _CallRecord they fill, and remove every one of them afterwards."""
    record, stack, produced = _CallRecord(), [], {}
    shared = [d for d in detectors if isinstance(d, _SharedModule) and d.feeds_into is not None]
    producer_classes = tuple(c for d in shared for c in d.classes)
    consumer_classes = tuple(c for d in shared for c in d.feeds_into)

    def named_caller():
        for module in reversed(stack):
            name = names.get(id(module))
            if name is not None:
                return name, module
        return ROOT_NAME, model

    def pre_hook(module, args):
        stack.append(module)
        key = id(module)
        record.calls[key] = record.calls.get(key, 0) + 1
        record.modules[key] = module
        if consumer_classes and isinstance(module, consumer_classes):
            for tensor in _tensors(args):
                hit = produced.get(id(tensor))
                if hit is not None and hit[0] is tensor:
                    record.consumers.setdefault(id(hit[1]), []).append(module)

    def post_hook(module, args, output):
        for index in range(len(stack) - 1, -1, -1):
            if stack[index] is module:
                del stack[index:]
                break
        if producer_classes and isinstance(module, producer_classes):
            for tensor in _tensors(output):  # the tensor is kept: its id cannot be reused during the forward
                produced[id(tensor)] = (tensor, module)

    def kind_of(value):
        return "none" if value is None else ("tensor" if isinstance(value, torch.Tensor) else "other")

    def wrap(original, calls, users):
        def patched(*args, **kwargs):
            try:
                name, caller = named_caller()
                arguments = {(d.arg, d.arg_index): kind_of(d.argument(args, kwargs)) for d in users if d.arg_is}
                calls.append(_Call(name, caller, stack[-1] if stack else model, arguments))
            except Exception:
                pass
            return original(*args, **kwargs)

        return patched

    watched = {}
    for detector in detectors:
        if isinstance(detector, _FunctionCall) and detector.owner is not None:
            key = (id(detector.owner), detector.attr)
            watched.setdefault(key, (detector.owner, detector.attr, detector.function, []))[3].append(detector)
    installed, handles = [], []
    try:
        for key, (owner, attr, function, users) in watched.items():
            setattr(owner, attr, wrap(function, record.function_calls.setdefault(key, []), users))
            installed.append((owner, attr, function))
        hooks = torch.nn.modules.module
        register_pre = getattr(hooks, "register_module_forward_pre_hook", None)
        register_post = getattr(hooks, "register_module_forward_hook", None)
        if register_pre is not None and register_post is not None:
            handles.append(register_pre(pre_hook))
            handles.append(register_post(post_hook))
        else:  # older torch: the model's own modules only
            for module in model.modules():
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(post_hook))
        yield record
    finally:
        for owner, attr, function in reversed(installed):
            with contextlib.suppress(Exception):
                setattr(owner, attr, function)
        for handle in handles:
            with contextlib.suppress(Exception):
                handle.remove()
        produced.clear()


def _scan_forward(torch, model, inputs, detectors, names, errors):
    """One eval-mode, no_grad forward under _recording, then each dynamic detector reads the record; every module's
    training flag is restored. False (with a note) when the forward raised."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        with _recording(torch, model, names, detectors) as record:
            model.eval()
            with torch.no_grad():
                _call(model, inputs)
    except Exception as exc:
        errors.append("the scan's forward raised {}: {}".format(type(exc).__name__, _error(exc)["message"][:300]))
        return False
    finally:
        for module, flag in flags:
            module.training = flag
    for detector in detectors:
        detector.detect(record, names)
    return True


def _scan(torch, model, inputs, constructs, load_errors):
    """{"constructs": {id: {count, layers, classes[, feeds]}}, "errors": [...]} for the model as it is (train())."""
    errors = list(load_errors)
    named = list(model.named_modules())
    names, order = {}, {}
    for index, (name, module) in enumerate(named):
        label = name or ROOT_NAME
        names.setdefault(id(module), label)
        order.setdefault(label, index)
    plan, seen = [], set()
    for construct in constructs:
        cid = construct["id"]
        if cid in seen:
            errors.append(f"{cid}: duplicate construct id, later entry ignored")
            continue
        seen.add(cid)
        detectors = []
        for index, raw in enumerate(construct["detect"]):
            detector = _Detector.build(raw, f"{cid}[{index}]", errors)
            if detector is not None:
                detectors.append(detector)
        plan.append((cid, construct["detect"], detectors))
    every = [d for _, _, ds in plan for d in ds]
    for detector in every:
        if not detector.dynamic:
            for name, module in named:
                if detector.match(module):
                    detector.hits.setdefault(name or ROOT_NAME, module)
            detector.ran = True
    dynamic = [d for d in every if d.dynamic]
    if dynamic and _scan_forward(torch, model, inputs, dynamic, names, errors):
        for detector in dynamic:
            detector.ran = True
    found = {}
    for cid, raw, detectors in plan:
        ran = [d for d in detectors if d.ran]
        if not ran:
            errors.append(f"{cid}: not checked (none of its {_count(len(raw), 'detector')} could run)")
            continue
        hits, feeds = {}, {}
        for detector in ran:
            for name, module in detector.hits.items():
                hits.setdefault(name, module)
            for name, fed in detector.feeds.items():
                merged = feeds.setdefault(name, [])
                merged.extend(f for f in fed if f not in merged)
        layers = sorted(hits, key=lambda n: (order.get(n, len(order)), n))
        classes = {}
        for name in layers:
            path = _class_path(type(hits[name]))
            classes[path] = classes.get(path, 0) + 1
        entry = {"count": len(layers), "layers": layers[:MAX_LAYERS], "classes": classes}
        if any(isinstance(d, _SharedModule) and d.feeds_into is not None for d in detectors):
            entry["feeds"] = {name: feeds[name] for name in layers if name in feeds}
        found[cid] = entry
    return {"constructs": found, "errors": errors}


def _load_constructs(path):
    """(constructs, errors) from the request's constructs (a list) or a --constructs file:
    [{"id": str, "detect": [detector, ...]}, ...]."""
    if isinstance(path, list):
        data, path = path, "request constructs"
    else:
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except Exception as exc:
            return [], [f"--constructs {path}: {type(exc).__name__}: {exc}"]
    if isinstance(data, dict):
        data = data.get("constructs")
    if not isinstance(data, list):
        return [], [f"--constructs {path}: expected a JSON list of {{id, detect}} objects"]
    constructs, errors = [], []
    for index, item in enumerate(data):
        if isinstance(item, dict) and isinstance(item.get("id"), str) and isinstance(item.get("detect"), list):
            constructs.append(item)
        else:
            errors.append(f'--constructs entry {index} ignored: expected {{"id": str, "detect": [detector, ...]}}')
    return constructs, errors


# --- the user's model through AIMET -------------------------------------------------------------------------------


def _check_user_prepare(torch, original, prepared, inputs, frozen_by_design):
    """(status, check, measured, reason, layers) for the prepare stage's silent checks on the user's model."""
    findings, problems = [], []
    try:
        baked = []
        for _, layer, training in _bn_nodes(torch, prepared):
            if training is False and layer not in frozen_by_design and layer not in baked:
                baked.append(layer)
        if baked:
            measured = f"graph calls batch_norm with training=False ({_count(len(baked), 'layer')}: {_some(baked)})"
            findings.append(("training_false_baked", measured, baked))
    except Exception as exc:
        problems.append(f"training_false_baked could not run: {type(exc).__name__}: {exc}")
    try:
        if original is None:
            raise RuntimeError("the model could not be copied")
        prep = copy.deepcopy(prepared).train()
        orig = copy.deepcopy(original).train()
        with torch.no_grad():
            torch.manual_seed(INPUT_SEED)  # the same dropout masks in both
            prep_out = _call(prep, inputs)
            torch.manual_seed(INPUT_SEED)
            orig_out = _call(orig, inputs)
        diff, scale = _max_abs_diff(prep_out, orig_out), _max_abs(orig_out)
        if not diff <= TRAIN_TOLERANCE * max(1.0, scale):
            findings.append(
                (
                    "train_output_mismatch",
                    f"max|Δ| {_fmt(diff)} between prepared and original in train mode (output scale {_fmt(scale)})",
                    [],
                )
            )
    except Exception as exc:
        problems.append(f"train_output_mismatch could not run: {type(exc).__name__}: {exc}")
    if findings:
        return "silent-fail", findings[0][0], "; ".join(f[1] for f in findings), None, findings[0][2]
    if problems:
        return "unknown", None, None, "; ".join(problems)[:MAX_MESSAGE], None
    return "pass", None, None, None, None


def _randomize_default_stats(torch, model):
    """Give BN layers still at their initial statistics (mean 0, var 1: an untrained model) random ones, seeded.

    Folding is checked by comparing the output before and after; with identity statistics a wrong fold (a BN folded
    into a conv that other layers share) changes nothing visible. Only the fold's own copy is touched."""
    generator = torch.Generator().manual_seed(MODEL_SEED)
    changed = 0
    with torch.no_grad():
        for _, module in model.named_modules():
            mean = getattr(module, "running_mean", None)
            var = getattr(module, "running_var", None)
            if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor) or mean.shape != var.shape:
                continue
            if not mean.is_floating_point() or bool(mean.any()) or not bool((var == 1).all()):
                continue
            mean.copy_((torch.randn(mean.shape, generator=generator) * 0.5).to(mean.dtype))
            var.copy_((torch.rand(var.shape, generator=generator) + 0.5).to(var.dtype))
            changed += 1
    return changed


def _user_fold(torch, api, model, inputs, aimet_input, layer_of, into, key):
    """fold_all_batch_norms on `model` (a copy, eval mode); fills into[key] (FOLD), raises _StageOutcome if wrong."""
    randomized = _randomize_default_stats(torch, model)
    with torch.no_grad():
        before = _call(model, inputs)
    shapes = _input_shapes(torch, aimet_input)
    keywords = {"dummy_input": aimet_input} if api.fold_takes_dummy_input else {}
    pairs = api.fold(model, shapes, **keywords)
    with torch.no_grad():
        after = _call(model, inputs)
    try:
        folded = len(pairs)
    except TypeError:
        folded = None
    unfolded = []
    for name, module in model.named_modules():
        if _is_batch_norm(torch, module):
            layer = layer_of.get(name, name or ROOT_NAME)
            if layer not in unfolded:
                unfolded.append(layer)
    diff, scale = _max_abs_diff(before, after), _max_abs(before)
    relative = diff / scale if scale > 0 else (0.0 if diff == 0 else None)
    into[key] = {"pairs": folded, "unfolded": unfolded[:MAX_LAYERS], "max_abs_diff": _finite(diff),
                 "output_scale": _finite(scale), "relative": _finite(relative),
                 "randomized_stats": randomized}  # fmt: skip
    if folded is None:
        raise _StageOutcome("unknown", reason=f"fold_all_batch_norms returned {type(pairs).__name__}, not a list")
    left = f"{_count(folded, 'conv-BN pair')} folded"
    if unfolded:
        left += f", {_count(len(unfolded), 'BatchNorm layer')} left unfolded: {_some(unfolded)}"
    if not diff <= FOLD_TOLERANCE * max(1.0, scale):
        if math.isfinite(diff):
            change = f"max|Δ| {_fmt(diff)} (output scale {_fmt(scale)}, relative {_fmt(relative)})"
        else:
            change = "a different output structure or non-finite values"
        raise _StageOutcome(
            "silent-fail", "fold_output_changed", f"fold changed the output by {change}; {left}", layers=unfolded
        )
    if unfolded:
        raise _StageOutcome("silent-fail", "not_folded", left, layers=unfolded)


class _UserModel(_Subject):
    """The user's model (or its fixed rerun), in train mode; layers by their qualified names. Folds: the original
    model (a pristine copy taken before prepare_model, which shares its layers) and the prepared one."""

    with_layers = True

    def __init__(self, case, model, inputs, frozen_by_design):
        super().__init__(case, model, inputs, _aimet_input(model, inputs), frozen_by_design)
        self.fold_outcomes = {"original": None, "prepared": None}
        self.copy_error = None
        try:
            self.pristine = copy.deepcopy(model)  # QuantSim and QAT change the layers prepare_model shares
        except Exception as exc:
            self.pristine, self.copy_error = None, exc

    def after_prepare(self, prepared, state):
        try:
            state["prepared_copy"] = copy.deepcopy(prepared)  # for fold_prepared, before QuantSim wraps it
        except Exception as exc:
            state["prepared_copy_error"] = exc

    def check_prepare(self, torch, prepared):
        status, check, measured, reason, layers = _check_user_prepare(
            torch, self.pristine, prepared, self.inputs, self.frozen_by_design
        )
        if status != "pass":
            raise _StageOutcome(status, check, measured, reason, layers)

    def fold(self, torch, api, state, totals):
        def fold_original():
            if self.pristine is None:
                raise self.copy_error
            source = copy.deepcopy(self.pristine).eval()
            _user_fold(torch, api, source, self.inputs, self.aimet_input, {}, self.fold_outcomes, "original")

        def fold_prepared():
            if "prepared_copy" not in state:
                raise state["prepared_copy_error"]
            source = copy.deepcopy(state["prepared_copy"]).eval()
            layer_of = {target: layer for target, layer, _ in _bn_nodes(torch, source) if target is not None}
            _user_fold(torch, api, source, self.inputs, self.aimet_input, layer_of, self.fold_outcomes, "prepared")

        self.run("fold", fold_original, totals)
        if state.get("prepared") is None:
            self.skip("fold_prepared", "prepare failed")
        else:
            self.run("fold_prepared", fold_prepared, totals)


def _user_stages(torch, api, model, inputs, label, timings, frozen_by_design, api_reason):
    """The pipeline on the user's model: (stages, fold, bn)."""
    case = {"model": label, "mode": "train", "stages": []}
    if api is None:
        for stage in USER_STAGES:
            _skip(case, stage, api_reason, with_layers=True)
        return case["stages"], {"original": None, "prepared": None}, None
    totals = {}
    subject = _UserModel(case, model, inputs, frozen_by_design)
    _run_pipeline(torch, api, subject, totals)
    for stage in USER_STAGES:
        if stage in totals:
            timings["stage." + stage] = _rounded(totals[stage])
    return case["stages"], subject.fold_outcomes, subject.bn


def _user_pipeline(torch, api, model, inputs, label, scan_plan, timings, api_reason):
    """Scan (with --constructs) and stages for a built model, already in train mode."""
    frozen_by_design = {name or ROOT_NAME for name, module in model.named_modules() if not module.training}
    scan = None
    if scan_plan is not None:
        _event(event="scan-start", model=label)
        started = time.perf_counter()
        try:
            scan = _scan(torch, model, inputs, scan_plan[0], scan_plan[1])
        except Exception as exc:  # a bug of this script: say so, the stages still run
            error = _error(exc)
            scan = {"constructs": {}, "errors": ["the scan failed: {}: {}".format(error["type"], error["message"])]}
        timings["scan"] = _rounded(time.perf_counter() - started)
        _event(event="scan-end", model=label, found=sorted(k for k, v in scan["constructs"].items() if v["count"]))
    stages, fold, bn = _user_stages(torch, api, model, inputs, label, timings, frozen_by_design, api_reason)
    return {"scan": scan, "stages": stages, "fold": fold, "bn": bn}


def _jsonable(value):
    """A JSON-able copy of `value`; the private module name of a model file shown as the file's stem."""

    def shown(item):
        if isinstance(item, str):
            for private, display in _MODULE_DISPLAY.items():
                item = item.replace(private + ".", display + ".")
            return item
        if isinstance(item, dict):
            return {shown(k): shown(v) for k, v in item.items()}
        if isinstance(item, list):
            return [shown(v) for v in item]
        return item

    try:
        return shown(json.loads(json.dumps(value, default=str)))
    except Exception:
        return repr(value)[:MAX_MESSAGE]


def _run_fixed(torch, api, factory, inputs, fixes_path, scan_plan, api_reason):
    """A fresh model from the factory, fixes.apply_fixes(model, example_input), then the same pipeline."""
    fixed = {"status": "ran", "stage": None, "error": None, "reason": None, "fixes": None, "scan": None,
             "stages": [], "fold": None, "bn": None, "timings": {}}  # fmt: skip
    timings = fixed["timings"]
    _event(event="fixes-start", model=FIXED_MODEL)
    try:
        started = time.perf_counter()
        try:
            if not os.path.isfile(fixes_path):
                raise FileNotFoundError(f"no such file: {fixes_path}")
            apply_fixes = getattr(_exec_file(FIXES_MODULE, os.path.abspath(fixes_path)), "apply_fixes", None)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _LoadFailure(
                "fixes-failed", f"loading {fixes_path} raised {type(exc).__name__}", _error(exc)
            ) from None
        if not callable(apply_fixes):
            raise _LoadFailure("fixes-failed", f"{fixes_path} has no callable apply_fixes")
        model, _ = _build_user_model(torch, factory)
        timings["build"] = _rounded(time.perf_counter() - started)
        started = time.perf_counter()
        try:
            report = apply_fixes(model, example_input=inputs)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _LoadFailure("fixes-failed", f"apply_fixes raised {type(exc).__name__}", _error(exc)) from None
        finally:
            timings["fixes"] = _rounded(time.perf_counter() - started)
        fixed["fixes"] = _jsonable(report)
        model.train()
    except _LoadFailure as failure:
        fixed.update(status=failure.status, stage="fixes", error=failure.error, reason=failure.reason)
        _event(event="fixes-end", model=FIXED_MODEL, status=failure.status)
        return fixed
    _event(event="fixes-end", model=FIXED_MODEL, status="ran")
    fixed.update(_user_pipeline(torch, api, model, inputs, FIXED_MODEL, scan_plan, timings, api_reason))
    return fixed


def _model_failed(out, exc):
    """Record an exception that escaped the model's run (any class: KeyboardInterrupt, SystemExit, RecursionError)
    as its outcome, at the place it was running."""
    where = _WHERE["phase"] or "factory"
    status = "interrupted" if not isinstance(exc, Exception) else "failed"
    if status == "failed" and where == "factory":
        status = "factory-failed"
    out.update(status=status, stage=where, error=_error(exc), reason=f"{type(exc).__name__} during {where}")
    _WHERE["phase"] = None
    _event(event="model-end", status=status)


def _new_model_result(spec):
    return {"spec": spec, "status": "ran", "stage": None, "error": None, "reason": None, "class": None, "modules": None,
            "parameters": None, "input": None, "scan": None, "stages": [], "fold": None, "bn": None, "timings": {},
            "fixed": None}  # fmt: skip


def _run_user_model(torch, api, options, notes, import_failure, out):
    """Fill `out`, the "model" object of the result (see the module docstring); every failure is data."""
    spec = options["model"]
    timings = out["timings"]
    _event(event="model-start", spec=spec)
    api_reason = None
    if api is None and import_failure is not None:
        api_reason = "aimet_torch could not be imported: {}: {}".format(
            import_failure.get("type"), str(import_failure.get("message"))[:200]
        )
    try:
        if torch is None:
            raise _LoadFailure(
                "factory-failed", "torch could not be imported in the target, so no model can be built", import_failure
            )
        started = time.perf_counter()
        try:
            factory = _zoo_factory(spec, options) or _load_factory(spec)
            model, example = _build_user_model(torch, factory)
            out.update(
                {
                    "class": _class_path(type(model)),
                    "modules": sum(1 for _ in model.modules()),
                    "parameters": int(sum(p.numel() for p in model.parameters())),
                }
            )
            inputs, source = _example_input(torch, example, options, notes)
            out["input"] = {"shapes": [list(t.shape) for t in _tensors(inputs)], "source": source}
            model.train()  # what a training loop does; modules overriding train() (norm_eval) keep their choice
            try:
                _eval_forward(torch, model, inputs)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                raise _LoadFailure(
                    "bad-input", "the model's forward raised on the example input (eval mode, no_grad)", _error(exc)
                ) from None
        finally:
            timings["build"] = _rounded(time.perf_counter() - started)
        scan_plan = None
        if options["constructs"] is not None:
            scan_plan = _load_constructs(options["constructs"])
        out.update(_user_pipeline(torch, api, model, inputs, USER_MODEL, scan_plan, timings, api_reason))
        if options["with_fixes"] is not None:
            out["fixed"] = {"status": "ran", "stage": None, "error": None, "reason": None, "fixes": None, "scan": None,
                            "stages": [], "fold": None, "bn": None, "timings": {}}  # fmt: skip
            try:
                out["fixed"] = _run_fixed(torch, api, factory, inputs, options["with_fixes"], scan_plan, api_reason)
            except _LoadFailure:
                raise
            except BaseException as exc:
                where = _WHERE["phase"] or "fixes"
                status = "interrupted" if not isinstance(exc, Exception) else "failed"
                out["fixed"].update(status=status, stage=where, error=_error(exc),
                                    reason=f"{type(exc).__name__} during {where}")  # fmt: skip
    except _LoadFailure as failure:
        out.update(status=failure.status, stage=_WHERE["phase"] or "factory", error=failure.error,
                   reason=failure.reason)  # fmt: skip
    _event(event="model-end", status=out["status"])


# --- main ---------------------------------------------------------------------------------------------------------


_VALUE_OPTIONS = {"--model": "model", "--input-shape": "input_shape", "--constructs": "constructs",
                  "--with-fixes": "with_fixes"}  # fmt: skip


def _parse_shape(value):
    """'1,3,320,320' (or 1x3x320x320, [1, 3, 320, 320]) -> (1, 3, 320, 320); None when invalid."""
    text = value.strip().strip("[]()").replace("x", ",").replace(" ", "")
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        return None
    return shape if shape and all(n > 0 for n in shape) else None


def _read_request(path):
    """The host's request (see the module docstring) -> (models, modes, notes, options), as _parse_args returns."""
    notes = []
    try:
        with open(path, encoding="utf-8") as handle:
            request = json.load(handle)
    except Exception as exc:
        request = {}
        notes.append(f"request {path} unreadable: {type(exc).__name__}: {exc}")
    if not isinstance(request, dict):
        request, notes = {}, [*notes, "request ignored: not a JSON object"]
    models, modes, more, options = _read_request_object(request)
    return models, modes, notes + more, options


def _read_request_object(request):
    """The request's fields (the module docstring) -> (models, modes, notes, options)."""
    notes = []
    if request.get("protocol", PROTOCOL) != PROTOCOL:
        notes.append("request protocol {!r} is not {}".format(request.get("protocol"), PROTOCOL))

    def names(key, known):
        given = request.get(key)
        items = [str(v) for v in given] if isinstance(given, list) else list(known)
        unknown = [v for v in items if v not in known]
        if unknown:
            notes.append("unknown {} ignored: {} (known: {})".format(key, ", ".join(unknown), ", ".join(known)))
        return [v for v in known if v in items]

    models, modes = names("stand_ins", MODEL_IDS), names("modes", MODES)
    implemented = {"stages": ("import", *USER_STAGES), "checks": CHECKS, "detectors": DETECTOR_KINDS}
    unsupported = {}
    for key, known in implemented.items():
        asked = request.get(key)
        missing = [str(v) for v in asked if v not in known] if isinstance(asked, list) else []
        if missing:
            unsupported[key] = missing
    options = {"model": None, "input_shape": None, "input_shape_error": None, "constructs": None, "with_fixes": None,
               "unsupported": unsupported}  # fmt: skip
    model = request.get("model")
    if isinstance(model, dict) and isinstance(model.get("spec"), str) and model["spec"].strip():
        options["model"] = model["spec"]
        shape = model.get("input_shape")
        if shape is not None:
            options["input_shape"] = _parse_shape(",".join(str(d) for d in shape)) if isinstance(shape, list) else None
            if options["input_shape"] is None:
                options["input_shape_error"] = str(shape)
                notes.append(f"invalid input_shape ignored: {shape!r}")
        options["with_fixes"] = model.get("with_fixes") or None
        options["zoo"] = model.get("zoo") if isinstance(model.get("zoo"), str) else None
        constructs = request.get("constructs")
        options["constructs"] = constructs if isinstance(constructs, list) else None
    elif model is not None:
        notes.append("model ignored: expected {\"spec\": \"file.py:callable\", ...}")
    return models, modes, notes, options


def _parse_args(argv):
    """--request FILE (what the host sends), or for a person at a shell: --models a,b, --modes train,eval,
    --model SPEC, --input-shape N,C,H,W, --constructs FILE, --with-fixes FILE (also --x=y); problems are reported in
    notes, never fatal. Returns (models, modes, notes, options)."""
    if len(argv) == 2 and argv[0] == "--request":
        return _read_request(argv[1])
    if len(argv) == 1 and argv[0].startswith("--request="):
        return _read_request(argv[0].split("=", 1)[1])
    models, modes, notes = list(MODEL_IDS), list(MODES), []
    options = {"model": None, "input_shape": None, "input_shape_error": None, "constructs": None, "with_fixes": None}
    given = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, value = arg, None
        if "=" in arg and arg.startswith("--"):
            name, value = arg.split("=", 1)
        if name in _VALUE_OPTIONS:
            if value is None:
                index += 1
                if index >= len(argv):
                    notes.append(f"{name} ignored: it needs a value")
                    break
                value = argv[index]
            key = _VALUE_OPTIONS[name]
            if not value.strip():
                notes.append(f"{name} ignored: empty value")
            elif key == "input_shape" and _parse_shape(value) is None:
                notes.append(
                    f"invalid --input-shape ignored: {value!r} (expected positive integers such as 1,3,320,320)"
                )
                options["input_shape"], options["input_shape_error"] = None, value
            else:
                if name in given:
                    notes.append(f"{name} given more than once: the last one is used")
                given.append(name)
                options[key] = _parse_shape(value) if key == "input_shape" else value
                if key == "input_shape":
                    options["input_shape_error"] = None
        elif name in ("--models", "--modes"):
            if value is None:
                index += 1
                value = argv[index] if index < len(argv) else ""
            items = [v.strip() for v in value.split(",") if v.strip()]
            known = MODEL_IDS if name == "--models" else MODES
            unknown = [v for v in items if v not in known]
            if unknown:
                notes.append(
                    "unknown {} ignored: {} (known: {})".format(name[2:], ", ".join(unknown), ", ".join(known))
                )
            chosen = [v for v in known if v in items]  # canonical order
            if name == "--models":
                models = chosen
            else:
                modes = chosen
        else:
            notes.append(f"unknown argument ignored: {arg}")
        index += 1
    if options["model"] is None:
        for name in ("--input-shape", "--constructs", "--with-fixes"):
            if name in given:
                notes.append(f"{name} ignored: no --model")
    return models, modes, notes, options


def _import_stack(result, timings):
    """Import torch, aimet_torch and the API modules; returns (torch, api) or (None, None) with the failure recorded."""
    versions = result["versions"]
    started = time.perf_counter()

    _event(event="import-start", what="torch")
    t0 = time.perf_counter()
    try:
        import torch
    except BaseException as exc:
        timings["import_torch"] = _rounded(time.perf_counter() - t0)
        _event(event="import-end", what="torch", status="fail")
        result["import"] = {"status": "fail", "seconds": _rounded(time.perf_counter() - started), "error": _error(exc)}
        return None, None
    with contextlib.suppress(Exception):
        torch.set_num_threads(1)
    timings["import_torch"] = _rounded(time.perf_counter() - t0)
    _event(event="import-end", what="torch", status="pass")
    versions["torch"] = str(getattr(torch, "__version__", versions.get("torch", "unknown")))

    _event(event="import-start", what="aimet_torch")
    t0 = time.perf_counter()
    try:
        import importlib

        import aimet_torch

        if "aimet-torch" not in versions:
            found = getattr(aimet_torch, "__version__", None)
            if found:
                versions["aimet-torch"] = str(found)
        selected, requested, modules, reason = _select_api(versions.get("aimet-torch"))
        result["api"] = {"selected": selected, "requested": requested, "quantsim_module": None, "reason": reason}
        preparer = importlib.import_module(modules["model_preparer"])
        quantsim = importlib.import_module(modules["quantsim"])
        folding = importlib.import_module(modules["batch_norm_fold"])
        api = _Api(preparer.prepare_model, quantsim.QuantizationSimModel, folding.fold_all_batch_norms)
        result["api"]["quantsim_module"] = getattr(api.sim_class, "__module__", modules["quantsim"])
    except BaseException as exc:
        timings["import_aimet"] = _rounded(time.perf_counter() - t0)
        _event(event="import-end", what="aimet_torch", status="fail")
        result["import"] = {"status": "fail", "seconds": _rounded(time.perf_counter() - started), "error": _error(exc)}
        return None, None
    timings["import_aimet"] = _rounded(time.perf_counter() - t0)
    _event(event="import-end", what="aimet_torch", status="pass")
    result["import"] = {"status": "pass", "seconds": _rounded(time.perf_counter() - started), "error": None}
    return torch, api


def _probe(argv):
    models, modes, notes, options = _parse_args(argv)
    timings = {}
    versions = {"python": platform.python_version()}
    for key in VERSION_FACTS[1:]:
        found = _dist_version(*DIST_NAMES.get(key, (key,)))
        if found:
            versions[key] = found
    if "aimet-torch" in versions:
        selected, requested, _, reason = _select_api(versions["aimet-torch"])
    else:
        selected, requested = None, os.environ.get("AIMET_DEFAULT_API") or None
        reason = "not determined: no aimet-torch distribution found and aimet_torch was not imported"
    result = {
        "probe": PROBE_VERSION,
        "versions": versions,
        "api": {"selected": selected, "requested": requested, "quantsim_module": None, "reason": reason},
        "import": {"status": "fail", "seconds": 0.0, "error": None},
        "cases": [],
        "timings": timings,
    }
    if notes:
        result["notes"] = notes
    if options.get("unsupported"):
        result["unsupported"] = options["unsupported"]
    try:
        torch, api = _import_stack(result, timings)
        if torch is None:
            if options["model"] is not None:  # the model (and its scan) may still load without AIMET
                _model_result(result, sys.modules.get("torch"), None, options, notes)
            return result
        classes = _define_models(torch)
        torch.manual_seed(INPUT_SEED)
        x = torch.randn(INPUT_SHAPE)
        totals, fold_cache = {}, {}
        t0 = time.perf_counter()
        for model_id in models:
            for mode in modes:
                result["cases"].append(_run_case(torch, api, classes, model_id, mode, x, totals, fold_cache))
        timings["cases"] = _rounded(time.perf_counter() - t0)
        for stage in STAGES:
            if stage in totals:
                timings["stage." + stage] = _rounded(totals[stage])
        if options["model"] is not None:
            _model_result(result, torch, api, options, notes)
    except KeyboardInterrupt:
        result["probe_error"] = {"type": "KeyboardInterrupt", "message": "interrupted", "frames": []}
    except BaseException as exc:
        result["probe_error"] = _error(exc)
    return result


def _model_result(result, torch, api, options, notes):
    """result["model"] for --model (and notes it adds); a bug here is probe_error, the stand-ins' result stays."""
    result["model"] = _new_model_result(options["model"])
    try:
        _run_user_model(torch, api, options, notes, result["import"].get("error"), result["model"])
    except BaseException as exc:  # what was measured so far stays; the model did not finish its run
        _model_failed(result["model"], exc)
    if notes and "notes" not in result:
        result["notes"] = notes


def main():
    try:
        result = _probe(sys.argv[1:])
    except BaseException as exc:
        result = {"probe": PROBE_VERSION, "probe_error": _error(exc), "cases": []}
    result.setdefault("timings", {})["total"] = _rounded(time.perf_counter() - _START)
    _write_result(result)


def _exit_now():
    """Skip interpreter teardown: with torch and AIMET loaded it takes ~2 s and has nothing left to do."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)  # C stdio buffers (C++ prints redirected to stderr)
    except Exception:
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
    _exit_now()
