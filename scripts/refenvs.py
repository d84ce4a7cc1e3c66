"""Build, locate and list the reference AIMET environments the real probes run against.

    python scripts/refenvs.py build [NAME...] [--installer pip|uv|auto]
    python scripts/refenvs.py path NAME
    python scripts/refenvs.py list [NAME...]

Envs go to $QATDOCTOR_ENVS (default ~/.cache/qatdoctor/envs). The `-models` envs are overlays: they add
third-party model libraries (mmdet, timm) on top of a reference env without changing it, so the
reference envs themselves stay free of mmengine/mmcv. Building an overlay builds its base first.
Exit status: 0 ok, 1 a build failed or an env is not built, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qatdoctor.lab.envbuild import (
    EnvBuildError,
    EnvSpec,
    build_env,
    default_root,
    env_dir,
    env_state,
    interpreter_path,
    overlay_of,
)

# For the real-model factories in examples/models. All four are pure-Python wheels; mmcv-lite has no compiled
# ops (examples/models/rtmdet_tiny.py stubs them). This timm release runs on both torch 2.2.2 and 2.14.1.
MODEL_REQUIREMENTS = ("mmengine==0.10.7", "mmcv-lite==2.1.0", "mmdet==3.3.0", "timm==1.0.29")

AIMET_1 = EnvSpec(
    # The qualcomm/aimet#3152 stack: aimet-torch 1.32.2 pins torch 2.2.2; its C++ quantizer needs LAPACKE.
    name="aimet-1.32.2",
    python="3.10",
    requirements=("aimet-torch==1.32.2", "torch==2.2.2", "torchvision==0.17.2", "numpy<1.24"),
    system_libs=("liblapacke.so.3",),
)
# A current, supported stack.
AIMET_2 = EnvSpec(
    name="aimet-2.42.0",
    python="3.11",
    requirements=("aimet-torch==2.42.0", "torch==2.14.1", "torchvision==0.29.1"),
)
# Base envs come before the overlays on them: `build` runs in this order.
SPECS: tuple[EnvSpec, ...] = (
    AIMET_1,
    AIMET_2,
    # Known-bad pair: aimet-torch 2.x does not bound torch, so pip accepts torch 2.2.2, and
    # `import aimet_torch` fails: cannot import name '_detect_fake_mode_from_gm' from 'torch._export.utils'.
    EnvSpec(
        name="broken-2.42.0-torch-2.2.2",
        python="3.10",
        requirements=("aimet-torch==2.42.0", "torch==2.2.2", "torchvision==0.17.2"),
    ),
    overlay_of(AIMET_1, "aimet-1.32.2-models", MODEL_REQUIREMENTS),
    overlay_of(AIMET_2, "aimet-2.42.0-models", MODEL_REQUIREMENTS),
)
BY_NAME = {spec.name: spec for spec in SPECS}


def _err(message: str) -> None:
    print(f"refenvs: {message}", file=sys.stderr, flush=True)


def _select(names: list[str], *, with_bases: bool = False) -> list[EnvSpec]:
    """The named specs (all when none), in SPECS order; `with_bases` adds each overlay's base."""
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        _err(f"unknown environment {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        raise SystemExit(2)
    if not names:
        return list(SPECS)
    wanted = set(names)
    if with_bases:
        for spec in reversed(SPECS):  # bases are declared before their overlays
            if spec.name in wanted and spec.base is not None:
                wanted.add(spec.base)
    return [spec for spec in SPECS if spec.name in wanted]


def _tree_size(path: Path) -> int:
    """Bytes used under `path`, counting hard-linked files once and not following symlinks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = (Path(dirpath) / name).lstat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.1f}{unit}" if unit != "B" else f"{int(value)}B"
        value /= 1024
    return f"{value:.1f}G"


def cmd_build(specs: list[EnvSpec], root: Path, installer: str, shown: set[str] | None = None) -> int:
    """Build `specs` in order; print the interpreters of those named in `shown` (default: all)."""
    built: list[Path] = []
    failed: set[str] = set()
    for spec in specs:
        started = time.monotonic()
        if spec.base in failed:
            _err(f"{spec.name}: skipped: its base {spec.base} failed to build")
            failed.add(spec.name)
            continue
        try:
            if env_state(spec, root) == "built":
                _err(f"{spec.name}: up to date")
                python = interpreter_path(env_dir(spec, root))
            else:
                python = build_env(spec, root, installer=installer)
                _err(f"{spec.name}: built in {time.monotonic() - started:.0f}s")
        except EnvBuildError as exc:
            hint = f" ({exc.hint})" if exc.hint and exc.hint not in exc.message else ""
            _err(f"{spec.name}: build failed: {exc.message}{hint}")
            failed.add(spec.name)
            continue
        except OSError as exc:
            _err(f"{spec.name}: build failed: {exc}")
            failed.add(spec.name)
            continue
        if shown is None or spec.name in shown:
            built.append(python)
    for python in built:
        print(python)
    return 1 if failed else 0


def cmd_path(spec: EnvSpec, root: Path) -> int:
    state = env_state(spec, root)
    if state != "built":
        _err(f"{spec.name} is {state}; run: python scripts/refenvs.py build {spec.name}")
        return 1
    print(interpreter_path(env_dir(spec, root)))
    return 0


def cmd_list(specs: list[EnvSpec], root: Path) -> int:
    rows = []
    for spec in specs:
        env = env_dir(spec, root)
        state = env_state(spec, root)
        size = _human(_tree_size(env)) if env.exists() else "-"
        where = f"{env}  (overlay on {spec.base})" if spec.base else str(env)
        rows.append((spec.name, state, size, where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refenvs", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="env directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the named envs (default: all); idempotent")
    p_build.add_argument("names", nargs="*")
    p_build.add_argument("--installer", choices=("auto", "pip", "uv"), default="pip")
    p_path = sub.add_parser("path", help="print an env's interpreter path (exit 1 if not built)")
    p_path.add_argument("name")
    p_list = sub.add_parser("list", help="name, state (built/missing/stale/partial/broken), size")
    p_list.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    root: Path = args.root if args.root is not None else default_root()
    try:
        if args.command == "build":
            shown = set(args.names) or None
            return cmd_build(_select(args.names, with_bases=True), root, args.installer, shown)
        if args.command == "path":
            return cmd_path(_select([args.name])[0], root)
        return cmd_list(_select(args.names), root)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
