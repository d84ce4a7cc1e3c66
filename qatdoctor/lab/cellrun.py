"""Build one planned environment, probe it, read its facts, and clean it up (for `verify` and `sweep`)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qatdoctor.environment.collect import CollectError, collect
from qatdoctor.environment.probe import DEFAULT_TIMEOUT, run_probe
from qatdoctor.environment.runner import Runner, disown, make_scratch, own, run
from qatdoctor.knowledge.entries import Construct
from qatdoctor.lab.cellplan import CellPlan
from qatdoctor.lab.envbuild import (
    EnvBuildError,
    EnvSpec,
    Log,
    build_env,
    env_state,
    read_stamp,
    remove_env,
    resolve_installer,
)
from qatdoctor.records import Facts, ModelSpec, ProbeRun


class Builder(Protocol):
    """`envbuild.build_env`'s shape (tests inject fakes)."""

    def __call__(
        self, spec: EnvSpec, root: Path, *, installer: str = ..., runner: Runner = ..., log: Log | None = ...
    ) -> Path: ...


class Prober(Protocol):
    """`probe.run.run_probe`'s shape."""

    def __call__(
        self,
        python: str,
        *,
        runner: Runner = ...,
        timeout: float = ...,
        models: Sequence[str] = ...,
        progress: Callable[[str], None] = ...,
        model: ModelSpec | None = ...,
        constructs: Sequence[Construct] = ...,
    ) -> ProbeRun: ...


class Collector(Protocol):
    """`collect.collect`'s shape."""

    def __call__(self, python: str | None = ..., *, runner: Runner = ..., timeout: float = ...) -> Facts: ...


@dataclass(frozen=True)
class Tools:
    """The subprocess-running pieces, replaceable in tests."""

    builder: Builder = build_env
    prober: Prober = run_probe
    collector: Collector = collect
    runner: Runner = run


@dataclass(frozen=True)
class CellRun:
    """What happened to one planned environment."""

    plan: CellPlan
    facts: Facts
    probe: ProbeRun | None
    installer: str
    build_seconds: float = 0.0
    probe_seconds: float = 0.0
    reused: bool = False
    freeze: tuple[str, ...] = ()
    error: str | None = None
    kept: Path | None = None
    notes: tuple[str, ...] = field(default=())

    def install_record(self) -> dict[str, object]:
        """The `install` object of an evidence cell."""
        return {
            "installer": self.installer,
            "requirements": list(self.plan.requirements()),
            "build_seconds": round(self.build_seconds, 1),
            "probe_seconds": round(self.probe_seconds, 1),
            "reused": self.reused,
            "freeze": list(self.freeze),
        }


def run_cell(
    plan: CellPlan,
    root: Path,
    *,
    tools: Tools = Tools(),
    installer: str = "auto",
    keep: bool = False,
    throwaway: bool = False,
    raise_build_errors: bool = False,
    probe_timeout: float = DEFAULT_TIMEOUT,
    models: Sequence[str] = (),
    log: Log = lambda line: None,
    model: ModelSpec | None = None,
    constructs: Sequence[Construct] = (),
) -> CellRun:
    """Build (or reuse) the env, probe it, collect its facts; delete it afterwards unless `keep`.

    `throwaway` builds inside a fresh temporary directory under `root` (nothing is ever reused). A build
    failure is recorded in the result, or raised with `raise_build_errors`.
    """
    kind = resolve_installer(installer)
    try:
        root.mkdir(parents=True, exist_ok=True)
        home = make_scratch("tmp-", root) if throwaway else root
    except OSError as error:  # $QATDOCTOR_ENVS is a file, read-only, on a full disk, ...
        raise EnvBuildError(
            f"cannot create an environment under {root}: {error.strerror or error}",
            hint="point $QATDOCTOR_ENVS at a writable directory",
        ) from None
    spec = plan.spec()
    env = home / spec.name
    if not throwaway and not keep:
        own(env)  # removed at shutdown if this thread never reaches its own cleanup (Ctrl-C, SIGTERM)
    kept: Path | None = None
    try:
        reused = not throwaway and env_state(spec, home, runner=tools.runner) == "built"
        started = time.perf_counter()
        try:
            python = tools.builder(spec, home, installer=installer, runner=tools.runner, log=log)
        except EnvBuildError as error:
            if raise_build_errors:
                raise
            return CellRun(plan, plan.facts(), None, kind, time.perf_counter() - started, error=error.message)
        build_seconds = time.perf_counter() - started
        stamp = read_stamp(env) or {}
        started = time.perf_counter()
        probe = tools.prober(
            str(python), runner=tools.runner, timeout=probe_timeout, models=models, progress=log, model=model,
            constructs=constructs,
        )  # fmt: skip
        probe_seconds = time.perf_counter() - started
        facts = _facts(tools, str(python), plan)
        kept = env if keep else None
        return CellRun(
            plan,
            facts,
            probe,
            str(stamp.get("installer") or kind),
            build_seconds,
            probe_seconds,
            reused=reused,
            freeze=tuple(str(line) for line in stamp.get("freeze") or ()),
            kept=kept,
        )
    finally:
        if kept is None:
            _cleanup(home if throwaway else env, root, spec.name, throwaway)
        disown(home if throwaway else env, remove=False)


def _facts(tools: Tools, python: str, plan: CellPlan) -> Facts:
    try:
        return tools.collector(python, runner=tools.runner, timeout=60.0)
    except CollectError:
        return plan.facts()


def _cleanup(path: Path, root: Path, name: str, throwaway: bool) -> None:
    """Delete what the cell built (a whole temp dir, or one cached env and its lock file)."""
    with contextlib.suppress(OSError, EnvBuildError):
        if throwaway:
            shutil.rmtree(path, ignore_errors=True)
        else:
            remove_env(path)
            (root / f".{name}.lock").unlink(missing_ok=True)
