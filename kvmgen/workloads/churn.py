"""``gen churn``: N memslot updates drawn from a weighted mix, with accesses between them.

``slots`` churned slots live in bands above a fixed RAM slot: band i spans
``2 * pages`` frames at ``0x100000 + 2 * i * pages``; a slot sits in the lower or
the upper half of its band, and a move flips it to the other half, so slots never
overlap. Half of them exist before the first event (``vm.slots``: no bumps).
Each update picks an op by weight among those possible (a create needs a slot
that is not live, the others a live one) and a slot uniformly. With ``--smm`` each
update also picks an address space.

Between updates come on average ``accesses`` accesses: 60 % RAM bursts in the
fixed slot, 30 % into the bands (RAM or MMIO depending on what is mapped there:
the stale-hit candidates), 10 % device MMIO. A flags update comes as a run of
updates of one slot (geometric length, mean ``flags_run``: QEMU toggles one slot
repeatedly); consecutive flags of one slot with no access between them are one
event with ``repeat``, so ``--mix flags=1 --flags-run 1000`` makes 10^8 updates in
about 10^5 lines.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.workloads import Workload, access, make, update

OPS = ("create", "delete", "move", "flags")
RAM_SLOT = 0
BAND_BASE = 0x100000
DEVICE_MMIO = 0xFEBF0


def parse_mix(text: str) -> dict[str, float]:
    """``create=1,delete=1,move=1,flags=6`` -> weights; unknown ops and bad numbers are errors."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in OPS:
            raise UsageError(f"--mix {text!r}: unknown op {name!r}: expected {', '.join(OPS)}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise UsageError(f"--mix {text!r}: {name}: {value!r} is not a number") from None
        if weight < 0 or weight != weight:
            raise UsageError(f"--mix {text!r}: {name}: the weight must be >= 0")
        weights[name] = weight
    if not any(weights.values()):
        raise UsageError(f"--mix {text!r}: at least one op needs a weight > 0")
    return weights


@dataclass
class ChurnOptions:
    """The knobs of ``gen churn``."""

    updates: int = 10_000
    slots: int = 8
    pages: int = 0x100
    mix: dict[str, float] = field(
        default_factory=lambda: {"create": 1.0, "delete": 1.0, "move": 1.0, "flags": 6.0}
    )
    accesses: float = 2.0
    flags_run: float = 1.0
    vcpus: int = 2
    smm: bool = False
    seed: int = 0


class _Churn:
    def __init__(self, o: ChurnOptions) -> None:
        self.o = o
        self.rng = random.Random(o.seed)
        self.spaces = (0, 1) if o.smm else (0,)
        # (as, slot) -> half (0 or 1) for live slots; churned slot ids are 1..slots.
        self.live: dict[tuple[int, int], int] = {}
        self.decls: list[dict[str, Any]] = []
        for a in self.spaces:
            self.decls.append({"slot": RAM_SLOT, "as": a, "gfn": 0x100, "pages": 0x3FF00})
            for s in range(1, o.slots + 1):
                if s % 2:
                    self.live[(a, s)] = 0
                    self.decls.append({"slot": s, "as": a, "gfn": self.gfn(s, 0), "pages": o.pages})

    def gfn(self, slot: int, half: int) -> int:
        return BAND_BASE + (2 * (slot - 1) + half) * self.o.pages

    def pick(self) -> tuple[str, int, int]:
        """An op, an address space and a slot, by weight among what is possible."""
        a = self.rng.choice(self.spaces)
        live = [s for s in range(1, self.o.slots + 1) if (a, s) in self.live]
        free = [s for s in range(1, self.o.slots + 1) if (a, s) not in self.live]
        choices = [
            (op, w) for op, w in self.o.mix.items() if w > 0 and (free if op == "create" else live)
        ]
        if not choices:  # e.g. only deletes asked for and every slot gone: recreate one
            return "create", a, self.rng.choice(free)
        op = self.rng.choices([c[0] for c in choices], weights=[c[1] for c in choices])[0]
        return op, a, self.rng.choice(free if op == "create" else live)

    def accesses(self) -> Iterator[dict[str, Any]]:
        mean = self.o.accesses
        count = int(mean) + (1 if self.rng.random() < mean - int(mean) else 0)
        for _ in range(count):
            vcpu = self.rng.randrange(self.o.vcpus)
            kind = "write" if self.rng.random() < 0.3 else "read"
            a = self.rng.choice(self.spaces)
            roll = self.rng.random()
            if roll < 0.6:
                gfn, repeat = 0x100 + self.rng.randrange(0x3FF00), self.rng.randint(1, 64)
            elif roll < 0.9:
                slot = self.rng.randint(1, self.o.slots)
                half = self.rng.randrange(2)
                gfn, repeat = self.gfn(slot, half) + self.rng.randrange(self.o.pages), 1
            else:
                gfn, repeat = DEVICE_MMIO + self.rng.randrange(4), self.rng.randint(1, 4)
            yield access(gfn, address_space=a, vcpu=vcpu, kind=kind, repeat=repeat)

    def run_length(self, left: int) -> int:
        """Flags updates of one slot in a row: geometric with mean ``flags_run``."""
        mean = self.o.flags_run
        if mean <= 1:
            return 1
        u = 1.0 - self.rng.random()  # in (0, 1]
        return min(left, 1 + int(math.log(u) / math.log(1 - 1 / mean)))

    def events(self) -> Iterator[dict[str, Any]]:
        pending: dict[str, Any] | None = None  # a flags run not yet written
        done = 0
        while done < self.o.updates:
            op, a, slot = self.pick()
            n = self.run_length(self.o.updates - done) if op == "flags" else 1
            done += n
            if op == "flags":
                if pending is not None and (pending.get("as", 0), pending["slot"]) == (a, slot):
                    pending["repeat"] = pending.get("repeat", 1) + n
                else:
                    if pending is not None:
                        yield pending
                    pending = update("flags", slot, address_space=a)
                    if n > 1:
                        pending["repeat"] = n
            else:
                if pending is not None:
                    yield pending
                    pending = None
                if op == "create":
                    half = self.rng.randrange(2)
                    self.live[(a, slot)] = half
                    yield update(
                        "create",
                        slot,
                        address_space=a,
                        gfn=self.gfn(slot, half),
                        pages=self.o.pages,
                    )
                elif op == "delete":
                    del self.live[(a, slot)]
                    yield update("delete", slot, address_space=a)
                else:
                    half = 1 - self.live[(a, slot)]
                    self.live[(a, slot)] = half
                    yield update("move", slot, address_space=a, gfn=self.gfn(slot, half))
            extra = list(self.accesses())
            if extra:
                if pending is not None:
                    yield pending
                    pending = None
                yield from extra
        if pending is not None:
            yield pending


def generate(opts: ChurnOptions, kernel: str | None = None) -> Workload:
    """The ``churn`` workload for ``opts``."""
    if opts.slots < 1:
        raise UsageError("--slots must be at least 1")
    churn = _Churn(opts)
    vm: dict[str, Any] = {"kernel": kernel} if kernel else {}
    if opts.smm:
        vm["address_spaces"] = 2
    vm["vcpus"] = opts.vcpus
    vm["slots"] = churn.decls
    mix = ", ".join(f"{op}={w:g}" for op, w in opts.mix.items())
    comments = [
        f"kvmgen gen churn (seed {opts.seed}): {opts.updates:,} updates of {opts.slots} slots "
        f"({opts.pages:#x} pages each), mix {mix}, flags runs of {opts.flags_run:g}, "
        f"{opts.accesses:g} accesses between updates"
        + (", both address spaces" if opts.smm else ""),
    ]
    return make("churn", vm, churn.events(), comments)
