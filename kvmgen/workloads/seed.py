"""``gen seed-case``: the stale generation-0 case (kernel-semantics.md section 7).

Devices are probed while unmapped, so their gfns get MMIO SPTEs stamped with
generation 0 (before any update). A slot then maps RAM over them, and dirty-log
toggles of that slot drive the generation of address space 0 around its truncated
range until it comes back to the value the SPTEs hold: the wrapping update. An
access to the first device gfn races that update (``before_zap`` by default): in
E3-E5 without the bias the old SPTE passes the check although the gfn is RAM
now (a harmful stale hit); E6+ zap before publishing. With the era's historical
bias the first wrap comes 75 updates after boot instead, long before any stamp is
old, except in E5, where address space 0 never zaps with the bias: its stamps
come back unchallenged (two harmful hits: nothing ever drops them).

The wrapping update is computed from the era record, for address space 0 with no
bias: the nominal generation has ``2^W`` values and each update of address space
0 advances it by 1 (E1/E2), 2 (E3/E4), 2 x NAS (E5) or NAS (E6+).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.formatting import plural
from kvmgen.model.eras import BumpScheme, Era
from kvmgen.workloads import Workload, access, make, update

DEVICE_BASE = 0xFE000
DEVICE_STRIDE = 0x100
RAM = (0x100, 0x3FF00)
WINDOWS = ("before_zap", "in_progress")


def wrap_update(era: Era, address_spaces: int) -> int:
    """The update at which address space 0's nominal generation returns to its start."""
    if not era.has_mmio_generation:
        raise UsageError(f"{era.name} has no MMIO generation: the seed case cannot happen there")
    step = {
        BumpScheme.PLAIN: 1,
        BumpScheme.ODD_EVEN: 2,
        BumpScheme.ODD_STRIDE: 2 * address_spaces,
        BumpScheme.BIT63: address_spaces,
    }[era.bump_scheme]
    return (1 << era.nominal_width) // step


@dataclass
class SeedOptions:
    """The knobs of ``gen seed-case``."""

    era: Era
    address_spaces: int
    devices: int = 2
    window: str = "before_zap"
    noise: int = 1000
    chunks: int = 8
    vcpus: int = 1
    seed: int = 0


def _events(o: SeedOptions, wrap_at: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(o.seed)
    devices = [DEVICE_BASE + DEVICE_STRIDE * i for i in range(o.devices)]
    for i, gfn in enumerate(devices):
        yield access(gfn, vcpu=i % o.vcpus, note=f"device {i} probed while unmapped: stamped at 0")
    yield update(
        "create",
        1,
        gfn=DEVICE_BASE,
        pages=DEVICE_STRIDE * o.devices,
        note="the device range becomes RAM (update 1)",
    )
    # Updates 2 .. wrap_at - 1: dirty-log toggles, in chunks with RAM traffic between.
    toggles = wrap_at - 2
    chunks = max(1, min(o.chunks, toggles)) if toggles > 0 else 0
    done = 0
    for c in range(chunks):
        n = toggles // chunks + (1 if c < toggles % chunks else 0)
        yield update("flags", 1, repeat=n) if n > 1 else update("flags", 1)
        done += n
        if o.noise:
            yield access(
                RAM[0] + rng.randrange(RAM[1]),
                vcpu=rng.randrange(o.vcpus),
                kind="write",
                repeat=max(1, o.noise // chunks),
            )
    yield update(
        "flags",
        1,
        note=f"update {wrap_at:,}: the generation wraps back to the stamps",
        during=[{"op": "access", "gfn": devices[0], "window": o.window}],
    )
    if len(devices) > 1:
        yield access(devices[1], note="after the wrapping update")


def generate(opts: SeedOptions, *, header: dict[str, Any]) -> Workload:
    """The ``seed-case`` workload; ``header`` names the era (vm.kernel or vm.era)."""
    if opts.window not in WINDOWS:
        raise UsageError(f"--window {opts.window!r}: expected {' or '.join(WINDOWS)}")
    if opts.devices < 1:
        raise UsageError("--devices must be at least 1")
    wrap_at = wrap_update(opts.era, opts.address_spaces)
    vm = dict(header)
    vm["address_spaces"] = opts.address_spaces
    vm["vcpus"] = opts.vcpus
    vm["slots"] = [{"slot": 0, "as": 0, "gfn": RAM[0], "pages": RAM[1]}]
    comments = [
        f"kvmgen gen seed-case (seed {opts.seed}): the stale generation-0 case for "
        f"{opts.era.name} with {plural(opts.address_spaces, 'address space')}: "
        f"{plural(opts.devices, 'device gfn')} stamped at generation 0, mapped as RAM, then "
        "the wrapping update "
        f"{wrap_at:,} races an access ({opts.window}).",
        "Replay without the bias (--bias none) for the stale hit; with the historical bias "
        "the wrap comes early and finds no old stamp, except in E5 (address space 0 never "
        "zaps with the bias).",
    ]
    return make("seed-case", vm, _events(opts, wrap_at), comments)
