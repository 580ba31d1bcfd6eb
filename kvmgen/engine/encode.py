"""Turn a validated :class:`Trace` into the flat arrays the kernels read.

This is the only place kernel inputs are built. Guest frame numbers are mapped
to dense indices into the sorted set of gfns that accesses name: the kernels
only ever need to know about those gfns, so a slot covering 2^30 pages costs
nothing more than one covering a single accessed page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kvmgen.engine import kernels as k
from kvmgen.trace.records import Event, Op, Trace

I64 = NDArray[np.int64]


@dataclass(frozen=True)
class EncodedTrace:
    """Era-independent kernel input for one trace (or one chunk of one)."""

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


class _Slots:
    """Slot table per address space during encoding, to know each update's ranges."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[int, int], list[int]] = {}

    def add(self, a: int, slot: int, gfn: int, pages: int, flags: int) -> None:
        self.by_key[(a, slot)] = [gfn, pages, flags]

    def get(self, a: int, slot: int) -> list[int]:
        return self.by_key[(a, slot)]

    def remove(self, a: int, slot: int) -> list[int]:
        return self.by_key.pop((a, slot))


def _access_gfns(trace: Trace) -> I64:
    found = set()
    for event in trace.events:
        if event.op == Op.ACCESS:
            found.add(event.gfn)
        for sub in event.during:
            found.add(sub.gfn)
    return np.array(sorted(found), dtype=np.int64)


def _bumping_reps(event: Event, slots: _Slots) -> int:
    """How many repetitions of an update change something (the rest bump nothing)."""
    a, slot = event.address_space, event.slot
    if event.op == Op.FLAGS:
        entry = slots.get(a, slot)
        if event.flags is None:
            entry[2] ^= event.repeat & 1
            return event.repeat
        changed = entry[2] != event.flags
        entry[2] = event.flags
        return 1 if changed else 0
    if event.op == Op.MOVE:
        return 0 if slots.get(a, slot)[0] == event.gfn else 1
    return 1


def encode(trace: Trace) -> EncodedTrace:
    """Build the kernel arrays for ``trace``."""
    gfns = _access_gfns(trace)

    def span(gfn: int, pages: int) -> tuple[int, int]:
        lo = int(np.searchsorted(gfns, gfn, side="left"))
        hi = int(np.searchsorted(gfns, gfn + pages, side="left"))
        return lo, hi

    slots = _Slots()
    cover = np.zeros((2, max(len(gfns), 1)), dtype=np.int8)
    for decl in trace.vm.slots:
        slots.add(decl.address_space, decl.slot, decl.gfn, decl.pages, decl.flags)
        lo, hi = span(decl.gfn, decl.pages)
        cover[decl.address_space, lo:hi] = 1

    n = len(trace.events)
    # Plain lists while walking the Python records, one numpy conversion at the end:
    # per-element numpy calls would dominate the cost of encoding.
    ops = [0] * n
    spaces = [0] * n
    vcpu_col = [0] * n
    x_col = [0] * n
    reps = [1] * n
    access_rows: list[int] = []
    access_gfns: list[int] = []
    upd_rows: list[list[int]] = []
    during: list[list[int]] = []
    during_gfns: list[int] = []
    max_vcpu = 0
    for i, event in enumerate(trace.events):
        op = event.op
        ops[i] = int(op)
        spaces[i] = event.address_space
        reps[i] = event.repeat
        if op == Op.ACCESS:
            access_rows.append(i)
            access_gfns.append(event.gfn)
            vcpu_col[i] = event.vcpu
            max_vcpu = max(max_vcpu, event.vcpu)
            continue
        if op == Op.BUMP:
            continue
        row = [0] * k.N_UCOLS
        a = event.address_space
        bumping = _bumping_reps(event, slots)
        if op == Op.CREATE:
            slots.add(a, event.slot, event.gfn, event.pages, event.flags or 0)
            row[k.U_LO], row[k.U_HI] = span(event.gfn, event.pages)
        elif op == Op.DELETE:
            gfn, pages, _ = slots.remove(a, event.slot)
            row[k.U_OLO], row[k.U_OHI] = span(gfn, pages)
        elif op == Op.MOVE:
            entry = slots.get(a, event.slot)
            row[k.U_OLO], row[k.U_OHI] = span(entry[0], entry[1])
            row[k.U_LO], row[k.U_HI] = span(event.gfn, entry[1])
            entry[0] = event.gfn
        row[k.U_BUMP_REPS] = bumping
        row[k.U_DSTART] = len(during)
        for sub in event.during:
            entry = [0] * k.N_DFIELDS
            entry[k.D_AS] = sub.address_space
            entry[k.D_VCPU] = sub.vcpu
            entry[k.D_REP] = sub.repeat
            entry[k.D_WINDOW] = int(sub.window)
            entry[k.D_SUB] = sub.sub
            during.append(entry)
            during_gfns.append(sub.gfn)
            max_vcpu = max(max_vcpu, sub.vcpu)
        row[k.U_DEND] = len(during)
        x_col[i] = len(upd_rows)
        upd_rows.append(row)

    ev_x = np.array(x_col, dtype=np.int64)
    if access_rows:
        ev_x[np.array(access_rows)] = np.searchsorted(gfns, np.array(access_gfns, dtype=np.int64))
    ev_index = np.array([e.index for e in trace.events], dtype=np.int64)
    upd = np.array(upd_rows, dtype=np.int64).reshape(len(upd_rows), k.N_UCOLS)
    dur = np.array(during, dtype=np.int64).reshape(len(during), k.N_DFIELDS)
    if during:
        dur[:, k.D_GID] = np.searchsorted(gfns, np.array(during_gfns, dtype=np.int64))
    vcpus = max(trace.vm.vcpus or 0, max_vcpu + 1)
    return EncodedTrace(
        gfns=gfns,
        ev_op=np.array(ops, dtype=np.int8),
        ev_as=np.array(spaces, dtype=np.int8),
        ev_vcpu=np.array(vcpu_col, dtype=np.int16),
        ev_x=ev_x,
        ev_rep=np.array(reps, dtype=np.int64),
        ev_index=ev_index,
        upd=np.ascontiguousarray(upd),
        dur=np.ascontiguousarray(dur),
        initial_cover=cover,
        vcpus=vcpus,
    )
