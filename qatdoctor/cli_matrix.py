"""`qatdoctor matrix ...`: validate, list, show and export the matrix."""


import enum
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qatdoctor.exitcodes import ExitCode
from qatdoctor.knowledge.entries import AimetRelease, Matrix, Rule, TorchSeries
from qatdoctor.knowledge.load import MatrixError, load

if TYPE_CHECKING:
    from qatdoctor.authoring.grid import Filters as GridFilters

app = typer.Typer(help="Validate, list and show compat_matrix.toml.", no_args_is_help=True)

PathArg = Annotated[Path | None, typer.Argument(help="Matrix file (default: $QATDOCTOR_MATRIX or the shipped one).")]
MatrixOpt = Annotated[
    Path | None, typer.Option("--matrix", "-m", envvar="QATDOCTOR_MATRIX", help="Matrix file to read.")
]
class OutputFormat(str, enum.Enum):
    """What the matrix commands print: text, or the same data as JSON."""

    text = "text"
    json = "json"


FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", metavar="text|json", help="Output format (json: the same data).")
]


def _load(path: Path | None) -> Matrix:
    from qatdoctor.console import guarded

    return guarded(lambda: load(path))


@app.command()
def validate(path: PathArg = None, fmt: FormatOpt = OutputFormat.text) -> None:
    """Check the schema, then lint for contradictions, unreachable ranges and dangling references.

    \b
    Examples:
      qatdoctor matrix validate
      qatdoctor matrix validate my_matrix.toml --format json
    """
    from qatdoctor.authoring.lint import lint
    from qatdoctor.console import say

    try:
        matrix = load(path)
        problems = lint(matrix)
        where = matrix.path
    except MatrixError as error:
        problems, where, matrix = error.problems, error.path, None
    _sidecar_note(Path(where), say)
    if fmt is OutputFormat.json:
        print(json.dumps({"path": where, "valid": not problems, "problems": [str(p) for p in problems]}, indent=2))
    elif problems:
        print(f"{where}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"  {problem}")
    else:
        assert matrix is not None
        print(
            f"{where}: OK — matrix {matrix.matrix_version}: {len(matrix.aimet)} aimet-torch releases, "
            f"{len(matrix.torch)} torch series, {len(matrix.cuda)} CUDA majors, {len(matrix.rules)} rules, "
            f"{len(matrix.evidence)} evidence records"
        )
    if problems:
        say("qatdoctor: matrix is invalid")
        raise typer.Exit(int(ExitCode.MATRIX_INVALID))


def _sidecar_note(toml: Path, say: Any) -> None:
    """One line when the compiled sidecar is not used (stale or malformed): loads then parse the TOML."""
    from qatdoctor.knowledge.load import compiled_path, sidecar

    state = sidecar(toml)
    if state.state in ("stale", "malformed"):
        say(f"qatdoctor: {compiled_path(toml)} is {state.state} ({state.reason}); not used — "
            "rebuild it with `qatdoctor matrix compile`")  # fmt: skip


@app.command("list")
def list_entries(
    matrix: MatrixOpt = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="rules, aimet, torch, cuda or evidence.")] = "rules",
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List the entries of one table.

    \b
    Examples:
      qatdoctor matrix list
      qatdoctor matrix list --format json
    """
    m = _load(matrix)
    rows: list[dict[str, Any]]
    if kind == "rules":
        rows = [
            {"id": r.id, "kind": r.kind, "severity": r.severity, "scope": r.scope, "title": r.title} for r in m.rules
        ]
    elif kind == "aimet":
        rows = [{"id": str(a.version), "released": a.released.isoformat(), "requires_python": str(a.requires_python),
                 "torch": str(a.torch or "unbounded"), "apis": "+".join(a.apis)} for a in m.aimet]  # fmt: skip
    elif kind == "torch":
        rows = [{"id": t.series, "releases": " ".join(map(str, t.releases)), "python": " ".join(t.python),
                 "pypi_cuda": t.pypi_cuda or ""} for t in m.torch]  # fmt: skip
    elif kind == "cuda":
        rows = [{"id": str(c.major), "driver_min": str(c.driver_min)} for c in m.cuda]
    elif kind == "evidence":
        rows = [
            {"id": e.id, "date": e.date.isoformat(), "outcome": e.outcome, "summary": e.summary} for e in m.evidence
        ]
    else:
        print(f"error: unknown --kind {kind!r} (rules, aimet, torch, cuda, evidence)", file=sys.stderr)
        raise typer.Exit(int(ExitCode.USAGE))
    if fmt is OutputFormat.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print("  ".join(str(v) for v in row.values()))


@app.command()
def show(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="A rule id, aimet-torch version or torch series.")],
    matrix: MatrixOpt = None,
) -> None:
    """Show one entry in full (rule id, aimet-torch version, torch series or evidence id).

    \b
    Examples:
      qatdoctor matrix show bn-subclass-qat-crash-v1
      qatdoctor matrix show 2.42.0 --format json
    """
    m = _load(matrix)
    rule = m.rule(entry_id)
    if rule is not None:
        print(_describe_rule(rule))
        return
    for item in (*m.aimet, *m.torch, *m.evidence):
        key = getattr(item, "id", None) or getattr(item, "series", None) or str(getattr(item, "version", ""))
        if key == entry_id:
            print(json.dumps(_plain(item), indent=2, default=str))
            _say_proposed(item)
            return
    print(f"error: no matrix entry {entry_id!r} (try `qatdoctor matrix list`)", file=sys.stderr)
    raise typer.Exit(int(ExitCode.BAD_INPUT))


def _say_proposed(item: object) -> None:
    """On stderr (stdout stays JSON): the entry, or releases of it, are proposals nobody has reviewed."""
    from qatdoctor.authoring.grid import PROPOSED_NOTE

    if isinstance(item, AimetRelease) and item.proposed:
        print(f"qatdoctor: aimet-torch {item.version}: {PROPOSED_NOTE}", file=sys.stderr)
    elif isinstance(item, TorchSeries) and (item.proposed or item.proposed_releases):
        which = f"series {item.series}" if item.proposed else ", ".join(map(str, item.proposed_releases))
        print(f"qatdoctor: torch {which}: {PROPOSED_NOTE}", file=sys.stderr)


@app.command("schema")
def export_schema() -> None:
    """Print the matrix JSON Schema (the same as compat_matrix.schema.json)."""
    from qatdoctor.knowledge import schema

    print(json.dumps(schema.json_schema(), indent=2))


def _plain(item: object) -> Any:
    """A matrix entry (nested NamedTuples) as plain JSON-able data."""
    from dataclasses import asdict, is_dataclass

    if hasattr(item, "_asdict"):
        return {key: _plain(value) for key, value in item._asdict().items()}
    if is_dataclass(item) and not isinstance(item, type):
        return asdict(item)
    if isinstance(item, (tuple, list)):
        return [_plain(value) for value in item]
    if isinstance(item, Mapping):
        return {str(key): _plain(value) for key, value in item.items()}
    return item


def _describe_rule(rule: Rule) -> str:
    lines = [
        f"{rule.id}  [{rule.kind}, {rule.severity}, scope {rule.scope}"
        + (f": {rule.model_feature}" if rule.model_feature else "")
        + (", triage only" if rule.triage_only else "")
        + "]",
        rule.title,
        "",
        rule.summary,
    ]
    if rule.details:
        lines += ["", rule.details]
    lines += ["", "when: " + ", ".join(f"{c.fact} {c.raw}" for c in rule.when)]
    for sig in rule.signatures:
        lines.append(f"signature: {sig.type + ': ' if sig.type else ''}{sig.text or '/' + (sig.regex or '') + '/'}")
    for probe in rule.probes:
        lines.append(
            f"probe: {probe.model}/{probe.stage} → {probe.status}" + (f" ({probe.check})" if probe.check else "")
        )
    for fix in rule.fixes:
        lines.append(f"fix ({fix.kind}): {fix.summary}")
        lines += [f"  $ {c}" for c in fix.commands]
        if fix.code:
            lines += ["  " + line for line in fix.code.rstrip().splitlines()]
    lines += [f"source ({s.kind}): {s.ref}" + (f" — {s.note}" if s.note else "") for s in rule.sources]
    return "\n".join(lines)


@app.command("compile")
def compile_command(path: PathArg = None) -> None:
    """Write the compiled sidecar (compat_matrix.json) that makes loading fast; run after editing the TOML.

    \b
    Examples:
      qatdoctor matrix compile
    """
    from qatdoctor.console import guarded, say
    from qatdoctor.knowledge.load import compile_matrix, default_path

    target = guarded(lambda: compile_matrix(path or default_path()))
    say(f"qatdoctor: wrote {target}")


@app.command("merge-evidence")
def merge_evidence_command(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="Evidence files written by `probe --evidence` or `sweep`.")
    ],
    matrix: MatrixOpt = None,
) -> None:
    """Record evidence cells as [[evidence]] entries in the matrix (replacing records with the same id).

    \b
    Examples:
      qatdoctor matrix merge-evidence evidence/sweep-2.42.json
      qatdoctor matrix merge-evidence evidence/*.json && qatdoctor matrix validate
    """
    from qatdoctor.authoring.merge import merge_evidence
    from qatdoctor.console import guarded, say
    from qatdoctor.knowledge.load import compile_matrix, default_path

    target = matrix or default_path()
    written = guarded(lambda: merge_evidence(target, files))
    guarded(lambda: compile_matrix(target))
    for record in written:
        say(f"qatdoctor: recorded evidence {record}")


@app.command("grid")
def grid_command(
    matrix: MatrixOpt = None,
    python: Annotated[
        str | None,
        typer.Option("--python", metavar="3.X", help="Only this CPython minor (default: the best one per cell)."),
    ] = None,
    driver: Annotated[
        str | None,
        typer.Option("--driver", metavar="VERSION", help="Mark cells whose CUDA build needs a newer NVIDIA driver."),
    ] = None,
    construct: Annotated[
        str | None,
        typer.Option(
            "--model-construct", metavar="ID", help="Mark cells where a model-scope rule about this construct applies."
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
    html: Annotated[
        Path | None, typer.Option("--html", metavar="OUT.html", help="Write the grid as one self-contained web page.")
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", min=40, help="Fold the columns into this width (default: the terminal's, or 100)."),
    ] = None,
) -> None:
    """aimet-torch releases × torch series: measured good, vendor good, known-bad, not installable, untested."""
    from qatdoctor.console import guarded, say

    m = _load(matrix)
    filters = guarded(lambda: _grid_filters(m, python, driver, construct))
    if html is not None:
        from qatdoctor.render import grid_html

        size = guarded(lambda: _write_page(grid_html.write, html, m, filters))
        say(f"qatdoctor: wrote {html} ({size / 1024:.0f} KiB)")
        return
    from qatdoctor.authoring import grid

    result = grid.build(m, filters)
    if fmt is OutputFormat.json:
        print(json.dumps(grid.grid_to_dict(result, m), indent=2))
        return
    from qatdoctor.render import grid_text, wants_style

    styled = wants_style(sys.stdout)
    columns = width or (shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100)
    glyphs = grid_text.UNICODE if _encodes(grid_text.UNICODE, sys.stdout) else grid_text.ASCII
    sys.stdout.write(grid_text.render(result, m, width=columns, styled=styled, glyphs=glyphs))


def _grid_filters(m: Matrix, python: str | None, driver: str | None, construct: str | None) -> "GridFilters":
    """The filters, checked: a CPython minor, a driver version, a [[construct]] id."""
    import re

    from qatdoctor.authoring.grid import Filters
    from qatdoctor.errors import InputError
    from qatdoctor.knowledge.versions import parse_version

    if python is not None and not re.fullmatch(r"3\.\d{1,2}", python.strip()):
        raise InputError(f"--python {python!r}: expected a CPython minor such as 3.10")
    if driver is not None:
        driver = str(parse_version(driver, what="--driver version"))
    if construct is not None and m.construct(construct) is None:
        known = ", ".join(c.id for c in m.constructs)
        raise InputError(f"--model-construct {construct!r}: not a [[construct]] of the matrix (known: {known})")
    return Filters(python.strip() if python else None, driver, construct)


def _write_page(write: Any, path: Path, m: Matrix, filters: "GridFilters") -> int:
    """The page, or bad input naming the path when it cannot be written there."""
    from qatdoctor.errors import InputError

    try:
        return int(write(path, m, filters))
    except OSError as error:
        raise InputError(f"--html {path}: cannot write: {error.strerror or error}") from None


def _encodes(glyphs: tuple[str, ...], stream: Any) -> bool:
    try:
        "".join(glyphs).encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


@app.command("refresh")
def refresh_command(
    matrix: MatrixOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only report: exit 1 when the index has releases the matrix lacks.")
    ] = False,
    wheels: Annotated[
        Path | None,
        typer.Option("--wheels", metavar="DIR", help="Read downloaded wheels from DIR instead of PyPI (offline)."),
    ] = None,
    index_url: Annotated[str, typer.Option("--index-url", help="PyPI-compatible JSON API base.")] = "https://pypi.org",
    evidence_out: Annotated[
        Path | None,
        typer.Option("--evidence", metavar="FILE", help="Also write what every wheel read says, as an evidence file "
                     "(`matrix merge-evidence FILE` records it); with --wheels, every wheel in DIR."),
    ] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Propose [[aimet]]/[[torch]] entries for releases on the index that the matrix lacks, read from the wheels
    (Requires-Python, Requires-Dist, tags, NEEDED sonames, glibc floor); the TOML's style is kept."""
    from qatdoctor.authoring import refresh as rf
    from qatdoctor.console import guarded, say
    from qatdoctor.knowledge.load import compile_matrix, default_path

    target = matrix or default_path()
    index: rf.Index = guarded(lambda: rf.WheelDir(wheels)) if wheels is not None else rf.PyPIIndex(index_url)
    result = guarded(lambda: rf.refresh(target, index, check=check, progress=say))
    if result.written:
        guarded(lambda: compile_matrix(target))
    if evidence_out is not None:
        read = guarded(lambda: rf.read_all(wheels) if wheels is not None else result.wheels)
        guarded(lambda: rf.write_evidence(evidence_out, read, index.describe()))
        say(f"qatdoctor: wrote {evidence_out} ({len(read)} wheels)")
    if fmt is OutputFormat.json:
        print(json.dumps(rf.result_to_dict(result), indent=2, default=str))
    else:
        sys.stdout.write(rf.render_text(result, index, check))
    if check and result.missing.any:
        raise typer.Exit(int(ExitCode.PROBLEMS))
