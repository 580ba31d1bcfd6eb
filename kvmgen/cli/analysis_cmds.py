"""``kvmgen forecast``, ``kvmgen search``, ``kvmgen sweep`` and ``kvmgen report``.

Thin wrappers over :mod:`kvmgen.api`; numba and matplotlib are imported by
the commands that need them, never at import time.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from kvmgen.cli.common import preflight
from kvmgen.cli.options import (
    address_spaces_option,
    biases_option,
    costs_option,
    eras_option,
    format_option,
    json_option,
    kernels_option,
)
from kvmgen.errors import ExitCode
from kvmgen.output import STDOUT


@click.command()
@click.argument("trace", metavar="[TRACE]", required=False)
@click.option("--rate", help="Updates per second of each address space: 30/s, 2000/min, 5/h.")
@kernels_option()
@eras_option()
@biases_option()
@address_spaces_option("1 or 2 [default: era].")
@click.option(
    "--op",
    type=click.Choice(["flags", "create", "delete", "move"]),
    default="flags",
    show_default=True,
    help="The update the workload repeats: flags/create bump once, delete/move twice.",
)
@json_option("Write the forecast as JSON.")
@format_option(help="Trace format [default: from the file name, else sniffed].")
def forecast(
    trace: str | None,
    rate: str | None,
    kernels: Sequence[str],
    eras: Sequence[str],
    biases: Sequence[str],
    address_spaces: int | None,
    op: str,
    json_path: str | None,
    fmt: str | None,
) -> int:
    """When each address space's truncated generation wraps, and whether it is noticed.

    From --rate (each address space receives that many updates of --op), or from a
    TRACE whose events carry 't' timestamps (its measured bump rates, from VM creation).
    """
    from kvmgen import api
    from kvmgen.analysis.forecast import render_forecasts
    from kvmgen.output import write_output
    from kvmgen.report.console import make_console
    from kvmgen.report.json_report import dumps

    preflight([("--json", json_path)], [trace])
    result = api.forecast(
        rate=rate,
        trace=trace,
        kernels=kernels,
        eras=eras,
        biases=biases,
        address_spaces=address_spaces,
        op=op,
        fmt=fmt,
    )
    if json_path:
        write_output(json_path, dumps(result.as_dict()), what="--json", inputs=[trace])
    if json_path != STDOUT:
        render_forecasts(
            result.runs, make_console(), title=f"kvmgen forecast: {result.description}"
        )
    return ExitCode.OK


@click.command()
@click.option("--kernel", help="Mainline kernel version, e.g. 4.19 or 6.8.")
@click.option("--era", help="Era name E0..E12.")
@click.option(
    "--bias",
    default="historical",
    show_default=True,
    metavar="POLICY",
    help="historical, none, B or literal:B.",
)
@click.option("--goal", type=click.Choice(["harmful", "benign", "undetected-wrap"]), required=True)
@click.option("--address-spaces", type=click.IntRange(1, 2), help="1 or 2 [default: era].")
@click.option(
    "--max-events", type=click.IntRange(1, 64), default=4, show_default=True, help="The bound."
)
@click.option("--no-race", is_flag=True, help="No racing (during) accesses at all.")
@click.option(
    "--during",
    "max_during",
    type=click.IntRange(0, 3),
    default=1,
    show_default=True,
    help="Racing accesses an update may carry.",
)
@click.option(
    "--via",
    type=click.Choice(["any", "spte", "vcpu_cache"]),
    default="any",
    show_default=True,
    help="Require the stale hit to come from an SPTE check or from a vCPU MMIO cache.",
)
@click.option("--vcpus", type=click.IntRange(1, 4), default=2, show_default=True)
@click.option("--gfns", type=click.IntRange(1, 3), default=2, show_default=True)
@click.option(
    "--budget",
    type=click.IntRange(1, 10**9),
    default=200_000,
    show_default=True,
    help="Candidates to replay at most.",
)
@click.option("--time-limit", type=click.FloatRange(min=0.1), help="Seconds to search at most.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random-phase seed.")
@click.option("-o", "--output", metavar="FILE", help="Write the trace found to FILE.")
@json_option("Write the search result as JSON.")
def search(
    kernel: str | None,
    era: str | None,
    bias: str,
    goal: str,
    address_spaces: int | None,
    max_events: int,
    no_race: bool,
    max_during: int,
    via: str,
    vcpus: int,
    gfns: int,
    budget: int,
    time_limit: float | None,
    seed: int,
    output: str | None,
    json_path: str | None,
) -> int:
    """The shortest trace reaching GOAL in one era and policy, printed as trace v1.

    Exhaustive within the bound while it fits --budget, then a seeded random search
    of sub-alphabets. Exit 0 when a trace is found, 1 when none is, 2 on bad input.
    """
    from kvmgen import api
    from kvmgen.analysis.search_report import describe, outcome_dict
    from kvmgen.output import write_output
    from kvmgen.report.json_report import dumps

    preflight([("--json", json_path), ("-o", output)], [])
    report = api.search(
        goal=goal,
        kernel=kernel,
        era=era,
        bias=bias,
        address_spaces=address_spaces,
        max_events=max_events,
        race=not no_race,
        max_during=max_during,
        via=via,
        vcpus=vcpus,
        gfns=gfns,
        budget=budget,
        time_limit=time_limit,
        seed=seed,
        trace_path=output,
    )
    text = describe(report)
    if json_path:
        write_output(json_path, dumps(outcome_dict(report)), what="--json")
    if output and report.yaml:
        write_output(output, report.yaml, what="-o")
    if json_path != STDOUT:
        if output or not report.yaml:
            click.echo("\n".join(f"# {line}" for line in text))
        else:
            click.echo(report.yaml, nl=False)
    return ExitCode.OK if report.outcome.found else ExitCode.GATE_FAILED


@click.command()
@click.argument("trace", metavar="TRACE")
@click.option("--kernel", help="Mainline kernel version [default: the trace header].")
@click.option("--era", help="Era name E0..E12 [default: the trace header].")
@click.option(
    "--bias",
    metavar="RANGE|POLICY",
    help="Biases to sweep: START:STOP[:STEP] (literal:START:STOP[:STEP] for the literal "
    "hack); with --width, the one policy to run [default: historical].",
)
@click.option("--width", metavar="RANGE", help="Generation widths to sweep, e.g. 12:20.")
@address_spaces_option()
@costs_option()
@click.option("--plot", "plot_path", metavar="FILE.svg|.png", help="Draw the sweep.")
@json_option("Write the sweep as JSON.")
@format_option()
def sweep(
    trace: str,
    kernel: str | None,
    era: str | None,
    bias: str | None,
    width: str | None,
    address_spaces: int | None,
    costs_path: str | None,
    plot_path: str | None,
    json_path: str | None,
    fmt: str | None,
) -> int:
    """Replay TRACE across a range of biases or generation widths: a table and a plot."""
    from kvmgen import api
    from kvmgen.analysis.sweep import render_sweep, sweep_dict
    from kvmgen.cli.common import check_plot
    from kvmgen.output import write_output
    from kvmgen.report.console import make_console
    from kvmgen.report.json_report import dumps

    plot = check_plot(plot_path)
    preflight([("--json", json_path), ("--plot", plot_path)], [trace])
    result = api.sweep(
        trace,
        kernel=kernel,
        era=era,
        bias=bias,
        width=width,
        address_spaces=address_spaces,
        costs=costs_path,
        fmt=fmt,
    )
    if json_path:
        write_output(json_path, dumps(sweep_dict(result)), what="--json", inputs=[trace])
    if plot_path and plot:
        from kvmgen.analysis.plot import sweep_plot

        write_output(plot_path, sweep_plot(result, plot), what="--plot", inputs=[trace])
    if json_path != STDOUT:
        render_sweep(result, make_console())
    return ExitCode.OK


@click.command()
@click.argument("trace", metavar="TRACE")
@click.option("-o", "--output", required=True, metavar="FILE.html", help="Where to write the page.")
@kernels_option("Kernel versions [default: the trace header].")
@eras_option()
@biases_option()
@address_spaces_option()
@costs_option()
@format_option()
def report(
    trace: str,
    output: str,
    kernels: Sequence[str],
    eras: Sequence[str],
    biases: Sequence[str],
    address_spaces: int | None,
    costs_path: str | None,
    fmt: str | None,
) -> int:
    """Write one self-contained HTML page for TRACE: tables, timeline plot, reasons."""
    import sys

    from kvmgen import api
    from kvmgen.output import write_output

    preflight([("-o", output)], [trace])
    page, session = api.html_report(
        trace,
        kernels=kernels,
        eras=eras,
        biases=biases,
        address_spaces=address_spaces,
        costs=costs_path,
        fmt=fmt,
        command="kvmgen " + " ".join(sys.argv[1:]),
    )
    write_output(output, page, what="-o", inputs=[trace])
    from kvmgen.formatting import plural

    size = f"{plural(len(page), 'byte')}, {plural(len(session.runs), 'run')}"
    click.echo(f"kvmgen report: wrote {output} ({size})")
    return ExitCode.OK
