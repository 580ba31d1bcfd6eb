"""``kvmgen import qemu|tracefs``, ``kvmgen gen`` and ``kvmgen probe``: traces from the real world.

Importers and generators write trace format v1 text (YAML, or JSON with one event
per line) to a file or standard output; a one-paragraph summary goes to stderr.
Heavy modules are imported inside the commands, so ``kvmgen --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click

from kvmgen.cli.app import cli
from kvmgen.errors import ExitCode, UsageError


def read_text_lines(path: str) -> list[str]:
    """The lines of ``path`` (``-`` = stdin); undecodable bytes become U+FFFD."""
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    return data.decode("utf-8", errors="replace").splitlines()


@contextlib.contextmanager
def open_output(target: str) -> Iterator[TextIO]:
    """A text stream for ``target`` (``-`` = stdout).

    A file is written to ``target.partial`` and renamed on success, so an error
    half-way never leaves a truncated trace under the requested name.
    """
    if target == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    partial = target + ".partial"
    try:
        handle = open(partial, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"{target}: cannot write: {error.strerror or error}") from None
    try:
        with handle:
            yield handle
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    os.replace(partial, target)


def say(lines: list[str], *, quiet: bool, prefix: str) -> None:
    """Print an import or generator summary to stderr, one fact per line."""
    if quiet:
        return
    for i, line in enumerate(lines):
        click.echo(f"{prefix}: {line}" if i == 0 else f"  {line}", err=True)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output``, ``--format`` and ``-q`` for every command that writes a trace."""
    options = [
        click.option(
            "-o",
            "--output",
            default="-",
            show_default=True,
            metavar="OUT|-",
            help="Where to write the trace.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["yaml", "json", "jsonl"]),
            help="Output format [default: from OUT's suffix .json/.jsonl, else yaml]. JSON "
            "puts one event per line; JSON Lines (a header line, then events) streams.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No summary on stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.group(name="import")
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

    name = "<stdin>" if log == "-" else log
    parsed = read_log(name, read_text_lines(log))
    tracker, events = import_qemu(parsed, first_sight)
    summary = tracker.summary.describe()
    if tracker.summary.records == 0:
        raise UsageError(f"{name}: no kvm_set_user_memory lines (run QEMU with -trace ...)")
    out_fmt = format_for(output, fmt)
    with open_output(output) as out:
        write_trace(
            out,
            out_fmt,
            events,
            vm=header_for(tracker, kernel),
            comments=[f"Imported by kvmgen import qemu from {name}.", *summary],
        )
    say(summary, quiet=quiet, prefix=f"kvmgen import qemu: {name}")
    return ExitCode.OK


# --- kvmgen gen ------------------------------------------------------------------------


def _write_workload(workload: Any, output: str, fmt: str | None, quiet: bool) -> int:
    from kvmgen.importers.emit import format_for, write_trace

    with open_output(output) as out:
        write_trace(
            out,
            format_for(output, fmt),
            workload.events,
            vm=workload.vm,
            comments=workload.comments,
        )
    say([workload.stats.describe()], quiet=quiet, prefix=f"kvmgen gen {workload.name}")
    return ExitCode.OK


def gen_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--seed``, ``--kernel`` and the output options shared by every workload."""
    func = output_options(func)
    func = click.option("--kernel", help="Kernel version for the trace header (vm.kernel).")(func)
    return click.option(
        "--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same trace."
    )(func)


@cli.group(name="gen")
def gen_group() -> None:
    """Generate realistic workloads as traces (deterministic with --seed)."""


@gen_group.command(name="boot")
@gen_options
@click.option("--smm", is_flag=True, help="SMM: mirror every slot in address space 1 plus SMRAM.")
@click.option("--vcpus", type=click.IntRange(1, 4096), default=2, show_default=True)
@click.option("--ram-mb", type=click.IntRange(2, 1 << 22), default=2048, show_default=True)
@click.option(
    "--devices", type=click.IntRange(1, 8), default=4, show_default=True, help="PCI devices."
)
@click.option("--reboots", type=click.IntRange(0, 10**7), default=0, show_default=True)
@click.option(
    "--os-seconds",
    type=click.FloatRange(0, 10**7),
    default=1.0,
    show_default=True,
    help="Seconds of OS MMIO traffic after each boot.",
)
def gen_boot(
    seed: int, kernel: str | None, output: str, fmt: str | None, quiet: bool, **opts: Any
) -> int:
    """A PC boot: memslot layout, PAM and BAR churn, MMIO traffic (q35 addresses)."""
    from kvmgen.workloads.boot import BootOptions, generate

    return _write_workload(generate(BootOptions(seed=seed, **opts), kernel), output, fmt, quiet)


@gen_group.command(name="vga")
@gen_options
@click.option(
    "--rate",
    type=click.FloatRange(0, 10**9, min_open=True),
    default=60.0,
    show_default=True,
    help="Dirty-log toggles per second.",
)
@click.option(
    "--duration", type=click.FloatRange(0, 10**9, min_open=True), default=60.0, show_default=True
)
@click.option("--fb-mb", type=click.IntRange(1, 4096), default=16, show_default=True)
@click.option(
    "--writes", type=click.IntRange(0, 10**9), default=64, show_default=True, help="Per toggle."
)
@click.option(
    "--mmio", type=click.IntRange(0, 10**9), default=4, show_default=True, help="Per toggle."
)
@click.option("--vcpus", type=click.IntRange(1, 4096), default=2, show_default=True)
@click.option(
    "--batch",
    type=click.IntRange(1, 1 << 62),
    default=None,
    help="Toggles per flags event [default: enough for ~50,000 batches].",
)
def gen_vga(
    seed: int, kernel: str | None, output: str, fmt: str | None, quiet: bool, **opts: Any
) -> int:
    """Framebuffer dirty-log toggling at --rate for --duration, with drawing and MMIO."""
    from kvmgen.workloads.vga import VgaOptions, generate

    return _write_workload(generate(VgaOptions(seed=seed, **opts), kernel), output, fmt, quiet)


@gen_group.command(name="churn")
@gen_options
@click.option("--updates", type=click.IntRange(0, 1 << 62), default=10_000, show_default=True)
@click.option("--slots", type=click.IntRange(1, 4096), default=8, show_default=True)
@click.option(
    "--pages", type=click.IntRange(1, 1 << 24), default=0x100, show_default=True, help="Per slot."
)
@click.option(
    "--mix",
    default="create=1,delete=1,move=1,flags=6",
    show_default=True,
    help="Op weights, e.g. flags=1 or create=1,delete=1.",
)
@click.option(
    "--accesses",
    type=click.FloatRange(0, 10**6),
    default=2.0,
    show_default=True,
    help="Mean accesses between updates.",
)
@click.option(
    "--flags-run",
    type=click.FloatRange(1, 1e15),
    default=1.0,
    show_default=True,
    help="Mean length of a run of flags updates of one slot (one event with repeat).",
)
@click.option("--vcpus", type=click.IntRange(1, 4096), default=2, show_default=True)
@click.option("--smm", is_flag=True, help="Churn both address spaces.")
def gen_churn(
    seed: int,
    kernel: str | None,
    output: str,
    fmt: str | None,
    quiet: bool,
    mix: str,
    **opts: Any,
) -> int:
    """N updates drawn from a weighted mix of creates, deletes, moves and flags."""
    from kvmgen.workloads.churn import ChurnOptions, generate, parse_mix

    workload = generate(ChurnOptions(seed=seed, mix=parse_mix(mix), **opts), kernel)
    return _write_workload(workload, output, fmt, quiet)


@gen_group.command(name="seed-case")
@gen_options
@click.option("--era", help="Era E1..E12 [default: E3, or the era of --kernel].")
@click.option("--address-spaces", type=click.IntRange(1, 2), default=None)
@click.option("--devices", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--window",
    type=click.Choice(["before_zap", "in_progress"]),
    default="before_zap",
    show_default=True,
    help="Where the racing access sits in the wrapping update.",
)
@click.option(
    "--noise",
    type=click.IntRange(0, 1 << 40),
    default=1000,
    show_default=True,
    help="RAM accesses spread over the run.",
)
@click.option("--vcpus", type=click.IntRange(1, 4096), default=1, show_default=True)
def gen_seed_case(
    seed: int,
    kernel: str | None,
    output: str,
    fmt: str | None,
    quiet: bool,
    era: str | None,
    address_spaces: int | None,
    **opts: Any,
) -> int:
    """The stale generation-0 case: old MMIO stamps meet the wrap after the gfn became RAM."""
    from kvmgen.model.policy import check_address_spaces
    from kvmgen.model.versions import era_for_version, lookup_era
    from kvmgen.workloads.seed import SeedOptions, generate

    choice = era_for_version(kernel) if kernel else None
    chosen = lookup_era(era) if era else (choice.era if choice else lookup_era("E3"))
    if choice is not None and era is not None and choice.era.name != chosen.name:
        raise UsageError(f"kernel {kernel} is era {choice.era.name}, not {chosen.name}")
    nas = address_spaces or chosen.default_address_spaces
    check_address_spaces(chosen, nas, choice)
    header = {"kernel": kernel} if kernel else {"era": chosen.name}
    options = SeedOptions(era=chosen, address_spaces=nas, seed=seed, **opts)
    return _write_workload(generate(options, header=header), output, fmt, quiet)


# --- kvmgen import tracefs ------------------------------------------------------------------


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

    name = "<stdin>" if file == "-" else file
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
    with open_output(output) as out:
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


# --- kvmgen probe ---------------------------------------------------------------------------


@cli.command()
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
@click.option("--json", "json_path", metavar="PATH|-", help="Write the comparison as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No human report.")
def probe(
    full: bool,
    flags: int,
    noops: int,
    cycles: int,
    moves: int,
    tracefs: str | None,
    output: str,
    raw: str | None,
    json_path: str | None,
    quiet: bool,
) -> int:
    """Check the model against this host's kernel: real memslot updates, traced zaps.

    Needs root, /dev/kvm and tracefs (exit 2 naming what is missing). Exit 1 when
    the kernel and the model disagree on any update.
    """
    import json

    from kvmgen.cli.app import make_console, write_output
    from kvmgen.probe.report import render
    from kvmgen.probe.run import ProbeOptions, capture_run, compare_probe

    opts = ProbeOptions(
        full=full, flags=flags, noops=noops, cycles=cycles, moves=moves, tracefs=tracefs
    )
    run, lines = capture_run(opts)
    if raw:
        write_output(raw, ("\n".join(lines) + "\n").encode())
    with open_output(output) as out:
        out.write(run.text)
    run = compare_probe(run)
    if json_path:
        write_output(json_path, (json.dumps(run.as_dict(), indent=2) + "\n").encode())
    if not quiet:
        console = make_console(stderr="-" in (json_path, output))
        params = ", ".join(f"{k}={v}" for k, v in run.params.items()) or "unknown"
        console.print(
            f"kvmgen probe: kernel {run.kernel} (era {run.era}), {run.address_spaces} memslot "
            f"address space{'s' if run.address_spaces > 1 else ''}, kvm {params}"
        )
        if run.as1_note:
            console.print(f"  address space 1: {run.as1_note}")
        rate = f", {run.updates / run.seconds:,.0f} updates/s" if run.seconds else ""
        console.print(
            f"  {run.updates:,} updates in {run.seconds:.2f} s{rate}; tracepoints "
            f"{', '.join(run.events_enabled)} (clock {run.clock}); {run.lost} events lost"
        )
        render(run.comparisons, console)
        if output != "-":
            click.echo(f"kvmgen probe: wrote {output}", err=True)
    return ExitCode.GATE_FAILED if run.failed else ExitCode.OK
