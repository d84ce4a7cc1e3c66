"""Inputs and outputs that are not one tensor: a dict in / dict out model, and a tuple-of-lists out model."""

import torch
from torch import nn


class DictNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(4, 3)

    def forward(self, image: torch.Tensor, extra: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.bn(self.conv(image)))
        return {"features": features, "logits": self.fc(extra)}


class ListsNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.cls = nn.Conv2d(6, 2, 1)
        self.reg = nn.Conv2d(6, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        y = torch.relu(self.bn(self.conv(x)))
        small = torch.nn.functional.avg_pool2d(y, 2)
        return [self.cls(y), self.cls(small)], [self.reg(y), self.reg(small)]


def build_dict() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    return DictNet(), {"extra": torch.randn(2, 4), "image": torch.randn(2, 3, 8, 8)}


def build_lists() -> tuple[nn.Module, torch.Tensor]:
    return ListsNet(), torch.randn(2, 3, 8, 8)
