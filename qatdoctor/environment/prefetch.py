"""Start the fact collector before the CLI is imported, so the target interpreter boots while qatdoctor does.

Importing the CLI stack costs about as long as running the collector; overlapping the two is what keeps
`qatdoctor check` a small fraction of `torch.utils.collect_env` (bench/bench_check.py). Only plain
interpreter paths are prefetched; anything that needs resolving takes the normal path in `collect()`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from qatdoctor.environment import active
from qatdoctor.environment.runner import Pending, start
from qatdoctor.knowledge.files import packaged_file

COLLECT_TIMEOUT = 30.0
COMMANDS = ("check", "pin", "report")
_pending: dict[tuple[str, ...], Pending] = {}


def collector_argv(python: str, request: Mapping[str, Any]) -> tuple[str, ...]:
    """The collector's command line: its script and its request (what to look for), one exact string."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return (python, str(Path(__file__).with_name("_collector.py")), "--request", text)


def _matrix(args: Sequence[str]) -> Path:
    """The matrix `--matrix/-m` or $QATDOCTOR_MATRIX names, else the shipped one (as knowledge.load finds it)."""
    value = os.environ.get("QATDOCTOR_MATRIX") or None
    for index, arg in enumerate(args):
        if arg in ("--matrix", "-m") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--matrix="):
            value = arg.split("=", 1)[1]
    return Path(value).expanduser() if value else packaged_file("compat_matrix.toml")


def _request(args: Sequence[str]) -> Mapping[str, Any] | None:
    """The collector's request as the matrix's compiled sidecar records it (its first line), unchecked: a stale
    one only means the prefetched run does not match the one `collect()` asks for, which then runs its own."""
    try:
        with _matrix(args).with_suffix(".json").open("rb") as handle:
            request = json.loads(handle.readline(1 << 16)).get("collect")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return request if isinstance(request, dict) else None


def _target(args: Sequence[str]) -> str | None:
    """The interpreter `--python/-p` names (or the one `active.choose` picks), when it is a plain executable path."""
    value: str | None = None
    for index, arg in enumerate(args):
        if arg in ("--python", "-p") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--python="):
            value = arg.split("=", 1)[1]
    if value is None:
        value = active.choose(None).python
        if not value:
            return None
    path = Path(value).expanduser().absolute()
    return str(path) if os.sep in value and path.is_file() and os.access(path, os.X_OK) else None


def start_from_argv(args: Sequence[str]) -> None:
    """Kick off the collector for `check`/`pin`/`report` invocations; never raises."""
    if not args or args[0] not in COMMANDS or "--help" in args:
        return
    target = _target(args)
    request = _request(args) if target is not None else None
    if target is not None and request is not None:
        argv = collector_argv(target, request)
        _pending[argv] = start(argv, timeout=COLLECT_TIMEOUT, env=dict(os.environ))


def take(argv: Sequence[str]) -> Pending | None:
    """The prefetched run of exactly this argv, if one was started (each can be taken once)."""
    return _pending.pop(tuple(argv), None)
