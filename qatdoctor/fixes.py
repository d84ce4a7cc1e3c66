"""Make a model safe for AIMET's ``prepare_model()`` before quantization-aware training.

Use it in the environment you train in (it needs only torch), after loading weights and before AIMET::

    from qatdoctor import fixes
    model = fixes.make_qat_safe(model, example_input)   # then aimet_torch prepare_model(model), QuantSim, QAT

Why (qualcomm/aimet#3152): ``prepare_model()`` traces with torch.fx *into* every BatchNorm subclass whose class is
not defined in ``torch.nn`` -- mmengine's ``_BatchNormXd`` (what SyncBN becomes on one GPU via
``revert_sync_batchnorm``), timm's ``BatchNormAct2d`` -- and bakes ``training=False`` into a functional batch_norm.
On aimet-torch 1.x the first QAT step then raises ``'native_batch_norm' is not differentiable with respect to
argument 'running_mean'``; on 2.x the BN statistics silently stop updating. mmcv's ``efficient_conv_bn_eval``
makes ``prepare_model()`` drop the BN layers altogether. The fixes here swap each such layer for a plain
``torch.nn.BatchNorm1d/2d/3d`` sharing the same parameters and buffers (a norm+activation layer becomes
``nn.Sequential(bn, drop, act)``) and switch ``efficient_conv_bn_eval`` off. Measured on the real RTMDet-tiny
(76 ``_BatchNormXd``): after the swap 152/152 running stats update in the QAT step on aimet-torch 1.32.2 and on
2.42.0, where without it 1.32.2 raises and 2.42.0 updates 0/152.

Every swap is checked: with ``example_input`` each layer's old and new output are compared on the input it
really receives (eval mode, and train mode on copies), and the whole model's eval output before vs after;
a swap that changes the function is refused, and a whole-model change reverts every swap. Without
``example_input`` only layers that are safe by construction are swapped. A norm+activation layer's state_dict
keys gain a ``bn.`` level, so load checkpoints before calling this.

This file imports nothing from qatdoctor (qatdoctor's probe loads it by file path) and runs on Python 3.8+ with
torch 1.13 or newer.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "apply_fixes",
    "disable_efficient_conv_bn_eval",
    "find_bn_subclasses",
    "make_qat_safe",
    "swap_bn_subclasses",
]

RTOL = 1e-5
_FX_LEAF_PREFIXES = ("torch.nn", "torch.ao.nn")  # torch.fx's default leaf modules: these are not traced into
_ACT_CHILDREN = ("drop", "act")  # timm norm_act: forward is batch_norm -> self.drop -> self.act
_BN_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_BN_BY_NDIM = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}  # input rank -> class
_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


# --- public API ----------------------------------------------------------------------------------------------


def make_qat_safe(model: nn.Module, example_input: Any = None) -> nn.Module:
    """Apply every fix in place and return the model; layers left unchanged are reported in one warning."""
    report = apply_fixes(model, example_input)
    problems = [f"{r['layer']} ({r['class']}): {r['reason']}" for r in report["refused"]]
    if problems:
        warnings.warn(
            f"qatdoctor.fixes left {len(problems)} BatchNorm layer(s) unchanged; prepare_model() will bake "
            "training=False into them: " + "; ".join(problems),
            UserWarning,
            stacklevel=2,
        )
    return model


def apply_fixes(model: nn.Module, example_input: Any = None) -> dict[str, Any]:
    """Apply every fix in place; return a JSON-serialisable report.

    Keys: ``swapped``, ``refused`` and ``output_check`` (see :func:`swap_bn_subclasses`) and
    ``efficient_conv_bn_eval_off`` (see :func:`disable_efficient_conv_bn_eval`).
    """
    turned_off = disable_efficient_conv_bn_eval(model)
    report = swap_bn_subclasses(model, example_input)
    report["efficient_conv_bn_eval_off"] = turned_off
    return report


def find_bn_subclasses(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """BatchNorm layers whose class is defined outside ``torch.nn``/``torch.ao.nn`` (torch.fx traces into them)."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm) and not type(module).__module__.startswith(_FX_LEAF_PREFIXES)
    ]


def disable_efficient_conv_bn_eval(model: nn.Module) -> list[str]:
    """Switch mmcv's ``efficient_conv_bn_eval`` off (prepare_model drops the BN it fuses); return the layer names.

    Duck-typed on mmcv's ``ConvModule``: a module with ``turn_on_efficient_conv_bn_eval`` whose
    ``efficient_conv_bn_eval_forward`` is set.
    """
    names = []
    for name, module in model.named_modules():
        switch = getattr(module, "turn_on_efficient_conv_bn_eval", None)
        if not callable(switch) or getattr(module, "efficient_conv_bn_eval_forward", None) is None:
            continue
        switch(False)
        if getattr(module, "efficient_conv_bn_eval_forward", None) is not None:
            module.efficient_conv_bn_eval_forward = None
        names.append(name)
    return names


def swap_bn_subclasses(model: nn.Module, example_input: Any = None) -> dict[str, Any]:
    """Replace each BatchNorm subclass from :func:`find_bn_subclasses` with a plain torch.nn BatchNorm, in place.

    The new layer shares the old one's parameters and buffers (same tensors, device, dtype, requires_grad) and
    training flag. ``example_input`` (a tensor, a tuple/list of positional inputs, or a dict of keyword inputs)
    is run once in eval mode under no_grad to see each layer's input; each swap is then measured (old vs new
    output, eval mode, and train mode on copies) and refused beyond ``RTOL * max(1, output scale)``, and the
    whole model's eval output is compared before vs after (all swaps are reverted if it changed). Returns
    ``{"swapped": [...], "refused": [...], "output_check": {...}}``.
    """
    candidates = find_bn_subclasses(model)
    swapped: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    if not candidates:
        return {
            "swapped": swapped,
            "refused": refused,
            "output_check": _check("skipped", reason="no BatchNorm subclass"),
        }

    seen = _Observed()
    before: Any = None
    if example_input is not None:
        before = _observe(model, example_input, [m for _, m in candidates], seen)

    done: list[tuple[nn.Module, nn.Module]] = []  # (old, new)
    for name, old in candidates:
        entry = {"layer": name, "class": _qualname(type(old))}
        if old is model:
            refused.append(dict(entry, reason="the model itself is the layer; wrap it in a container module"))
            continue
        try:
            new, verified = _plan(old, seen.get(old), example_input is not None)
        except _Refusal as refusal:
            refused.append(dict(entry, reason=str(refusal)))
            continue
        _replace(model, old, new)
        done.append((old, new))
        swapped.append({"layer": name, "from": entry["class"], "to": _describe(new), "verified": verified})

    if example_input is None:
        check = _check("skipped", reason="no example_input: only layers safe by construction were swapped")
    elif not done:
        check = _check("skipped", reason="no layer swapped")
    else:
        check = _compare_model(model, example_input, before)
    if check["status"] == "fail":
        for old, new in done:
            _replace(model, new, old)
        for item in swapped:
            refused.append({"layer": item["layer"], "class": item["from"], "reason": f"reverted: {check['reason']}"})
        swapped = []
    return {"swapped": swapped, "refused": refused, "output_check": check}


# --- observing the example forward ---------------------------------------------------------------------------


class _Observed:
    """What one eval forward of the example saw: each candidate's first input, its input ranks, child order."""

    def __init__(self) -> None:
        self.inputs: dict[int, torch.Tensor] = {}
        self.ndims: dict[int, set[int]] = {}
        self.child_order: dict[int, list[str]] = {}

    def get(self, module: nn.Module) -> tuple[torch.Tensor | None, set[int], list[str]]:
        key = id(module)
        return self.inputs.get(key), self.ndims.get(key, set()), self.child_order.get(key, [])


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, dict):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def _observe(model: nn.Module, example_input: Any, layers: list[nn.Module], seen: _Observed) -> Any:
    """One eval-mode, no_grad forward recording each layer's input; training flags and hooks are restored."""
    handles = []

    def on_layer(module: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor):
            seen.ndims.setdefault(id(module), set()).add(args[0].dim())
            if id(module) not in seen.inputs:
                seen.inputs[id(module)] = args[0].detach()  # old vs new are both run on it later

    def on_child(owner: nn.Module, child_name: str) -> Any:
        def hook(_module: nn.Module, _args: tuple[Any, ...]) -> None:
            order = seen.child_order.setdefault(id(owner), [])
            if child_name not in order:
                order.append(child_name)

        return hook

    try:
        for layer in layers:
            handles.append(layer.register_forward_pre_hook(on_layer))
            for child_name, child in layer.named_children():
                handles.append(child.register_forward_pre_hook(on_child(layer, child_name)))
        return _eval_forward(model, example_input)
    finally:
        for handle in handles:
            handle.remove()


def _eval_forward(model: nn.Module, example_input: Any) -> Any:
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            return _call(model, example_input)
    finally:
        for module, flag in flags:
            module.training = flag


# --- planning one swap ---------------------------------------------------------------------------------------


class _Refusal(Exception):
    pass


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _from_torch(module: nn.Module, attr: str) -> bool:
    """Whether ``attr`` (e.g. forward) resolves to torch.nn's own definition, not one of a subclass."""
    if attr in vars(module):
        return False
    for cls in type(module).__mro__:
        if attr in vars(cls):
            return cls.__module__.startswith("torch.nn")
    return True


def _default_class(module: nn.Module) -> type:
    """The torch BatchNorm class for a layer whose input was not seen: from its base class or name, else 2d."""
    name = type(module).__name__.lower()
    if isinstance(module, nn.SyncBatchNorm):
        return nn.SyncBatchNorm
    if isinstance(module, nn.BatchNorm1d) or name.endswith("1d"):
        return nn.BatchNorm1d
    if isinstance(module, nn.BatchNorm3d) or name.endswith("3d"):
        return nn.BatchNorm3d
    return nn.BatchNorm2d


def _build(old: nn.Module, cls: type, children: list[str]) -> nn.Module:
    """A ``cls`` sharing ``old``'s parameters and buffers, followed by ``children`` (old's) in that order."""
    kwargs = {"eps": old.eps, "momentum": old.momentum, "affine": old.affine}
    kwargs["track_running_stats"] = old.track_running_stats
    if cls is nn.SyncBatchNorm:
        kwargs["process_group"] = old.process_group
    bn = cls(old.num_features, **kwargs)
    for attr in _BN_STATE:
        if attr in old._parameters or attr in old._buffers:
            setattr(bn, attr, getattr(old, attr))
    if hasattr(old, "qconfig"):
        bn.qconfig = old.qconfig
    bn.training = old.training
    if not children:
        return bn
    parts: list[tuple[str, nn.Module]] = [("bn", bn)]
    parts.extend((name, getattr(old, name)) for name in children)
    seq = nn.Sequential(OrderedDict(parts))
    seq.training = old.training
    return seq


def _plan(
    old: nn.Module, observed: tuple[torch.Tensor | None, set[int], list[str]], ran: bool
) -> tuple[nn.Module, str]:
    """The replacement for ``old`` and how it was verified; raises _Refusal with the reason otherwise."""
    x, ndims, order = observed
    hooks = [h for h in _HOOKS if getattr(old, h, None)]
    if hooks:
        raise _Refusal(f"has hooks registered on it ({', '.join(hooks)}) that a new module would lose")
    extra = sorted((set(old._parameters) | set(old._buffers)) - set(_BN_STATE))
    if extra:
        raise _Refusal(f"carries state torch BatchNorm has not: {', '.join(extra)}")
    if old.momentum is not None and not isinstance(old.momentum, (int, float)):
        raise _Refusal(f"momentum {old.momentum!r} is not a number")

    own_forward = not (_from_torch(old, "forward") and _from_torch(old, "__call__"))
    kids = dict(old.named_children())
    children: list[str] = []
    if kids:
        unknown = sorted(set(kids) - set(_ACT_CHILDREN))
        if unknown or not own_forward:
            raise _Refusal(f"has child modules ({', '.join(sorted(kids))}) a torch BatchNorm would drop")
        for name in order:
            if name in kids and type(kids[name]) is not nn.Identity:
                children.append(name)
        missing = [n for n in kids if n not in order and type(kids[n]) is not nn.Identity]
        if missing and x is not None:
            raise _Refusal(f"child module(s) {', '.join(missing)} never ran in its forward")

    if x is None:
        if own_forward or kids:
            reason = "overrides forward" if own_forward else "has child modules"
            why = "the example forward never called it" if ran else "no example_input was given"
            raise _Refusal(f"not verified: {reason}, and {why}")
        return _build(old, _default_class(old), []), "by construction (forward and state are torch's)"

    if isinstance(old, nn.SyncBatchNorm):  # e.g. timm SyncBatchNormAct: keep the cross-device statistics
        cls: type = nn.SyncBatchNorm
    else:
        classes = {_BN_BY_NDIM.get(n) for n in ndims}
        if None in classes:
            raise _Refusal(f"called with {sorted(ndims)}-D input; no torch BatchNorm takes that")
        if len(classes) > 1:
            raise _Refusal(f"called with inputs of different ranks {sorted(ndims)}")
        cls = classes.pop()
    new = _build(old, cls, children)
    train = _verify(old, new, x)
    if train is not None and own_forward:
        raise _Refusal(f"not verified in train mode: {train}")
    return new, "measured (eval, train)" if train is None else f"measured (eval; train mode not run: {train})"


# --- measuring -----------------------------------------------------------------------------------------------


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    if not (a.is_floating_point() or a.is_complex()):
        return 0.0 if torch.equal(a, b) else math.inf
    a64, b64 = a.detach().double(), b.detach().double()
    same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
    diff = torch.where(same, torch.zeros_like(a64), (a64 - b64).abs())
    diff = torch.nan_to_num(diff, nan=math.inf)
    return float(diff.max())


def _scale(t: torch.Tensor) -> float:
    if t.numel() == 0 or not t.is_floating_point():
        return 0.0
    finite = t.detach()[torch.isfinite(t.detach())]
    return float(finite.abs().max()) if finite.numel() else 0.0


def _rtol(dtype: torch.dtype) -> float:
    """RTOL, or a few ulps for dtypes coarser than that (float16, bfloat16)."""
    return max(RTOL, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else RTOL


def _tolerance(scale: float, dtype: torch.dtype) -> float:
    return _rtol(dtype) * max(1.0, scale)


def _verify(old: nn.Module, new: nn.Module, x: torch.Tensor) -> str | None:
    """Refuse unless new(x) == old(x) in eval mode and, on copies, in train mode (outputs and running stats).

    Returns None, or why train mode could not be compared.
    """
    flags = [(m, m.training) for m in (*old.modules(), *new.modules())]
    try:
        old.eval()
        new.eval()
        with torch.no_grad():
            y_old, y_new = old(x.clone()), new(x.clone())
    except Exception as exc:
        raise _Refusal(f"eval forward on its example input raised {type(exc).__name__}: {exc}") from exc
    finally:
        for module, flag in flags:
            module.training = flag
    _within("eval", y_old, y_new)

    bn = new[0] if isinstance(new, nn.Sequential) else new
    if isinstance(bn, nn.SyncBatchNorm) and _distributed():
        return "torch.distributed is initialized: a SyncBatchNorm train forward would need every rank"
    try:
        old_a, old_b = copy.deepcopy(old), copy.deepcopy(old)  # train mode updates statistics: run on copies
    except Exception as exc:
        raise _Refusal(f"could not copy it to check train mode: {type(exc).__name__}: {exc}") from exc
    names = [n for n, _ in new.named_children()][1:] if isinstance(new, nn.Sequential) else []
    new_b = _build(old_b, type(bn), names)
    results: list[Any] = []
    for module in (old_a, new_b):
        module.train()
        try:
            results.append(_seeded(module, x))
        except Exception as exc:
            results.append(exc)
    if isinstance(results[0], Exception) and isinstance(results[1], Exception):
        return f"both raised {type(results[0]).__name__}: {results[0]}"  # e.g. one value per channel
    if isinstance(results[0], Exception) or isinstance(results[1], Exception):
        bad = results[0] if isinstance(results[0], Exception) else results[1]
        raise _Refusal(f"train-mode forward differs: one raised {type(bad).__name__}: {bad}")
    _within("train", results[0], results[1])
    bn_b = new_b[0] if isinstance(new_b, nn.Sequential) else new_b
    for attr in ("running_mean", "running_var", "num_batches_tracked"):
        a, b = getattr(old_a, attr, None), getattr(bn_b, attr, None)
        if (a is None) != (b is None) or (a is not None and _max_abs_diff(a, b) > _tolerance(_scale(a), a.dtype)):
            raise _Refusal(f"train-mode {attr} update differs")
    return None


def _distributed() -> bool:
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return bool(dist.is_available() and dist.is_initialized())


def _seeded(module: nn.Module, x: torch.Tensor) -> Any:
    """module(x) under no_grad with the RNG of x's device seeded (same dropout masks), the RNG state restored."""
    devices = [x.device.index if x.device.index is not None else torch.cuda.current_device()] if x.is_cuda else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(0)
        if x.is_cuda:
            with torch.cuda.device(devices[0]):
                torch.cuda.manual_seed(0)
        return module(x.clone())


def _within(mode: str, y_old: Any, y_new: Any) -> None:
    if not isinstance(y_old, torch.Tensor) or not isinstance(y_new, torch.Tensor):
        raise _Refusal(f"{mode}-mode output is not a tensor")
    scale = _scale(y_old)
    diff = _max_abs_diff(y_old, y_new)
    tol = _tolerance(scale, y_old.dtype)
    if not diff <= tol:
        raise _Refusal(
            f"the swap changes its {mode}-mode output: max|Δ| = {diff:.3g} at output scale {scale:.3g} "
            f"(tolerance {tol:.3g})"
        )


def _flatten(out: Any, path: str, leaves: list[tuple[str, Any]]) -> None:
    if isinstance(out, torch.Tensor):
        leaves.append((path, out))
    elif isinstance(out, dict):
        for key, value in out.items():
            _flatten(value, f"{path}[{key!r}]", leaves)
    elif isinstance(out, (tuple, list)):
        for i, value in enumerate(out):
            _flatten(value, f"{path}[{i}]", leaves)
    elif out is None or isinstance(out, (bool, int, float, str)):
        leaves.append((path, out))
    else:
        leaves.append((path, _Opaque()))


class _Opaque:
    """A leaf of the output that is neither a tensor nor a plain value: not compared."""


def _check(
    status: str, diff: float | None = None, scale: float | None = None, reason: str | None = None
) -> dict[str, Any]:
    def clean(value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None

    return {"status": status, "max_abs_diff": clean(diff), "output_scale": clean(scale), "reason": reason}


def _compare_model(model: nn.Module, example_input: Any, before: Any) -> dict[str, Any]:
    try:
        after = _eval_forward(model, example_input)
    except Exception as exc:
        return _check("fail", reason=f"the model's forward raised after the swap: {type(exc).__name__}: {exc}")
    old_leaves: list[tuple[str, Any]] = []
    new_leaves: list[tuple[str, Any]] = []
    _flatten(before, "output", old_leaves)
    _flatten(after, "output", new_leaves)
    if [p for p, _ in old_leaves] != [p for p, _ in new_leaves]:
        return _check("fail", reason="the model's output structure changed")
    diff, scale, tol, tensors = 0.0, 0.0, 0.0, 0
    for (path, a), (_, b) in zip(old_leaves, new_leaves):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            tensors += 1
            scale = max(scale, _scale(a))
            diff = max(diff, _max_abs_diff(a, b))
            tol = max(tol, _rtol(a.dtype))
        elif isinstance(a, _Opaque) and isinstance(b, _Opaque):
            continue
        elif type(a) is not type(b) or a != b:
            return _check("fail", reason=f"the model's output changed at {path}")
    if not tensors:
        return _check("skipped", reason="the model's output holds no tensor")
    limit = tol * max(1.0, scale)
    if not diff <= limit:
        return _check(
            "fail",
            diff,
            scale,
            f"the model's eval output changed: max|Δ| = {diff:.3g} at output scale {scale:.3g} (tolerance {limit:.3g})",
        )
    return _check("pass", diff, scale)


# --- editing the model ---------------------------------------------------------------------------------------


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    """Put ``new`` everywhere ``old`` is registered (a layer shared by several parents is replaced in all)."""
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is old:
                parent._modules[name] = new


def _describe(module: nn.Module) -> str:
    if isinstance(module, nn.Sequential):
        inner = ", ".join(f"{name}={type(child).__name__}" for name, child in module.named_children())
        return f"torch.nn.Sequential({inner})"
    return f"torch.nn.{type(module).__name__}"
