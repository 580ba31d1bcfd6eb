"""A trace's identity by content: the same whatever format or path it was read from.

Reports and compiled traces name a trace by this digest, so a trace gives the same
report, byte for byte, read as YAML, JSON, JSON Lines, from stdin or compiled. It is
the SHA-256 of the header and of every event's fields (source positions excluded),
taken over the columns of an :class:`~kvmgen.trace.table.EventTable`: one
fixed-width little-endian record per row, and the note texts in a second stream,
so it can be fed block by block as a streamed trace replays and how the events
are split into blocks does not matter.
"""

from __future__ import annotations

import hashlib

import numpy as np
import orjson

from kvmgen.trace.records import VmHeader
from kvmgen.trace.table import EventTable

DIGEST_VERSION = 2

# The fields of each row, in this order, at these widths (positions excluded).
_ROW = np.dtype(
    [
        ("op", "<i1"),
        ("address_space", "<i1"),
        ("kind", "<i1"),
        ("window", "<i1"),
        ("flags_set", "<i1"),
        ("t_set", "<i1"),
        ("sub", "<i4"),
        ("slot", "<i4"),
        ("vcpu", "<i4"),
        ("note_bytes", "<i8"),  # -1: no note
        ("gfn", "<i8"),
        ("pages", "<i8"),
        ("flags", "<i8"),
        ("repeat", "<i8"),
        ("t", "<f8"),
    ]
)


_FIELDS: tuple[str, ...] = tuple(_ROW.names or ())
_SLICE = 1 << 16  # rows turned into records at a time


class TraceDigest:
    """Incremental content digest: the header first, then events in order."""

    def __init__(self, vm: VmHeader) -> None:
        slots = [[s.slot, s.address_space, s.gfn, s.pages, s.flags] for s in vm.slots]
        header = [DIGEST_VERSION, vm.kernel, vm.era, vm.address_spaces, vm.vcpus, slots]
        self._header = orjson.dumps(header)
        self._rows = hashlib.sha256()
        self._notes = hashlib.sha256()

    def update(self, table: EventTable) -> None:
        """Add a block of events (in trace order)."""
        encoded = [note.encode() for note in table.notes]
        lengths = np.array([len(b) for b in encoded] or [0], dtype=np.int64)
        # A slice of rows at a time: the records are a copy of the columns, and a
        # whole in-memory trace's would cost as much again as the trace.
        for start in range(0, len(table), _SLICE):
            part = slice(start, start + _SLICE)
            note = table.note[part]
            rows = np.zeros(note.shape[0], dtype=_ROW)
            for name in _FIELDS:
                if name != "note_bytes":
                    rows[name] = getattr(table, name)[part]
            # Unset values must not tell traces apart by what a loader left in them.
            rows["flags"][~table.flags_set[part]] = 0
            rows["t"][~table.t_set[part]] = 0.0
            rows["note_bytes"] = np.where(note >= 0, lengths[np.maximum(note, 0)], -1)
            self._rows.update(rows.data)
        used = table.note[table.note >= 0].tolist()
        self._notes.update(b"".join(encoded[i] for i in used))

    def hexdigest(self) -> str:
        """The digest so far, as hex."""
        whole = hashlib.sha256(self._header)
        whole.update(self._rows.digest())
        whole.update(self._notes.digest())
        return whole.hexdigest()


def content_digest(vm: VmHeader, table: EventTable) -> str:
    """The content digest of a whole in-memory trace."""
    digest = TraceDigest(vm)
    digest.update(table)
    return digest.hexdigest()
