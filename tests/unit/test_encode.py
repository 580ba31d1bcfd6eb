"""The encoder's slot-table kernel against a plain dict walk of the same updates.

``kernels.apply_updates`` keeps the memslot table in arrays and runs compiled
(or as Python, for blocks with few updates); :func:`_walk` below is the
obvious version, one dict entry per live slot.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.engine import encode as encode_module
from kvmgen.engine import kernels as k
from kvmgen.engine.encode import Encoder
from kvmgen.trace.records import Op, SlotDecl
from kvmgen.trace.table import EventTable

Update = tuple[int, int, int, int, int, int | None, int]  # op, as, slot, gfn, pages, flags, reps

_SLOTS = (0, 1, 2, 32767)
_GFNS = (0, 1, 4, 5, (1 << 40) - 16)  # guest frames the updates name
_UNIVERSE = np.array([0, 2, 4, 6, 9, (1 << 40) - 8], dtype=np.int64)  # accessed gfns


def _walk(header: dict[tuple[int, int], list[int]], updates: list[Update]) -> list[list[int]]:
    """Each update's (bumping repetitions, new start, new end, old start, old end), in gfns."""
    slots = {key: list(entry) for key, entry in header.items()}
    out = []
    for op, a, slot, gfn, pages, flags, reps in updates:
        if op == Op.CREATE:
            slots[(a, slot)] = [gfn, pages, flags or 0]
            out.append([1, gfn, gfn + pages, 0, 0])
        elif op == Op.DELETE:
            old, old_pages, _ = slots.pop((a, slot))
            out.append([1, 0, 0, old, old + old_pages])
        elif op == Op.MOVE:
            entry = slots[(a, slot)]
            old, entry[0] = entry[0], gfn
            out.append([int(old != gfn), gfn, gfn + entry[1], old, old + entry[1]])
        elif flags is None:
            slots[(a, slot)][2] ^= reps & 1
            out.append([reps, 0, 0, 0, 0])
        else:
            changed = slots[(a, slot)][2] != flags
            slots[(a, slot)][2] = flags
            out.append([int(changed), 0, 0, 0, 0])
    return out


@st.composite
def _sequences(draw: st.DrawFn) -> tuple[dict[tuple[int, int], list[int]], list[Update]]:
    """Header slots and a valid run of updates: each names a live slot, but a create."""
    keys = st.tuples(st.integers(0, 1), st.sampled_from(_SLOTS))
    flags = st.none() | st.integers(0, 3)
    header = {
        key: [draw(st.sampled_from(_GFNS)), draw(st.integers(1, 8)), draw(st.integers(0, 3))]
        for key in draw(st.lists(keys, max_size=3, unique=True))
    }
    live = set(header)
    updates: list[Update] = []
    for _ in range(draw(st.integers(0, 40))):
        a, slot = draw(keys)
        gfn = draw(st.sampled_from(_GFNS))
        if (a, slot) not in live:
            live.add((a, slot))
            updates.append((Op.CREATE, a, slot, gfn, draw(st.integers(1, 8)), draw(flags), 1))
            continue
        op = draw(st.sampled_from((Op.DELETE, Op.MOVE, Op.FLAGS, Op.FLAGS)))
        if op == Op.DELETE:
            live.discard((a, slot))
        reps = draw(st.integers(1, 3) | st.just(1 << 62)) if op == Op.FLAGS else 1
        value = draw(flags) if op == Op.FLAGS else None
        updates.append((op, a, slot, gfn if op == Op.MOVE else 0, 0, value, reps))
    return header, updates


def _table(updates: list[Update], accesses: int = 0) -> EventTable:
    """The updates as event rows, with ``accesses`` plain accesses before each."""
    table = EventTable.empty(len(updates) * (accesses + 1))
    table.index[:] = np.arange(len(table))
    rows = np.arange(len(updates)) * (accesses + 1) + accesses
    for row, (op, a, slot, gfn, pages, flags, reps) in zip(rows, updates, strict=True):
        table.op[row], table.address_space[row], table.slot[row] = op, a, slot
        table.gfn[row], table.pages[row], table.repeat[row] = gfn, pages, reps
        table.flags[row], table.flags_set[row] = flags or 0, flags is not None
    return table


@settings(deadline=None)
@given(case=_sequences(), split=st.integers(0, 40), compiled=st.booleans())
def test_slot_table_kernel_matches_a_dict_walk(case, split, compiled):
    """Compiled or as Python, applied in two calls on one table, as the dict walk."""
    header, updates = case
    expected = _walk(header, updates)
    table = _table(updates, accesses=1)
    rows = np.flatnonzero(table.op != Op.ACCESS)
    base, size, flag = (np.zeros((2, 32768), dtype=np.int64) for _ in range(3))
    for (a, slot), entry in header.items():
        base[a, slot], size[a, slot], flag[a, slot] = entry
    out = np.full((len(updates), k.N_UCOLS), -1, dtype=np.int64)
    apply = k.apply_updates if compiled else k.apply_updates.py_func
    split = min(split, len(updates))
    for part in (slice(0, split), slice(split, None)):
        columns = (table.op, table.address_space, table.slot, table.gfn, table.pages)
        columns += (table.flags, table.flags_set, table.repeat)
        apply(rows[part], *columns, base, size, flag, out[part])
    got = out[:, [k.U_BUMP_REPS, k.U_LO, k.U_HI, k.U_OLO, k.U_OHI]].tolist()
    assert got == expected
    assert (out[:, k.U_DSTART :] == -1).all()  # no other column written
    if compiled:
        assert len(k.apply_updates.overloads) == 1


@settings(deadline=None, max_examples=50)
@given(
    case=_sequences(), blocks=st.integers(1, 4), python_updates=st.sampled_from((0, 10, 1 << 62))
)
def test_encoder_carries_the_slot_table_from_block_to_block(case, blocks, python_updates):
    """Updates encoded a block at a time, some as Python and the rest compiled, as in one go."""
    header, updates = case
    decls = [SlotDecl(slot, a, g, p, f) for (a, slot), (g, p, f) in header.items()]
    expected = np.array(_walk(header, updates), dtype=np.int64).reshape(-1, 5)
    for column in range(1, 5):
        expected[:, column] = np.searchsorted(_UNIVERSE, expected[:, column])
    table = _table(updates, accesses=1)
    table.gfn[table.op == Op.ACCESS] = 4
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encode_module, "PYTHON_UPDATES", python_updates)
        encoder = Encoder(_UNIVERSE, decls, vcpus=1)
        cuts = np.linspace(0, len(table), blocks + 1).astype(int)
        parts = [encoder.encode(_rows(table, i, j)) for i, j in pairwise(cuts)]
    aux = np.concatenate([p.aux[p.ev_x[(p.ev_code & k.EV_OP) < Op.BUMP]] for p in parts])
    got = aux[:, [k.U_BUMP_REPS, k.U_LO, k.U_HI, k.U_OLO, k.U_OHI]]
    assert got.tolist() == expected.tolist()


def _rows(table: EventTable, start: int, stop: int) -> EventTable:
    return EventTable(**{name: getattr(table, name)[start:stop] for name in table.columns()})
