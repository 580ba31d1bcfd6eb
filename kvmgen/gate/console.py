"""Terminal output for ``kvmgen check`` and ``kvmgen diff`` (rich tables)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kvmgen.gate.check import FAILED, PASSED, CheckOutcome
from kvmgen.gate.diff import DiffResult
from kvmgen.gate.limits import MAX, format_number

_STYLE = {PASSED: "green", FAILED: "bold red", "skipped": "yellow"}


def render_check(outcome: CheckOutcome, console: Console) -> None:
    """One table per trace (run x limit), then notes and the verdict line."""
    for trace in outcome.traces:
        results = [r for r in outcome.results if r.trace == trace.path]
        limited = [r for r in results if r.metric is not None]
        if limited:
            table = Table(title=f"kvmgen check: {escape(trace.path)}", title_justify="left")
            with_baseline = outcome.baseline_path is not None
            table.add_column("run")
            table.add_column("limit")
            table.add_column("value", justify="right")
            if with_baseline:
                table.add_column("baseline", justify="right")
            table.add_column("result")
            for r in limited:
                assert r.limit is not None and r.metric is not None
                limit = (
                    f"{r.metric} <= {format_number(r.limit)}"
                    if r.check == MAX
                    else f"{r.metric} <= +{format_number(r.limit)}%"
                )
                cells = [
                    escape(r.run.label if r.run else ""),
                    limit,
                    "" if r.value is None else f"{r.value:,}",
                ]
                if with_baseline:
                    cells.append("" if r.baseline is None else f"{r.baseline:,}")
                table.add_row(*cells, f"[{_STYLE[r.status]}]{r.status}[/]")
            console.print(table)
        for r in results:
            if r.metric is None:
                console.print(
                    f"{escape(trace.path)}: {escape(r.name)}: "
                    f"[{_STYLE[r.status]}]{r.status}[/]: {escape(r.message)}"
                )
    style = "green" if outcome.passed else "bold red"
    console.print(f"[{style}]{escape(outcome.summary())}[/]")


def render_diff(result: DiffResult, console: Console, old: str, new: str) -> None:
    """The changed metrics as a table, then notes and a one-line summary."""
    if result.rows:
        table = Table(title=f"kvmgen diff: {escape(old)} -> {escape(new)}", title_justify="left")
        for name in ("trace", "run", "metric", "old", "new", "change", "%"):
            table.add_column(
                name, justify="left" if name in ("trace", "run", "metric") else "right"
            )
        for row in result.rows:
            pct = row.percent
            style = "red" if row.change > 0 else "green" if row.change < 0 else ""
            change = f"{row.change:+,}" if row.change else "0"
            table.add_row(
                escape(row.trace),
                escape(row.run.label),
                row.metric,
                f"{row.old:,}",
                f"{row.new:,}",
                f"[{style}]{change}[/]" if style else change,
                "" if pct is None else f"{pct:+.2f}%",
            )
        console.print(table)
    for note in result.notes:
        console.print(f"{escape(note.trace)}: {escape(note.text)}")
    console.print(escape(result.summary()))
