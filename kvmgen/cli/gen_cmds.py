"""``kvmgen gen``: realistic, deterministic workloads written as traces (``--seed``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from kvmgen.cli.common import say
from kvmgen.cli.options import trace_output_options as output_options
from kvmgen.errors import ExitCode, UsageError


def _write_workload(workload: Any, output: str, fmt: str | None, quiet: bool) -> int:
    from kvmgen.importers.emit import format_for, write_trace
    from kvmgen.output import open_output

    with open_output(output, what="-o", text=True) as out:
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


@click.group(name="gen")
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
