"""``kvmgen record``: record a real VMM (started here or running) as a trace with observations."""

from __future__ import annotations

import sys

import click

from kvmgen.cli.common import preflight, say, write_imported
from kvmgen.cli.options import trace_output_options as output_options
from kvmgen.errors import ExitCode


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- VMM ARGS...]")
@output_options
@click.option("--pid", type=int, default=None, help="Attach to this running VMM instead.")
@click.option(
    "--duration",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Stop after this long [default: when the VMM exits, or on Ctrl-C]. A VMM started "
    "here is then sent SIGTERM; an attached one runs on.",
)
@click.option(
    "--tracefs",
    metavar="DIR",
    default=None,
    help="A tracefs mount [default: the mounted one; mounted privately when none is].",
)
@click.option(
    "--vm",
    "vm_id",
    metavar="FD|PID:FD",
    help="Which VM, if the VMM makes several [default: the one with the most memslot calls].",
)
@click.option(
    "--first-sight",
    type=click.Choice(["auto", "create", "flags"]),
    default="auto",
    show_default=True,
    help="Attached mid-run: a size>0 call on a slot not seen yet is a create or a flags "
    "change (see kvmgen import qemu --help).",
)
@click.option(
    "--raw",
    "raw_dir",
    metavar="DIR",
    default=None,
    help="Also keep the raw strace log and kernel trace there (strace.log, kernel-trace.txt).",
)
def record(
    command: tuple[str, ...],
    output: str,
    fmt: str | None,
    quiet: bool,
    pid: int | None,
    duration: float | None,
    tracefs: str | None,
    vm_id: str | None,
    first_sight: str,
    raw_dir: str | None,
) -> int:
    """Record a VMM's memslot updates and the kernel's zaps as one trace.

    Runs the VMM under strace (any VMM: QEMU, Firecracker, cloud-hypervisor,
    crosvm, kvmtool) while a private tracefs instance records the kernel's zap and
    MMIO tracepoints for the VMM's threads (root). Then check the model against
    this kernel with: kvmgen replay TRACE --fail-on disagree

    \b
    Examples:
      kvmgen record -o boot.yaml -- qemu-system-x86_64 -enable-kvm -m 512 ...
      kvmgen record -o vm.yaml --pid 4242 --duration 60
    """
    from kvmgen.record import RecordOptions
    from kvmgen.record import record as run_record

    args = list(command)
    if args and args[0] == "--":
        args = args[1:]
    preflight([("-o", output)], [])
    recording = run_record(
        RecordOptions(
            command=args,
            pid=pid,
            duration=duration,
            tracefs=tracefs,
            raw_dir=raw_dir,
            vm=vm_id,
            first_sight=first_sight,
            # A trace written to standard output must not mix with the VMM's output.
            vmm_stdout=sys.stderr.fileno() if output == "-" else None,
        )
    )
    write_imported(recording.imported, output, fmt, [])
    lines = list(recording.imported.summary)
    if recording.observed and output != "-":
        lines.append(f"check it: kvmgen replay {output} --fail-on disagree")
    say(lines, quiet=quiet, prefix="kvmgen record")
    return ExitCode.OK
