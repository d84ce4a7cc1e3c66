"""A stem with a BatchNorm subclass defined outside torch.nn (a replica of mmengine's _BatchNormXd) and SiLU, and a
head with a plain Conv2d -> BatchNorm2d -> ReLU (the #3152 construct next to a layer AIMET handles)."""

import torch
from torch import nn


class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
    """Replica of mmengine.model.utils._BatchNormXd (what revert_sync_batchnorm turns SyncBN into)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        return


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = _BatchNormXd(6)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential()
        self.backbone.add_module("stem", Stem())
        self.head = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build() -> tuple[nn.Module, torch.Tensor]:
    return Net(), torch.randn(2, 3, 8, 8)


def build_module_only() -> nn.Module:
    """No example input: the probe needs --input-shape."""
    return Net()
