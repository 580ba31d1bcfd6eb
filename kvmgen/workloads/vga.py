"""``gen vga``: a framebuffer whose dirty logging QEMU toggles at a rate, for a duration.

The guest draws into a 16 MiB framebuffer BAR (RAM) and touches the VGA register
BAR (MMIO) while QEMU turns dirty logging on the framebuffer slot on and off:
one flags-only update per toggle, ``rate`` toggles per second for ``duration``
seconds. Between toggles the guest writes ``writes`` framebuffer pages and makes
``mmio`` register accesses; a NIC doorbell fires now and then.

Large runs are batched: ``batch`` toggles form one ``flags`` event with
``repeat`` and their accesses are folded into repeated accesses after it, so a
10^8-toggle run is ~10^8 / batch lines. The default batch keeps the output near
50,000 batches.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvmgen.workloads import Workload, access, make, update

FB_GFN = 0xFD000
VGA_MMIO = 0xFEBF0
NIC_DOORBELL = 0xFEBF1
LEGACY_WINDOW = 0xA0
TARGET_BATCHES = 50_000


@dataclass
class VgaOptions:
    """The knobs of ``gen vga``."""

    rate: float = 60.0
    duration: float = 60.0
    fb_mb: int = 16
    writes: int = 64
    mmio: int = 4
    vcpus: int = 2
    batch: int | None = None
    seed: int = 0

    @property
    def toggles(self) -> int:
        """How many flags updates the run makes."""
        return max(1, round(self.rate * self.duration))

    @property
    def effective_batch(self) -> int:
        """Toggles per emitted batch."""
        if self.batch is not None:
            return max(1, self.batch)
        return max(1, math.ceil(self.toggles / TARGET_BATCHES))


def _events(o: VgaOptions) -> Iterator[dict[str, Any]]:
    rng = random.Random(o.seed)
    fb_pages = max(1, o.fb_mb * 256)
    yield update("create", 0, gfn=0x0, pages=0xA0, note="low RAM")
    yield update("create", 1, gfn=0x100, pages=0x3FF00, note="RAM")
    yield update("create", 2, gfn=FB_GFN, pages=fb_pages, note="VGA framebuffer")
    yield access(LEGACY_WINDOW, repeat=10, note="legacy VGA window (MMIO)")
    total, batch = o.toggles, o.effective_batch
    done = 0
    while done < total:
        n = min(batch, total - done)
        t = round(done / o.rate, 6) if o.rate > 0 else 0.0
        yield update("flags", 2, repeat=n, t=t) if n > 1 else update("flags", 2, t=t)
        vcpu = rng.randrange(o.vcpus)
        page = rng.randrange(fb_pages)
        writes = max(1, round(o.writes * n * rng.uniform(0.8, 1.2)))
        yield access(FB_GFN + page, vcpu=vcpu, kind="write", repeat=writes)
        if o.mmio:
            yield access(VGA_MMIO, vcpu=vcpu, kind="write", repeat=o.mmio * n)
        if rng.random() < 0.1:
            yield access(NIC_DOORBELL, vcpu=rng.randrange(o.vcpus), kind="write")
        done += n


def generate(opts: VgaOptions, kernel: str | None = None) -> Workload:
    """The ``vga`` workload for ``opts``."""
    vm: dict[str, Any] = {"kernel": kernel} if kernel else {}
    vm["vcpus"] = opts.vcpus
    comments = [
        f"kvmgen gen vga (seed {opts.seed}): {opts.toggles:,} dirty-log toggles of a "
        f"{opts.fb_mb} MiB framebuffer at {opts.rate:g}/s for {opts.duration:g} s, "
        f"{opts.writes} framebuffer writes and {opts.mmio} register accesses per toggle",
        f"batched {opts.effective_batch} toggles per flags event",
    ]
    return make("vga", vm, _events(opts), comments)
