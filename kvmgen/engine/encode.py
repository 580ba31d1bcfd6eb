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

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kvmgen.engine import kernels as k
from kvmgen.trace.records import Op, SlotDecl, Trace
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import EventTable, table_of

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


def access_gfns(table: EventTable) -> NDArray[np.int64]:
    """Every gfn an access (top-level or ``during``) names, sorted, once each."""
    return np.unique(table.gfn[table.op == Op.ACCESS]).astype(np.int64)


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

    def _apply(
        self, op: int, a: int, slot: int, gfn: int, pages: int, flags: int | None, reps: int
    ) -> tuple[int, int, int, int, int]:
        """Apply one update to the slot table.

        Returns how many of its repetitions bump (the rest change nothing) and
        its new and old guest-frame ranges as (start, end) pairs, (0, 0) for none.
        """
        if op == Op.CREATE:
            self.slots[(a, slot)] = [gfn, pages, flags or 0]
            return 1, gfn, gfn + pages, 0, 0
        if op == Op.DELETE:
            old, old_pages, _ = self.slots.pop((a, slot))
            return 1, 0, 0, old, old + old_pages
        entry = self.slots[(a, slot)]
        if op == Op.MOVE:
            old = entry[0]
            entry[0] = gfn
            return (0 if old == gfn else 1), gfn, gfn + entry[1], old, old + entry[1]
        if flags is None:
            entry[2] ^= reps & 1
            return reps, 0, 0, 0, 0
        changed = entry[2] != flags
        entry[2] = flags
        return (1 if changed else 0), 0, 0, 0, 0

    def encode(self, table: EventTable) -> EncodedTrace:
        """The kernel arrays for one block of events, in order."""
        top = table.sub < 0
        top_rows = np.flatnonzero(top)
        ops = table.op[top]
        is_update = (ops != Op.ACCESS) & (ops != Op.BUMP)
        # Whole columns at once; only updates walk the slot table, one by one.
        ev_x = np.zeros(ops.shape[0], dtype=np.int64)
        ev_x[ops == Op.ACCESS] = np.searchsorted(self.gfns, table.gfn[top_rows[ops == Op.ACCESS]])
        update_rows = top_rows[is_update]
        ev_x[is_update] = np.arange(update_rows.shape[0])
        upd = np.zeros((update_rows.shape[0], k.N_UCOLS), dtype=np.int64)
        columns = (
            table.op,
            table.address_space,
            table.slot,
            table.gfn,
            table.pages,
            table.flags,
            table.flags_set,
            table.repeat,
        )
        values = [column[update_rows].tolist() for column in columns]
        ranges = np.zeros((update_rows.shape[0], 4), dtype=np.int64)
        for u, (op, a, slot, gfn, pages, flags, flags_set, reps) in enumerate(
            zip(*values, strict=True)
        ):
            bumping, *spans = self._apply(
                op, a, slot, gfn, pages, flags if flags_set else None, reps
            )
            upd[u, k.U_BUMP_REPS] = bumping
            ranges[u] = spans
        indices = np.searchsorted(self.gfns, ranges, side="left")
        upd[:, k.U_LO], upd[:, k.U_HI] = indices[:, 0], indices[:, 1]
        upd[:, k.U_OLO], upd[:, k.U_OHI] = indices[:, 2], indices[:, 3]
        # During accesses follow their update; the i-th top-level row has
        # (rows before it) - i of them before it.
        during_before = top_rows - np.arange(ops.shape[0])
        during_after = np.diff(top_rows, append=len(table)) - 1
        upd[:, k.U_DSTART] = during_before[is_update]
        upd[:, k.U_DEND] = (during_before + during_after)[is_update]
        inside = ~top
        dur = np.zeros((int(inside.sum()), k.N_DFIELDS), dtype=np.int64)
        dur[:, k.D_AS] = table.address_space[inside]
        dur[:, k.D_VCPU] = table.vcpu[inside]
        dur[:, k.D_REP] = table.repeat[inside]
        dur[:, k.D_WINDOW] = table.window[inside]
        dur[:, k.D_SUB] = table.sub[inside]
        dur[:, k.D_GID] = np.searchsorted(self.gfns, table.gfn[inside])
        vcpu = table.vcpu[top].astype(np.int16)
        vcpu[ops != Op.ACCESS] = 0
        return EncodedTrace(
            gfns=self.gfns,
            ev_op=ops.astype(np.int8),
            ev_as=table.address_space[top].astype(np.int8),
            ev_vcpu=vcpu,
            ev_x=ev_x,
            ev_rep=table.repeat[top].astype(np.int64),
            ev_index=table.index[top].astype(np.int64),
            upd=upd,
            dur=dur,
            initial_cover=self.initial_cover,
            vcpus=self.vcpus,
        )


def vcpu_count(vm_vcpus: int | None, max_vcpu: int) -> int:
    """vCPUs to model: the header's count, or enough for every vCPU the events name."""
    return max(vm_vcpus or 0, max_vcpu + 1)


def encode(trace: Trace) -> EncodedTrace:
    """Build the kernel arrays for a whole in-memory trace."""
    table = table_of(trace)
    max_vcpu = int(table.vcpu.max()) if len(table) else 0
    encoder = Encoder(access_gfns(table), trace.vm.slots, vcpu_count(trace.vm.vcpus, max_vcpu))
    return encoder.encode(table)


def streamed_encoder(trace: StreamedTrace) -> Encoder:
    """The encoder for a JSON Lines trace, from what its first pass collected."""
    return Encoder(trace.access_gfns, trace.vm.slots, vcpu_count(trace.vm.vcpus, trace.max_vcpu))
