"""The grid in a terminal: columns folded into blocks that fit the width, each block with the row labels."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import NamedTuple

from qatdoctor.authoring.grid import (
    PROPOSED_MARK,
    PROPOSED_NOTE,
    Cell,
    Column,
    DriverMark,
    Grid,
    Row,
    State,
    iter_cells,
)
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.transform.controls import printable, printable_data


class Glyphs(NamedTuple):
    measured: str
    vendor: str
    bad: str
    not_installable: str
    untested: str
    dash: str = "—"
    times: str = "×"
    dot: str = "·"
    more: str = "…"


UNICODE = Glyphs("✓", "✓", "✗", "–", "·")
ASCII = Glyphs("+", "+", "x", "-", ".", "-", "x", "|", "...")
STYLE = {  # ANSI SGR per state, only when styled
    State.MEASURED: "1;32", State.VENDOR: "32", State.BAD: "1;31", State.NOT_INSTALLABLE: "33", State.UNTESTED: "2",
}  # fmt: skip
CONSTRUCT_MARK, VARIANT_MARK, TOO_OLD_MARK = "!", "~", "^"
GAP = 1


def glyph(state: State, glyphs: Glyphs) -> str:
    return getattr(glyphs, state.name.lower())  # type: ignore[no-any-return]


def cell_text(cell: Cell, glyphs: Glyphs = UNICODE) -> tuple[str, str]:
    """(the state and its word, the marks) of one cell: `✗ import`, `✓ measured`, `·`."""
    outcome = cell.plan.outcome
    word = {State.MEASURED: "measured", State.VENDOR: "vendor", State.UNTESTED: ""}.get(outcome.state, outcome.reason)
    text = f"{glyph(outcome.state, glyphs)} {word}".rstrip()
    marks = CONSTRUCT_MARK if cell.flagged else ""
    marks += TOO_OLD_MARK if cell.driver is DriverMark.TOO_OLD else ""  # a build the driver runs: in the header
    return text, marks


def render(grid: Grid, matrix: Matrix, *, width: int = 100, styled: bool = False, glyphs: Glyphs = UNICODE) -> str:
    """The whole grid: a heading, the column blocks, the legend and what the filters marked."""
    grid = printable_data(grid)  # the matrix given may say anything: no terminal control from it
    filters = grid.filters
    # the counts are of reviewed entries; proposed ones are counted on their own legend line
    reviewed_rows = sum(1 for r in grid.rows if not r.proposed)
    reviewed_columns = sum(1 for c in grid.columns if not c.proposed)
    lines = [
        f"qatdoctor matrix grid {glyphs.dash} {reviewed_rows} aimet-torch releases {glyphs.times} "
        f"{reviewed_columns} torch series (matrix {printable(matrix.matrix_version)})",
        f"python: {filters.python or 'the best minor per cell'} {glyphs.dot} driver: {filters.driver or 'any'} "
        f"{glyphs.dot} model construct: {filters.construct or 'none'}",
        "",
    ]
    texts = [[cell_text(cell, glyphs) for cell in row] for row in grid.cells]
    cell_width = max(len(text) + len(marks) for row in texts for text, marks in row)
    cell_width = max(cell_width, *(len(_patch(c)) for c in grid.columns), 5)
    line_width = max(len(f"{r.line}.x") for r in grid.rows)
    label_width = line_width + 1 + max(len(_version(r)) for r in grid.rows)
    per_block = max(1, (width - label_width) // (cell_width + GAP))
    blocks = math.ceil(len(grid.columns) / per_block)
    per_block = math.ceil(len(grid.columns) / blocks)  # balanced: 6+6+5, not 7+7+3
    for start in range(0, len(grid.columns), per_block):
        columns = range(start, min(start + per_block, len(grid.columns)))
        lines += _block(grid, texts, columns, label_width, line_width, cell_width, styled)
        lines.append("")
    lines += _legend(grid, glyphs)
    return "\n".join(lines) + "\n"


def _block(
    grid: Grid,
    texts: Sequence[Sequence[tuple[str, str]]],
    columns: range,
    label_width: int,
    line_width: int,
    cell_width: int,
    styled: bool,
) -> list[str]:
    def header(label: str, values: list[str]) -> str:
        return (label.ljust(label_width) + "".join(" " * GAP + v.ljust(cell_width) for v in values)).rstrip()

    out = [
        header("aimet-torch \\ torch", [grid.columns[j].series for j in columns]),
        header("", [_patch(grid.columns[j]) for j in columns]),
    ]
    if grid.filters.driver is not None:
        out.append(header("CUDA build", [_build(grid.cells[0][j]) for j in columns]))
    previous = None
    for i, row in enumerate(grid.rows):
        line = f"{row.line}.x" if row.line != previous else ""
        previous = row.line
        label = f"{line.ljust(line_width)} {_version(row)}".ljust(label_width)
        parts = []
        for j in columns:
            text, marks = texts[i][j]
            shown = (text + marks).ljust(cell_width)
            state = grid.cells[i][j].state
            parts.append(" " * GAP + (f"\x1b[{STYLE[state]}m{shown}\x1b[0m" if styled else shown))
        out.append((label + "".join(parts)).rstrip())
    return out


def _version(row: Row) -> str:
    return row.version + (f" {PROPOSED_MARK}" if row.proposed else "")


def _patch(column: Column) -> str:
    return column.torch + (PROPOSED_MARK if column.proposed else "")


def _build(cell: Cell) -> str:
    if cell.driver is DriverMark.TOO_OLD:
        return f"none{TOO_OLD_MARK}"
    return (cell.plan.build or "cpu") + (VARIANT_MARK if cell.driver is DriverMark.VARIANT else "")


def _legend(grid: Grid, glyphs: Glyphs) -> list[str]:
    counts = dict.fromkeys(State, 0)
    proposed_cells = 0
    for row, cells in zip(grid.rows, grid.cells, strict=True):
        for column, cell in zip(grid.columns, cells, strict=True):
            if row.proposed or column.proposed:
                proposed_cells += 1
            else:
                counts[cell.state] += 1
    lines = [
        f"{glyphs.measured} measured  known-good, run by our probe ({counts[State.MEASURED]} cells)",
        f"{glyphs.vendor} vendor    known-good as documented: a vendor rule, the release's torch pin or build torch "
        f"({counts[State.VENDOR]})",
        f"{glyphs.bad} WORD      known-bad; WORD is where it fails: import, QuantSim, QAT, fold{glyphs.more} "
        f"({counts[State.BAD]})",
        f"{glyphs.not_installable} WORD      not installable: Python (no wheel for a Python both support) or "
        f"pin ({counts[State.NOT_INSTALLABLE]})",
        f"{glyphs.untested}           untested: no rule marks the set either way ({counts[State.UNTESTED]})",
    ]
    python = grid.filters.python
    lines.append(
        f"Each cell: the newest torch patch of the series, on Python {python}"
        if python
        else "Each cell: the newest torch patch of the series, on the Python minor that reads best"
    )
    lines.append("(--format json names it, with the rules, evidence and pip line; `qatdoctor matrix show ID`).")
    proposed = [f"aimet-torch {r.version}" for r in grid.rows if r.proposed]
    proposed += [f"torch {c.torch}" for c in grid.columns if c.proposed]
    if proposed:
        lines.append(f"{PROPOSED_MARK} {PROPOSED_NOTE}:")
        named = f"{', '.join(proposed)} ({proposed_cells} cells, not counted above)"
        lines += textwrap.wrap(named, 100, initial_indent="  ", subsequent_indent="  ")
    if grid.filters.driver is not None:
        lines.append(
            f"{TOO_OLD_MARK} no CUDA build of that torch runs on driver {grid.filters.driver}; "
            f"{VARIANT_MARK} a build for an older CUDA"
        )
    if grid.filters.construct is not None:
        flagged = [cell for cell in iter_cells(grid) if cell.flagged]
        rules = sorted({r for cell in flagged for r in cell.flagged})
        lines.append(
            f"{CONSTRUCT_MARK} a model-scope rule about {grid.filters.construct} applies ({len(flagged)} cells): "
            + (", ".join(rules) or "none")
        )
    return lines
