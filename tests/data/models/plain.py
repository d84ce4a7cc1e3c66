"""Conv2d -> BatchNorm2d -> ReLU, twice: nothing the construct scan should find, and every stage should pass."""

import torch
from torch import nn


def build() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
    )


def build_with_input() -> tuple[nn.Module, torch.Tensor]:
    return build(), torch.randn(2, 3, 8, 8)
