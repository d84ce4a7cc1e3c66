"""torchvision classifiers as qatdoctor `--model` factories: random weights, input 2x3x160x160, CPU.

qatdoctor check --model examples/models/torchvision_models.py:resnet18
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

INPUT_SHAPE = (2, 3, 160, 160)
SEED = 0


def _with_input(model: nn.Module) -> tuple[nn.Module, torch.Tensor]:
    return model, torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(SEED))


def resnet18() -> tuple[nn.Module, torch.Tensor]:
    """ResNet-18: Conv-BN-ReLU blocks with residual adds (20 BatchNorm2d)."""
    torch.manual_seed(SEED)
    return _with_input(torchvision.models.resnet18(weights=None))


def mobilenet_v3_small() -> tuple[nn.Module, torch.Tensor]:
    """MobileNetV3-Small: depthwise convs, Hardswish, squeeze-excitation (34 BatchNorm2d)."""
    torch.manual_seed(SEED)
    return _with_input(torchvision.models.mobilenet_v3_small(weights=None))
