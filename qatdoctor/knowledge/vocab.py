"""The matrix's fixed vocabulary and its problem type, importable without the schema machinery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The fact names, defined once. The target scripts (environment/_collector.py, environment/_probe.py) cannot import
# qatdoctor and keep their own copy; tests/environment/test_facts.py keeps it equal to this one.
# The packages the collector reads (each is a fact); mmcv-lite provides the mmcv package.
PACKAGES = (
    "aimet-torch", "aimet-common", "aimet-onnx", "torch", "torchvision", "numpy", "onnx", "mmengine", "mmcv",
    "mmcv-lite", "timm",
)  # fmt: skip
LIBRARIES = ("liblapacke.so.3", "libcublas.so.12")  # the system libraries checked, as `lib:<soname>` facts
PLATFORM_FACTS = ("python", "cuda", "driver", "glibc")
GPU = "gpu"  # the GPUs are a fact of their own (Facts.gpus), `--assume gpu=CC`
# What a version fix's whole set pins: a fix that moves one of these installs all of them together.
SET_PACKAGES = ("aimet-torch", "torch", "torchvision", "numpy")
# What names one measured environment (an evidence cell).
CELL_FACTS = (*SET_PACKAGES, "python")

# Facts a rule's `when` may test, and what kind of value each takes.
VERSION_FACTS = (*(name for name in PACKAGES if name != "mmcv-lite"), *PLATFORM_FACTS)
CHOICE_FACTS: Mapping[str, tuple[str, ...]] = {"aimet-api": ("v1", "v2")}
LIBRARY_PREFIX = "lib:"
LIBRARY_FACTS = tuple(f"{LIBRARY_PREFIX}{soname}" for soname in LIBRARIES)
PRESENCE = ("present", "absent")
CONDITION_FACTS = (*VERSION_FACTS, *CHOICE_FACTS, *LIBRARY_FACTS)
# The order a facts table shows them in (the rest follow, sorted); `platform` and `os` are the collector's.
FACT_ORDER = (
    "python", "platform", "os", "glibc", "aimet-torch", *CHOICE_FACTS, "torch", "cuda", "torchvision", "numpy",
    "onnx", "mmengine", "mmcv", "timm", "aimet-onnx", "driver", *LIBRARY_FACTS,
)  # fmt: skip

SOURCES_FIELD = "sources"

@dataclass(frozen=True)
class Problem:
    """One schema or lint problem, located in the file."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
