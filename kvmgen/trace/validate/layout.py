"""The memslot layout rules of a trace, replayed per address space while validating.

Slots are kept sorted by first gfn so that an overlap check costs O(log n): a trace
that creates thousands of slots must not make validation quadratic.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, NamedTuple

from kvmgen.trace.tree import value_pos
from kvmgen.trace.validate.fields import Where

GFN_LIMIT = 1 << 40


class Slot(NamedTuple):
    """One live memslot and the line that placed it (for messages)."""

    slot: int
    gfn: int
    pages: int
    line: int | None


def _span(gfn: int, pages: int) -> str:
    return f"gfn {gfn:#x}-{gfn + pages - 1:#x}"


def _seen(slot: Slot) -> str:
    return f", line {slot.line}" if slot.line else ""


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


class Layout:
    """Every address space's slots; each method checks one update and applies it.

    ``node`` is the update's mapping, so an error can point at its ``slot`` or
    ``gfn`` value.
    """

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: dict[int, SlotTable] = {}

    @classmethod
    def of(cls, slots: Iterable[tuple[int, Slot]]) -> Layout:
        """The layout in which exactly ``slots`` (address space, slot) are live."""
        layout = cls()
        for a, slot in slots:
            layout._tables.setdefault(a, SlotTable()).add(slot)
        return layout

    def live(self) -> list[tuple[int, Slot]]:
        """Every live slot with its address space."""
        return [(a, slot) for a, table in self._tables.items() for slot in table._by_id.values()]

    def create(self, w: Where, node: Any, a: int, new: Slot) -> None:
        """Add a new slot: its id must be free and its range clear in address space ``a``."""
        table = self._tables.setdefault(a, SlotTable())
        old = table.get(new.slot)
        if old is not None:
            w.fail(
                f"slot {new.slot} already exists in address space {a} "
                f"({_span(old.gfn, old.pages)}{_seen(old)})",
                value_pos(node, "slot"),
                "slot",
            )
        self._no_overlap(w, node, a, table, new)
        table.add(new)

    def move(self, w: Where, node: Any, a: int, slot: int, gfn: int, line: int) -> int:
        """Move a slot to ``gfn`` keeping its size; return that size in pages."""
        old = self.existing(w, node, a, slot)
        if gfn + old.pages > GFN_LIMIT:
            w.fail(
                f"slot {slot} has {old.pages:#x} pages: moved to gfn {gfn:#x} it would end "
                f"past the last guest frame (2^40)",
                value_pos(node, "gfn"),
                "gfn",
            )
        table = self._tables[a]
        table.remove(slot)
        new = Slot(slot, gfn, old.pages, line)
        self._no_overlap(w, node, a, table, new)
        table.add(new)
        return old.pages

    def delete(self, w: Where, node: Any, a: int, slot: int) -> None:
        """Remove an existing slot."""
        found = self.existing(w, node, a, slot)  # first: the table may not exist yet
        self._tables[a].remove(found.slot)

    def existing(self, w: Where, node: Any, a: int, slot: int) -> Slot:
        """The live slot ``slot`` of address space ``a``; an error if there is none."""
        table = self._tables.get(a)
        found = table.get(slot) if table is not None else None
        if found is None:
            w.fail(f"unknown slot {slot} in address space {a}", value_pos(node, "slot"), "slot")
        return found

    @staticmethod
    def _no_overlap(w: Where, node: Any, a: int, table: SlotTable, new: Slot) -> None:
        other = table.overlapping(new.gfn, new.pages)
        if other is not None:
            w.fail(
                f"slot {new.slot} ({_span(new.gfn, new.pages)}) overlaps slot {other.slot} "
                f"({_span(other.gfn, other.pages)}{_seen(other)}) in address space {a}",
                value_pos(node, "gfn"),
                "gfn",
            )
