"""``kvmgen import qemu|strace|tracefs``: traces from what real VMs and kernels printed.

Importers write trace format v1 text (YAML, JSON with one event per line, or JSON
Lines) to a file or standard output; a one-paragraph summary goes to stderr.
Heavy modules are imported inside the commands, so ``kvmgen --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from kvmgen.cli.common import preflight, say, write_imported
from kvmgen.cli.options import apply
from kvmgen.cli.options import trace_output_options as output_options
from kvmgen.errors import ExitCode

FIRST_SIGHT_HELP = (
    "A size>0 call on a slot the log has not shown yet: a create, or a flags change "
    "of a slot that existed before the log (auto: flags unless the log starts at VM "
    "creation). See docs/importers.md."
)


def _header_options(func: Any) -> Any:
    """``--kernel``, ``--address-spaces`` and ``--first-sight`` of every importer."""
    return apply(
        func,
        click.option(
            "--kernel", help="Kernel version for the trace header (vm.kernel), e.g. 6.18."
        ),
        click.option(
            "--address-spaces",
            type=click.IntRange(1, 2),
            default=None,
            help="The host's memslot address spaces for the header [default: 2 if address "
            "space 1 appears, else the era's].",
        ),
        click.option(
            "--first-sight",
            type=click.Choice(["auto", "create", "flags"]),
            default="auto",
            show_default=True,
            help=FIRST_SIGHT_HELP,
        ),
    )


def _vm_option(func: Any) -> Any:
    return click.option(
        "--vm",
        "vm_id",
        metavar="FD|PID:FD",
        help="Which VM of a strace log: the fd KVM_CREATE_VM returned [default: the only one].",
    )(func)


@click.group(name="import")
def import_group() -> None:
    """Turn QEMU trace logs, strace logs and kernel trace output into kvmgen traces."""


@import_group.command(name="qemu")
@click.argument("log", metavar="LOG")
@output_options
@_header_options
def import_qemu_cmd(
    log: str,
    output: str,
    fmt: str | None,
    quiet: bool,
    kernel: str | None,
    address_spaces: int | None,
    first_sight: str,
) -> int:
    """Import QEMU kvm_set_user_memory trace lines (LOG; - for stdin) as a trace."""
    return _import(
        "qemu",
        log,
        output,
        fmt,
        quiet,
        kernel=kernel,
        address_spaces=address_spaces,
        first_sight=first_sight,
    )


def _import(
    kind: str, source: str, output: str, fmt: str | None, quiet: bool, **options: Any
) -> int:
    """Every ``kvmgen import``: check the output, call :func:`kvmgen.api.import_log`, write."""
    from kvmgen.api import import_log

    name = "<stdin>" if source == "-" else source
    inputs = [source, options.get("qemu"), options.get("strace")]
    preflight([("-o", output)], inputs)
    # The API reads a path itself (one reader, one message); standard input is read here.
    content = sys.stdin.buffer.read() if source == "-" else source
    imported = import_log(kind, content, name=name, **options)
    write_imported(imported, output, fmt, inputs)
    say(imported.summary, quiet=quiet, prefix=f"kvmgen import {kind}: {name}")
    return ExitCode.OK


@import_group.command(name="strace")
@click.argument("log", metavar="LOG")
@output_options
@_header_options
@_vm_option
def import_strace_cmd(
    log: str,
    output: str,
    fmt: str | None,
    quiet: bool,
    kernel: str | None,
    address_spaces: int | None,
    first_sight: str,
    vm_id: str | None,
) -> int:
    """Import a VMM's KVM_SET_USER_MEMORY_REGION calls from strace output (LOG; - for stdin).

    Works for any VMM: strace -f -ttt -e trace=ioctl -o LOG VMM ARGS...
    """
    return _import(
        "strace",
        log,
        output,
        fmt,
        quiet,
        vm=vm_id,
        kernel=kernel,
        address_spaces=address_spaces,
        first_sight=first_sight,
    )


@import_group.command(name="tracefs")
@click.argument("file", metavar="FILE")
@output_options
@click.option("--qemu", "qemu_log", metavar="LOG", help="A QEMU log giving the updates.")
@click.option("--strace", "strace_log", metavar="LOG", help="A strace log giving the updates.")
@_vm_option
@click.option(
    "--offset",
    "--qemu-offset",
    "offset",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Add to the log's timestamps to get trace timestamps [default: the trace's ioctl "
    "events if it has them, else the offset that puts every zap inside a delete or move].",
)
@_header_options
@click.option(
    "--zaps-enabled",
    is_flag=True,
    help="The zap tracepoints were on even if none fired: compare 'no zap' too.",
)
@click.option(
    "--from-vm-start/--mid-run",
    default=None,
    help="Whether the capture began at VM creation [default: from a kvmgen marker, or from "
    "a strace log that shows the VM created and every call's ioctl; else mid-run].",
)
@click.option(
    "--zap-window-ms",
    type=click.FloatRange(0, 60_000),
    default=100.0,
    show_default=True,
    help="A zap this close before a log line of no known thread belongs to that line's ioctl.",
)
def import_tracefs_cmd(
    file: str,
    output: str,
    fmt: str | None,
    quiet: bool,
    qemu_log: str | None,
    strace_log: str | None,
    vm_id: str | None,
    offset: float | None,
    kernel: str | None,
    address_spaces: int | None,
    first_sight: str,
    zaps_enabled: bool,
    from_vm_start: bool | None,
    zap_window_ms: float,
) -> int:
    """Import tracefs trace/trace_pipe text, trace-cmd report or perf script output (FILE)."""
    return _import(
        "tracefs",
        file,
        output,
        fmt,
        quiet,
        qemu=qemu_log,
        strace=strace_log,
        vm=vm_id,
        offset_s=offset,
        kernel=kernel,
        address_spaces=address_spaces,
        first_sight=first_sight,
        zaps_enabled=zaps_enabled,
        from_vm_start=from_vm_start,
        zap_window_s=zap_window_ms / 1e3,
    )
