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

from kvmgen.trace.records import Event, Op, Trace

WRAP_UPDATES = 1 << 19
SLOT_PAGES = 16
BASE_GPA = {0: 0x1_0000_0000, 1: 0x2_0000_0000, 2: 0x3_0000_0000}
LOG_DIRTY_PAGES = 1
READONLY = 2
USER_FLAGS = LOG_DIRTY_PAGES | READONLY  # what KVM_SET_USER_MEMORY_REGION takes on x86


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


@dataclass(frozen=True)
class Step:
    """One planned KVM_SET_USER_MEMORY_REGION.

    ``source`` is the index of the trace event this step starts (its first
    repetition), for the capture's notes; None inside a repeat and in the built-in
    workload.
    """

    op: str
    address_space: int
    slot: int
    gpa: int
    pages: int
    flags: int
    source: int | None = None


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
    skipped: Counter[str] = field(default_factory=Counter)
    setup: int = 0
    performed: int = 0
    trace_updates: int = 0
    accesses: int = 0
    _live: dict[tuple[int, int], _Slot] = field(default_factory=dict)
    _gone: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def largest_slot_pages(self) -> int:
        """The most pages any one slot of the trace spans (the host buffer to reserve)."""
        sizes = [decl.pages for decl in self.trace.vm.slots]
        sizes += [e.pages for e in self.trace.events if e.op == Op.CREATE]
        return max(sizes, default=1)

    def _skip(self, why: str, count: int = 1) -> None:
        self.skipped[why] += count

    def _refusal(self, address_space: int, flags: int, old: _Slot | None) -> str | None:
        """Why this host cannot perform an update of these flags in this address space."""
        if address_space >= self.address_spaces:
            return (
                f"updates in address space {address_space} (this VM has "
                f"{self.address_spaces} memslot address space"
                f"{'s' if self.address_spaces != 1 else ''})"
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
        """The steps, in order: header slots first, then the trace's updates."""
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
                self.accesses += event.repeat
                continue
            self.accesses += sum(access.repeat for access in event.during)
            if event.op == Op.BUMP:
                self._skip("bump events (KVM-internal slot changes: no ioctl makes one alone)")
                continue
            yield from self._update(event)

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
        out = [
            f"performed {self.performed:,} of the trace's {self.trace_updates:,} updates "
            "(repeats expanded) on a fresh VM"
            + (
                f", after creating its {self.setup} header slot{'s' if self.setup != 1 else ''} "
                f"(probe updates 1-{self.setup})"
                if self.setup
                else ""
            )
        ]
        for why, count in sorted(self.skipped.items()):
            out.append(f"not performed: {count:,} {why}")
        if self.accesses:
            out.append(
                f"not performed: {self.accesses:,} guest accesses (the probe runs no vCPU, so "
                "the MMIO fault path is not checked live)"
            )
        if self.skipped or self.setup:
            out.append(
                "the probe's update numbers differ from the trace's; each event of the capture "
                "notes the trace event it performs"
            )
        return out
