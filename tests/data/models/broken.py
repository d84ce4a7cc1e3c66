"""Factories that fail in every way the probe reports as data."""

import torch
from torch import nn

NOT_CALLABLE = 42


def raises() -> nn.Module:
    raise ValueError("cannot build the model without its config")


def not_a_module() -> dict[str, int]:
    return {"layers": 3}


def no_input() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def wrong_input() -> tuple[nn.Module, torch.Tensor]:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), torch.randn(2, 5, 8, 8)


def odd_input() -> tuple[nn.Module, object]:
    return nn.Sequential(nn.Conv2d(3, 4, 3)), object()
