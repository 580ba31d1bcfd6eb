"""``kvmgen import qemu|tracefs``: traces from what real VMs and kernels printed.

Importers write trace format v1 text (YAML, JSON with one event per line, or JSON
Lines) to a file or standard output; a one-paragraph summary goes to stderr.
Heavy modules are imported inside the commands, so ``kvmgen --help`` stays fast.
"""

from __future__ import annotations

import click

from kvmgen.cli.common import preflight, read_text_lines, say
from kvmgen.cli.options import trace_output_options as output_options
from kvmgen.errors import ExitCode, UsageError


@click.group(name="import")
def import_group() -> None:
    """Turn QEMU trace logs and kernel trace output into kvmgen traces."""


@import_group.command(name="qemu")
@click.argument("log", metavar="LOG")
@output_options
@click.option("--kernel", help="Kernel version for the trace header (vm.kernel), e.g. 6.18.")
@click.option(
    "--first-sight",
    type=click.Choice(["auto", "create", "flags"]),
    default="auto",
    show_default=True,
    help="A size>0 call on a slot the log has not shown yet: a create, or a flags change "
    "of a slot that existed before the log (auto: flags unless the log starts at VM "
    "creation). See docs/importers.md.",
)
def import_qemu_cmd(
    log: str, output: str, fmt: str | None, quiet: bool, kernel: str | None, first_sight: str
) -> int:
    """Import QEMU kvm_set_user_memory trace lines (LOG; - for stdin) as a trace."""
    from kvmgen.importers.emit import format_for, write_trace
    from kvmgen.importers.qemu import header_for, import_qemu, read_log
    from kvmgen.output import open_output

    name = "<stdin>" if log == "-" else log
    preflight([("-o", output)], [log])
    parsed = read_log(name, read_text_lines(log))
    tracker, events = import_qemu(parsed, first_sight)
    summary = tracker.summary.describe()
    if tracker.summary.records == 0:
        raise UsageError(f"{name}: no kvm_set_user_memory lines (run QEMU with -trace ...)")
    out_fmt = format_for(output, fmt)
    with open_output(output, what="-o", inputs=[log], text=True) as out:
        write_trace(
            out,
            out_fmt,
            events,
            vm=header_for(tracker, kernel),
            comments=[f"Imported by kvmgen import qemu from {name}.", *summary],
        )
    say(summary, quiet=quiet, prefix=f"kvmgen import qemu: {name}")
    return ExitCode.OK


@import_group.command(name="tracefs")
@click.argument("file", metavar="FILE")
@output_options
@click.option("--qemu", "qemu_log", metavar="LOG", help="A QEMU log to merge in by timestamp.")
@click.option(
    "--qemu-offset",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Add to QEMU timestamps to get trace timestamps [default: same clock if the ranges "
    "overlap, else the first delete is lined up with the first zap].",
)
@click.option("--kernel", help="Kernel version for the trace header (vm.kernel).")
@click.option("--address-spaces", type=click.IntRange(1, 2), default=None)
@click.option(
    "--zaps-enabled",
    is_flag=True,
    help="The zap tracepoints were on even if none fired: compare 'no zap' too.",
)
@click.option(
    "--from-vm-start/--mid-run",
    default=None,
    help="Whether the capture began at VM creation [default: from a kvmgen marker, else mid-run].",
)
@click.option(
    "--first-sight",
    type=click.Choice(["auto", "create", "flags"]),
    default="auto",
    show_default=True,
    help="QEMU lines: a size>0 call on a slot not seen yet (see import qemu).",
)
@click.option(
    "--zap-window-ms",
    type=click.FloatRange(0, 60_000),
    default=100.0,
    show_default=True,
    help="A zap this close before a QEMU line belongs to that line's ioctl.",
)
def import_tracefs_cmd(
    file: str,
    output: str,
    fmt: str | None,
    quiet: bool,
    qemu_log: str | None,
    qemu_offset: float | None,
    kernel: str | None,
    address_spaces: int | None,
    zaps_enabled: bool,
    from_vm_start: bool | None,
    first_sight: str,
    zap_window_ms: float,
) -> int:
    """Import tracefs trace/trace_pipe text, trace-cmd report or perf script output (FILE)."""
    from kvmgen.importers.emit import format_for, write_trace
    from kvmgen.importers.qemu import read_log
    from kvmgen.importers.tracefs import import_tracefs
    from kvmgen.output import open_output

    name = "<stdin>" if file == "-" else file
    preflight([("-o", output)], [file, qemu_log])
    qemu = read_log(qemu_log, read_text_lines(qemu_log)) if qemu_log else None
    result = import_tracefs(
        name,
        read_text_lines(file),
        qemu=qemu,
        qemu_offset_ns=None if qemu_offset is None else round(qemu_offset * 1e9),
        first_sight=first_sight,
        zap_window_ns=round(zap_window_ms * 1e6),
        zaps_enabled=zaps_enabled,
        from_vm_start=from_vm_start,
    )
    if not result.summary.per_event and qemu is None:
        raise UsageError(
            f"{name}: no trace events found (expected tracefs trace/trace_pipe text, "
            "trace-cmd report or perf script output)"
        )
    if kernel:
        result.vm["kernel"] = kernel
    if address_spaces:
        result.vm["address_spaces"] = address_spaces
    out_fmt = format_for(output, fmt)
    if out_fmt == "jsonl":
        raise UsageError("import tracefs writes observations: choose --format yaml or json")
    summary = result.summary.describe()
    with open_output(output, what="-o", inputs=[file, qemu_log], text=True) as out:
        write_trace(
            out,
            out_fmt,
            result.events,
            vm=result.vm,
            observations=result.observations,
            comments=[f"Imported by kvmgen import tracefs from {name}.", *summary],
        )
    say(summary, quiet=quiet, prefix=f"kvmgen import tracefs: {name}")
    return ExitCode.OK
