"""The matrix's fixed vocabulary and its problem type, importable without the schema machinery."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# The fact names, defined once. The collector is told which packages and libraries to look for in its request
# (environment/collect.py); the libraries are the matrix's (`library_sonames` in knowledge/load.py), not a list here.
# The packages the collector reads (each is a fact); mmcv-lite provides the mmcv package.
PACKAGES = (
    "aimet-torch", "aimet-common", "aimet-onnx", "torch", "torchvision", "numpy", "onnx", "mmengine", "mmcv",
    "mmcv-lite", "timm",
)  # fmt: skip
PLATFORM_FACTS = ("python", "cuda", "driver", "glibc")
GPU = "gpu"  # the GPUs are a fact of their own (Facts.gpus), `--assume gpu=CC`
# What a version fix's whole set pins: a fix that moves one of these installs all of them together.
SET_PACKAGES = ("aimet-torch", "torch", "torchvision", "numpy")
# What names one measured environment (an evidence cell).
CELL_FACTS = (*SET_PACKAGES, "python")

# Facts a rule's `when` may test, and what kind of value each takes.
VERSION_FACTS = (*(name for name in PACKAGES if name != "mmcv-lite"), *PLATFORM_FACTS)
CHOICE_FACTS: Mapping[str, tuple[str, ...]] = {"aimet-api": ("v1", "v2")}
# A system library is the fact `lib:<soname>` (present/absent), for every soname the matrix names.
LIBRARY_PREFIX = "lib:"
SONAME_PATTERN = r"lib[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.so(?:\.[0-9]+)*"
LIBRARY_FACT_PATTERN = f"^{LIBRARY_PREFIX}{SONAME_PATTERN}$"
PRESENCE = ("present", "absent")
CONDITION_FACTS = (*VERSION_FACTS, *CHOICE_FACTS)  # and any library fact (LIBRARY_FACT_PATTERN)
# The order a facts table shows them in (the rest, library facts included, follow sorted); `platform` and `os` are
# the collector's.
FACT_ORDER = (
    "python", "platform", "os", "glibc", "aimet-torch", *CHOICE_FACTS, "torch", "cuda", "torchvision", "numpy",
    "onnx", "mmengine", "mmcv", "timm", "aimet-onnx", "driver",
)  # fmt: skip

SOURCES_FIELD = "sources"


def collector_request(libraries: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """What the collector is asked to look for (its `--request`): the package facts and the matrix's libraries."""
    return {"packages": list(PACKAGES), "libraries": list(libraries)}


def library_fact(soname: str) -> str:
    return f"{LIBRARY_PREFIX}{soname}"


def is_library_fact(name: str) -> bool:
    """`lib:<soname>`, for any soname (the matrix says which ones are checked)."""
    return re.fullmatch(LIBRARY_FACT_PATTERN, name) is not None

@dataclass(frozen=True)
class Problem:
    """One schema or lint problem, located in the file."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message
