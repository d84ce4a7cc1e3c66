"""`qatdoctor/fixes.py`, the model fixes users run before AIMET's prepare_model(): its imports (no qatdoctor, torch
only, Python 3.8 syntax) and what it does to real models in the reference environments' torch (2.2.2 and 2.14.1).

The checks run as one script per environment (a torch import is seconds), loading the module by file path the way
qatdoctor's probe does, and print one JSON object; the tests read it, one row per behaviour.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import reference_python

ROOT = Path(__file__).resolve().parents[1]
FIXES = ROOT / "qatdoctor" / "fixes.py"
PYTHON38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
ENVS = ("aimet-1.32.2", "aimet-2.42.0")
MODEL_ENVS = ("aimet-1.32.2-models", "aimet-2.42.0-models")

# Runs in the reference interpreter: argv = [path of fixes.py, "aimet" or "no-aimet"]. Prints one JSON object.
CORE_SCRIPT = r"""
import copy, importlib.util, json, sys, traceback, warnings
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

spec = importlib.util.spec_from_file_location("qatdoctor_fixes", sys.argv[1])
fixes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixes)
torch.manual_seed(0)
RESULTS = {"torch": torch.__version__}


def case(fn):
    try:
        RESULTS[fn.__name__] = fn()
    except Exception:
        RESULTS[fn.__name__] = {"error": traceback.format_exc()}
    return fn


class XdBN(nn.modules.batchnorm._BatchNorm):  # mmengine.model.utils._BatchNormXd, verbatim
    def _check_input_dim(self, input):
        return


XdBN.__module__ = "mmengine.model.utils"


class XdBN1d(XdBN):
    pass


class Bn3dSub(nn.BatchNorm3d):
    pass


class BatchNormAct2d(nn.BatchNorm2d):  # timm.layers.norm_act.BatchNormAct2d: F.batch_norm -> drop -> act
    def __init__(self, num_features, act=None, drop=None, **kw):
        super().__init__(num_features, **kw)
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()

    def forward(self, x):
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        bn_training = True if self.training else (self.running_mean is None and self.running_var is None)
        x = F.batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, bn_training, factor, self.eps,
        )
        return self.act(self.drop(x))


class ActThenDrop(BatchNormAct2d):
    def forward(self, x):
        return self.drop(self.act(nn.BatchNorm2d.forward(self, x)))


class SyncBatchNormAct(nn.SyncBatchNorm):  # timm.layers.norm_act.SyncBatchNormAct, verbatim
    def forward(self, x):
        x = super().forward(x)
        if hasattr(self, "drop"):
            x = self.drop(x)
        if hasattr(self, "act"):
            x = self.act(x)
        return x


class Scaled(nn.BatchNorm2d):  # changes the math: must be refused
    def forward(self, x):
        return super().forward(x) * 1.5


class TrainOnly(nn.BatchNorm2d):  # same in eval, different in train: must be refused
    def forward(self, x):
        y = super().forward(x)
        return y * 2 if self.training else y


class WithChild(XdBN):
    def __init__(self, n):
        super().__init__(n)
        self.proj = nn.Conv2d(n, n, 1)

    def forward(self, x):
        return self.proj(super().forward(x))


class WithParam(XdBN):
    def __init__(self, n):
        super().__init__(n)
        self.gain = nn.Parameter(torch.ones(n))


def randomise(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.running_mean is not None:
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
            if m.affine:
                with torch.no_grad():
                    m.weight.uniform_(0.5, 2)
                    m.bias.uniform_(-1, 1)
    return model


def max_diff(a, b):
    if isinstance(a, torch.Tensor):
        return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0
    if isinstance(a, dict):
        return max(max_diff(a[k], b[k]) for k in a)
    return max(max_diff(x, y) for x, y in zip(a, b))


def eval_out(model, inputs, kind="tuple"):
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        out = model(**inputs) if kind == "dict" else model(*inputs)
    for m, f in flags:
        m.training = f
    return out


def layers(model):
    return {n: type(m).__module__ + "." + type(m).__qualname__ for n, m in model.named_children()}


class MultiDim(nn.Module):
    def __init__(self):
        super().__init__()
        self.c2, self.b2 = nn.Conv2d(3, 8, 3), XdBN(8)
        self.c1, self.b1 = nn.Conv1d(3, 6, 3), XdBN(6, momentum=None)
        self.lin, self.blin = nn.Linear(5, 4), XdBN1d(4, eps=1e-3)
        self.c3, self.b3 = nn.Conv3d(2, 4, 1), XdBN(4, affine=False)
        self.bnostat = XdBN(8, track_running_stats=False)

    def forward(self, img, seq, vec, vol):
        a = self.bnostat(self.b2(self.c2(img)).relu())
        return a, [self.b1(self.c1(seq)), self.blin(self.lin(vec))], {"vol": self.b3(self.c3(vol))}


MULTI_INPUTS = (torch.randn(2, 3, 8, 8), torch.randn(2, 3, 10), torch.randn(3, 5), torch.randn(2, 2, 3, 4, 4))


@case
def multidim():
    model = randomise(MultiDim())
    model.b2.weight.requires_grad_(False)
    model.eval()
    model.b1.train()  # a mixed-mode model keeps every flag
    old = {n: m for n, m in model.named_children()}
    flags = {n: m.training for n, m in model.named_modules()}
    before = eval_out(model, MULTI_INPUTS)
    report = fixes.apply_fixes(model, MULTI_INPUTS)
    after = eval_out(model, MULTI_INPUTS)
    shares = all(
        getattr(model, n)._parameters.get(p) is old[n]._parameters.get(p)
        and getattr(model, n)._buffers.get(b) is old[n]._buffers.get(b)
        for n in ("b2", "b1", "blin", "b3", "bnostat")
        for p in ("weight", "bias")
        for b in ("running_mean", "running_var", "num_batches_tracked")
    )
    bn = model.b1
    return {
        "report": report,
        "json_ok": json.dumps(report, allow_nan=False) is not None,
        "layers": layers(model),
        "max_diff": max_diff(before, after),
        "identical": all(torch.equal(x, y) for x, y in zip([before[0], *before[1], before[2]["vol"]], [after[0], *after[1], after[2]["vol"]])),
        "flags_kept": flags == {n: m.training for n, m in model.named_modules()},
        "shares_tensors": shares,
        "b2_requires_grad": model.b2.weight.requires_grad,
        "b1": [bn.momentum, bn.eps, bn.affine, bn.track_running_stats],
        "blin": [model.blin.eps, model.blin.num_features],
        "b3_affine": model.b3.affine,
        "bnostat_track": model.bnostat.track_running_stats,
    }


@case
def dtype_and_dict_input():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 1), XdBN(4)

        def forward(self, x, scale=1.0):
            return {"out": self.bn(self.conv(x)) * scale, "n": 3}

    model = randomise(Net()).double()
    inputs = {"x": torch.randn(2, 3, 5, 5, dtype=torch.float64), "scale": 2.0}
    before = eval_out(model, inputs, "dict")
    report = fixes.apply_fixes(model, inputs)
    after = eval_out(model, inputs, "dict")
    return {
        "report": report,
        "class": type(model.bn).__name__,
        "dtype": str(model.bn.running_mean.dtype),
        "weight_dtype": str(model.bn.weight.dtype),
        "identical": torch.equal(before["out"], after["out"]),
    }


@case
def train_stats_update():
    model = randomise(MultiDim())
    reference = copy.deepcopy(model)
    report = fixes.apply_fixes(model, MULTI_INPUTS)
    counts = {}
    for m in (model, reference):
        m.train()
        before = {n: (b.running_mean.clone(), int(b.num_batches_tracked)) for n, b in m.named_children() if isinstance(b, nn.modules.batchnorm._BatchNorm) and b.track_running_stats}
        m(*MULTI_INPUTS)
        after = {n: b for n, b in m.named_children() if n in before}
        counts[m is model] = {n: [not torch.equal(before[n][0], after[n].running_mean), int(after[n].num_batches_tracked) - before[n][1]] for n in before}
    same_stats = all(
        torch.equal(getattr(model, n).running_mean, getattr(reference, n).running_mean)
        and torch.equal(getattr(model, n).running_var, getattr(reference, n).running_var)
        for n in counts[True]
    )
    return {"swapped": len(report["swapped"]), "updated": counts[True], "same_as_unswapped": same_stats, "layers": layers(model)}


@case
def norm_act():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.silu = BatchNormAct2d(8, act=nn.SiLU())
            self.dropped = BatchNormAct2d(8, act=nn.ReLU(), drop=nn.Dropout(0.5))
            self.act_first = ActThenDrop(8, act=nn.Hardswish(), drop=nn.Dropout(0.2))
            self.no_act = BatchNormAct2d(8)

        def forward(self, x):
            x = self.silu(self.conv(x))
            return self.no_act(self.act_first(self.dropped(x)))

    model = randomise(Net())
    x = (torch.randn(4, 3, 9, 9),)
    acts = {n: getattr(model, n).act for n in ("silu", "dropped", "act_first")}
    reference = copy.deepcopy(model)
    before = eval_out(model, x)
    report = fixes.apply_fixes(model, x)
    after = eval_out(model, x)
    outs = []
    for m in (model, reference):  # train mode, same dropout masks
        m.train()
        with torch.random.fork_rng():
            torch.manual_seed(1)
            outs.append(m(*x))
    return {
        "report": report,
        "structure": {n: [c + ":" + type(m).__name__ for c, m in getattr(model, n).named_children()] for n in ("silu", "dropped", "act_first")},
        "no_act": type(model.no_act).__name__,
        "act_kept": all(getattr(model, n).act is a for n, a in acts.items()),
        "identical": torch.equal(before, after),
        "train_diff": max_diff(outs[0], outs[1]),
        "state_keys": sorted(model.state_dict())[:6],
    }


@case
def sync_norm_act():
    bn = SyncBatchNormAct(8)
    bn.act, bn.drop = nn.SiLU(), nn.Identity()
    model = randomise(nn.Sequential(nn.Conv2d(3, 8, 3), bn))
    x = torch.randn(4, 3, 6, 6)
    before = eval_out(model, (x,))
    report = fixes.apply_fixes(model, x)
    return {
        "report": report,
        "structure": [c + ":" + type(m).__name__ for c, m in model[1].named_children()],
        "identical": torch.equal(before, eval_out(model, (x,))),
    }


@case
def refused():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)
            self.scaled, self.train_only = Scaled(8), TrainOnly(8)
            self.child, self.param, self.hooked = WithChild(8), WithParam(8), XdBN(8)
            self.ok = XdBN(8)

        def forward(self, x):
            x = self.conv(x)
            for name in ("scaled", "train_only", "child", "param", "hooked", "ok"):
                x = getattr(self, name)(x)
            return x

    model = randomise(Net())
    model.hooked.register_forward_hook(lambda m, i, o: None)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        y = nn.BatchNorm2d.forward(model.scaled.eval(), model.conv(x))
    expected = float((y * 1.5 - y).abs().max())
    old = dict(model.named_children())
    before = eval_out(model, (x,))
    report = fixes.apply_fixes(model, x)
    return {
        "report": report,
        "expected_scaled_diff": expected,
        "unchanged": [n for n, m in model.named_children() if m is old[n]],
        "layers": layers(model),
        "identical": torch.equal(before, eval_out(model, (x,))),
    }


@case
def reverted():
    class Dispatch(nn.Module):  # code that branches on the layer's class: per-layer checks pass, the model changes
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.bn2 = nn.Conv2d(3, 4, 1), XdBN(4), XdBN(4)

        def forward(self, x):
            y = self.bn2(self.bn(self.conv(x)))
            return y * 2 if isinstance(self.bn, XdBN) else y

    model = randomise(Dispatch())
    old = (model.bn, model.bn2)
    report = fixes.apply_fixes(model, torch.randn(2, 3, 4, 4))
    return {"report": report, "restored": model.bn is old[0] and model.bn2 is old[1]}


@case
def no_example_input():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.xd, self.xd1, self.sub3 = XdBN(4), XdBN1d(4), Bn3dSub(4)
            self.normact = BatchNormAct2d(4, act=nn.ReLU())

    model = Net()
    report = fixes.apply_fixes(model)
    return {"report": report, "layers": layers(model)}


@case
def unreached():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused, self.unused_act = XdBN(4), XdBN(4), BatchNormAct2d(4, act=nn.ReLU())

        def forward(self, x):
            return self.used(x)

    model = Net()
    report = fixes.apply_fixes(model, torch.randn(2, 4, 3, 3))
    return {"report": report, "layers": layers(model)}


@case
def batch_of_one():  # train-mode BN cannot run on one value per channel: only torch's own forward may swap
    class Passthrough(XdBN):
        def forward(self, x):
            return super().forward(x)

    model = nn.Sequential(nn.Linear(3, 4), XdBN(4), Passthrough(4))
    report = fixes.apply_fixes(model, torch.randn(1, 3))
    return {"report": report, "layers": [type(m).__name__ for m in model]}


@case
def shared_layer():
    bn = randomise(nn.Sequential(XdBN(4)))[0]
    model = nn.Sequential(nn.Sequential(nn.Conv2d(4, 4, 1), bn), nn.Sequential(bn, nn.ReLU()))
    x = torch.randn(2, 4, 3, 3)
    before = eval_out(model, (x,))
    report = fixes.apply_fixes(model, x)
    return {
        "report": report,
        "same_object": model[0][1] is model[1][0],
        "class": type(model[0][1]).__name__,
        "identical": torch.equal(before, eval_out(model, (x,))),
    }


@case
def efficient_conv_bn_eval():
    class ConvModuleLike(nn.Module):  # mmcv.cnn.ConvModule's switch, verbatim in effect
        def __init__(self, on):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
            self.turn_on_efficient_conv_bn_eval(on)

        def turn_on_efficient_conv_bn_eval(self, efficient_conv_bn_eval=True):
            self.efficient_conv_bn_eval_forward = (lambda *a: None) if efficient_conv_bn_eval else None

    model = nn.Sequential(ConvModuleLike(True), ConvModuleLike(False), ConvModuleLike(True))
    report = fixes.apply_fixes(model, None)
    return {"report": report, "forwards": [m.efficient_conv_bn_eval_forward is None for m in model]}


@case
def candidates():
    model = nn.Sequential(nn.BatchNorm2d(3), nn.SyncBatchNorm(3), XdBN(3), nn.Sequential(BatchNormAct2d(3)))
    return [n for n, _ in fixes.find_bn_subclasses(model)]


@case
def make_qat_safe_warns():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), Scaled(4), XdBN(4), TrainOnly(4))
    clean = nn.Sequential(nn.Conv2d(3, 4, 1), XdBN(4))
    x = torch.randn(2, 3, 4, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        returned = fixes.make_qat_safe(model, x)
        fixes.make_qat_safe(clean, x)
    return {
        "same_object": returned is model,
        "messages": [str(w.message) for w in caught if "qatdoctor" in str(w.message)],
        "layers": [type(m).__name__ for m in model],
        "clean": [type(m).__name__ for m in clean],
    }


@case
def isolation():
    return {
        "name": fixes.__name__,
        "qatdoctor_modules": sorted(m for m in sys.modules if m == "qatdoctor" or m.startswith("qatdoctor.")),
        "public": sorted(fixes.__all__),
    }


if sys.argv[2] == "aimet":
    @case
    def aimet_prepare():
        from aimet_torch.model_preparer import prepare_model

        x = torch.randn(2, 3, 8, 8)
        out = {}
        for fix in (False, True):
            torch.manual_seed(0)
            model = randomise(nn.Sequential(nn.Conv2d(3, 8, 3), XdBN(8), nn.ReLU(), nn.Conv2d(8, 4, 1), XdBN(4)))
            if fix:
                fixes.make_qat_safe(model, x)
            bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            prepared = prepare_model(model)
            prepared.train()
            before = [b.running_mean.clone() for b in bns]
            prepared(x)
            out["fixed" if fix else "unfixed"] = {
                "graph_bn": sorted({type(m).__name__ for m in prepared.modules() if "BatchNorm" in type(m).__name__}),
                "stats_updated": sum(not torch.equal(a, b.running_mean) for a, b in zip(before, bns)),
                "n_bn": len(bns),
            }
        return out

print("@@RESULT " + json.dumps(RESULTS))
"""

# Runs in the models overlay env: real mmengine _BatchNormXd (SyncBN reverted), real mmcv ConvModule with
# efficient_conv_bn_eval, real timm BatchNormAct2d.
MODELS_SCRIPT = r"""
import copy, importlib.util, json, sys, traceback

import torch
import torch.nn as nn

spec = importlib.util.spec_from_file_location("qatdoctor_fixes", sys.argv[1])
fixes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixes)
RESULTS = {}


def case(fn):
    try:
        RESULTS[fn.__name__] = fn()
    except Exception:
        RESULTS[fn.__name__] = {"error": traceback.format_exc()}
    return fn


def randomise(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            with torch.no_grad():
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    return model


def check(model, x):
    model.eval()
    with torch.no_grad():
        before = model(x)
    reference = copy.deepcopy(model)
    classes = {type(m).__module__ + "." + type(m).__name__ for _, m in fixes.find_bn_subclasses(model)}
    report = fixes.apply_fixes(model, x)
    with torch.no_grad():
        after = model(x)
        scale = float(before.abs().max())
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    stats = [m.running_mean.clone() for m in bns]
    model.train()
    reference.train()
    torch.manual_seed(0)
    y = model(x)
    torch.manual_seed(0)
    y_ref = reference(x)
    return {
        "report": report,
        "classes": sorted(classes),
        "left": len(fixes.find_bn_subclasses(model)),
        "identical": torch.equal(before, after),
        "relative_diff": float((before - after).abs().max()) / max(1.0, scale),
        "train_diff": float((y - y_ref).abs().max()),
        "bn_total": len(bns),
        "stats_updated": sum(not torch.equal(a, m.running_mean) for a, m in zip(stats, bns)),
    }


@case
def mmengine_mmcv():
    from mmcv.cnn import ConvModule
    from mmengine.model import revert_sync_batchnorm

    sync = dict(type="SyncBN", momentum=0.03, eps=0.001)  # what RTMDet's config builds
    model = nn.Sequential(
        ConvModule(3, 8, 3, norm_cfg=sync, act_cfg=dict(type="SiLU")),
        ConvModule(8, 8, 3, norm_cfg=dict(type="BN"), act_cfg=dict(type="SiLU"), efficient_conv_bn_eval=True),
    )
    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BN -> SyncBN, as a DDP launcher does
    model = revert_sync_batchnorm(model)  # SyncBN -> _BatchNormXd, as mmengine's Runner does on one device
    model.append(ConvModule(8, 4, 1, norm_cfg=dict(type="BN"), act_cfg=dict(type="SiLU"), efficient_conv_bn_eval=True))
    model = randomise(model)
    out = check(model, torch.randn(2, 3, 12, 12))
    out["norms"] = [type(m.norm).__name__ for m in model]
    out["efficient_left"] = [m.efficient_conv_bn_eval_forward is not None for m in model]
    return out


@case
def timm_efficientnet():
    import timm
    from timm.layers.norm_act import BatchNormAct2d

    model = randomise(timm.create_model("test_efficientnet", pretrained=False))
    acts = [(type(m.act), m.act) for m in model.modules() if isinstance(m, BatchNormAct2d)]
    out = check(model, torch.randn(2, 3, 64, 64))
    out["timm"] = timm.__version__
    out["normact_before"] = len(acts)
    seqs = [m for m in model.modules() if isinstance(m, nn.Sequential) and "bn" in m._modules]
    out["acts_kept"] = sum(any(m.act is a for m in seqs if hasattr(m, "act")) for _, a in acts)
    out["act_types"] = sorted({t.__name__ for t, _ in acts})
    return out


@case
def timm_sync_batchnorm():
    import timm
    from timm.layers import convert_sync_batchnorm

    model = randomise(convert_sync_batchnorm(timm.create_model("test_efficientnet", pretrained=False)))
    out = check(model, torch.randn(2, 3, 64, 64))
    out["targets"] = sorted({r["to"] for r in out["report"]["swapped"]})
    return out


@case
def aimet_prepare_timm():  # the real timm model through the real prepare_model, without and with the fix
    import timm
    from aimet_torch.model_preparer import prepare_model

    x = torch.randn(2, 3, 64, 64)
    out = {}
    for fix in (False, True):
        model = randomise(timm.create_model("test_efficientnet", pretrained=False)).eval()
        if fix:
            fixes.make_qat_safe(model, x)
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        prepared = prepare_model(model)
        prepared.train()
        before = [b.running_mean.clone() for b in bns]
        prepared(x)
        out["fixed" if fix else "unfixed"] = [sum(not torch.equal(a, b.running_mean) for a, b in zip(before, bns)), len(bns)]
    return out


print("@@RESULT " + json.dumps(RESULTS))
"""


def _run(env: str, script: str, *args: str) -> dict[str, Any]:
    python = reference_python(env)
    proc = subprocess.run(
        [python, "-c", script, str(FIXES), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/",
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""},
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT ")]
    assert proc.returncode == 0 and lines, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    results: dict[str, Any] = json.loads(lines[-1][len("@@RESULT ") :])
    return results


@cache
def _core(env: str) -> dict[str, Any]:
    return _run(env, CORE_SCRIPT, "aimet")


def core(env: str, name: str) -> Any:
    result = _core(env)[name]
    assert not (isinstance(result, dict) and "error" in result), result.get("error")
    return result


def by_layer(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["layer"]: item for item in items}


# --- static: what the file may import, which Python it parses on ---------------------------------------------


def test_imports_only_torch_and_stdlib() -> None:
    tree = ast.parse(FIXES.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "copy", "math", "warnings", "collections", "typing", "torch"}, imported


def test_parses_on_python38(tmp_path: Path) -> None:
    if not PYTHON38.exists():
        pytest.skip(f"{PYTHON38} not present")
    proc = subprocess.run(
        [str(PYTHON38), "-m", "py_compile", str(FIXES)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


# --- the core behaviours, on torch 2.2.2 and 2.14.1 -----------------------------------------------------------

pytestmark_envs = pytest.mark.parametrize("env", ENVS)


@pytest.mark.integration
@pytestmark_envs
def test_loads_by_path_without_qatdoctor(env: str) -> None:
    got = core(env, "isolation")
    assert got == {
        "name": "qatdoctor_fixes",
        "qatdoctor_modules": [],
        "public": [
            "apply_fixes",
            "disable_efficient_conv_bn_eval",
            "find_bn_subclasses",
            "make_qat_safe",
            "swap_bn_subclasses",
        ],
    }


@pytest.mark.integration
@pytestmark_envs
def test_candidates_are_bn_classes_outside_torch_nn(env: str) -> None:
    assert core(env, "candidates") == ["2", "3.0"]  # not BatchNorm2d, not SyncBatchNorm


# (layer, class after the swap) for the multi-rank model: the rank seen in the forward decides 1d/2d/3d.
MULTIDIM = [
    ("b2", "torch.nn.modules.batchnorm.BatchNorm2d"),  # 4-D input
    ("b1", "torch.nn.modules.batchnorm.BatchNorm1d"),  # 3-D input
    ("blin", "torch.nn.modules.batchnorm.BatchNorm1d"),  # 2-D input
    ("b3", "torch.nn.modules.batchnorm.BatchNorm3d"),  # 5-D input
    ("bnostat", "torch.nn.modules.batchnorm.BatchNorm2d"),
]


@pytest.mark.integration
@pytestmark_envs
@pytest.mark.parametrize(("layer", "cls"), MULTIDIM)
def test_swap_picks_rank_from_the_forward(env: str, layer: str, cls: str) -> None:
    got = core(env, "multidim")
    assert got["layers"][layer] == cls
    row = by_layer(got["report"]["swapped"])[layer]
    assert row["from"] in {"mmengine.model.utils.XdBN", "__main__.XdBN1d"}
    assert row["to"] == "torch.nn." + cls.rsplit(".", 1)[1]
    assert row["verified"] == "measured (eval, train)"


@pytest.mark.integration
@pytestmark_envs
def test_swap_keeps_function_and_state(env: str) -> None:
    got = core(env, "multidim")
    assert got["report"]["refused"] == []
    assert got["report"]["output_check"]["status"] == "pass"
    assert got["report"]["output_check"]["max_abs_diff"] == 0.0
    assert got["json_ok"]
    assert got["identical"] and got["max_diff"] == 0.0  # tuple input, nested tuple/list/dict output
    assert got["flags_kept"]  # .training of every module, mixed modes included
    assert got["shares_tensors"]  # parameters and buffers are the same tensors
    assert got["b2_requires_grad"] is False
    assert got["b1"] == [None, 1e-5, True, True]  # momentum None kept
    assert got["blin"] == [1e-3, 4]
    assert got["b3_affine"] is False
    assert got["bnostat_track"] is False


@pytest.mark.integration
@pytestmark_envs
def test_swap_keeps_dtype_with_dict_input(env: str) -> None:
    got = core(env, "dtype_and_dict_input")
    assert got["class"] == "BatchNorm2d"
    assert got["dtype"] == got["weight_dtype"] == "torch.float64"
    assert got["identical"]
    assert got["report"]["output_check"]["status"] == "pass"  # a non-tensor leaf (3) in the output is fine


@pytest.mark.integration
@pytestmark_envs
def test_running_stats_update_after_swap(env: str) -> None:
    got = core(env, "train_stats_update")
    assert got["swapped"] == 5
    assert got["updated"] == {"b2": [True, 1], "b1": [True, 1], "blin": [True, 1], "b3": [True, 1]}
    assert got["same_as_unswapped"]  # identical train-mode statistics to the original layers


# (layer, its children after the swap): the activation is kept, in the order the forward applied it.
NORM_ACT = [
    ("silu", ["bn:BatchNorm2d", "act:SiLU"]),
    ("dropped", ["bn:BatchNorm2d", "drop:Dropout", "act:ReLU"]),
    ("act_first", ["bn:BatchNorm2d", "act:Hardswish", "drop:Dropout"]),
]


@pytest.mark.integration
@pytestmark_envs
@pytest.mark.parametrize(("layer", "children"), NORM_ACT)
def test_norm_act_becomes_sequential(env: str, layer: str, children: list[str]) -> None:
    got = core(env, "norm_act")
    assert got["structure"][layer] == children
    inner = ", ".join(c.replace(":", "=") for c in children)
    assert by_layer(got["report"]["swapped"])[layer]["to"] == f"torch.nn.Sequential({inner})"


@pytest.mark.integration
@pytestmark_envs
def test_norm_act_keeps_function(env: str) -> None:
    got = core(env, "norm_act")
    assert got["act_kept"]  # the very activation modules
    assert got["no_act"] == "BatchNorm2d"  # identity act and drop: a plain BN
    assert got["identical"]
    assert got["train_diff"] == 0.0  # train mode, same dropout masks
    assert got["report"]["refused"] == []
    assert got["report"]["output_check"]["status"] == "pass"


@pytest.mark.integration
@pytestmark_envs
def test_sync_norm_act_keeps_syncbatchnorm(env: str) -> None:
    got = core(env, "sync_norm_act")
    assert got["structure"] == ["bn:SyncBatchNorm", "act:SiLU"]  # cross-device statistics kept, activation kept
    assert [r["to"] for r in got["report"]["swapped"]] == ["torch.nn.Sequential(bn=SyncBatchNorm, act=SiLU)"]
    assert got["report"]["swapped"][0]["verified"] == "measured (eval, train)"
    assert got["identical"]


# (layer, words its refusal reason must hold)
REFUSED = [
    ("scaled", "the swap changes its eval-mode output: max|Δ| = "),
    ("train_only", "the swap changes its train-mode output: max|Δ| = "),
    ("child", "has child modules (proj)"),
    ("param", "carries state torch BatchNorm has not: gain"),
    ("hooked", "has hooks registered on it (_forward_hooks)"),
]


@pytest.mark.integration
@pytestmark_envs
@pytest.mark.parametrize(("layer", "reason"), REFUSED)
def test_refuses_swaps_that_change_the_layer(env: str, layer: str, reason: str) -> None:
    got = core(env, "refused")
    row = by_layer(got["report"]["refused"])[layer]
    assert reason in row["reason"]
    assert layer in got["unchanged"]
    assert got["identical"]


@pytest.mark.integration
@pytestmark_envs
def test_refusal_reports_the_measured_difference(env: str) -> None:
    got = core(env, "refused")
    reason = by_layer(got["report"]["refused"])["scaled"]["reason"]
    measured = float(reason.split("max|Δ| = ")[1].split()[0])
    assert measured == pytest.approx(got["expected_scaled_diff"], rel=1e-2)
    assert measured > 0.1
    assert by_layer(got["report"]["swapped"]).keys() == {"ok"}
    assert got["layers"]["ok"] == "torch.nn.modules.batchnorm.BatchNorm2d"
    assert got["layers"]["scaled"] == "__main__.Scaled"


@pytest.mark.integration
@pytestmark_envs
def test_model_output_change_reverts_every_swap(env: str) -> None:
    got = core(env, "reverted")
    report = got["report"]
    assert report["swapped"] == []
    assert report["output_check"]["status"] == "fail"
    assert report["output_check"]["max_abs_diff"] > 0
    assert {r["layer"] for r in report["refused"]} == {"bn", "bn2"}
    assert all(r["reason"].startswith("reverted: the model's eval output changed") for r in report["refused"])
    assert got["restored"]


# (layer, expected): without example_input only classes that keep torch's forward and have no children swap.
NO_INPUT = [
    ("xd", "torch.nn.BatchNorm2d"),
    ("xd1", "torch.nn.BatchNorm1d"),  # from the class name
    ("sub3", "torch.nn.BatchNorm3d"),  # from the torch base class
    ("normact", "refused"),
]


@pytest.mark.integration
@pytestmark_envs
@pytest.mark.parametrize(("layer", "expected"), NO_INPUT)
def test_without_example_input(env: str, layer: str, expected: str) -> None:
    report = core(env, "no_example_input")["report"]
    assert report["output_check"]["status"] == "skipped"
    if expected == "refused":
        assert (
            by_layer(report["refused"])[layer]["reason"]
            == "not verified: overrides forward, and no example_input was given"
        )
    else:
        row = by_layer(report["swapped"])[layer]
        assert (row["to"], row["verified"]) == (expected, "by construction (forward and state are torch's)")


@pytest.mark.integration
@pytestmark_envs
def test_layers_the_forward_never_reached(env: str) -> None:
    got = core(env, "unreached")
    report = got["report"]
    assert by_layer(report["swapped"])["used"]["verified"] == "measured (eval, train)"
    assert by_layer(report["swapped"])["unused"]["verified"].startswith("by construction")
    assert (
        by_layer(report["refused"])["unused_act"]["reason"]
        == "not verified: overrides forward, and the example forward never called it"
    )
    assert report["output_check"]["status"] == "pass"


@pytest.mark.integration
@pytestmark_envs
def test_train_mode_not_comparable(env: str) -> None:
    got = core(env, "batch_of_one")
    assert got["layers"] == ["Linear", "BatchNorm1d", "Passthrough"]
    swapped = by_layer(got["report"]["swapped"])["1"]
    assert swapped["verified"].startswith(
        "measured (eval; train mode not run: both raised ValueError: Expected more than 1 value"
    )
    refused = by_layer(got["report"]["refused"])["2"]
    assert refused["reason"].startswith("not verified in train mode: both raised ValueError")


@pytest.mark.integration
@pytestmark_envs
def test_shared_layer_replaced_everywhere(env: str) -> None:
    got = core(env, "shared_layer")
    assert (got["same_object"], got["class"], got["identical"]) == (True, "BatchNorm2d", True)
    assert [r["layer"] for r in got["report"]["swapped"]] == ["0.1"]


@pytest.mark.integration
@pytestmark_envs
def test_efficient_conv_bn_eval_switched_off(env: str) -> None:
    got = core(env, "efficient_conv_bn_eval")
    assert got["report"]["efficient_conv_bn_eval_off"] == ["0", "2"]
    assert got["forwards"] == [True, True, True]


@pytest.mark.integration
@pytestmark_envs
def test_make_qat_safe_warns_once(env: str) -> None:
    got = core(env, "make_qat_safe_warns")
    assert got["same_object"]
    assert len(got["messages"]) == 1
    assert "left 2 BatchNorm layer(s) unchanged" in got["messages"][0]
    assert "1 (__main__.Scaled)" in got["messages"][0] and "3 (__main__.TrainOnly)" in got["messages"][0]
    assert got["layers"] == ["Conv2d", "Scaled", "BatchNorm2d", "TrainOnly"]
    assert got["clean"] == ["Conv2d", "BatchNorm2d"]


@pytest.mark.integration
@pytestmark_envs
def test_aimet_prepare_keeps_bn_trainable_after_fix(env: str) -> None:
    got = core(env, "aimet_prepare")
    # Without the fix prepare_model bakes training=False: no BN module left, statistics frozen (#3152).
    assert got["unfixed"]["stats_updated"] == 0
    assert "BatchNorm2d" not in got["unfixed"]["graph_bn"]
    assert got["fixed"] == {"graph_bn": ["BatchNorm2d"], "stats_updated": 2, "n_bn": 2}


# --- real mmengine / mmcv / timm (the models overlay env) -------------------------------------------------------


@cache
def _models(env: str) -> dict[str, Any]:
    return _run(env, MODELS_SCRIPT)


def models(env: str, name: str) -> Any:
    result = _models(env)[name]
    assert "error" not in result, result.get("error")
    return result


@pytest.mark.integration
@pytest.mark.parametrize("env", MODEL_ENVS)
def test_real_mmengine_bnxd_and_mmcv_efficient_conv_bn_eval(env: str) -> None:
    got = models(env, "mmengine_mmcv")
    assert got["classes"] == ["mmengine.model.utils._BatchNormXd"]
    assert [r["to"] for r in got["report"]["swapped"]] == ["torch.nn.BatchNorm2d", "torch.nn.BatchNorm2d"]
    assert got["report"]["efficient_conv_bn_eval_off"] == ["1", "2"]
    assert got["efficient_left"] == [False, False, False]
    assert got["norms"] == ["BatchNorm2d", "BatchNorm2d", "BatchNorm2d"]
    assert got["report"]["refused"] == [] and got["left"] == 0
    assert got["report"]["output_check"]["status"] == "pass"
    # before: with efficient_conv_bn_eval's fused conv+BN on; after: off and swapped (the report's own
    # before/after check, after the switch, is exact)
    assert got["relative_diff"] < 1e-5
    assert got["report"]["output_check"]["max_abs_diff"] == 0.0
    assert got["train_diff"] == 0.0
    assert got["stats_updated"] == got["bn_total"] == 3


@pytest.mark.integration
@pytest.mark.parametrize("env", MODEL_ENVS)
def test_real_timm_sync_batchnormact(env: str) -> None:
    got = models(env, "timm_sync_batchnorm")
    assert got["classes"] == ["timm.layers.norm_act.SyncBatchNormAct"]
    assert got["targets"] == ["torch.nn.Sequential(bn=SyncBatchNorm, act=SiLU)", "torch.nn.SyncBatchNorm"]
    assert got["report"]["refused"] == [] and got["left"] == 0
    assert got["identical"] and got["train_diff"] == 0.0
    assert got["stats_updated"] == got["bn_total"] == 13


@pytest.mark.integration
@pytest.mark.parametrize("env", MODEL_ENVS)
def test_real_timm_through_aimet_prepare(env: str) -> None:
    # timm's BatchNormAct2d is traced into as well: statistics frozen after prepare_model unless swapped
    assert models(env, "aimet_prepare_timm") == {"unfixed": [0, 13], "fixed": [13, 13]}


@pytest.mark.integration
@pytest.mark.parametrize("env", MODEL_ENVS)
def test_real_timm_batchnormact(env: str) -> None:
    got = models(env, "timm_efficientnet")
    assert got["classes"] == ["timm.layers.norm_act.BatchNormAct2d"]
    assert got["normact_before"] > 3
    assert len(got["report"]["swapped"]) == got["normact_before"]
    assert got["report"]["refused"] == [] and got["left"] == 0
    assert got["acts_kept"] == sum(1 for r in got["report"]["swapped"] if "act=" in r["to"]) > 0
    assert got["report"]["output_check"]["status"] == "pass"
    assert got["identical"] and got["train_diff"] == 0.0
    assert got["stats_updated"] == got["bn_total"] == got["normact_before"]
