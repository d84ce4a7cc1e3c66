"""The Typer CLI: parse options, call the core, render, exit. No policy lives here."""


import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from qatdoctor import __version__, core
from qatdoctor import cli_matrix as matrix_commands
from qatdoctor.console import QUIET, emit, guarded, progress, say, write
from qatdoctor.environment.probe import DEFAULT_TIMEOUT, zoo_families
from qatdoctor.errors import InputError
from qatdoctor.exitcodes import ExitCode
from qatdoctor.records import ModelSpec, Verdict
from qatdoctor.render import Format, render, wants_style
from qatdoctor.transform.controls import printable

EPILOG = (
    "Exit codes: 0 ok · 1 problems found · 2 usage error · 3 could not determine (--strict) · "
    "4 invalid matrix · 5 target interpreter unusable · 6 bad input · 7 environment build failed · "
    "70 internal error."
)
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="qatdoctor",
    help="Version-compatibility resolver and environment doctor for AIMET (aimet-torch) QAT.\n\n"
    "Examples:  qatdoctor check --python ~/venvs/qat/bin/python --model train/model.py:build_model\n\n"
    "           qatdoctor resolve -a aimet-torch=1.32.2 -a torch=2.2.2 -a cuda=12.0",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is shown as written: `[[evidence]]` stays `[[evidence]]`
    context_settings=HELP_OPTIONS,
)
app.add_typer(matrix_commands.app, name="matrix", context_settings=HELP_OPTIONS)

PythonOpt = Annotated[
    str | None,
    typer.Option(
        "--python",
        "-p",
        metavar="PATH",
        help="Target interpreter (path, venv dir, or name on PATH). Default: the active venv or conda env, "
        "else the python on PATH when qatdoctor runs from its own env.",
    ),
]
AssumeOpt = Annotated[
    list[str] | None,
    typer.Option("--assume", "-a", metavar="NAME=VALUE", help="Override a fact, e.g. torch=2.2.2+cu121. Repeatable."),
]
MatrixOpt = Annotated[
    Path | None,
    typer.Option(
        "--matrix", "-m", envvar="QATDOCTOR_MATRIX", metavar="PATH",
        help="Use this compat_matrix.toml instead of the shipped one.",
    ),
]
FormatOpt = Annotated[
    Format,
    typer.Option("--format", "-f", envvar="QATDOCTOR_FORMAT", metavar="text|json|markdown", help="Output format."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 3 when the verdict is unknown.")]
VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="-v: the full report (passes, evidence, probe table); -vv: timings."
    ),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", envvar="QATDOCTOR_DEBUG", help="Show tracebacks of internal errors.")
]


def _version_callback(value: bool) -> None:
    if value:
        print(f"qatdoctor {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version_callback, is_eager=True, help="Print the version.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr (errors still shown).")] = False,
) -> None:
    """Diagnose aimet-torch / torch / CUDA / Python combinations, and fix them."""
    QUIET["on"] = quiet


TargetDriverOpt = Annotated[
    str | None,
    typer.Option(
        "--target-driver", metavar="VERSION", help="Check against the driver of the machine that will run it."
    ),
]
def _finite_seconds(value: float) -> float:
    """`--probe-timeout nan` or `inf` is a usage error (exit 2), not a probe that never times out."""
    if value != value or value in (float("inf"), float("-inf")):
        raise typer.BadParameter(f"{value} is not a number of seconds")
    return value


ProbeTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--probe-timeout", min=1, max=7 * 24 * 3600, metavar="SECONDS", callback=_finite_seconds,
        help="Seconds before a hung probe is killed (a finding).",
    ),
]  # fmt: skip
ModelsOpt = Annotated[
    str | None,
    typer.Option("--models", metavar="NAME,…", help="Comma-separated probe models (default: all).", show_default=False),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="FILE.py:FUNC|MODULE:FUNC|FAMILY:NAME",
        help="Your model: a callable returning an nn.Module or (module, example_input), imported in the target; or "
        "a model by name: torchvision:resnet18, timm:efficientnet_b0, mmdet:CONFIG, ultralytics:yolov8n.yaml.",
        show_default=False,
    ),
]
InputShapeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-shape", metavar="N,C,H,W", help="Example input shape when --model returns only a module.",
        show_default=False,
    ),
]  # fmt: skip
WithFixesOpt = Annotated[
    bool,
    typer.Option("--with-fixes", help="With --model: run the pipeline again with qatdoctor.fixes applied."),
]


def model_spec(model: str | None, input_shape: str | None, with_fixes: bool) -> ModelSpec | None:
    """`--model`, `--input-shape`, `--with-fixes` as data; a shape or --with-fixes without a model is bad input."""
    if model is None:
        if input_shape is not None or with_fixes:
            raise InputError("--input-shape and --with-fixes need --model")
        return None
    family, _, name = model.partition(":")
    by_name = family in zoo_families() and bool(name.strip())
    if not by_name and (":" not in model or not model.rsplit(":", 1)[1].isidentifier()):
        raise InputError(f"--model {model!r}: expected path/to/file.py:callable, package.module:callable or "
                         f"FAMILY:NAME ({', '.join(zoo_families())})")
    shape = None
    if input_shape is not None:
        try:
            shape = tuple(int(d) for d in input_shape.replace("x", ",").split(","))
        except ValueError:
            raise InputError(f"--input-shape {input_shape!r}: expected integers such as 1,3,320,320") from None
        if not shape or any(d <= 0 for d in shape) or len(shape) > 8:
            raise InputError(f"--input-shape {input_shape!r}: expected 1 to 8 positive integers")
    return ModelSpec(model, shape, with_fixes)


@app.command()
def check(
    python: PythonOpt = None,
    assume: AssumeOpt = None,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    strict: StrictOpt = False,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Run the live probe in the target.")] = True,
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    models: ModelsOpt = None,
    expect_cuda: Annotated[
        str | None,
        typer.Option("--expect-cuda", metavar="MAJOR.MINOR", help="Fail unless torch is this CUDA build."),
    ] = None,
    target_driver: TargetDriverOpt = None,
    model: ModelOpt = None,
    input_shape: InputShapeOpt = None,
    with_fixes: WithFixesOpt = False,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Run the probe even when the environment is unchanged since the last.")
    ] = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Diagnose an environment: collect facts, run the probe, check the matrix, recommend fixes.

    With --model, also your own model: its layers, the real pipeline on it, and fixes ranked for it.

    \b
    Examples:
      qatdoctor check --python ~/venvs/qat/bin/python
      qatdoctor check --python ~/venvs/qat/bin/python --model train/model.py:build_model --with-fixes
      qatdoctor check --strict --expect-cuda 12.1 --target-driver 535.104.05   # a container build gate
    """
    options = _options(python, assume, matrix, probe=probe, probe_timeout=probe_timeout, models=models)
    spec = guarded(lambda: model_spec(model, input_shape, with_fixes), debug=debug)
    options = replace(
        options, expect_cuda=expect_cuda, target_driver=target_driver, model=spec, use_cache=not no_cache
    )
    report = guarded(lambda: core.run_check(options), debug=debug)
    emit(report, fmt, strict, verbose)


@app.command("probe")
def probe_command(
    python: PythonOpt = None,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    strict: StrictOpt = False,
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    models: ModelsOpt = None,
    evidence: Annotated[
        Path | None, typer.Option("--evidence", help="Also write the run as an evidence file (for the matrix).")
    ] = None,
    model: ModelOpt = None,
    input_shape: InputShapeOpt = None,
    with_fixes: WithFixesOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """Run only the probe (tiny models through prepare/QuantSim/QAT/fold, and --model) and print its table.

    \b
    Examples:
      qatdoctor probe --python ~/venvs/qat/bin/python
      qatdoctor probe --python ENV/bin/python --evidence evidence/my-run.json   # for the matrix
    """
    options = _options(python, None, matrix, probe=True, probe_timeout=probe_timeout, models=models)
    options = replace(options, model=guarded(lambda: model_spec(model, input_shape, with_fixes), debug=debug))
    report = guarded(lambda: core.run_probe_only(options), debug=debug)
    if evidence is not None:
        from qatdoctor.lab import evidence as ev

        cell = ev.make_cell(report.facts, report.probe)
        guarded(lambda: ev.write(evidence, [cell], ev.host_of(report.facts)), debug=debug)
        say(f"qatdoctor: wrote evidence {evidence} (cell {cell.id}: {cell.outcome})")
    emit(report, fmt, strict, max(verbose, 1))  # the probe's own command shows its table


def _options(
    python: str | None,
    assume: list[str] | None,
    matrix: Path | None,
    *,
    probe: bool = False,
    probe_timeout: float = DEFAULT_TIMEOUT,
    models: str | None = None,
) -> core.Options:
    return core.Options(
        python=python,
        assume=tuple(assume or ()),
        matrix=matrix,
        progress=progress,
        probe=probe,
        probe_timeout=probe_timeout,
        probe_models=tuple(m.strip() for m in (models or "").split(",") if m.strip()),
    )


@app.command()
def resolve(
    assume: AssumeOpt = None,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    strict: StrictOpt = False,
    verbose: VerboseOpt = 0,
    debug: DebugOpt = False,
) -> None:
    """What-if: diagnose a hypothetical environment (support triage).

    \b
    Examples:
      qatdoctor resolve -a aimet-torch=1.32.2 -a torch=2.2.2 -a cuda=12.0
      qatdoctor resolve -a aimet-torch=2.42.0 -a torch=2.14.1 -a python=3.11 -a driver=535.104.05
    """
    options = core.Options(assume=tuple(assume or ()), matrix=matrix)
    report = guarded(lambda: core.run_resolve(options), debug=debug)
    emit(report, fmt, strict, verbose)


@app.command()
def explain(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="[FILE|-]",
            help="Traceback, log, pip list/freeze, collect_env output or issue body; - or nothing reads stdin.",
            show_default=False,
        ),
    ] = None,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    strict: StrictOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Triage pasted text: match known error signatures, read the versions it states, explain the fix.

    \b
    Examples:
      qatdoctor explain traceback.txt
      pbpaste | qatdoctor explain -
    """
    from qatdoctor.explain import run_explain

    if source in (None, "-") and sys.stdin is not None and sys.stdin.isatty():
        say("qatdoctor: reading the text to explain from stdin (end with Ctrl-D)")
    report = guarded(lambda: run_explain(source, matrix), debug=debug)
    emit(report, fmt, strict)


@app.command()
def pin(
    python: PythonOpt = None,
    assume: AssumeOpt = None,
    matrix: MatrixOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the constraints file here instead of stdout.")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore installed aimet-torch/torch: pick the best set for this Python.")
    ] = False,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="text|json", help="text: a pip constraints file; json: the set.")
    ] = "text",
    target_driver: TargetDriverOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Print a pip constraints file for the recommended known-good set (for container builds).

    \b
    Examples:
      qatdoctor pin --fresh --target-driver 535.104.05 --output constraints.txt
      qatdoctor pin --python ~/venvs/qat/bin/python --format json
    """
    if fmt == "constraints":  # the old name of the text format
        fmt = "text"
    if fmt not in ("text", "json"):
        say(f"error: --format must be text or json, not {fmt!r}")
        raise typer.Exit(int(ExitCode.USAGE))
    options = replace(_options(python, assume, matrix), target_driver=target_driver)
    rec = guarded(lambda: core.run_pin(options, fresh=fresh), debug=debug)
    header = [f"# qatdoctor {__version__}: {rec.summary}", *(f"# known-good: {g}" for g in rec.lands_on)]
    if fmt == "json":
        body = {"summary": rec.summary, "constraints": list(rec.constraints), "commands": list(rec.commands)}
        payload = json.dumps({**body, "lands_on": list(rec.lands_on)}, indent=2) + "\n"
    else:
        payload = "\n".join([*header, *rec.constraints]) + "\n"
    if output is None:
        sys.stdout.write(payload)
    else:
        guarded(lambda: write(output, payload), debug=debug)
        say(f"qatdoctor: wrote {output}")
    say(f"qatdoctor: {rec.summary}")
    for command in rec.commands:
        say(f"  $ {command}")


@app.command()
def report(
    python: PythonOpt = None,
    matrix: MatrixOpt = None,
    from_report: Annotated[
        Path | None, typer.Option("--from-report", help="Re-evaluate a saved JSON report (or report bundle).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the bundle here.")] = None,
    probe: Annotated[bool, typer.Option("--probe/--no-probe", help="Run the live probe in the target.")] = True,
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    fmt: FormatOpt = Format.markdown,
    debug: DebugOpt = False,
) -> None:
    """An issue-ready, redacted bundle: facts, matrix, verdict, findings, probe table, and the JSON to replay.

    \b
    Examples:
      qatdoctor report --python ~/venvs/qat/bin/python --output qatdoctor-report.md
      qatdoctor report --from-report qatdoctor-report.md   # a maintainer's replay
    """
    from qatdoctor.transform.redact import redact_data

    options = _options(python, None, matrix, probe=probe, probe_timeout=probe_timeout)
    # redacted as data, before rendering: values only, never keys, so the JSON stays valid and replays
    result = redact_data(guarded(lambda: core.run_report(options, from_report), debug=debug))
    if fmt is Format.markdown:
        from qatdoctor.render.markdown import bundle

        body = bundle(result)
    else:
        body = render(result, fmt)
    if output is None:
        sys.stdout.write(body)
    else:
        guarded(lambda: write(output, body), debug=debug)
        say(f"qatdoctor: wrote {output}")
    if result.verdict is Verdict.PROBLEMS:
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _installer_choice(value: str) -> str:
    """`--installer` is auto, uv or pip; anything else is a usage error (exit 2)."""
    if value not in ("auto", "uv", "pip"):
        raise typer.BadParameter(f"{value!r} is not one of auto, uv, pip")
    return value


InstallerOpt = Annotated[
    str,
    typer.Option(
        "--installer", callback=_installer_choice, help="auto (uv when available, else venv + pip), uv or pip."
    ),
]


@app.command()
def verify(
    python: PythonOpt = None,
    assume: AssumeOpt = None,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    pick: Annotated[int, typer.Option("--pick", min=1, help="Verify the N-th version recommendation.")] = 1,
    reproduce: Annotated[
        bool, typer.Option("--reproduce", help="Build the environment's own (or the --assume'd) set as is.")
    ] = False,
    installer: InstallerOpt = "auto",
    keep: Annotated[bool, typer.Option("--keep", help="Keep the throwaway environment (its path is printed).")] = False,
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    models: ModelsOpt = None,
    model: ModelOpt = None,
    input_shape: InputShapeOpt = None,
    with_: Annotated[
        list[str] | None,
        typer.Option("--with", metavar="REQ", help="Extra requirement for the throwaway env (your model's libraries)."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Build the recommended set in a throwaway env, probe it (and --model), and show what it fixes (exit 0 = fixed).

    \b
    Examples:
      qatdoctor verify --python ~/venvs/qat/bin/python --model train/model.py:build_model
      qatdoctor verify -a aimet-torch=1.32.2 -a torch=2.2.2 --reproduce
    """
    from qatdoctor.lab import verify as verify_module
    from qatdoctor.render.verify import render as render_verify

    base = _options(python, assume, matrix, probe=True, probe_timeout=probe_timeout, models=models)
    base = replace(base, model=guarded(lambda: model_spec(model, input_shape, False), debug=debug))
    options = verify_module.VerifyOptions(
        base, pick=pick, reproduce=reproduce, installer=installer, keep=keep, extra=tuple(with_ or ())
    )
    result = guarded(lambda: verify_module.run_verify(options), debug=debug)
    sys.stdout.write(render_verify(result, fmt, styled=fmt is Format.text and wants_style(sys.stdout)))
    raise typer.Exit(result.exit_code)


@app.command()
def sweep(
    aimet: Annotated[str, typer.Option("--aimet", help="aimet-torch versions or a range, e.g. '>=2.0,<2.5'.")],
    torch: Annotated[str, typer.Option("--torch", help="torch versions or a range (newest patch per series).")],
    python: Annotated[
        str | None, typer.Option("--python", "-p", help="Python minors, e.g. 3.10,3.11 (default: auto per cell).")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Cells built and probed at once.")] = 1,
    installer: InstallerOpt = "auto",
    keep_envs: Annotated[bool, typer.Option("--keep-envs", help="Keep each cell's environment (disk!).")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Evidence file to write (default: sweep-<time>.json).")
    ] = None,
    with_: Annotated[
        list[str] | None, typer.Option("--with", metavar="REQ", help="Extra requirement in every cell. Repeatable.")
    ] = None,
    emit_ci_matrix: Annotated[
        bool, typer.Option("--emit-ci-matrix", help="Print the grid as a GitHub Actions strategy.matrix and exit.")
    ] = False,
    matrix: MatrixOpt = None,
    fmt: FormatOpt = Format.text,
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    models: ModelsOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Probe an aimet-torch × torch × Python grid and write an evidence file (for `matrix merge-evidence`).

    \b
    Examples:
      qatdoctor sweep --aimet 2.42.0 --torch '>=2.5,<2.16' --python 3.11 --output evidence/sweep.json
      qatdoctor sweep --aimet '>=2.0,<2.5' --torch 2.1.2 --emit-ci-matrix
    """
    from qatdoctor.lab import sweep as sweep_module

    options = sweep_module.SweepOptions(
        aimet=aimet, torch=torch, python=python, jobs=jobs, installer=installer, keep_envs=keep_envs, output=output,
        extra=tuple(with_ or ()), matrix=matrix, probe_timeout=probe_timeout,
        models=tuple(_options(None, None, None, models=models).probe_models), progress=progress,
    )  # fmt: skip
    if emit_ci_matrix:
        ci, grid = guarded(lambda: sweep_module.ci_matrix(options), debug=debug)
        for skip in grid.skipped:
            say(f"qatdoctor: skipping {skip.id}: {'; '.join(skip.reasons)}")
        print(json.dumps(ci))
        return
    result = guarded(lambda: sweep_module.run_sweep(options), debug=debug)
    if fmt is Format.json:
        sys.stdout.write(json.dumps(sweep_module.to_dict(result), indent=2) + "\n")
    else:
        sys.stdout.write(sweep_module.render_text(result))
    if result.failed_builds:
        raise typer.Exit(int(ExitCode.ENV_BUILD_FAILED))


@app.command("fix")
def fix_command(
    python: PythonOpt = None,
    matrix: MatrixOpt = None,
    model: ModelOpt = None,
    input_shape: InputShapeOpt = None,
    pick: Annotated[int, typer.Option("--pick", min=1, help="Apply the N-th version recommendation.")] = 1,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before changing the environment.")] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Undo the last fix (only what it installed).")] = False,
    with_: Annotated[
        list[str] | None,
        typer.Option("--with", metavar="REQ", help="Extra requirement for verify's throwaway env (your model's libs)."),
    ] = None,
    installer: InstallerOpt = "auto",
    probe_timeout: ProbeTimeoutOpt = DEFAULT_TIMEOUT,
    debug: DebugOpt = False,
) -> None:
    """Apply a recommendation to the target — only after verify proved it in a throwaway env; --undo restores.

    \b
    Examples:
      qatdoctor fix --python ~/venvs/qat/bin/python --model train/model.py:build_model
      qatdoctor fix --undo --python ~/venvs/qat/bin/python
    """
    from qatdoctor.environment.collect import resolve_python
    from qatdoctor.lab import apply as applying
    from qatdoctor.lab.envbuild import default_root

    target = guarded(lambda: resolve_python(python), debug=debug)
    root = default_root().parent
    if undo:
        _undo(target, root, yes, debug)
        return
    from qatdoctor.lab import verify as verify_module
    from qatdoctor.render.verify import render as render_verify

    base = _options(target, None, matrix, probe=True, probe_timeout=probe_timeout)
    base = replace(base, model=guarded(lambda: model_spec(model, input_shape, False), debug=debug))
    options = verify_module.VerifyOptions(base, pick=pick, installer=installer, extra=tuple(with_ or ()))
    result = guarded(lambda: verify_module.run_verify(options), debug=debug)
    sys.stdout.write(render_verify(result, Format.text, styled=wants_style(sys.stdout)))
    rec = guarded(lambda: applying.proved(result), debug=debug)
    _out(f"\nverify proved: {rec.summary}")
    for change in rec.changes:
        _out(f"  {change.package} {change.current or '(none)'} → {change.target}")
    _out(f"  $ {rec.commands[0]}")
    _confirm(yes, f"Apply this to {target}? (undo with: qatdoctor fix --undo --python {target})")
    backup, after = guarded(
        lambda: applying.apply_checked(rec, result, base, target, root, log=progress), debug=debug
    )
    _out(f"applied and checked (verdict {after.verdict.value}); the previous set is saved in {backup.path} — "
          f"undo with: qatdoctor fix --undo --python {target}")  # fmt: skip


def _undo(target: str, root: Path, yes: bool, debug: bool) -> None:
    """`fix --undo`: show what the undo puts back, removes and leaves alone; ask; do it."""
    from qatdoctor.lab import restore

    plan = guarded(lambda: restore.plan_undo(root, target), debug=debug)
    say(f"qatdoctor: undoing the fix of {plan.backup.created}: {plan.backup.command}")
    for entry in plan.reinstall:
        say(f"  put back {entry.shown}")
    for name in plan.remove:
        say(f"  remove {name} {plan.installed[name].version} (the fix installed it)")
    for entry in plan.by_hand:
        say(f"  not put back: {entry.name} was `{entry.shown}` (qatdoctor gives pip only name==version lines)")
    for kept in plan.left_alone:
        say(f"  leave alone {kept.name}: {kept.why}" + (f" (now {kept.now})" if kept.now else ""))
    if plan.changes:
        _confirm(yes, f"Put back {len(plan.reinstall)} and remove {len(plan.remove)} packages in {target}?")
        guarded(lambda: restore.execute(plan, log=progress), debug=debug)
    elif not plan.by_hand:
        _out(f"nothing of the fix of {plan.backup.created} is left to undo in {target}")
        return
    _out(f"restored {target} to the set saved {plan.backup.created}: {len(plan.reinstall)} put back, "
          f"{len(plan.remove)} removed, {len(plan.left_alone)} left alone")  # fmt: skip
    if plan.by_hand:
        for entry in plan.by_hand:
            say(f"qatdoctor: reinstall {entry.name} by hand: {restore.by_hand_command(target, entry)}")
        raise typer.Exit(int(ExitCode.PROBLEMS))


def _out(line: str) -> None:
    """A line of fix's own output on stdout: paths and package names from the environment, no terminal control."""
    print(printable(line))


def _confirm(yes: bool, question: str) -> None:
    """Ask before changing anything; without a terminal, only --yes may go ahead."""
    if yes:
        return
    if sys.stdin is None or not sys.stdin.isatty():
        say("qatdoctor: not changing anything without confirmation: rerun with --yes (stdin is not a terminal)")
        raise typer.Exit(int(ExitCode.USAGE))
    if not typer.confirm(printable(question), default=False, err=True):
        say("qatdoctor: nothing changed")
        raise typer.Exit(int(ExitCode.OK))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` (default: the command line) and return its exit code (see `ExitCode`)."""
    try:
        app(args=argv, prog_name="qatdoctor")
    except SystemExit as done:
        if isinstance(done.code, str):
            raise  # a message for the launcher to print (exit 1)
        return int(done.code or 0)
    return int(ExitCode.OK)
