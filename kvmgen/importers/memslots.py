"""Memslot calls, from any source, replayed against the slots they imply.

Whatever saw a VMM's KVM_SET_USER_MEMORY_REGION calls (QEMU's trace log,
strace) hands :class:`RegionCall` records to one :class:`MemslotTracker`, so one
boot gives the same trace from either source. The rules that turn a call into
create/delete/move/flags (and what happens to a slot the source never showed
created) are in ``docs/importers.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kvmgen.errors import TraceError
from kvmgen.formatting import count, plural

PAGE_SHIFT = 12
GFN_LIMIT = 1 << 40
MAX_SLOT = 32767
INFERRED = "inferred: missing before line {}"
"""The note of a delete the log is missing, inferred before the call at that line."""
FIRST_SIGHT = ("auto", "create", "flags")
"""How to read a size > 0 call on a slot id the log has not shown yet (docs/importers.md)."""


@dataclass(frozen=True, slots=True)
class RegionCall:
    """One KVM_SET_USER_MEMORY_REGION(2) call, however it was seen (a QEMU log line, strace).

    ``line`` is where it stands in its source; ``ret`` is 0 or the (negative) errno;
    ``t_ns`` and ``tid`` are the time and thread when the source gives them (QEMU
    stamps a call once it returned, strace at its entry: :attr:`RegionLog.at_exit`);
    ``duration_ns`` is how long the call took, where the source says (strace -T);
    ``extras`` names payload fields the importer does not know (kept, not used).
    """

    line: int
    address_space: int
    slot: int
    flags: int
    gpa: int
    size: int
    ret: int
    t_ns: int | None = None
    tid: int | None = None
    guest_memfd: int | None = None
    extras: tuple[str, ...] = ()
    duration_ns: int | None = None
    fd: int | None = None  # the VM fd, where the source shows it (strace)


def parse_time(sec: str, frac: str) -> int:
    """Nanoseconds of ``sec.frac`` (any number of fraction digits up to 9), exactly."""
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


@dataclass
class RegionLog:
    """The memslot calls one source showed, in order, and what else it held.

    ``what`` names the source's records in summaries (``kvm_set_user_memory lines``,
    ``KVM_SET_USER_MEMORY_REGION calls``); ``lines`` and ``unrelated`` count its lines.
    ``at_exit``: each call's time is when it returned (QEMU prints the line then);
    otherwise when it was entered (strace without -T). ``address_spaces`` is the
    host's count where the source shows it (a VMM asking KVM_CAP_MULTI_ADDRESS_SPACE).
    """

    path: str
    calls: list[RegionCall]
    lines: int
    unrelated: int
    what: str = "kvm_set_user_memory lines"
    notes: list[str] = field(default_factory=list)
    at_exit: bool = True
    address_spaces: int | None = None
    from_creation: bool = False  # the source shows the VM created: every slot starts absent


@dataclass
class _Live:
    gfn: int
    pages: int
    flags: int
    line: int


@dataclass
class RegionSummary:
    """What an import did, for the one-paragraph report and the trace's header comment."""

    lines: int = 0
    records: int = 0
    updates: int = 0
    unrelated: int = 0
    failed: int = 0
    per_as: Counter[int] = field(default_factory=Counter)
    per_op: Counter[str] = field(default_factory=Counter)
    preexisting: list[str] = field(default_factory=list)
    inferred_deletes: list[str] = field(default_factory=list)
    noop_deletes: int = 0
    moves_with_flags: int = 0
    guest_memfd: int = 0
    what: str = "kvm_set_user_memory lines"  # what the source's records are, for the headline
    extras: Counter[str] = field(default_factory=Counter)

    def describe(self) -> list[str]:
        """Human sentences, one per fact worth knowing; the first is the headline."""
        per_as = ", ".join(
            f"{count(n)} in address space {a}" for a, n in sorted(self.per_as.items())
        )
        ops = ", ".join(f"{count(n)} {op}" for op, n in sorted(self.per_op.items()))
        out = [
            f"{plural(self.updates, 'update')} ({ops or 'none'}; {per_as or 'none'}) from "
            f"{count(self.records)} {self.what} of {count(self.lines)}"
        ]
        if self.unrelated:
            out.append(f"skipped {plural(self.unrelated, 'unrelated line')}")
        if self.failed:
            out.append(
                f"skipped {plural(self.failed, 'call')} with ret != 0 "
                "(refused by the kernel: nothing changed)"
            )
        if self.preexisting:
            out.append(
                f"{plural(len(self.preexisting), 'slot')} existed before the log started and "
                f"{'is' if len(self.preexisting) == 1 else 'are'} declared in vm.slots: "
                + "; ".join(self.preexisting)
            )
        if self.inferred_deletes:
            out.append(
                f"{plural(len(self.inferred_deletes), 'delete')} the log is missing "
                f"{'was' if len(self.inferred_deletes) == 1 else 'were'} inferred: "
                + "; ".join(self.inferred_deletes)
            )
        if self.noop_deletes:
            out.append(
                f"skipped {plural(self.noop_deletes, 'delete')} of slots that no longer existed"
            )
        if self.moves_with_flags:
            out.append(
                f"{plural(self.moves_with_flags, 'move')} also changed flags "
                "(one ioctl: modelled as the move)"
            )
        if self.guest_memfd:
            out.append(f"{plural(self.guest_memfd, 'call')} carried guest_memfd (private memory)")
        if self.extras:
            named = ", ".join(f"{key} ({count(n)})" for key, n in sorted(self.extras.items()))
            out.append(f"fields this kvmgen does not know were kept out: {named}")
        return out


class MemslotTracker:
    """Replays QEMU's region calls against the slots they imply; yields trace events.

    One tracker per import; :meth:`apply` returns the events (0, 1 or 2) one
    successful call stands for. Slots the log never created are collected in
    :attr:`decls` (the trace's ``vm.slots``).
    """

    def __init__(self, path: str, first_sight: str = "auto") -> None:
        if first_sight not in FIRST_SIGHT:
            raise ValueError(f"first_sight must be one of {FIRST_SIGHT}")
        self.path = path
        self.first_sight = first_sight
        self.starts_mid_run: bool | None = None if first_sight == "auto" else first_sight == "flags"
        self.live: dict[tuple[int, int], _Live] = {}
        self.seen: set[tuple[int, int]] = set()
        # Every range a create placed, per address space: a slot declared as
        # pre-existing must not overlap any of them (it was live all along).
        self.placed: dict[int, list[tuple[int, int, int, int]]] = {}
        self.decls: list[dict[str, Any]] = []
        self.summary = RegionSummary()

    def follow(self, log: RegionLog) -> None:
        """Take what the source knows: a log that shows the VM created starts at creation."""
        if self.first_sight == "auto" and log.from_creation:
            self.starts_mid_run = False

    def _decide_start(self, rec: RegionCall) -> None:
        """``auto``: decide on the first successful call whether the log starts mid-run.

        QEMU registers guest RAM at gpa 0 in slot 0 of address space 0 before anything
        else, so a log whose first successful call is that create starts at VM creation
        (every first sight of a slot is a create); any other log starts mid-run (a
        first sight with size > 0 is a flags change of a slot that already existed).
        """
        if self.starts_mid_run is None:
            self.starts_mid_run = not (
                rec.size > 0 and rec.gpa == 0 and rec.slot == 0 and rec.address_space == 0
            )

    def _free(self, a: int, gfn: int, pages: int) -> bool:
        """No range placed so far in address space ``a`` overlaps ``gfn`` + ``pages``."""
        return not any(
            g < gfn + pages and gfn < g + p for g, p, _slot, _line in self.placed.get(a, ())
        )

    def _fail(self, rec: RegionCall, message: str) -> TraceError:
        return TraceError(self.path, message, line=rec.line)

    def _place(self, a: int, slot: int, gfn: int, pages: int, line: int) -> None:
        self.placed.setdefault(a, []).append((gfn, pages, slot, line))

    def _declare(self, rec: RegionCall, gfn: int, pages: int, flags: int, why: str) -> _Live:
        a, slot = rec.address_space, rec.slot
        for other_gfn, other_pages, other_slot, other_line in self.placed.get(a, ()):
            if other_gfn < gfn + pages and gfn < other_gfn + other_pages:
                where = f"line {other_line}" if other_line else "a pre-existing declaration"
                raise self._fail(
                    rec,
                    f"slot {slot} of address space {a} was never created in this log, but it "
                    f"cannot have existed before it: gfn {gfn:#x}+{pages:#x} overlaps slot "
                    f"{other_slot} ({where})",
                )
        self.decls.append({"slot": slot, "as": a, "gfn": gfn, "pages": pages, "flags": flags})
        self._place(a, slot, gfn, pages, 0)
        self.summary.preexisting.append(f"slot {slot} (as {a}) at line {rec.line}: {why}")
        return _Live(gfn, pages, flags, 0)

    def _count(self, ev: dict[str, Any]) -> dict[str, Any]:
        self.summary.updates += 1
        self.summary.per_as[ev.get("as", 0)] += 1
        self.summary.per_op[ev["op"]] += 1
        return ev

    def _ev(self, op: str, a: int, slot: int, **fields: Any) -> dict[str, Any]:
        ev: dict[str, Any] = {"op": op, "slot": slot}
        if a:
            ev["as"] = a
        ev.update(fields)
        return self._count(ev)

    def apply(self, rec: RegionCall) -> list[dict[str, Any]]:
        """The trace events for one record (empty when it changed nothing)."""
        self.summary.records += 1
        if rec.extras:
            self.summary.extras.update(rec.extras)
        if rec.ret != 0:
            self.summary.failed += 1
            return []
        if self.starts_mid_run is None:
            self._decide_start(rec)
        if rec.guest_memfd is not None:
            self.summary.guest_memfd += 1
        a, slot = rec.address_space, rec.slot
        if a > 1:
            raise self._fail(rec, f"address space {a}: x86 KVM has address spaces 0 and 1")
        if slot > MAX_SLOT:
            raise self._fail(rec, f"slot {slot}: kvmgen traces allow slot ids 0..{MAX_SLOT}")
        if rec.gpa & 0xFFF or rec.size & 0xFFF:
            raise self._fail(
                rec,
                f"gpa {rec.gpa:#x} / size {rec.size:#x} is not page aligned, yet ret=0 "
                "(the kernel refuses unaligned regions)",
            )
        gfn, pages = rec.gpa >> PAGE_SHIFT, rec.size >> PAGE_SHIFT
        if gfn + max(pages, 1) > GFN_LIMIT:
            raise self._fail(rec, f"gpa {rec.gpa:#x} + size {rec.size:#x} ends past 2^52")
        key = (a, slot)
        cur = self.live.get(key)
        first_sight = key not in self.seen
        self.seen.add(key)
        if pages == 0:
            if cur is None and first_sight:
                # The size of a slot deleted before we saw it is unknown: one page.
                self._declare(rec, gfn, 1, rec.flags, "deleted; size unknown, declared as 1 page")
            elif cur is None:
                self.summary.noop_deletes += 1
                return []
            self.live.pop(key, None)
            return [self._ev("delete", a, slot)]
        if cur is None and first_sight and self.starts_mid_run and self._free(a, gfn, pages):
            cur = self._declare(
                rec, gfn, pages, rec.flags ^ 1, "flags changed; prior flags taken as bit 0 flipped"
            )
            self.live[key] = cur
        if cur is not None:
            if cur.gfn == gfn and cur.pages == pages:
                cur.flags = rec.flags
                return [self._ev("flags", a, slot, flags=rec.flags)]
            if cur.pages == pages:
                if cur.flags != rec.flags:
                    self.summary.moves_with_flags += 1
                cur.gfn, cur.flags = gfn, rec.flags
                self._place(a, slot, gfn, pages, rec.line)
                return [self._ev("move", a, slot, gfn=gfn)]
            self.summary.inferred_deletes.append(
                f"slot {slot} (as {a}) before line {rec.line}: its size changed "
                f"({cur.pages:#x} -> {pages:#x} pages)"
            )
            out = [self._ev("delete", a, slot, note=INFERRED.format(rec.line))]
            del self.live[key]
        else:
            out = []
        out.extend(self._evict_overlaps(rec, gfn, pages))
        self.live[key] = _Live(gfn, pages, rec.flags, rec.line)
        self._place(a, slot, gfn, pages, rec.line)
        fields: dict[str, Any] = {"gfn": gfn, "pages": pages}
        if rec.flags:
            fields["flags"] = rec.flags
        out.append(self._ev("create", a, slot, **fields))
        return out

    def _evict_overlaps(self, rec: RegionCall, gfn: int, pages: int) -> Iterator[dict[str, Any]]:
        a = rec.address_space
        for (other_a, other_slot), other in list(self.live.items()):
            if other_a != a or (other_a, other_slot) == (a, rec.slot):
                continue
            if other.gfn < gfn + pages and gfn < other.gfn + other.pages:
                self.summary.inferred_deletes.append(
                    f"slot {other_slot} (as {a}) before line {rec.line}: slot {rec.slot} "
                    f"was created over it"
                )
                del self.live[(other_a, other_slot)]
                yield self._ev("delete", a, other_slot, note=INFERRED.format(rec.line))


def seconds(t_ns: int) -> float:
    """A nanosecond timestamp as the float seconds a trace's ``t`` holds.

    Rounded to the precision the source printed (microseconds for QEMU and tracefs),
    so the written value reads back as the printed one.
    """
    return round(t_ns / 1e9, 6 if t_ns % 1000 == 0 else 9)


def import_calls(
    log: RegionLog, first_sight: str = "auto"
) -> tuple[MemslotTracker, list[dict[str, Any]]]:
    """Turn a parsed log into trace events; the tracker holds vm.slots and the summary."""
    tracker = MemslotTracker(log.path, first_sight)
    tracker.follow(log)
    tracker.summary.lines = log.lines
    tracker.summary.unrelated = log.unrelated
    tracker.summary.what = log.what
    events: list[dict[str, Any]] = []
    for rec in log.calls:
        for ev in tracker.apply(rec):
            if rec.t_ns is not None:
                ev["t"] = seconds(rec.t_ns)
            events.append(ev)
    return tracker, events


def header_for(
    tracker: MemslotTracker, kernel: str | None, address_spaces: int | None = None
) -> dict[str, Any]:
    """The ``vm`` header of an imported trace.

    ``address_spaces`` is the host's count when known (``kvmgen record`` asks the
    kernel); otherwise 2 when address space 1 appears, and unset (the era's
    default) when it does not.
    """
    vm: dict[str, Any] = {}
    if kernel:
        vm["kernel"] = kernel
    spaces = set(tracker.summary.per_as) | {d["as"] for d in tracker.decls}
    if address_spaces is not None:
        vm["address_spaces"] = address_spaces
    elif 1 in spaces:
        vm["address_spaces"] = 2
    if tracker.decls:
        vm["slots"] = tracker.decls
    return vm
