"""RTMDet SepBN-head-like sharing: head.shared (one Conv2d) is called for two levels, each level with its own
BatchNorm2d; head.proj is also called twice but feeds no BatchNorm; the ReLU is shared too (not a conv)."""

import torch
import torch.nn.functional as F
from torch import nn


class Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Conv2d(6, 6, 3, padding=1)
        self.bn_levels = nn.ModuleList([nn.BatchNorm2d(6), nn.BatchNorm2d(6)])
        self.proj = nn.Conv2d(6, 2, 1)
        self.act = nn.ReLU()

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for index, bn in enumerate(self.bn_levels):
            outs.append(self.proj(self.act(bn(self.shared(levels[index])))))
        return outs


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.head = Head()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        outs = self.head([y, F.avg_pool2d(y, 2)])
        return torch.cat([o.flatten(1) for o in outs], 1)


def build() -> tuple[nn.Module, torch.Tensor]:
    return Net(), torch.randn(2, 3, 8, 8)
