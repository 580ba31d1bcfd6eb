"""``kvmgen check``, ``kvmgen diff`` and ``kvmgen schema``: the CI regression gate.

Only click and kvmgen's error types are imported here; the gate package (and
with it the report and replay modules) is imported inside each command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from kvmgen.cli.options import (
    address_spaces_option,
    allow_missing_source_option,
    biases_option,
    costs_option,
    eras_option,
    format_option,
    jobs_option,
    json_option,
    kernels_option,
    quiet_option,
    record_limit_option,
    reference_option,
    split_option,
)
from kvmgen.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from kvmgen.gate.check import CheckResult

SCHEMAS = ("report", "check", "baseline")


@click.command()
@click.argument("traces", nargs=-1, metavar="[TRACE]...")
@kernels_option("Kernel version(s); several run like compare.")
@eras_option("Era(s) E0..E12, or 'all'.")
@biases_option()
@address_spaces_option()
@costs_option()
@format_option()
@reference_option()
@allow_missing_source_option()
@record_limit_option(
    None, "Records kept per run in saved reports [default: 10000]; counts stay exact."
)
@click.option(
    "--max",
    "max_limits",
    multiple=True,
    metavar="METRIC=VALUE",
    help="Fail when a run's METRIC is above VALUE (repeatable).",
)
@click.option(
    "--max-regression",
    "regressions",
    multiple=True,
    metavar="METRIC=PCT",
    help="Fail when METRIC grew more than PCT % over the baseline run; all=PCT for every metric.",
)
@click.option("--baseline", metavar="FILE", help="Reports to compare with (--save-baseline).")
@click.option(
    "--allow-changed-traces/--no-allow-changed-traces",
    default=None,
    help="Compare with a baseline saved for other trace content instead of failing.",
)
@click.option("--save-baseline", metavar="FILE", help="Write this run's reports as a baseline.")
@click.option("--junit", "junit_path", metavar="FILE", help="Write JUnit XML.")
@click.option("--markdown", "markdown_path", metavar="FILE|-", help="Write a Markdown summary.")
@json_option("Write the check result as JSON.")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    help="YAML settings file [default: [tool.kvmgen.check] in the nearest pyproject.toml].",
)
@click.option("--no-config", is_flag=True, help="Ignore pyproject.toml.")
@quiet_option("No tables; failures still go to stderr.")
@jobs_option(
    "Traces replayed at once, each in its own process [default: every core once "
    "the traces hold 4 MiB, else one]; the output is the same as with -j 1."
)
def check(
    traces: Sequence[str],
    kernels: Sequence[str],
    eras: Sequence[str],
    biases: Sequence[str],
    address_spaces: int | None,
    costs_path: str | None,
    fmt: str | None,
    reference: bool | None,
    allow_missing_source: bool,
    record_limit: int | None,
    max_limits: Sequence[str],
    regressions: Sequence[str],
    baseline: str | None,
    allow_changed_traces: bool | None,
    save_baseline: str | None,
    junit_path: str | None,
    markdown_path: str | None,
    json_path: str | None,
    config_path: str | None,
    no_config: bool,
    quiet: bool,
    jobs: int | None,
) -> int:
    """Replay TRACEs and fail (exit 1) when a run breaks a limit.

    Limits: --max METRIC=VALUE on every run, --max-regression METRIC=PCT against
    the same run in --baseline. Metrics: wrap_zaps, memslot_flush_zaps,
    sptes_dropped, ram_refaults, mmio_refaults, mmio_slow_paths, wraps,
    undetected_wraps, harmful_stale_hits, benign_stale_hits,
    invalidation_cycles, total_cycles. Settings may also come from
    [tool.kvmgen.check] in pyproject.toml or --config FILE.yaml; the command
    line wins.
    """
    from kvmgen import api
    from kvmgen.cli.common import progress_for
    from kvmgen.gate.config import load_config
    from kvmgen.gate.limits import MAX, MAX_REGRESSION, merge_limits, parse_options
    from kvmgen.output import STDOUT
    from kvmgen.report.console import make_console

    if config_path and no_config:
        raise UsageError("--config and --no-config contradict each other")
    config = load_config(config_path, discover=not no_config)
    limits = merge_limits(
        (config.max, config.max_regression),
        (parse_options(max_limits, MAX), parse_options(regressions, MAX_REGRESSION)),
    )
    paths = list(traces) or list(config.traces)
    if not paths:
        raise UsageError("check needs TRACE... (or traces = [...] in [tool.kvmgen.check])")
    baseline = baseline or config.baseline
    regression = any(limit.kind == MAX_REGRESSION for limit in limits)
    if regression and not baseline:
        raise UsageError("--max-regression needs --baseline FILE (write one with --save-baseline)")
    if baseline and not regression:
        raise UsageError("--baseline needs --max-regression METRIC=PCT (or all=PCT)")
    if not limits and not save_baseline:
        raise UsageError(
            "nothing to check: give --max METRIC=VALUE, --baseline FILE with "
            "--max-regression METRIC=PCT, or --save-baseline FILE"
        )
    if json_path == STDOUT and markdown_path == STDOUT:
        raise UsageError("--json - and --markdown - cannot both use standard output")
    outputs = (save_baseline, json_path, junit_path, markdown_path)
    _preflight(outputs, [*paths, baseline, config_path])
    from_cli = bool(kernels or eras)
    allow = config.allow_changed_traces if allow_changed_traces is None else allow_changed_traces
    result = api.check(
        paths,
        max={limit.metric: limit.value for limit in limits if limit.kind == MAX},
        max_regression={
            limit.metric: limit.value for limit in limits if limit.kind == MAX_REGRESSION
        },
        baseline=baseline,
        allow_changed_traces=allow,
        kernels=kernels if from_cli else config.kernels,
        eras=eras if from_cli else config.eras,
        biases=biases or config.biases,
        address_spaces=address_spaces or config.address_spaces,
        costs=costs_path or config.costs,
        fmt=fmt,
        reference=reference,
        record_limit=record_limit,
        progress=progress_for(quiet),
        allow_missing_source=allow_missing_source,
        jobs=jobs,
    )
    outcome = result.outcome
    _write_check_outputs(result, save_baseline, json_path, junit_path, markdown_path, paths)
    if not quiet:
        from kvmgen.gate.console import render_check

        render_check(outcome, make_console(stderr=STDOUT in (json_path, markdown_path)))
    for failure in outcome.failures:
        click.echo(f"kvmgen: check failed: {failure.describe()}", err=True)
    if save_baseline and not quiet:
        click.echo(f"kvmgen: baseline written to {save_baseline}", err=True)
    return ExitCode.OK if outcome.passed else ExitCode.GATE_FAILED


def _preflight(outputs: Sequence[str | None], inputs: Sequence[str | None]) -> None:
    """Before anything replays: every output writable as given, none of them an input."""
    from kvmgen.cli.common import preflight

    names = ("--save-baseline", "--json", "--junit", "--markdown")
    preflight(list(zip(names, outputs, strict=True)), inputs)


def _write_check_outputs(
    result: CheckResult,
    save_baseline: str | None,
    json_path: str | None,
    junit_path: str | None,
    markdown_path: str | None,
    inputs: Sequence[str],
) -> None:
    from kvmgen.gate.junit import junit_xml
    from kvmgen.gate.markdown import check_markdown
    from kvmgen.output import write_output
    from kvmgen.report.json_report import dumps

    if save_baseline:
        write_output(save_baseline, result.baseline_bytes(), what="--save-baseline", inputs=inputs)
    if json_path:
        write_output(json_path, dumps(result.outcome.as_dict()), what="--json", inputs=inputs)
    if junit_path:
        write_output(junit_path, junit_xml(result.outcome), what="--junit", inputs=inputs)
    if markdown_path:
        markdown = check_markdown(result.outcome).encode("utf-8")
        write_output(markdown_path, markdown, what="--markdown", inputs=inputs)


@click.command()
@click.argument("old", metavar="OLD.json")
@click.argument("new", metavar="NEW.json")
@click.option("--markdown", is_flag=True, help="Print Markdown instead of a table.")
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when anything changed.")
@click.option("--all", "show_all", is_flag=True, help="List unchanged metrics too.")
@click.option(
    "--metric",
    "metric_names",
    multiple=True,
    callback=split_option,
    help="Only these metrics (repeat or comma-separate).",
)
def diff(
    old: str,
    new: str,
    markdown: bool,
    fail_on_change: bool,
    show_all: bool,
    metric_names: Sequence[str],
) -> int:
    """What changed between two reports (or baselines), per run and metric."""
    from kvmgen.gate.baseline import read_reports
    from kvmgen.gate.diff import diff_reports
    from kvmgen.gate.limits import check_metric
    from kvmgen.gate.metrics import METRICS

    chosen = [check_metric(m, f"--metric {m}") for m in metric_names]
    result = diff_reports(
        read_reports(old, "OLD"),
        read_reports(new, "NEW"),
        metrics=[m for m in METRICS if m in chosen] if chosen else METRICS,
        show_all=show_all,
    )
    if markdown:
        from kvmgen.gate.markdown import diff_markdown

        click.echo(diff_markdown(result, old, new), nl=False)
    else:
        from kvmgen.gate.console import render_diff
        from kvmgen.report.console import make_console

        render_diff(result, make_console(), old, new)
    return ExitCode.GATE_FAILED if fail_on_change and result.changed else ExitCode.OK


@click.command()
@click.argument("name", metavar="[report|check|baseline]", required=False, default="report")
def schema(name: str) -> int:
    """Print a JSON Schema: the report (default), `check --json`, or a baseline file."""
    import json

    if name not in SCHEMAS:
        raise UsageError(f"schema {name!r}: expected one of {', '.join(SCHEMAS)}")
    if name == "report":
        from kvmgen.report.json_report import schema as load_schema

        document = load_schema()
    elif name == "check":
        from kvmgen.gate.check import check_schema

        document = check_schema()
    else:
        from kvmgen.gate.baseline import baseline_schema

        document = baseline_schema()
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    return ExitCode.OK
