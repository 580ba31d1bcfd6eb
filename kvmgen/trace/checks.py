"""Checks of a loaded trace against one run's settings (the run decides NAS, not the file).

Every kind of trace (in memory, streamed block by block, compiled) records where
each address space is first named, as :class:`SpaceUse`; :func:`check_address_spaces`
turns the first use of an address space the run lacks into one message, the same
whatever format the trace was read from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from kvmgen.errors import TraceError
from kvmgen.trace.records import Op, SlotDecl, Trace
from kvmgen.trace.table import EventTable, table_of


@dataclass(frozen=True, slots=True)
class SpaceUse:
    """The first place a trace names an address space: a header slot or an event.

    ``order`` sorts uses by where they stand in the file (header slots first);
    ``event`` is None for a header slot; ``line``/``column`` are 0 when unknown.
    """

    order: tuple[int, int, int]
    field: str
    line: int = 0
    column: int = 0
    event: int | None = None
    op: str | None = None

    def as_list(self) -> list[Any]:
        """A JSON-ready form (compiled traces keep their uses in the manifest)."""
        return [list(self.order), self.field, self.line, self.column, self.event, self.op]

    @classmethod
    def from_list(cls, value: list[Any]) -> SpaceUse:
        """The inverse of :meth:`as_list`."""
        order, field, line, column, event, op = value
        first, second, third = order
        return cls((first, second, third), field, line, column, event, op)


def slot_uses(slots: tuple[SlotDecl, ...]) -> dict[int, SpaceUse]:
    """The first header slot of each address space."""
    uses: dict[int, SpaceUse] = {}
    for i, decl in enumerate(slots):
        if decl.address_space not in uses:
            uses[decl.address_space] = SpaceUse((0, i, 0), f"vm.slots[{i}].as", decl.line)
    return uses


def event_use(event: int, sub: int, line: int, column: int, op: str) -> SpaceUse:
    """An event (``sub`` >= 0: its ``during`` entry ``sub``) naming an address space."""
    field = "as" if sub < 0 else f"during[{sub}].as"
    return SpaceUse((1, event, sub + 1), field, line, column, event, op)


def table_uses(table: EventTable) -> dict[int, SpaceUse]:
    """The first row of each address space in a table of events (rows in event order)."""
    uses: dict[int, SpaceUse] = {}
    if not len(table):
        return uses
    top = table.top_rows()
    for a in np.flatnonzero(np.bincount(table.address_space.astype(np.int64))).tolist():
        row = int(np.argmax(table.address_space == a))
        parent = int(top[np.searchsorted(top, row, side="right") - 1])
        uses[int(a)] = event_use(
            int(table.index[row]),
            int(table.sub[row]),
            int(table.line[row]),
            int(table.column[row]),
            Op(int(table.op[parent])).name.lower(),
        )
    return uses


def merge_uses(*parts: Mapping[int, SpaceUse]) -> dict[int, SpaceUse]:
    """The earliest use of each address space over several sets of uses."""
    out: dict[int, SpaceUse] = {}
    for part in parts:
        for a, use in part.items():
            if a not in out or use.order < out[a].order:
                out[a] = use
    return out


def check_address_spaces(path: str, uses: Mapping[int, SpaceUse], address_spaces: int) -> None:
    """Raise TraceError for the first use of an address space >= ``address_spaces``."""
    bad = [use for a, use in uses.items() if a >= address_spaces]
    if not bad:
        return
    use = min(bad, key=lambda u: u.order)
    space = next(a for a, u in uses.items() if u is use)
    if address_spaces == 1:
        have = "which has only address space 0"
    else:
        have = f"which has address spaces 0..{address_spaces - 1}"
    raise TraceError(
        path,
        f"address space {space} does not exist in this run, {have}",
        line=use.line or None,
        column=use.column or None,
        event=use.event,
        op=use.op,
        field=use.field,
    )


def trace_uses(trace: Trace) -> dict[int, SpaceUse]:
    """Where an in-memory trace first names each address space."""
    return merge_uses(slot_uses(trace.vm.slots), table_uses(table_of(trace)))


def check_trace_spaces(trace: Any, address_spaces: int) -> None:
    """Refuse a run with fewer address spaces than ``trace`` names (any kind of trace).

    An in-memory :class:`Trace` is searched; a streamed or compiled trace carries
    its ``space_uses``.
    """
    if trace.max_address_space < address_spaces:
        return
    uses = trace_uses(trace) if isinstance(trace, Trace) else trace.space_uses
    check_address_spaces(trace.path, uses, address_spaces)
