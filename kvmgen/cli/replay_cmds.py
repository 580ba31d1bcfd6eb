"""``kvmgen replay`` and ``kvmgen compare``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from kvmgen.cli.app import (
    FAIL_ON,
    build_session,
    cli,
    common_options,
    emit_reports,
    gate_exit_code,
    interrupted_exit,
    split_values,
)
from kvmgen.cli.options import eras_option, kernels_option
from kvmgen.errors import ExitCode


@cli.command()
@click.argument("trace", metavar="TRACE")
@click.option("--kernel", help="Mainline kernel version, e.g. 4.19 or 6.18.")
@click.option("--era", help="Era name E0..E12 (see `kvmgen eras`).")
@common_options
@click.option(
    "--events",
    "events_path",
    metavar="PATH|-",
    help="Write one JSON line per stale hit, wrap and zap, each with its reason.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    multiple=True,
    help="Exit 1 if any run has harmful stale hits, any stale hits, or an undetected wrap; "
    "disagree: if the trace's observations (what a real kernel did) differ from the model.",
)
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE.svg|.png",
    help="Draw the generation timeline of every run, one panel each (.svg or .png).",
)
def replay(
    trace: str,
    kernel: str | None,
    era: str | None,
    fmt: str | None,
    events_path: str | None,
    fail_on: Sequence[str],
    json_path: str | None,
    quiet: bool,
    plot_path: str | None,
    **options: Any,
) -> int:
    """Replay TRACE (YAML, JSON or JSON Lines; - for stdin) under one kernel era."""
    from kvmgen.analysis.hooks import finish, prepare
    from kvmgen.runner import resolve_target

    options["biases"] = prepare(options["biases"], plot_path)

    session = build_session(
        trace,
        fmt,
        lambda t: [resolve_target(t, kernel, era)],
        compare=False,
        quiet=quiet,
        **options,
    )
    comparisons = []
    if not session.partial and (
        getattr(session.trace, "observations", ()) or "disagree" in fail_on
    ):
        from kvmgen.probe.report import compare_session

        comparisons = compare_session(session)
    emit_reports(
        session,
        json_path=json_path,
        events_path=events_path,
        matrix=False,
        quiet=quiet,
        observed=comparisons,
    )
    finish(session, plot_path=plot_path, quiet=quiet, to_stderr="-" in (json_path, events_path))
    code = interrupted_exit(session) or gate_exit_code(session, fail_on)
    if code != ExitCode.INTERRUPTED and (comparisons or "disagree" in fail_on):
        from kvmgen.probe.report import report_observed

        to_stderr = "-" in (json_path, events_path)
        gate = "disagree" in fail_on
        code = (
            report_observed(session, comparisons, quiet=quiet, to_stderr=to_stderr, gate=gate)
            or code
        )
    return code


@cli.command()
@click.argument("trace", metavar="TRACE")
@kernels_option()
@eras_option()
@common_options
@click.option(
    "--plot",
    "plot_path",
    metavar="FILE.svg|.png",
    help="Draw the generation timeline of every run, one panel each (.svg or .png).",
)
def compare(
    trace: str,
    kernels: Sequence[str],
    eras: Sequence[str],
    fmt: str | None,
    json_path: str | None,
    quiet: bool,
    plot_path: str | None,
    **options: Any,
) -> int:
    """Replay TRACE under several eras: a matrix of eras x bias policies."""
    from kvmgen.analysis.hooks import finish, prepare
    from kvmgen.runner import targets_for

    options["biases"] = prepare(options["biases"], plot_path)

    chosen = targets_for(split_values(kernels), split_values(eras))
    session = build_session(trace, fmt, lambda t: chosen, compare=True, quiet=quiet, **options)
    emit_reports(session, json_path=json_path, events_path=None, matrix=True, quiet=quiet)
    finish(session, plot_path=plot_path, quiet=quiet, to_stderr=json_path == "-")
    return interrupted_exit(session) or ExitCode.OK
