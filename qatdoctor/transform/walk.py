"""Every string value of nested data rewritten, the containers rebuilt as they were (NamedTuples, frozen
dataclasses, mappings, lists, tuples, paths); enums, numbers and booleans left alone."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from pathlib import PurePath
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T")
# a string, and whether it sits outside every `fixed` field (see `map_strings`)
Rewrite = Callable[[str, bool], str]


def map_strings(value: T, rewrite: Rewrite, *, fixed: frozenset[str] = frozenset(), keys: bool = False) -> T:
    """A copy of `value` with `rewrite(text, free)` applied to each string; `free` is False under a field or key
    named in `fixed`, however deep. Mapping keys are rewritten only with `keys`; field names never are."""
    return _walk(value, rewrite, True, fixed, keys)  # type: ignore[no-any-return]


def _walk(value: Any, rewrite: Rewrite, free: bool, fixed: frozenset[str], keys: bool) -> Any:
    if value is None or isinstance(value, (enum.Enum, bool, int, float)):  # pragma: no mutate - fast path
        return value
    if isinstance(value, str):
        return rewrite(value, free)
    if isinstance(value, PurePath):
        return type(value)(rewrite(str(value), free))
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        return type(value)._make(  # type: ignore[attr-defined]
            _walk(item, rewrite, free and field not in fixed, fixed, keys)
            for field, item in zip(value._fields, value, strict=True)  # pragma: no mutate - same length
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _walk(getattr(value, f.name), rewrite, free and f.name not in fixed, fixed, keys)
            for f in dataclasses.fields(value)
            if f.init
        }
        return dataclasses.replace(value, **changes)
    if isinstance(value, Mapping):
        walked = {
            (rewrite(key, free) if keys and isinstance(key, str) else key): _walk(
                item, rewrite, free and key not in fixed, fixed, keys
            )
            for key, item in value.items()
        }
        return MappingProxyType(walked) if isinstance(value, MappingProxyType) else walked
    if isinstance(value, (list, tuple)):
        return type(value)(_walk(item, rewrite, free, fixed, keys) for item in value)
    return value
