"""Events as columns: the form big traces are read into, encoded from and digested.

An :class:`EventTable` holds every event of a trace (or of one block of a
streamed trace) as NumPy columns, one row per event in replay order: each
top-level event, then its ``during`` accesses in execution order. Loaders that
scan bytes straight into columns (the JSON fast path) never build a Python
:class:`Event` per event; :class:`TableEvents` builds them on demand for the
few consumers that want records (the reference model, per-event checks).
Loaders that produce records get their table from :meth:`EventTable.from_events`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

from kvmgen.trace.records import AccessKind, Event, Op, Trace, Window

_NO_NOTE = -1


@dataclass(frozen=True, eq=False)
class EventTable:
    """Every row is one event; ``sub`` is -1 on a top-level event, else its during position.

    ``flags`` is meaningful where ``flags_set`` is true (a ``flags`` op without a
    value toggles bit 0); ``t`` where ``t_set`` is; ``note`` indexes ``notes``
    (-1: none).
    """

    index: NDArray[np.int64]
    sub: NDArray[np.int32]
    op: NDArray[np.int8]
    address_space: NDArray[np.int8]
    slot: NDArray[np.int32]
    gfn: NDArray[np.int64]
    pages: NDArray[np.int64]
    flags: NDArray[np.int64]
    flags_set: NDArray[np.bool_]
    vcpu: NDArray[np.int32]
    kind: NDArray[np.int8]
    repeat: NDArray[np.int64]
    window: NDArray[np.int8]
    line: NDArray[np.int64]
    column: NDArray[np.int32]
    t: NDArray[np.float64]
    t_set: NDArray[np.bool_]
    note: NDArray[np.int32]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.op.shape[0])

    @staticmethod
    def columns() -> tuple[str, ...]:
        """The names of the per-row columns (every field but ``notes``)."""
        return tuple(f.name for f in fields(EventTable) if f.name != "notes")

    @classmethod
    def empty(cls, rows: int) -> EventTable:
        """``rows`` rows of plain top-level read accesses of gfn 0, for filling in."""
        column: dict[str, Any] = {
            name: np.zeros(rows, dtype=_DTYPES[name]) for name in cls.columns()
        }
        column["sub"][:] = -1
        column["op"][:] = Op.ACCESS
        column["slot"][:] = -1
        column["gfn"][:] = -1
        column["repeat"][:] = 1
        column["note"][:] = _NO_NOTE
        return cls(**column)

    @classmethod
    def from_events(cls, events: Sequence[Event]) -> EventTable:
        """The table of Python records (each followed by its ``during`` accesses)."""
        rows = [row for event in events for row in (event, *event.during)]
        table = cls.empty(len(rows))
        notes: list[str] = []
        note_ids = [_NO_NOTE] * len(rows)
        flags = [0] * len(rows)
        t = [0.0] * len(rows)
        for i, row in enumerate(rows):
            if row.note is not None:
                note_ids[i] = len(notes)
                notes.append(row.note)
            if row.flags is not None:
                flags[i] = row.flags
            if row.t is not None:
                t[i] = row.t
        table.index[:] = [r.index for r in rows]
        table.sub[:] = [r.sub for r in rows]
        table.op[:] = [r.op for r in rows]
        table.address_space[:] = [r.address_space for r in rows]
        table.slot[:] = [r.slot for r in rows]
        table.gfn[:] = [r.gfn for r in rows]
        table.pages[:] = [r.pages for r in rows]
        table.flags[:] = flags
        table.flags_set[:] = [r.flags is not None for r in rows]
        table.vcpu[:] = [r.vcpu for r in rows]
        table.kind[:] = [r.kind for r in rows]
        table.repeat[:] = [r.repeat for r in rows]
        table.window[:] = [r.window for r in rows]
        table.line[:] = [r.line for r in rows]
        table.column[:] = [r.column for r in rows]
        table.t[:] = t
        table.t_set[:] = [r.t is not None for r in rows]
        table.note[:] = note_ids
        return table.with_notes(tuple(notes))

    def with_notes(self, notes: tuple[str, ...]) -> EventTable:
        """The same columns with ``notes`` as the note texts."""
        return EventTable(**{name: getattr(self, name) for name in self.columns()}, notes=notes)

    def top_rows(self) -> NDArray[np.int64]:
        """Row number of each top-level event, in order."""
        return np.flatnonzero(self.sub < 0)

    def event_notes(self) -> dict[int, str]:
        """Top-level event index -> its note (empty notes left out)."""
        rows = np.flatnonzero((self.note >= 0) & (self.sub < 0))
        found = {int(self.index[r]): self.notes[int(self.note[r])] for r in rows}
        return {index: note for index, note in found.items() if note}

    def records(self, start: int = 0, stop: int | None = None) -> tuple[Event, ...]:
        """Top-level events of rows ``[start, stop)`` as records, with their during accesses.

        ``start`` must be a top-level row and ``stop`` the next top-level row or the end.
        """
        sl = slice(start, len(self) if stop is None else stop)
        lists = {name: getattr(self, name)[sl].tolist() for name in self.columns()}
        op_of = {int(o): o for o in Op}
        kinds, windows = tuple(AccessKind), tuple(Window)  # their values are 0, 1, ...
        out: list[Event] = []
        pending: list[Event] = []
        for r in range(len(lists["op"]) - 1, -1, -1):
            note = lists["note"][r]
            event = Event(
                index=lists["index"][r],
                op=op_of[lists["op"][r]],
                line=lists["line"][r],
                column=lists["column"][r],
                sub=lists["sub"][r],
                address_space=lists["address_space"][r],
                slot=lists["slot"][r],
                gfn=lists["gfn"][r],
                pages=lists["pages"][r],
                flags=lists["flags"][r] if lists["flags_set"][r] else None,
                vcpu=lists["vcpu"][r],
                kind=kinds[lists["kind"][r]],
                repeat=lists["repeat"][r],
                window=windows[lists["window"][r]],
                during=tuple(reversed(pending)) if lists["sub"][r] < 0 else (),
                t=lists["t"][r] if lists["t_set"][r] else None,
                note=self.notes[note] if note >= 0 else None,
            )
            if event.sub < 0:
                out.append(event)
                pending = []
            else:
                pending.append(event)
        out.reverse()
        return tuple(out)


_DTYPES: dict[str, type] = {
    "index": np.int64,
    "sub": np.int32,
    "op": np.int8,
    "address_space": np.int8,
    "slot": np.int32,
    "gfn": np.int64,
    "pages": np.int64,
    "flags": np.int64,
    "flags_set": np.bool_,
    "vcpu": np.int32,
    "kind": np.int8,
    "repeat": np.int64,
    "window": np.int8,
    "line": np.int64,
    "column": np.int32,
    "t": np.float64,
    "t_set": np.bool_,
    "note": np.int32,
}


def concat(tables: list[EventTable]) -> EventTable:
    """Tables of consecutive blocks of events as one table, in order.

    ``tables`` is emptied: each column is joined and its blocks let go before
    the next, so the events are held about once, not twice, meanwhile.
    """
    if not tables:
        return EventTable.empty(0)
    if len(tables) == 1:
        return tables.pop()
    sizes = [len(t) for t in tables]
    bases = np.cumsum([0] + [len(t.notes) for t in tables[:-1]])
    notes = tuple(note for t in tables for note in t.notes)
    parts = {name: [getattr(t, name) for t in tables] for name in EventTable.columns()}
    tables.clear()
    column = {name: np.concatenate(parts.pop(name)) for name in EventTable.columns()}
    # Note ids index each block's own notes: shift them past the notes before.
    shift = np.repeat(bases, sizes)
    column["note"] = np.where(column["note"] >= 0, column["note"] + shift, _NO_NOTE).astype(
        np.int32
    )
    return EventTable(**column, notes=notes)


def merge_by_index(a: EventTable, b: EventTable) -> EventTable:
    """The rows of two tables of different events, in event order.

    Each table holds whole events (a top-level row and its during rows), in
    order, and no event is in both.
    """
    if not len(b):
        return a
    if not len(a):
        return b
    # Indexes are trace-wide; a block of a streamed trace starts far from 0.
    base = int(min(a.index[0], b.index[0]))
    events = int(max(a.index[-1], b.index[-1])) + 1 - base
    rows = np.bincount(a.index - base, minlength=events)
    rows += np.bincount(b.index - base, minlength=events)
    first_row = np.cumsum(rows) - rows
    merged = EventTable.empty(len(a) + len(b))
    for part, note_base in ((a, 0), (b, len(a.notes))):
        at = first_row[part.index - base]
        if np.any(part.index[1:] == part.index[:-1]):
            # Events with during rows: each row goes that far after its event's first.
            at += np.arange(len(part)) - np.searchsorted(part.index, part.index, side="left")
        for name in EventTable.columns():
            getattr(merged, name)[at] = getattr(part, name)
        merged.note[at] = np.where(part.note >= 0, part.note + note_base, _NO_NOTE)
    return merged.with_notes(a.notes + b.notes)


class TableEvents(Sequence[Event]):
    """The top-level events of a table as a read-only sequence of records, built on demand."""

    def __init__(self, table: EventTable) -> None:
        self.table = table
        self._top = table.top_rows()
        self._built: tuple[Event, ...] | None = None

    def __len__(self) -> int:
        return int(self._top.shape[0])

    def _event(self, i: int) -> Event:
        row = int(self._top[i])
        end = int(self._top[i + 1]) if i + 1 < len(self._top) else len(self.table)
        return self.table.records(row, end)[0]

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> tuple[Event, ...]: ...

    def __getitem__(self, i: int | slice) -> Event | tuple[Event, ...]:
        if isinstance(i, slice):
            return self.materialize()[i]
        if self._built is not None:
            return self._built[i]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("event index out of range")
        return self._event(i)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.materialize())

    def materialize(self) -> tuple[Event, ...]:
        """Every event as a record (built once, then kept)."""
        if self._built is None:
            self._built = self.table.records()
        return self._built

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TableEvents | tuple | list):
            return self.materialize() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.materialize())

    def __repr__(self) -> str:
        return f"TableEvents({len(self)} events)"


def table_of(trace: Trace) -> EventTable:
    """Every event of an in-memory trace as columns (built from its records once, then kept)."""
    if trace._table is None:
        if isinstance(trace.events, TableEvents):
            table = trace.events.table
        else:
            table = EventTable.from_events(trace.events)
        # Trace is frozen: the cache is the one field set after construction.
        object.__setattr__(trace, "_table", table)
    table_: EventTable = trace._table
    return table_
