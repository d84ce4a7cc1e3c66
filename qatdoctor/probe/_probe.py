"""qatdoctor probe: tiny models through the real AIMET (aimet-torch) QAT pipeline, run in the *target* interpreter.

Usage: TARGET_PYTHON _probe.py [--models m1,m2] [--modes train,eval]   (with OMP_NUM_THREADS=1)

Contract (qatdoctor/probe/run.py depends on it):
* self-contained: stdlib + torch + aimet_torch only, Python 3.8+; writes no file; never raises; exit status 0;
* everything torch/AIMET print goes to stderr (fd 1 is pointed at fd 2 first thing); ONE JSON object (one line)
  is written to the real stdout at the very end;
* progress on stderr, one flushed line each, `@qatdoctor-probe {json}`: {"event": "import-start"|"import-end",
  "what": "torch"|"aimet_torch"} and {"event": "stage-start"|"stage-end", "model", "mode", "stage", "status"},
  so that a crash or a hang can be placed exactly.

Output: {"probe": 1, "versions": {"python", "torch", "aimet-torch", "numpy", "torchvision"} (those found),
"api": {"selected": "v1"|"v2"|null, "requested": $AIMET_DEFAULT_API|null, "quantsim_module", "reason"},
"import": {"status": "pass"|"fail", "seconds", "error"}, "cases": [{"model", "mode", "description", "stages":
[{"stage", "status", "seconds", "error", "check", "measured", "reason"}]}], "timings": {"import_torch",
"import_aimet", "cases", "stage.<name>", "total"}}, plus "notes" (ignored arguments) and "probe_error" (a bug in
this script) when there are any. An error is {"type", "message" (at most 2000 chars, package directories cut),
"frames": the last 8 as "aimet_torch/x.py:12 in forward"}.

Every failure is data: a stage is `pass`, `fail` (it raised), `silent-fail` (no exception, but a check found the
result wrong: `check` and `measured` say which and by how much), `skipped` (`reason`) or `unknown` (the check
itself could not run, `reason`). Stages per case: prepare, quantsim, compute_encodings, qat_step (each needs the
one before), fold (independent: it runs on a fresh copy of the model in eval mode, so its result is computed once
per model and shared by the modes).
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


_REAL_STDOUT = _redirect_stdout()

import copy  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

PROBE_VERSION = 1
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
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
KNOWN_PACKAGES = ("aimet_torch", "aimet_common", "torchvision", "torch", "numpy")

# id -> (description, BatchNorm pairs fold_all_batch_norms should fold, has BN that uses batch stats in train mode)
MODELS = (
    ("baseline", "Conv2d→BatchNorm2d→ReLU", 1, True),
    ("bn_subclass", "Conv2d→_BatchNormXd (BatchNorm subclass outside torch.nn, like mmengine's)→SiLU", 1, True),
    ("functional_bn", "Conv2d→F.batch_norm(x, running_mean, running_var, w, b, self.training) on own buffers", 1, True),
    ("functional_bn_nostats", "Conv2d→F.batch_norm(x, None, None, w, b, training=True)", 0, True),
    ("bn_no_stats", "Conv2d→BatchNorm2d(track_running_stats=False)", 0, True),
    ("conv_silu", "Conv2d→SiLU", 0, False),
    ("shared_conv", "one Conv2d shared by two levels, a BatchNorm2d per level (RTMDet SepBN head)", 2, True),
)
MODEL_IDS = tuple(m[0] for m in MODELS)

_START = time.perf_counter()


# --- output helpers -----------------------------------------------------------------------------------------


def _event(**fields):
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


def _bn_buffers(model):
    out = {}
    for name, buf in model.named_buffers():
        if buf is not None and name.rsplit(".", 1)[-1] in BN_BUFFERS:
            out[name] = buf.detach().clone()
    return out


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

    def __init__(self, status, check=None, measured=None, reason=None):
        super().__init__(measured or reason or status)
        self.status = status
        self.check = check
        self.measured = measured
        self.reason = reason


def _run_stage(case, stage, body, totals):
    """Run one stage body; records its result in the case and returns (ok, result): ok = later stages may run."""
    model, mode = case["model"], case["mode"]
    _event(event="stage-start", model=model, mode=mode, stage=stage, status=None)
    result = {"stage": stage, "status": "pass", "seconds": 0.0, "error": None, "check": None, "measured": None,
              "reason": None}  # fmt: skip
    started = time.perf_counter()
    try:
        body()
    except _StageOutcome as outcome:
        result.update(status=outcome.status, check=outcome.check, measured=outcome.measured, reason=outcome.reason)
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


def _skip(case, stage, reason):
    _event(event="stage-start", model=case["model"], mode=case["mode"], stage=stage, status=None)
    case["stages"].append({"stage": stage, "status": "skipped", "seconds": 0.0, "error": None, "check": None,
                           "measured": None, "reason": reason})  # fmt: skip
    _event(event="stage-end", model=case["model"], mode=case["mode"], stage=stage, status="skipped")


def _run_case(torch, api, classes, model_id, mode, x, totals, fold_cache):
    description, expected_folds, uses_batch_stats = next((m[1], m[2], m[3]) for m in MODELS if m[0] == model_id)
    case = {"model": model_id, "mode": mode, "description": description, "stages": []}
    state = {}

    def build():
        model = _build(torch, classes, model_id)
        state["fold_source"] = copy.deepcopy(model).eval()  # untouched by every later stage
        if mode == "train":
            model.train()
        else:
            model.eval()
        state["original"] = model

    try:
        build()
    except Exception as exc:  # cannot happen with these models; still data
        error = _error(exc)
        for stage in STAGES:
            _skip(case, stage, "model could not be built: {}: {}".format(error["type"], error["message"][:200]))
        return case

    def prepare():
        prepared = api.prepare_model(state["original"])
        state["prepared"] = prepared
        status, check, measured, reason = _check_prepare(torch, state["original"], prepared, x, uses_batch_stats)
        if status != "pass":
            raise _StageOutcome(status, check, measured, reason)

    ok, _ = _run_stage(case, "prepare", prepare, totals)
    prepared = state.get("prepared")

    def quantsim():
        state["sim"] = api.sim_class(prepared, dummy_input=x)

    def compute_encodings():
        with torch.no_grad():
            state["sim"].compute_encodings(lambda m, _: m(x), None)

    def qat_step():
        sim_model = state["sim"].model
        before = _bn_buffers(sim_model)
        sim_model.train()
        optimizer = torch.optim.SGD([p for p in sim_model.parameters() if p.requires_grad], lr=0.01)
        optimizer.zero_grad()
        loss = _loss(sim_model(x))
        loss.backward()
        optimizer.step()
        if not before:
            return  # no BatchNorm running statistics: bn_stats_frozen does not apply
        after = dict(sim_model.named_buffers())
        changed = 0
        for name, old in before.items():
            new = after.get(name)
            if new is None or tuple(new.shape) != tuple(old.shape) or not torch.equal(new.detach(), old):
                changed += 1
        if changed == 0:
            raise _StageOutcome(
                "silent-fail",
                "bn_stats_frozen",
                f"0 of {len(before)} BatchNorm buffers changed during the QAT step",
            )

    chain = (("quantsim", quantsim), ("compute_encodings", compute_encodings), ("qat_step", qat_step))
    blocker = None if ok and prepared is not None else "prepare failed"
    for stage, body in chain:
        if blocker is not None:
            _skip(case, stage, blocker)
            continue
        ok, _ = _run_stage(case, stage, body, totals)
        if not ok:
            blocker = f"{stage} failed"

    def fold():
        model = state["fold_source"]
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
        # A conv shared by two levels can fold at most one of its BNs: then only the output tells.
        partial_shared = model_id == "shared_conv" and folded == 1
        if folded < expected_folds and not partial_shared:
            raise _StageOutcome(
                "silent-fail",
                "not_folded",
                f"{_count(folded, 'conv-BN pair')} folded, expected {expected_folds}",
            )
        if changed:
            extra = f" ({folded} of {expected_folds} conv-BN pairs folded)" if partial_shared else ""
            raise _StageOutcome(
                "silent-fail",
                "fold_output_changed",
                f"fold changed the output by max|Δ| {_fmt(diff)} (output scale {_fmt(scale)}){extra}",
            )

    earlier = fold_cache.get(model_id)
    if earlier is None:
        fold_cache[model_id] = (_run_stage(case, "fold", fold, totals)[1], mode)
    else:  # the fold input does not depend on the mode: reuse the first case's result
        _event(event="stage-start", model=model_id, mode=mode, stage="fold", status=None)
        reused = dict(earlier[0], seconds=0.0)
        reused["reason"] = reused["reason"] or (
            f"same as the {earlier[1]} case: fold always runs on a fresh copy of the model in eval mode"
        )
        case["stages"].append(reused)
        _event(event="stage-end", model=model_id, mode=mode, stage="fold", status=reused["status"])
    return case


# --- main ---------------------------------------------------------------------------------------------------------


def _parse_args(argv):
    """--models a,b and --modes train,eval (also --x=y); problems are reported, never fatal."""
    models, modes, notes = list(MODEL_IDS), list(MODES), []
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, value = arg, None
        if "=" in arg and arg.startswith("--"):
            name, value = arg.split("=", 1)
        if name in ("--models", "--modes"):
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
    return models, modes, notes


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
    models, modes, notes = _parse_args(argv)
    timings = {}
    versions = {"python": platform.python_version()}
    for key, names in (
        ("torch", ("torch",)),
        ("aimet-torch", ("aimet-torch", "aimet_torch", "aimettorch")),
        ("numpy", ("numpy",)),
        ("torchvision", ("torchvision",)),
    ):
        found = _dist_version(*names)
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
    try:
        torch, api = _import_stack(result, timings)
        if torch is None:
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
    except KeyboardInterrupt:
        result["probe_error"] = {"type": "KeyboardInterrupt", "message": "interrupted", "frames": []}
    except BaseException as exc:
        result["probe_error"] = _error(exc)
    return result


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
