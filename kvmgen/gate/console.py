"""Terminal output for ``kvmgen check`` and ``kvmgen diff``.

Tables are :class:`kvmgen.report.layout.Grid`: whole when they fit, else stacked
under each run's label (or each trace and run, for ``diff``). Values held to a
limit or a baseline are exact (:mod:`kvmgen.formatting`).
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from kvmgen.formatting import count, number, percent, signed
from kvmgen.gate.check import FAILED, PASSED, CheckOutcome
from kvmgen.gate.diff import DiffResult
from kvmgen.gate.limits import MAX
from kvmgen.report.layout import STACK, Column, Grid, print_grid, print_prose

_STYLE = {PASSED: "green", FAILED: "bold red", "skipped": "yellow"}


def check_grid(outcome: CheckOutcome, trace: str) -> Grid | None:
    """One trace's limits, a row per run and limit; None when it has none."""
    limited = [r for r in outcome.results if r.trace == trace and r.metric is not None]
    if not limited:
        return None
    with_baseline = outcome.baseline_path is not None
    columns = [Column("run", key=True), Column("limit"), Column("value", right=True)]
    if with_baseline:
        columns.append(Column("baseline", right=True))
    columns.append(Column("result"))
    grid = Grid(f"kvmgen check: {escape(trace)}", columns)
    for r in limited:
        assert r.limit is not None and r.metric is not None
        limit = (
            f"{r.metric} <= {number(r.limit)}"
            if r.check == MAX
            else f"{r.metric} <= +{number(r.limit)}%"
        )
        cells = [
            escape(r.run.label if r.run else ""),
            limit,
            "" if r.value is None else count(r.value),
        ]
        if with_baseline:
            cells.append("" if r.baseline is None else count(r.baseline))
        grid.add_row(*cells, f"[{_STYLE[r.status]}]{r.status}[/]")
    return grid


def render_check(outcome: CheckOutcome, console: Console) -> None:
    """One table per trace (run x limit), then notes and the verdict line."""
    for trace in outcome.traces:
        grid = check_grid(outcome, trace.path)
        if grid is not None:
            print_grid(console, grid, narrow=STACK)
        for r in outcome.results:
            if r.trace == trace.path and r.metric is None:
                print_prose(
                    console,
                    f"{escape(trace.path)}: {escape(r.name)}: "
                    f"[{_STYLE[r.status]}]{r.status}[/]: {escape(r.message)}",
                )
    style = "green" if outcome.passed else "bold red"
    print_prose(console, f"[{style}]{escape(outcome.summary())}[/]")


def diff_grid(result: DiffResult, old: str, new: str) -> Grid:
    """The changed metrics, a row per trace, run and metric."""
    grid = Grid(
        f"kvmgen diff: {escape(old)} -> {escape(new)}",
        [
            Column("trace", key=True),
            Column("run", key=True),
            Column("metric"),
            Column("old", right=True),
            Column("new", right=True),
            Column("change", right=True),
            Column("%", right=True),
        ],
    )
    for row in result.rows:
        pct = row.percent
        style = "red" if row.change > 0 else "green" if row.change < 0 else ""
        change = signed(row.change)
        grid.add_row(
            escape(row.trace),
            escape(row.run.label),
            row.metric,
            count(row.old),
            count(row.new),
            f"[{style}]{change}[/]" if style else change,
            "" if pct is None else percent(pct),
        )
    return grid


def render_diff(result: DiffResult, console: Console, old: str, new: str) -> None:
    """The changed metrics as a table, then notes and a one-line summary."""
    if result.rows:
        print_grid(console, diff_grid(result, old, new), narrow=STACK)
    for note in result.notes:
        print_prose(console, f"{escape(note.trace)}: {escape(note.text)}")
    print_prose(console, escape(result.summary()))
