"""RTMDet-tiny (mmdet 3.3.0) as qatdoctor `--model` factories: backbone -> neck -> head, 1x3x320x320, CPU.

Needs `mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0` (the `aimet-*-models` envs of scripts/refenvs.py).
mmcv-lite has no compiled `mmcv._ext`, yet `mmdet.models` imports `mmcv.ops`, so a stub whose ops raise
is registered first; the backbone, neck and head never call an mmcv op (NMS only runs in `predict()`).
The detector is built the way mmengine's Runner leaves it on one device: its 76 SyncBatchNorm reverted
to mmengine's `_BatchNormXd`. No weights are downloaded (the backbone's init_cfg is dropped).

    qatdoctor check --model examples/models/rtmdet_tiny.py:build
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG = "rtmdet/rtmdet_tiny_8xb32-300e_coco.py"
INPUT_SHAPE = (1, 3, 320, 320)
SEED = 0


def _stub_mmcv_ext() -> None:
    """Register `mmcv._ext` (as mmcv-lite lacks it): every op raises; no loader, so mmengine sees no full mmcv."""
    if "mmcv._ext" in sys.modules or importlib.util.find_spec("mmcv._ext") is not None:
        return

    def missing(name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)

        def op(*args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError(f"mmcv._ext.{name}: mmcv-lite has no compiled ops")

        return op

    ext = types.ModuleType("mmcv._ext")
    ext.__getattr__ = missing  # type: ignore[method-assign]
    ext.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", None)
    sys.modules["mmcv._ext"] = ext


class RTMDetFeatures(nn.Module):
    """`bbox_head(neck(backbone(x)))` as a flat tuple: 3 class-score maps, then 3 box maps."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.neck = detector.neck
        self.bbox_head = detector.bbox_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cls_scores, bbox_preds = self.bbox_head(self.neck(self.backbone(x)))
        return (*cls_scores, *bbox_preds)


def _detector(share_conv: bool = True) -> nn.Module:
    _stub_mmcv_ext()
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm

    register_all_modules()
    cfg = Config.fromfile(str(Path(mmdet.__file__).parent / ".mim" / "configs" / CONFIG))
    cfg.model.backbone.init_cfg = None  # a Pretrained checkpoint URL otherwise
    cfg.model.bbox_head.share_conv = share_conv
    torch.manual_seed(SEED)
    return revert_sync_batchnorm(MODELS.build(cfg.model))


def _with_input(model: nn.Module) -> tuple[nn.Module, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED)
    return model, torch.randn(INPUT_SHAPE, generator=generator)


def build() -> tuple[nn.Module, torch.Tensor]:
    """RTMDet-tiny as mmdet builds it (SepBN head: one conv shared across levels, a BN per level)."""
    return _with_input(RTMDetFeatures(_detector()))


def build_efficient_conv_bn_eval() -> tuple[nn.Module, torch.Tensor]:
    """The same, with mmcv's efficient_conv_bn_eval switched on in every ConvModule."""
    from mmcv.cnn import ConvModule

    model = RTMDetFeatures(_detector())
    for module in model.modules():
        if isinstance(module, ConvModule):
            module.turn_on_efficient_conv_bn_eval()
    return _with_input(model)


def build_unshared() -> tuple[nn.Module, torch.Tensor]:
    """The same with `bbox_head.share_conv=False`: every level gets its own head convs."""
    return _with_input(RTMDetFeatures(_detector(share_conv=False)))
