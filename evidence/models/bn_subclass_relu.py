"""SiLU-free stand-in for a BatchNorm subclass from outside torch.nn, as a qatdoctor `--model` factory.

The probe's own `bn_subclass` stand-in ends in SiLU, so on aimet-torch 2.0-2.9 (whose v2 QuantSim fails on any
prepared SiLU) it stops at QuantSim and never reaches the QAT step. This model has the same `_BatchNormXd`
replica followed by ReLU, plus a plain `nn.BatchNorm2d` block as the control, so the QAT step is reached on every
release and the freeze (or its absence) is measured directly. Input 2x3x16x16; torch only (Python 3.8+).

    qatdoctor probe --python ENV/bin/python --model evidence/models/bn_subclass_relu.py:build
"""

import torch
from torch import nn

SEED = 0


class _BatchNormXd(nn.modules.batchnorm._BatchNorm):
    """Replica of mmengine.model.utils._BatchNormXd (what revert_sync_batchnorm turns SyncBN into)."""

    def _check_input_dim(self, input):
        return


def build():
    """conv -> _BatchNormXd -> ReLU, then conv -> nn.BatchNorm2d -> ReLU (the control)."""
    torch.manual_seed(SEED)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        _BatchNormXd(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
    )
    return model, torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(SEED))
