"""``kvmgen probe``: check the model against this host's real kernel."""

from __future__ import annotations

from typing import Any

import click

from kvmgen.cli.common import preflight
from kvmgen.cli.options import json_option, quiet_option
from kvmgen.errors import ExitCode, UsageError


@click.command()
@click.argument("trace", required=False, metavar="[TRACE]")
@click.option(
    "--full",
    is_flag=True,
    help="Run past the first wrap: dirty-log toggles up to update 2^19 + 16 first (about 40 s).",
)
@click.option(
    "--flags",
    type=click.IntRange(0, 10**6),
    default=64,
    show_default=True,
    help="Dirty-log toggles.",
)
@click.option(
    "--noops",
    type=click.IntRange(0, 10**6),
    default=4,
    show_default=True,
    help="Flags updates that change nothing.",
)
@click.option(
    "--cycles",
    type=click.IntRange(0, 10**6),
    default=16,
    show_default=True,
    help="Create/delete cycles.",
)
@click.option(
    "--moves", type=click.IntRange(0, 10**6), default=8, show_default=True, help="Slot moves."
)
@click.option(
    "--accesses",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="With TRACE: perform its guest accesses from a minimal guest (auto: where the host "
    "has MMIO caching, so the kernel's tracepoints show each outcome).",
)
@click.option("--tracefs", metavar="DIR", help="tracefs mount [default: found in /proc/mounts].")
@click.option(
    "-o",
    "--output",
    default="kvmgen-probe.yaml",
    show_default=True,
    metavar="OUT|-",
    help="Write the captured run as a trace with observations.",
)
@click.option("--raw", metavar="PATH", help="Also save the raw tracefs lines.")
@json_option("Write the comparison as JSON.")
@quiet_option()
def probe(
    trace: str | None,
    full: bool,
    flags: int,
    noops: int,
    cycles: int,
    moves: int,
    accesses: str,
    tracefs: str | None,
    output: str,
    raw: str | None,
    json_path: str | None,
    quiet: bool,
) -> int:
    """Check the model against this host's kernel: real memslot updates, traced zaps.

    Without TRACE, a built-in workload (create/delete cycles, moves, dirty-log
    toggles; --full runs past the first wrap). With TRACE (any format kvmgen
    reads; - for stdin), its memslot updates in order, repeats expanded, on a
    fresh VM: a recorded boot, a generated workload, or the counterexample
    `kvmgen search` printed. What this host cannot perform (another address
    space, bump events, accesses: the probe runs no vCPU) is skipped and counted.
    Needs root, /dev/kvm and tracefs (exit 2 naming what is missing). Exit 1 when
    the kernel and the model disagree on any update; Ctrl-C stops between two
    updates and still reports (exit 130, 143 on SIGTERM).
    """
    import json

    from kvmgen.api import probe_kernel
    from kvmgen.cli.common import progress_for
    from kvmgen.formatting import count, plural, rate, seconds
    from kvmgen.output import STDOUT, open_output, write_output
    from kvmgen.probe.report import render
    from kvmgen.report.console import make_console
    from kvmgen.signals import interrupted_code

    context = click.get_current_context()
    shaped = [
        name
        for name in ("full", "flags", "noops", "cycles", "moves")
        if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if trace is not None and shaped:
        raise UsageError(
            "kvmgen probe: --full, --flags, --noops, --cycles and --moves shape the "
            "built-in workload; a TRACE brings its own updates"
        )
    preflight([("-o", output), ("--raw", raw), ("--json", json_path)], [trace])
    if trace is None:
        from kvmgen.probe.run import ProbeOptions, capture_run, compare_probe

        opts = ProbeOptions(
            full=full, flags=flags, noops=noops, cycles=cycles, moves=moves, tracefs=tracefs
        )
        run = capture_run(opts, _step(progress_for(quiet)))
        run = compare_probe(run)
    else:
        run = probe_kernel(trace, tracefs=tracefs, accesses=accesses, progress=progress_for(quiet))
    if raw:
        write_output(raw, run.raw, what="--raw")
    with open_output(output, what="-o", text=True, inputs=[trace]) as out:
        out.write(run.text)
    if json_path:
        write_output(
            json_path, (json.dumps(run.as_dict(), indent=2) + "\n").encode(), what="--json"
        )
    if not quiet:
        console = make_console(stderr=STDOUT in (json_path, output))
        params = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "unknown"
        console.print(
            f"kvmgen probe: kernel {run.kernel} (era {run.era}), "
            f"{plural(run.address_spaces, 'memslot address space')}, kvm {params}"
        )
        if run.as1_note:
            console.print(f"  address space 1: {run.as1_note}")
        speed = f", {rate(run.updates / run.seconds)}" if run.seconds else ""
        console.print(
            f"  {plural(run.updates, 'update')} in {seconds(run.seconds)}{speed}; tracepoints "
            f"{', '.join(run.events_enabled)} (clock {run.clock}); "
            f"{plural(run.lost, 'event')} lost"
        )
        for line in run.account:
            console.print(f"  {line}")
        if run.params.get("mmio_caching") == "N":
            console.print(
                "  this host has kvm.mmio_caching=N: no MMIO SPTEs, so MMIO generation checks "
                "cannot be observed here"
            )
        if run.interrupted:
            console.print(
                f"  stopped after {count(run.steps)} of {plural(run.planned, 'step')} "
                f"({plural(run.updates, 'update')}): only those are compared"
            )
        render(run.comparisons, console)
        if output != "-":
            click.echo(f"kvmgen probe: wrote {output}", err=True)
    if run.interrupted:
        return interrupted_code()
    return ExitCode.GATE_FAILED if run.failed else ExitCode.OK


def _step(progress: Any) -> Any:
    """The built-in workload's progress, labelled as the API labels a trace's."""
    if progress is None:
        return None
    return lambda done, total: progress("probing", done, total)
