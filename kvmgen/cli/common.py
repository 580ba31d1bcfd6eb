"""What several commands do around the library: progress, writing outputs, summaries.

Every file goes out through :mod:`kvmgen.output` with the command's inputs, so an
output can never replace an input; every table through :mod:`kvmgen.report.console`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from kvmgen.errors import ExitCode, UsageError
from kvmgen.output import STDOUT, write_output
from kvmgen.report.console import Progress, make_console, progress_callback


def preflight(outputs: Sequence[tuple[str, str | None]], inputs: Sequence[str | None]) -> None:
    """Check every ``(option, target)`` output before any work starts (kvmgen.output.preflight)."""
    from kvmgen.output import preflight as check

    for what, target in outputs:
        check(target, what, inputs)


def progress_for(quiet: bool) -> Progress | None:
    """A progress bar on a terminal (not with ``-q``, ``CI`` set, or stderr piped)."""
    return progress_callback(quiet)


def say(lines: Sequence[str], *, quiet: bool, prefix: str) -> None:
    """Print a summary to stderr, the first line after ``prefix``, the rest indented."""
    if quiet:
        return
    for i, line in enumerate(lines):
        click.echo(f"{prefix}: {line}" if i == 0 else f"  {line}", err=True)


def write_imported(imported: Any, output: str, fmt: str | None, inputs: list[str | None]) -> None:
    """Write an imported or recorded trace (:class:`kvmgen.importers.imports.Imported`)."""
    from kvmgen.importers.emit import format_for
    from kvmgen.output import open_output

    out_fmt = format_for(output, fmt)
    with open_output(output, what="-o", inputs=inputs, text=True) as out:
        imported.write(out, out_fmt)


def emit_session(
    session: Any,
    *,
    json_path: str | None,
    events_path: str | None,
    matrix: bool,
    quiet: bool,
    inputs: Sequence[str],
    comparisons: Sequence[Any] = (),
) -> None:
    """Write ``--json`` and ``--events``, then the human report unless stdout carries one."""
    from kvmgen import api
    from kvmgen.report.json_report import dumps, dumps_line
    from kvmgen.report.table import render

    if json_path:
        document = api.report_document(session, comparisons)
        write_output(json_path, dumps(document), what="--json", inputs=inputs)
    if events_path:
        lines = b"".join(dumps_line(record) for record in api.event_records(session))
        write_output(events_path, lines, what="--events", inputs=inputs)
    if not quiet:
        render(session, make_console(stderr=STDOUT in (json_path, events_path)), matrix=matrix)


def report_observed(
    session: Any, comparisons: Sequence[Any], *, quiet: bool, to_stderr: bool, gate: bool
) -> int:
    """Print observed-vs-modelled unless quiet; with ``gate``, exit 1 on a disagreement."""
    from kvmgen.probe.report import render, verdict

    if not comparisons:
        if gate:
            raise UsageError(
                f"{session.trace.path}: --fail-on disagree needs a trace with observations "
                "(kvmgen import tracefs, kvmgen record, kvmgen probe)"
            )
        return ExitCode.OK
    if not quiet:
        render(comparisons, make_console(stderr=to_stderr))
    failed = [c for c in comparisons if c.failed]
    if gate and failed:
        for comp in failed:
            click.echo(f"kvmgen: gate failed: {comp.label}: {verdict(comp)}", err=True)
        return ExitCode.GATE_FAILED
    return ExitCode.OK


def interrupted_exit(session: Any) -> int | None:
    """Exit 130 (Ctrl-C) or 143 (SIGTERM) with a note when the session was cut short."""
    from kvmgen.signals import interrupted_code, interruption

    if not session.partial:
        return None
    done = session.runs[-1].result.events_replayed if session.runs else 0
    click.echo(
        f"kvmgen: {interruption()} after {done:,} of {session.event_count():,} events; "
        "any report written is marked partial",
        err=True,
    )
    return interrupted_code()


def check_plot(plot_path: str | None) -> str | None:
    """The plot format (svg, png) from ``--plot``'s name, checked before any replay."""
    if not plot_path:
        return None
    from kvmgen.analysis.plot import plot_format

    return plot_format(plot_path)


def finish_plot_and_literal(
    session: Any, *, plot_path: str | None, quiet: bool, to_stderr: bool, inputs: Sequence[str]
) -> None:
    """Draw ``--plot`` and print the literal-bias windows after the usual report."""
    fmt = check_plot(plot_path)
    if plot_path and fmt:
        from kvmgen.analysis.plot import session_plot

        write_output(plot_path, session_plot(session, fmt), what="--plot", inputs=inputs)
    if not quiet and any(run.spec.literal for run in session.runs):
        from kvmgen.analysis.literal import render

        render(session, make_console(stderr=to_stderr))
