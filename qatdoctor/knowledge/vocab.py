"""The matrix's fixed vocabulary and its problem type, importable without the schema machinery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Facts a rule's `when` may test, and what kind of value each takes.
VERSION_FACTS = (
    "aimet-torch", "aimet-common", "aimet-onnx", "torch", "torchvision", "numpy", "onnx",
    "mmengine", "mmcv", "timm", "python", "cuda", "driver", "glibc",
)  # fmt: skip
CHOICE_FACTS: Mapping[str, tuple[str, ...]] = {"aimet-api": ("v1", "v2")}
LIBRARY_FACTS = ("lib:liblapacke.so.3", "lib:libcublas.so.12")
PRESENCE = ("present", "absent")
CONDITION_FACTS = (*VERSION_FACTS, *CHOICE_FACTS, *LIBRARY_FACTS)

SOURCES_FIELD = "sources"

# What a version fix's whole set pins: a fix that moves one of these installs all of them together.
SET_PACKAGES = ("aimet-torch", "torch", "torchvision", "numpy")

# The live probe's models, stages and silent checks (qatdoctor/target/_probe.py), which rules may name.
PROBE_MODELS = (
    "baseline", "bn_subclass", "functional_bn", "functional_bn_nostats", "bn_no_stats", "conv_silu", "shared_conv",
)  # fmt: skip
# `fold_prepared` (fold of the prepared model) runs on the user's model (--model) only.
PROBE_STAGES = ("import", "prepare", "quantsim", "compute_encodings", "qat_step", "fold", "fold_prepared")
# The construct detectors `_probe.py` implements for `--model`; the constructs themselves are [[construct]] data.
DETECTOR_KINDS = ("module-subclass", "module-class", "module-attr", "function-call", "shared-module", "eval-in-train")
PROBE_CHECKS = ("training_false_baked", "train_output_mismatch", "bn_stats_frozen", "not_folded", "fold_output_changed")


@dataclass(frozen=True)
class Problem:
    """One schema or lint problem, located in the file."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
