"""timm models whose norm layers are timm's `BatchNormAct2d` (BN + activation in one BatchNorm2d subclass
with its own forward), as qatdoctor `--model` factories. Random weights (pretrained=False), CPU.

    qatdoctor check --model examples/models/timm_models.py:efficientnet_b0
"""

from __future__ import annotations

import timm
import torch
from torch import nn

SEED = 0


def _with_input(model: nn.Module, shape: tuple[int, ...]) -> tuple[nn.Module, torch.Tensor]:
    return model, torch.randn(shape, generator=torch.Generator().manual_seed(SEED))


def efficientnet_b0() -> tuple[nn.Module, torch.Tensor]:
    """EfficientNet-B0: 49 BatchNormAct2d (SiLU), depthwise convs, squeeze-excitation; input 1x3x128x128."""
    torch.manual_seed(SEED)
    return _with_input(timm.create_model("efficientnet_b0", pretrained=False), (1, 3, 128, 128))


def mobilenetv3_small_050() -> tuple[nn.Module, torch.Tensor]:
    """A smaller one: MobileNetV3-Small 0.5x, BatchNormAct2d with Hardswish/ReLU; input 2x3x96x96."""
    torch.manual_seed(SEED)
    return _with_input(timm.create_model("mobilenetv3_small_050", pretrained=False), (2, 3, 96, 96))


build = efficientnet_b0
