"""A small conv net whose BatchNorms are mmengine `_BatchNormXd`, as a qatdoctor `--model` factory (CPU).

This is what any SyncBN model becomes under mmengine's Runner on one device: BatchNorm2d ->
`nn.SyncBatchNorm.convert_sync_batchnorm` -> `mmengine.model.revert_sync_batchnorm` leaves
`mmengine.model.utils._BatchNormXd`, a BatchNorm subclass defined outside torch.nn. Input 2x3x32x32.

    qatdoctor check --model examples/models/mmengine_syncbn.py:build
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (2, 3, 32, 32)
SEED = 0


def _block(cin: int, cout: int, stride: int, act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), act())


def build() -> tuple[nn.Module, torch.Tensor]:
    """Four Conv-BN-act blocks (ReLU and SiLU) and a linear classifier; 4 `_BatchNormXd`."""
    from mmengine.model import revert_sync_batchnorm

    torch.manual_seed(SEED)
    model = nn.Sequential(
        _block(3, 16, 1, nn.ReLU),
        _block(16, 32, 2, nn.SiLU),
        _block(32, 32, 1, nn.ReLU),
        _block(32, 64, 2, nn.SiLU),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    model = revert_sync_batchnorm(nn.SyncBatchNorm.convert_sync_batchnorm(model))
    return model, torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(SEED))
