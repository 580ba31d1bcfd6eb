"""``kvmgen replay`` and ``kvmgen compare``."""

from __future__ import annotations

from collections.abc import Sequence

import click

from kvmgen.cli.common import (
    check_plot,
    emit_session,
    finish_plot_and_literal,
    interrupted_exit,
    preflight,
    progress_for,
    report_observed,
)
from kvmgen.cli.options import eras_option, kernels_option, plot_option, run_options
from kvmgen.errors import ExitCode
from kvmgen.output import STDOUT

FAIL_ON = ("harmful", "stale", "undetected-wrap", "disagree")


@click.command()
@click.argument("trace", metavar="TRACE")
@click.option("--kernel", help="Mainline kernel version, e.g. 4.19 or 6.18.")
@click.option("--era", help="Era name E0..E12 (see `kvmgen eras`).")
@run_options
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
@plot_option()
def replay(
    trace: str,
    kernel: str | None,
    era: str | None,
    biases: Sequence[str],
    address_spaces: int | None,
    costs_path: str | None,
    json_path: str | None,
    fmt: str | None,
    reference: bool | None,
    record_limit: int,
    allow_missing_source: bool,
    quiet: bool,
    events_path: str | None,
    fail_on: Sequence[str],
    plot_path: str | None,
) -> int:
    """Replay TRACE (YAML, JSON or JSON Lines; - for stdin) under one kernel era."""
    from kvmgen import api
    from kvmgen.report.console import compile_notice

    check_plot(plot_path)
    outputs = [("--json", json_path), ("--events", events_path), ("--plot", plot_path)]
    preflight(outputs, [trace])
    progress = progress_for(quiet)
    with compile_notice(progress is not None):
        session = api.replay(
            trace,
            kernel=kernel,
            era=era,
            biases=biases,
            address_spaces=address_spaces,
            costs=costs_path,
            reference=reference,
            record_limit=record_limit,
            fmt=fmt,
            progress=progress,
            allow_missing_source=allow_missing_source,
        )
    comparisons = []
    if getattr(session.trace, "observations", ()) or "disagree" in fail_on:
        comparisons = api.observed(session)
    to_stderr = STDOUT in (json_path, events_path)
    emit_session(
        session,
        json_path=json_path,
        events_path=events_path,
        matrix=False,
        quiet=quiet,
        inputs=[trace],
        comparisons=comparisons,
    )
    finish_plot_and_literal(
        session, plot_path=plot_path, quiet=quiet, to_stderr=to_stderr, inputs=[trace]
    )
    code = interrupted_exit(session)
    if code is not None:
        return code
    failures = session.gate_failures(fail_on)
    for line in failures:
        click.echo(f"kvmgen: gate failed: {line}", err=True)
    code = ExitCode.GATE_FAILED if failures else ExitCode.OK
    if comparisons or "disagree" in fail_on:
        gate = "disagree" in fail_on
        observed_code = report_observed(
            session, comparisons, quiet=quiet, to_stderr=to_stderr, gate=gate
        )
        code = observed_code or code
    return code


@click.command()
@click.argument("trace", metavar="TRACE")
@kernels_option()
@eras_option()
@run_options
@plot_option()
def compare(
    trace: str,
    kernels: Sequence[str],
    eras: Sequence[str],
    biases: Sequence[str],
    address_spaces: int | None,
    costs_path: str | None,
    json_path: str | None,
    fmt: str | None,
    reference: bool | None,
    record_limit: int,
    allow_missing_source: bool,
    quiet: bool,
    plot_path: str | None,
) -> int:
    """Replay TRACE under several eras: a matrix of eras x bias policies."""
    from kvmgen import api
    from kvmgen.report.console import compile_notice

    check_plot(plot_path)
    preflight([("--json", json_path), ("--plot", plot_path)], [trace])
    progress = progress_for(quiet)
    with compile_notice(progress is not None):
        session = api.compare(
            trace,
            kernels=kernels,
            eras=eras,
            biases=biases,
            address_spaces=address_spaces,
            costs=costs_path,
            reference=reference,
            record_limit=record_limit,
            fmt=fmt,
            progress=progress,
            allow_missing_source=allow_missing_source,
        )
    emit_session(
        session, json_path=json_path, events_path=None, matrix=True, quiet=quiet, inputs=[trace]
    )
    finish_plot_and_literal(
        session, plot_path=plot_path, quiet=quiet, to_stderr=json_path == STDOUT, inputs=[trace]
    )
    return interrupted_exit(session) or ExitCode.OK
