"""Turn validated trace events into the flat arrays the kernels read.

This is the only place kernel inputs are built. Guest frame numbers are mapped
to dense indices into the sorted set of gfns that accesses name: the kernels
only ever need to know about those gfns, so a slot covering 2^30 pages costs
nothing more than one covering a single accessed page.

An :class:`Encoder` carries the slot table from one block of events to the
next, so a long trace can be encoded and replayed block by block (streaming,
progress, Ctrl-C) against one gfn universe fixed up front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kvmgen.engine import kernels as k
from kvmgen.trace.jsonl import StreamedTrace
from kvmgen.trace.records import Event, Op, SlotDecl, Trace

I64 = NDArray[np.int64]


@dataclass(frozen=True)
class EncodedTrace:
    """Era-independent kernel input for one trace (or one block of one)."""

    gfns: I64  # sorted unique gfns named by accesses: gfn index -> gfn
    ev_op: NDArray[np.int8]
    ev_as: NDArray[np.int8]
    ev_vcpu: NDArray[np.int16]
    ev_x: I64
    ev_rep: I64
    ev_index: I64
    upd: I64
    dur: I64  # during accesses, one row each (kernels.D_* columns)
    initial_cover: NDArray[np.int8]  # [2, len(gfns)]: header slots
    vcpus: int

    def __len__(self) -> int:
        return int(self.ev_op.shape[0])

    def block(self, start: int, stop: int) -> EncodedTrace:
        """Events ``[start, stop)`` as their own block (views, no copies)."""
        return EncodedTrace(
            gfns=self.gfns,
            ev_op=self.ev_op[start:stop],
            ev_as=self.ev_as[start:stop],
            ev_vcpu=self.ev_vcpu[start:stop],
            ev_x=self.ev_x[start:stop],
            ev_rep=self.ev_rep[start:stop],
            ev_index=self.ev_index[start:stop],
            upd=self.upd,
            dur=self.dur,
            initial_cover=self.initial_cover,
            vcpus=self.vcpus,
        )


def access_gfns(events: Iterable[Event]) -> set[int]:
    """Every gfn an access (top-level or ``during``) names."""
    found: set[int] = set()
    for event in events:
        if event.op == Op.ACCESS:
            found.add(event.gfn)
        for sub in event.during:
            found.add(sub.gfn)
    return found


class Encoder:
    """Encodes blocks of events against one gfn universe, carrying the slot table."""

    def __init__(self, gfns: I64, slots: Sequence[SlotDecl], vcpus: int) -> None:
        self.gfns = gfns
        self.vcpus = vcpus
        # (as, slot) -> [gfn, pages, flags], to know each update's ranges and effect.
        self.slots: dict[tuple[int, int], list[int]] = {}
        self.initial_cover = np.zeros((2, max(len(gfns), 1)), dtype=np.int8)
        for decl in slots:
            self.slots[(decl.address_space, decl.slot)] = [decl.gfn, decl.pages, decl.flags]
            lo, hi = self.span(decl.gfn, decl.pages)
            self.initial_cover[decl.address_space, lo:hi] = 1

    def span(self, gfn: int, pages: int) -> tuple[int, int]:
        """The gfn-index range ``[lo, hi)`` of the guest frames ``[gfn, gfn + pages)``."""
        lo = int(np.searchsorted(self.gfns, gfn, side="left"))
        hi = int(np.searchsorted(self.gfns, gfn + pages, side="left"))
        return lo, hi

    def _bumping_reps(self, event: Event) -> int:
        """How many repetitions of an update change something (the rest bump nothing)."""
        if event.op == Op.FLAGS:
            entry = self.slots[(event.address_space, event.slot)]
            if event.flags is None:
                entry[2] ^= event.repeat & 1
                return event.repeat
            changed = entry[2] != event.flags
            entry[2] = event.flags
            return 1 if changed else 0
        if event.op == Op.MOVE:
            return 0 if self.slots[(event.address_space, event.slot)][0] == event.gfn else 1
        return 1

    def _update_row(self, event: Event, during: list[list[int]], gfns: list[int]) -> list[int]:
        row = [0] * k.N_UCOLS
        a = event.address_space
        row[k.U_BUMP_REPS] = self._bumping_reps(event)
        if event.op == Op.CREATE:
            self.slots[(a, event.slot)] = [event.gfn, event.pages, event.flags or 0]
            row[k.U_LO], row[k.U_HI] = self.span(event.gfn, event.pages)
        elif event.op == Op.DELETE:
            gfn, pages, _ = self.slots.pop((a, event.slot))
            row[k.U_OLO], row[k.U_OHI] = self.span(gfn, pages)
        elif event.op == Op.MOVE:
            entry = self.slots[(a, event.slot)]
            row[k.U_OLO], row[k.U_OHI] = self.span(entry[0], entry[1])
            row[k.U_LO], row[k.U_HI] = self.span(event.gfn, entry[1])
            entry[0] = event.gfn
        row[k.U_DSTART] = len(during)
        for sub in event.during:
            entry = [0] * k.N_DFIELDS
            entry[k.D_AS] = sub.address_space
            entry[k.D_VCPU] = sub.vcpu
            entry[k.D_REP] = sub.repeat
            entry[k.D_WINDOW] = int(sub.window)
            entry[k.D_SUB] = sub.sub
            during.append(entry)
            gfns.append(sub.gfn)
        row[k.U_DEND] = len(during)
        return row

    def encode(self, events: Sequence[Event]) -> EncodedTrace:
        """The kernel arrays for one block of events, in order."""
        n = len(events)
        # Plain lists while walking the Python records, one numpy conversion at the end:
        # per-element numpy calls would dominate the cost of encoding.
        ops = [0] * n
        spaces = [0] * n
        vcpu_col = [0] * n
        x_col = [0] * n
        reps = [1] * n
        access_rows: list[int] = []
        access_at: list[int] = []
        upd_rows: list[list[int]] = []
        during: list[list[int]] = []
        during_gfns: list[int] = []
        for i, event in enumerate(events):
            op = event.op
            ops[i] = int(op)
            spaces[i] = event.address_space
            reps[i] = event.repeat
            if op == Op.ACCESS:
                access_rows.append(i)
                access_at.append(event.gfn)
                vcpu_col[i] = event.vcpu
            elif op != Op.BUMP:
                x_col[i] = len(upd_rows)
                upd_rows.append(self._update_row(event, during, during_gfns))
        ev_x = np.array(x_col, dtype=np.int64)
        if access_rows:
            ev_x[np.array(access_rows)] = np.searchsorted(
                self.gfns, np.array(access_at, dtype=np.int64)
            )
        dur = np.array(during, dtype=np.int64).reshape(len(during), k.N_DFIELDS)
        if during:
            dur[:, k.D_GID] = np.searchsorted(self.gfns, np.array(during_gfns, dtype=np.int64))
        return EncodedTrace(
            gfns=self.gfns,
            ev_op=np.array(ops, dtype=np.int8),
            ev_as=np.array(spaces, dtype=np.int8),
            ev_vcpu=np.array(vcpu_col, dtype=np.int16),
            ev_x=ev_x,
            ev_rep=np.array(reps, dtype=np.int64),
            ev_index=np.array([e.index for e in events], dtype=np.int64),
            upd=np.array(upd_rows, dtype=np.int64).reshape(len(upd_rows), k.N_UCOLS),
            dur=np.ascontiguousarray(dur),
            initial_cover=self.initial_cover,
            vcpus=self.vcpus,
        )


def vcpu_count(vm_vcpus: int | None, events: Iterable[Event]) -> int:
    """vCPUs to model: the header's count, or enough for every vCPU the events name."""
    named = 0
    for event in events:
        named = max(named, event.vcpu, *(sub.vcpu for sub in event.during))
    return max(vm_vcpus or 0, named + 1)


def encode(trace: Trace) -> EncodedTrace:
    """Build the kernel arrays for a whole in-memory trace."""
    gfns = np.array(sorted(access_gfns(trace.events)), dtype=np.int64)
    vcpus = vcpu_count(trace.vm.vcpus, trace.events)
    return Encoder(gfns, trace.vm.slots, vcpus).encode(trace.events)


def streamed_encoder(trace: StreamedTrace) -> Encoder:
    """The encoder for a JSON Lines trace, from what its first pass collected."""
    gfns = np.array(sorted(trace.access_gfns), dtype=np.int64)
    return Encoder(gfns, trace.vm.slots, max(trace.vm.vcpus or 0, trace.max_vcpu + 1))
