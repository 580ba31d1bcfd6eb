"""What ``kvmgen probe`` performs: its built-in workload, or the memslot updates of a trace.

A plan is a stream of :class:`Step` (one KVM_SET_USER_MEMORY_REGION each) plus, for
a trace, an account of what the host cannot perform. The built-in workload (all
in one VM with no vCPUs, slots of 16 pages backed by one host buffer):

1. create slot 0 (update 1);
2. with ``full``: dirty-log toggles of slot 0 until update 2^19 + 16, past the
   first wrap (E12 with one address space wraps at update 524,288);
3. the short mix: dirty-log toggles, flags updates that change nothing,
   create/delete cycles of slot 1, moves of slot 2, the same in address space 1
   when the VM has it, and a final delete of slot 0.

A trace (:class:`TracePlan`) is performed as written: the header's slots are
created first (a real VM starts with none; these creates are updates of the
probe's own), then every create, delete, move and flags update in order with
``repeat`` expanded. What a fresh VM on this host cannot do is skipped and
counted, never faked: updates in an address space the VM does not have, ``bump``
events (KVM-internal slot changes no ioctl makes alone), flags KVM refuses
(bits other than dirty logging and read-only, or read-only changed on a live
slot), and guest accesses (the probe has no vCPU).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from kvmgen.formatting import count, plural
from kvmgen.host.guest import BLOCK_PAGES, LIMIT_GFN, free_block
from kvmgen.trace.records import Event, Op, Trace

WRAP_UPDATES = 1 << 19
SLOT_PAGES = 16
BASE_GPA = {0: 0x1_0000_0000, 1: 0x2_0000_0000, 2: 0x3_0000_0000}
LOG_DIRTY_PAGES = 1
READONLY = 2
USER_FLAGS = LOG_DIRTY_PAGES | READONLY  # what KVM_SET_USER_MEMORY_REGION takes on x86
MAX_GUEST_VCPUS = 8  # vCPUs the probe's guest creates at most
MAX_SLOT_ID = 32763  # below KVM's private slots (x86 KVM_USER_MEM_SLOTS is 32764)


@dataclass
class ProbeOptions:
    """What the probe does: the built-in workload's sizes, or a trace to perform."""

    full: bool = False
    flags: int = 64
    noops: int = 4
    cycles: int = 16
    moves: int = 8
    wrap_margin: int = 16
    tracefs: str | None = None
    trace: Trace | None = None
    accesses: str = "auto"  # perform a trace's guest accesses: auto (MMIO caching), on, off


@dataclass(frozen=True)
class Step:
    """One planned KVM_SET_USER_MEMORY_REGION, or one guest access (``op == "access"``).

    ``source`` is the index of the trace event this step starts (its first
    repetition), for the capture's notes; None inside a repeat and in the built-in
    workload. An access touches ``gpa`` from ``vcpu``, writing when ``flags`` is 1.
    ``guest_block`` marks the create of the block the probe's guest runs from.
    """

    op: str
    address_space: int
    slot: int
    gpa: int
    pages: int
    flags: int
    source: int | None = None
    vcpu: int = 0
    guest_block: bool = False


def plan(opts: ProbeOptions, address_spaces: int) -> Iterator[Step]:
    """The built-in workload, in order (a generator: a full run is 524,000+ steps)."""
    size = SLOT_PAGES
    base0, base1, base2 = BASE_GPA[0], BASE_GPA[1], BASE_GPA[2]
    yield Step("create", 0, 0, base0, size, 0)
    flags = 0
    if opts.full:
        for _ in range(WRAP_UPDATES + opts.wrap_margin - 1):
            flags ^= 1
            yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.flags):
        flags ^= 1
        yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.noops):
        yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.cycles):
        yield Step("create", 0, 1, base1, size, 0)
        yield Step("delete", 0, 1, base1, 0, 0)
    if opts.moves:
        yield Step("create", 0, 2, base2, size, 0)
        gpa = base2
        for _ in range(opts.moves):
            gpa = base2 + 0x100000 if gpa == base2 else base2
            yield Step("move", 0, 2, gpa, size, 0)
        yield Step("delete", 0, 2, gpa, 0, 0)
    if address_spaces > 1:
        yield Step("create", 1, 0, base0, size, 0)
        as1_flags = 0
        for _ in range(max(1, opts.flags // 8)):
            as1_flags ^= 1
            yield Step("flags", 1, 0, base0, size, as1_flags)
        for _ in range(max(1, opts.cycles // 4)):
            yield Step("create", 1, 1, base1, size, 0)
            yield Step("delete", 1, 1, base1, 0, 0)
        yield Step("delete", 1, 0, base0, 0, 0)
    yield Step("delete", 0, 0, base0, 0, 0)


_PLURALS = {"updates": "update", "events": "event", "accesses": "access", "slots": "slot"}


def _singular(reason: str) -> str:
    """A skip reason (written for many) for one: its first plural noun made singular."""
    words = reason.split(" ")
    for i, word in enumerate(words):
        bare = word.rstrip(":")
        if bare in _PLURALS:
            words[i] = _PLURALS[bare] + word[len(bare) :]
            break
    return " ".join(words)


@dataclass
class _Slot:
    gfn: int
    pages: int
    flags: int


@dataclass
class TracePlan:
    """A trace's memslot updates as steps this host can perform, and what it cannot.

    Iterate :meth:`steps` once; afterwards :attr:`skipped` (reason -> trace updates
    or events left out), :attr:`setup` (header slots created first) and
    :attr:`performed` say what was checked live.
    """

    trace: Trace
    address_spaces: int
    perform_accesses: bool = False
    why_no_accesses: str = "the probe runs no vCPU, so the MMIO fault path is not checked live"
    skipped: Counter[str] = field(default_factory=Counter)
    setup: int = 0
    performed: int = 0
    trace_updates: int = 0
    accesses: int = 0  # guest accesses the trace makes (repeats expanded)
    accesses_done: int = 0
    _live: dict[tuple[int, int], _Slot] = field(default_factory=dict)
    _gone: dict[tuple[int, int], str] = field(default_factory=dict)
    _block: tuple[int, int] | None = None  # (gfn, slot) of the guest's block
    _vcpus: int = 0

    @property
    def largest_slot_pages(self) -> int:
        """The most pages any one slot of the trace spans (the host buffer to reserve)."""
        sizes = [decl.pages for decl in self.trace.vm.slots]
        sizes += [e.pages for e in self.trace.events if e.op == Op.CREATE]
        return max(sizes, default=1)

    def prepare_guest(self) -> None:
        """Place the guest's block where the trace never maps or touches anything.

        Call before :meth:`steps`; without room (or without a free slot id) the
        accesses are not performed, and the account says why.
        """
        if not self.perform_accesses:
            return
        taken = [(d.gfn, d.pages) for d in self.trace.vm.slots]
        slots = {d.slot for d in self.trace.vm.slots}
        sizes: dict[tuple[int, int], int] = {}
        vcpus = 0
        for event in self.trace.events:
            key = (event.address_space, event.slot)
            if event.op == Op.CREATE:
                sizes[key] = event.pages
                slots.add(event.slot)
                taken.append((event.gfn, event.pages))
            elif event.op == Op.MOVE:
                taken.append((event.gfn, sizes.get(key, 1)))
            for access in (event, *event.during) if event.op == Op.ACCESS else event.during:
                taken.append((access.gfn, 1))
                vcpus = max(vcpus, access.vcpu + 1)
        gfn = free_block(taken)
        slot = next((i for i in range(MAX_SLOT_ID + 1) if i not in slots), None)
        if gfn is None or slot is None:
            self.perform_accesses = False
            self.why_no_accesses = "no room below 4 GiB for the probe's guest"
            return
        self._block = (gfn, slot)
        self._vcpus = min(max(vcpus, 1), MAX_GUEST_VCPUS)

    @property
    def guest_block(self) -> tuple[int, int] | None:
        """``(gfn, slot)`` of the guest's block, when accesses are performed."""
        return self._block

    @property
    def guest_vcpus(self) -> int:
        """How many vCPUs the guest needs (the trace's, at most :data:`MAX_GUEST_VCPUS`)."""
        return self._vcpus

    def _skip(self, why: str, count: int = 1) -> None:
        self.skipped[why] += count

    def _refusal(self, address_space: int, flags: int, old: _Slot | None) -> str | None:
        """Why this host cannot perform an update of these flags in this address space."""
        if address_space >= self.address_spaces:
            return (
                f"updates in address space {address_space} (this VM has "
                f"{plural(self.address_spaces, 'memslot address space')})"
            )
        if flags & ~USER_FLAGS:
            return (
                f"updates with flags {flags:#x} (KVM_SET_USER_MEMORY_REGION takes dirty logging "
                "and read-only only)"
            )
        if old is not None and (old.flags ^ flags) & READONLY:
            return "flags updates that change read-only on a live slot (KVM refuses them)"
        return None

    def steps(self) -> Iterator[Step]:
        """The steps, in order: the guest's block and header slots first, then the trace's."""
        if self._block is not None:
            gfn, slot = self._block
            self.setup += 1
            yield Step("create", 0, slot, gfn << 12, BLOCK_PAGES, 0, guest_block=True)
        for decl in self.trace.vm.slots:
            why = self._refusal(decl.address_space, decl.flags, None)
            key = (decl.address_space, decl.slot)
            if why is not None:
                self._gone[key] = why
                self._skip(f"header slots: {why}")
                continue
            self._live[key] = _Slot(decl.gfn, decl.pages, decl.flags)
            self.setup += 1
            yield Step("create", *key, decl.gfn << 12, decl.pages, decl.flags)
        for event in self.trace.events:
            if event.op == Op.ACCESS:
                yield from self._access(event)
                continue
            racing = sum(access.repeat for access in event.during)
            self.accesses += racing
            if racing and self.perform_accesses:
                self._skip(
                    "racing accesses (during an update: the probe cannot place an access "
                    "inside an ioctl)",
                    racing,
                )
            if event.op == Op.BUMP:
                self._skip("bump events (KVM-internal slot changes: no ioctl makes one alone)")
                continue
            yield from self._update(event)

    def _access(self, event: Event) -> Iterator[Step]:
        self.accesses += event.repeat
        if not self.perform_accesses:
            return
        why = None
        if event.address_space != 0:
            why = "accesses in address space 1 (the probe's guest never enters SMM)"
        elif event.gfn >= LIMIT_GFN:
            why = "accesses above 4 GiB (the probe's guest runs in flat 32-bit mode)"
        elif event.vcpu >= MAX_GUEST_VCPUS:
            why = f"accesses by vCPUs {MAX_GUEST_VCPUS} and up (the guest has {MAX_GUEST_VCPUS})"
        if why is not None:
            self._skip(why, event.repeat)
            return
        source: int | None = event.index
        for _ in range(event.repeat):
            self.accesses_done += 1
            yield Step(
                "access", 0, -1, event.gfn << 12, 0, int(event.kind), source, vcpu=event.vcpu
            )
            source = None

    def _update(self, event: Event) -> Iterator[Step]:
        key = (event.address_space, event.slot)
        count = event.repeat
        self.trace_updates += count
        if event.op == Op.CREATE:
            flags = event.flags or 0
            why = self._refusal(event.address_space, flags, None)
            if why is not None:
                self._gone[key] = why
                self._skip(why)
                return
            self._gone.pop(key, None)
            self._live[key] = _Slot(event.gfn, event.pages, flags)
            self.performed += 1
            yield Step("create", *key, event.gfn << 12, event.pages, flags, event.index)
            return
        slot = self._live.get(key)
        if slot is None:
            # The validator saw this slot live: only a skipped create can leave it out here.
            self._skip(self._gone.get(key, "updates of slots that were not created"), count)
            return
        if event.op == Op.DELETE:
            del self._live[key]
            self.performed += 1
            yield Step("delete", *key, slot.gfn << 12, 0, 0, event.index)
            return
        if event.op == Op.MOVE:
            slot.gfn = event.gfn
            self.performed += 1
            yield Step("move", *key, slot.gfn << 12, slot.pages, slot.flags, event.index)
            return
        first: int | None = event.index
        for _ in range(count):
            flags = slot.flags ^ LOG_DIRTY_PAGES if event.flags is None else event.flags
            why = self._refusal(event.address_space, flags, slot)
            if why is not None:
                self._skip(why)
                continue
            slot.flags = flags
            self.performed += 1
            yield Step("flags", *key, slot.gfn << 12, slot.pages, flags, first)
            first = None

    def account(self) -> list[str]:
        """What was checked live and what was not, one sentence each."""
        first = []
        if self._block is not None:
            first.append(f"the guest's {BLOCK_PAGES}-page block at gfn {self._block[0]:#x}")
        headers = self.setup - (self._block is not None)
        if headers:
            first.append(f"its {plural(headers, 'header slot')}")
        out = [
            f"performed {count(self.performed)} of the trace's "
            f"{plural(self.trace_updates, 'update')} (repeats expanded) on a fresh VM"
            + (
                f", after creating {' and '.join(first)} (probe updates 1-{self.setup})"
                if first
                else ""
            )
        ]
        for why, n in sorted(self.skipped.items()):
            out.append(f"not performed: {count(n)} {why if n != 1 else _singular(why)}")
        if self.accesses_done:
            out.append(
                f"performed {count(self.accesses_done)} of the trace's "
                f"{plural(self.accesses, 'guest access')} from the probe's guest (MMIO ones "
                "show in the kernel's tracepoints; RAM ones do not, and are not in the capture)"
            )
        elif self.accesses:
            out.append(
                f"not performed: {plural(self.accesses, 'guest access')} ({self.why_no_accesses})"
            )
        if self.skipped or self.setup:
            out.append(
                "the probe's update numbers differ from the trace's; each event of the capture "
                "notes the trace event it performs"
            )
        return out
