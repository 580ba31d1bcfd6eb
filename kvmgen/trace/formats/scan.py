"""What a jitted scan of trace bytes hands back, as tables the loaders can use.

:mod:`kvmgen.trace.formats.scan_kernels` fills preallocated arrays: one row per plain
access, one per other event (its byte span and key count) and one per object
nested two levels inside another event (its during entries). A
:class:`ScanTables` owns those arrays for one scan and turns them into an
:class:`~kvmgen.trace.table.EventTable` of the accesses plus the spans the
Python validator must look at.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from kvmgen.trace.records import Event
from kvmgen.trace.table import EventTable, merge_by_index
from kvmgen.trace.validate import Validator

_LBRACE = 123

# Loaders scan files from this size on. Below it, reading in Python is quicker
# than importing numba for the scan (about 0.25 s, in which the JSON loader
# reads some 600 kB).
SCAN_MIN_BYTES = 1 << 18


@dataclass(frozen=True)
class OtherEvent:
    """An event the scan only delimited: the validator reads it from its bytes."""

    index: int
    start: int
    end: int
    line: int
    column: int
    keys: int  # keys in its object as written, duplicates included (-1: unknown)
    nested: tuple[tuple[int, int, int], ...]  # (line, column, keys) of each during entry


class ScanTables:
    """The arrays one scan fills, sized for ``buf`` (every event is an object)."""

    def __init__(self, buf: np.ndarray) -> None:
        from kvmgen.trace.formats import scan_kernels as sk

        self.sk = sk
        capacity = int(sk.count_byte(buf, _LBRACE)) + 1
        self.acc = np.empty((capacity, sk.N_ACOLS), dtype=np.int64)
        self.other = np.empty((capacity, sk.N_XCOLS), dtype=np.int64)
        self.nested = np.zeros((capacity, sk.N_NCOLS), dtype=np.int64)
        self.counts = np.zeros(sk.N_COUNTS, dtype=np.int64)

    def count(self, which: int) -> int:
        """One of the scan's counts (``scan_kernels.C_*``)."""
        return int(self.counts[which])

    def accesses(self) -> EventTable:
        """The plain accesses as table rows."""
        sk = self.sk
        acc = self.acc[: self.count(sk.C_ACCESSES)]
        table = EventTable.empty(acc.shape[0])
        table.index[:] = acc[:, sk.A_INDEX]
        table.gfn[:] = acc[:, sk.A_GFN]
        table.address_space[:] = acc[:, sk.A_AS]
        table.vcpu[:] = acc[:, sk.A_VCPU]
        table.repeat[:] = acc[:, sk.A_REPEAT]
        table.kind[:] = acc[:, sk.A_KIND]
        table.line[:] = acc[:, sk.A_LINE]
        table.column[:] = acc[:, sk.A_COLUMN]
        return table

    def others(self) -> Iterator[OtherEvent]:
        """The other events, in order."""
        sk = self.sk
        by_event: dict[int, list[tuple[int, int, int]]] = {}
        for row in self.nested[: self.count(sk.C_NESTED)].tolist():
            entry = (row[sk.N_LINE], row[sk.N_COLUMN], row[sk.N_KEYS])
            by_event.setdefault(row[sk.N_EVENT], []).append(entry)
        for row in self.other[: self.count(sk.C_OTHERS)].tolist():
            index = row[sk.X_INDEX]
            yield OtherEvent(
                index=index,
                start=row[sk.X_START],
                end=row[sk.X_END],
                line=row[sk.X_LINE],
                column=row[sk.X_COLUMN],
                keys=row[sk.X_KEYS],
                nested=tuple(by_event.get(index, ())),
            )


def keys_as_written(value: object, other: OtherEvent) -> bool:
    """Whether a parsed event has every key the scan counted (orjson keeps the last duplicate)."""
    if not isinstance(value, dict) or len(value) != other.keys:
        return False
    during = value.get("during")
    entries = during if isinstance(during, list) else []
    return len(entries) == len(other.nested) and all(
        isinstance(entry, dict) and len(entry) == keys
        for entry, (_, _, keys) in zip(entries, other.nested, strict=True)
    )


def merged(accesses: EventTable, others: Sequence[Event], validator: Validator) -> EventTable:
    """The scan's accesses and the validator's other events as one table, in event order.

    ``validator`` checked ``others`` and is told of the accesses too, so the
    trace it finishes knows every address space and vCPU named.
    """
    validator.note_accesses(accesses)
    return merge_by_index(accesses, EventTable.from_events(others))
