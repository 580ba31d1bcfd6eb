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
from kvmgen.trace.formats.scan import as_python
from kvmgen.trace.records import Op, SlotDecl, Trace
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import EventTable, table_of
from kvmgen.trace.validate.fields import AS, SLOT

I64 = NDArray[np.int64]

_INT32_LIMIT = 2**31
PYTHON_UPDATES = 20_000
"""Updates (summed over a trace's blocks) applied as Python before the kernel is used."""


@dataclass(frozen=True)
class EncodedTrace:
    """Era-independent kernel input for one trace (or one block of one).

    Seven bytes per top-level event (kernels.EV_* describes them): a code byte
    (op, address space, whether ``ev_x`` indexes ``aux``), the vCPU and ``ev_x``,
    a plain access's gfn index or an ``aux`` row. Updates, bumps and repeated
    accesses, a small share of any trace, keep their wide fields in ``aux``.
    """

    gfns: I64  # sorted unique gfns named by accesses: gfn index -> gfn
    ev_code: NDArray[np.uint8]
    ev_vcpu: NDArray[np.uint16]
    ev_x: NDArray[np.uint32]
    first_index: int  # the index of the first event; the rest follow one by one
    aux: I64  # one row per update, bump or repeated access (kernels.U_* columns)
    dur: I64  # during accesses, one row each (kernels.D_* columns)
    initial_cover: NDArray[np.int8]  # [2, len(gfns)]: header slots
    vcpus: int

    def __len__(self) -> int:
        return int(self.ev_code.shape[0])

    def block(self, start: int, stop: int) -> EncodedTrace:
        """Events ``[start, stop)`` as their own block (views, no copies)."""
        return EncodedTrace(
            gfns=self.gfns,
            ev_code=self.ev_code[start:stop],
            ev_vcpu=self.ev_vcpu[start:stop],
            ev_x=self.ev_x[start:stop],
            first_index=self.first_index + start,
            aux=self.aux,
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
        # The slot table, [address space, slot]: first gfn, pages and flags, to know
        # each update's ranges and effect (kernels.apply_updates).
        shape = (AS.hi + 1, SLOT.hi + 1)
        self.base = np.zeros(shape, dtype=np.int64)
        self.size = np.zeros(shape, dtype=np.int64)
        self.flag = np.zeros(shape, dtype=np.int64)
        self.updates = 0  # updates applied so far
        self.initial_cover = np.zeros((2, max(len(gfns), 1)), dtype=np.int8)
        for decl in slots:
            at = (decl.address_space, decl.slot)
            self.base[at], self.size[at], self.flag[at] = decl.gfn, decl.pages, decl.flags
            lo, hi = self.span(decl.gfn, decl.pages)
            self.initial_cover[decl.address_space, lo:hi] = 1

    def span(self, gfn: int, pages: int) -> tuple[int, int]:
        """The gfn-index range ``[lo, hi)`` of the guest frames ``[gfn, gfn + pages)``."""
        lo = int(np.searchsorted(self.gfns, gfn, side="left"))
        hi = int(np.searchsorted(self.gfns, gfn + pages, side="left"))
        return lo, hi

    def _apply(self, table: EventTable, rows: I64, updates: I64) -> None:
        """Apply the updates at ``rows`` of ``table`` in order, filling in their ``updates`` rows.

        Each gets its bumping repetitions and its new and old ranges as gfn indices.
        A few updates run as Python (the kernel's own code): a trace with few
        updates never waits for it to compile.
        """
        self.updates += rows.shape[0]
        apply = k.apply_updates if self.updates > PYTHON_UPDATES else as_python(k.apply_updates)
        apply(
            rows,
            table.op,
            table.address_space,
            table.slot,
            table.gfn,
            table.pages,
            table.flags,
            table.flags_set,
            table.repeat,
            self.base,
            self.size,
            self.flag,
            updates,
        )
        for column in (k.U_LO, k.U_HI, k.U_OLO, k.U_OHI):
            updates[:, column] = np.searchsorted(self.gfns, updates[:, column], side="left")

    def encode(self, table: EventTable) -> EncodedTrace:
        """The kernel arrays for one block of events, in order."""
        top = table.sub < 0
        top_rows = np.flatnonzero(top)
        n = top_rows.shape[0]
        ops = table.op[top]
        reps = table.repeat[top]
        first_index = int(table.index[top_rows[0]]) if n else 0
        if n and np.any(table.index[top_rows] != np.arange(first_index, first_index + n)):
            raise ValueError("event indices do not follow one another")
        is_access = ops == Op.ACCESS
        is_update = ~is_access & (ops != Op.BUMP)
        # Whole columns at once; only updates walk the slot table, in a kernel.
        gid = np.zeros(n, dtype=np.int64)
        gid[is_access] = np.searchsorted(self.gfns, table.gfn[top_rows[is_access]])
        uses_aux = ~is_access | (reps != 1)
        aux_count = int(uses_aux.sum())
        if max(aux_count, len(self.gfns)) >= _INT32_LIMIT:
            raise ValueError("too many events in one block for 32-bit event columns")
        ev_x = gid.astype(np.uint32)
        ev_x[uses_aux] = np.arange(aux_count, dtype=np.uint32)
        aux = np.zeros((aux_count, k.N_UCOLS), dtype=np.int64)
        aux[:, k.U_REPS] = reps[uses_aux]
        aux[:, k.U_GID] = gid[uses_aux]
        updates = aux[is_update[uses_aux]]
        self._apply(table, top_rows[is_update], updates)
        # During accesses follow their update; the i-th top-level row has
        # (rows before it) - i of them before it.
        during_before = top_rows - np.arange(n)
        during_after = np.diff(top_rows, append=len(table)) - 1
        updates[:, k.U_DSTART] = during_before[is_update]
        updates[:, k.U_DEND] = (during_before + during_after)[is_update]
        aux[is_update[uses_aux]] = updates
        inside = ~top
        dur = np.zeros((int(inside.sum()), k.N_DFIELDS), dtype=np.int64)
        dur[:, k.D_AS] = table.address_space[inside]
        dur[:, k.D_VCPU] = table.vcpu[inside]
        dur[:, k.D_REP] = table.repeat[inside]
        dur[:, k.D_WINDOW] = table.window[inside]
        dur[:, k.D_SUB] = table.sub[inside]
        dur[:, k.D_GID] = np.searchsorted(self.gfns, table.gfn[inside])
        vcpu = np.where(is_access, table.vcpu[top], 0).astype(np.uint16)
        code = ops.astype(np.uint8)
        code |= table.address_space[top].astype(np.uint8) << np.uint8(k.EV_AS_SHIFT)
        code[uses_aux] |= np.uint8(k.EV_AUX)
        return EncodedTrace(
            gfns=self.gfns,
            ev_code=code,
            ev_vcpu=vcpu,
            ev_x=ev_x,
            first_index=first_index,
            aux=aux,
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
