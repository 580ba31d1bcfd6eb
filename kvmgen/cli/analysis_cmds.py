"""``kvmgen forecast``, ``kvmgen search``, ``kvmgen sweep`` and ``kvmgen report``.

Thin wrappers over :mod:`kvmgen.analysis`; numba and matplotlib are imported by
the commands that need them, never at import time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from kvmgen.cli.app import cli, load_input, make_console, split_values, write_output
from kvmgen.cli.options import (
    address_spaces_option,
    biases_option,
    costs_option,
    eras_option,
    kernels_option,
)
from kvmgen.errors import ExitCode, UsageError


def _targets(trace: Any, kernels: Sequence[str], eras: Sequence[str]) -> list[Any]:
    """Targets from --kernel/--era (several allowed), else the trace header."""
    from kvmgen.runner import resolve_target, targets_for

    kernels, eras = split_values(kernels), split_values(eras)
    if kernels or eras:
        return targets_for(kernels, eras)
    if trace is None:
        raise UsageError(
            "give --kernel VERSION or --era E0..E12 (or a trace whose header names one)"
        )
    return [resolve_target(trace, None, None)]


def _policies(biases: Sequence[str]) -> list[Any]:
    from kvmgen.model.policy import DEFAULT_POLICIES, parse_policy

    return [parse_policy(b) for b in split_values(biases) or DEFAULT_POLICIES]


def _specs(target: Any, nas: int | None, policies: Sequence[Any], trace: Any = None) -> list[Any]:
    from kvmgen.model.policy import check_address_spaces, resolve_runs

    era = target.era
    header = trace.vm.address_spaces if trace is not None else None
    count = nas or header or era.default_address_spaces
    check_address_spaces(era, count, target.choice)
    return resolve_runs(era, count, list(policies), target.choice)


@cli.command()
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
@click.option("--json", "json_path", metavar="PATH|-", help="Write the forecast as JSON.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), help="Trace format.")
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
    from kvmgen.analysis.forecast import (
        BUMPS_PER_OP,
        forecast_dict,
        forecast_run,
        parse_rate,
        render_forecasts,
        trace_rates,
    )
    from kvmgen.report.json_report import dumps

    if (rate is None) == (trace is None):
        raise UsageError("forecast needs exactly one of --rate RATE or a timestamped TRACE")
    loaded = load_input(trace, fmt) if trace is not None else None
    measured = trace_rates(loaded) if loaded is not None else None
    per_second = parse_rate(rate) if rate is not None else None
    runs = []
    policies = _policies(biases)
    for target in _targets(loaded, kernels, eras):
        for spec in _specs(target, address_spaces, policies, loaded):
            if measured is not None:
                runs.append(
                    forecast_run(
                        spec,
                        updates_per_second=measured.updates_per_second,
                        bumps_per_second=measured.bumps_per_second(spec.address_spaces),
                    )
                )
            else:
                runs.append(
                    forecast_run(
                        spec, updates_per_second=per_second, bumps_per_update=BUMPS_PER_OP[op]
                    )
                )
    if measured is not None:
        source = (
            f"{trace}: {measured.updates:,} updates in {measured.span_seconds:g} s "
            f"({measured.updates_per_second:.4g}/s), bumps per AS "
            + " / ".join(f"{b:,}" for b in measured.bumps)
        )
    else:
        source = f"{rate} {op} updates per address space ({per_second:.4g}/s)"
    if json_path:
        doc = {
            "kvmgen_forecast": 1,
            "source": "trace" if measured is not None else "rate",
            "trace": trace,
            "updates_per_second": measured.updates_per_second if measured else per_second,
            "op": None if measured is not None else op,
            "runs": [forecast_dict(run) for run in runs],
        }
        write_output(json_path, dumps(doc))
    if json_path != "-":
        render_forecasts(runs, make_console(), title=f"kvmgen forecast: {source}")
    return ExitCode.OK


@cli.command()
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
@click.option("--json", "json_path", metavar="PATH|-", help="Write the search result as JSON.")
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
    from kvmgen.analysis.search import SearchConfig
    from kvmgen.analysis.search_report import describe, outcome_dict, run_search
    from kvmgen.model.policy import parse_policy
    from kvmgen.model.versions import era_for_version, lookup_era
    from kvmgen.report.json_report import dumps
    from kvmgen.runner import Target

    if (kernel is None) == (era is None):
        raise UsageError("search needs exactly one of --kernel VERSION or --era E0..E12")
    if kernel is not None:
        choice = era_for_version(kernel)
        target = Target(choice.era, choice)
    else:
        target = Target(lookup_era(str(era)))
    (spec,) = _specs(target, address_spaces, [parse_policy(bias)])
    config = SearchConfig(
        goal=goal,
        max_events=max_events,
        race=not no_race,
        max_during=max_during,
        vcpus=vcpus,
        gfns=gfns,
        budget=budget,
        seed=seed,
        time_limit=time_limit,
        source=via,
    )
    report = run_search(spec, config, kernel=kernel)
    text = describe(report)
    if json_path:
        write_output(json_path, dumps(outcome_dict(report)))
    if output and report.yaml:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(report.yaml)
    if json_path != "-":
        if output or not report.yaml:
            click.echo("\n".join(f"# {line}" for line in text))
        else:
            click.echo(report.yaml, nl=False)
    return ExitCode.OK if report.outcome.found else ExitCode.GATE_FAILED


@cli.command()
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
@click.option("--json", "json_path", metavar="PATH|-", help="Write the sweep as JSON.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), help="Trace format.")
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
    from kvmgen.analysis.sweep import parse_range, render_sweep, run_sweep, sweep_dict
    from kvmgen.model.costs import load_costs
    from kvmgen.model.policy import LITERAL_PREFIX, check_address_spaces, parse_policy
    from kvmgen.report.json_report import dumps
    from kvmgen.runner import resolve_target

    if plot_path:
        from kvmgen.analysis.plot import plot_format

        plot_format(plot_path)
    if width is None and bias is None:
        raise UsageError("sweep needs --bias START:STOP[:STEP] or --width START:STOP")
    loaded = load_input(trace, fmt)
    if not hasattr(loaded, "events"):
        loaded = loaded.materialize()
    target = resolve_target(loaded, kernel, era)
    nas = address_spaces or loaded.vm.address_spaces or target.era.default_address_spaces
    check_address_spaces(target.era, nas, target.choice)
    model = load_costs(costs_path) if costs_path else None
    if width is not None:
        policy = parse_policy(bias) if bias else None
        result = run_sweep(
            loaded,
            target.era,
            nas,
            choice=target.choice,
            widths=parse_range(width, "--width"),
            policy=policy,
            cost_model=model,
        )
    else:
        assert bias is not None
        literal = bias.strip().lower().startswith(LITERAL_PREFIX)
        text = bias.strip()[len(LITERAL_PREFIX) :] if literal else bias
        result = run_sweep(
            loaded,
            target.era,
            nas,
            choice=target.choice,
            biases=parse_range(text, "--bias"),
            literal=literal,
            cost_model=model,
        )
    if json_path:
        write_output(json_path, dumps(sweep_dict(result)))
    if plot_path:
        from kvmgen.analysis.plot import plot_sweep

        plot_sweep(result, plot_path)
    if json_path != "-":
        render_sweep(result, make_console())
    return ExitCode.OK


@cli.command()
@click.argument("trace", metavar="TRACE")
@click.option("-o", "--output", required=True, metavar="FILE.html", help="Where to write the page.")
@kernels_option("Kernel versions [default: the trace header].")
@eras_option()
@biases_option()
@address_spaces_option()
@costs_option()
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), help="Trace format.")
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

    from kvmgen.analysis.html_report import render_html
    from kvmgen.analysis.literal import with_companions
    from kvmgen.model.costs import load_costs
    from kvmgen.model.policy import parse_policy
    from kvmgen.runner import run_session

    loaded = load_input(trace, fmt)
    policies = [parse_policy(b) for b in split_values(with_companions(biases))] or None
    several = len(split_values(kernels)) + len(split_values(eras)) > 1 or "all" in [
        e.lower() for e in split_values(eras)
    ]
    session = run_session(
        loaded,
        _targets(loaded, kernels, eras),
        address_spaces=address_spaces,
        policies=policies,
        cost_model=load_costs(costs_path) if costs_path else None,
        skip_unrunnable=several,
    )
    page = render_html(session, command="kvmgen " + " ".join(sys.argv[1:]))
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as error:
        raise UsageError(f"-o {output}: cannot write: {error.strerror or error}") from None
    click.echo(f"kvmgen report: wrote {output} ({len(page):,} bytes, {len(session.runs)} runs)")
    return ExitCode.OK
