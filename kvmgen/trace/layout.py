"""The memslot layout of one address space, as the validator replays it.

Slots are kept sorted by first gfn so that an overlap check costs O(log n): a trace
that creates thousands of slots must not make validation quadratic.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import NamedTuple


class Slot(NamedTuple):
    """One live memslot and the line that created it (for messages)."""

    slot: int
    gfn: int
    pages: int
    line: int | None


class SlotTable:
    """The live memslots of one address space; slots never overlap."""

    __slots__ = ("_by_id", "_ids", "_starts")

    def __init__(self) -> None:
        self._by_id: dict[int, Slot] = {}
        self._starts: list[int] = []
        self._ids: list[int] = []

    def get(self, slot: int) -> Slot | None:
        """The live slot with id ``slot``, if any."""
        return self._by_id.get(slot)

    def overlapping(self, gfn: int, pages: int) -> Slot | None:
        """A live slot sharing a frame with [gfn, gfn + pages), if any."""
        i = bisect_right(self._starts, gfn)
        # Slots are disjoint, so only the neighbours of the insertion point can overlap.
        if i > 0:
            before = self._by_id[self._ids[i - 1]]
            if before.gfn + before.pages > gfn:
                return before
        if i < len(self._starts) and self._starts[i] < gfn + pages:
            return self._by_id[self._ids[i]]
        return None

    def add(self, slot: Slot) -> None:
        """Insert a slot already checked not to overlap."""
        i = bisect_right(self._starts, slot.gfn)
        self._starts.insert(i, slot.gfn)
        self._ids.insert(i, slot.slot)
        self._by_id[slot.slot] = slot

    def remove(self, slot: int) -> Slot:
        """Remove and return a live slot."""
        entry = self._by_id.pop(slot)
        i = bisect_right(self._starts, entry.gfn) - 1
        del self._starts[i]
        del self._ids[i]
        return entry
