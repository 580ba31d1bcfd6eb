"""Big QEMU logs imported without a Python object per line.

:func:`import_qemu` runs the loops of :mod:`kvmgen.importers.line_kernels` over a
log's bytes: lines to call rows, calls to event rows (the rules of
:class:`~kvmgen.importers.memslots.MemslotTracker`), and :class:`EventRows` writes
the events as trace text a block at a time. The result is the one the Python
importer gives, byte for byte (a test holds them equal); where this path cannot
vouch for that (a line that is not printable ASCII, a time not in whole microseconds,
a number past 2^62, a call the tracker refuses, whose message it words), it
returns None and the caller imports the slow way. Lines in unusual shapes are
read by the Python parser, one by one.
"""

from __future__ import annotations

import codecs
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from kvmgen.importers import line_kernels as lk
from kvmgen.importers.emit import key_text, value_text
from kvmgen.importers.memslots import INFERRED, MemslotTracker, RegionCall, seconds
from kvmgen.importers.qemu import NAME, parse_line
from kvmgen.importers.tracefs import PROBED

_WORD_BYTES = "".join(lk.WORDS).encode()
_WORD_SPANS = np.array(
    [(sum(len(w) for w in lk.WORDS[:k]), len(word)) for k, word in enumerate(lk.WORDS)],
    dtype=np.int64,
)
_OPS = ("create", "delete", "move", "flags", "access")
_LIMIT = 1 << 62  # numbers the loops hold without overflow
_LAST_SECOND = 1 << 32  # times below it print as their microseconds (line_kernels.write_events)
_BLOCK = 1 << 15  # events written a block at a time


def _fill(row: NDArray[np.int64], call: RegionCall) -> bool:
    """Put a call into a row; False if a number will not fit the loops' arithmetic."""
    numbers = (call.address_space, call.slot, call.flags, call.gpa, call.size, call.ret)
    if any(not -_LIMIT < value < _LIMIT for value in numbers) or call.flags < 0:
        return False
    row[lk.Q_LINE] = call.line
    row[lk.Q_AS], row[lk.Q_SLOT], row[lk.Q_FLAGS] = numbers[:3]
    row[lk.Q_GPA], row[lk.Q_SIZE], row[lk.Q_RET] = numbers[3:]
    row[lk.Q_T_NS] = -1 if call.t_ns is None else call.t_ns
    row[lk.Q_MEMFD] = call.guest_memfd is not None
    return True


def _slow_rows(rows: NDArray[np.int64], data: bytes, path: str, extras: Counter[str]) -> bool:
    """Read the rows marked SLOW with the Python parser; False if a number will not fit."""
    for r in np.flatnonzero(rows[:, lk.Q_STATUS] == lk.SLOW):
        row = rows[r]
        text = data[row[lk.Q_START] : row[lk.Q_END]].decode("ascii")
        call = parse_line(text, path=path, line=int(row[lk.Q_LINE]))
        assert call is not None  # the line names the event
        if not _fill(row, call):
            return False
        extras.update(call.extras)
    return True


def _replay(
    tracker: MemslotTracker, rows: NDArray[np.int64], extras: Counter[str]
) -> EventRows | None:
    """Apply the call rows by the tracker's rules and fill its summary; None: not vouched for."""
    times = rows[:, lk.Q_T_NS]
    if np.any((times >= 0) & ((times % 1000 != 0) | (times >= _LAST_SECOND * 10**9))):
        return None
    calls = rows.shape[0]
    tally = np.zeros(lk.N_TALLY, dtype=np.int64)
    mid_run = tracker.starts_mid_run
    tally[lk.T_MID_RUN] = -1 if mid_run is None else int(mid_run)
    state = np.zeros((lk.N_STATE, lk.KEYS), dtype=np.int64)
    live_keys = np.zeros(lk.KEYS + 1, dtype=np.int64)
    placed = np.zeros((calls + 1, 3), dtype=np.int64)
    events = np.zeros((2 * calls, lk.N_ECOLS), dtype=np.int64)
    notes = np.zeros((2 * calls, lk.N_NCOLS), dtype=np.int64)
    lk.apply_calls(rows, np.int64(calls), state, live_keys, placed, events, notes, tally)
    if tally[lk.T_STOP] >= 0:
        return None
    _summarise(tracker, tally, notes[: tally[lk.T_NOTES]], extras)
    return EventRows(events[: tally[lk.T_EVENTS]])


def import_qemu(
    path: str, data: bytes, first_sight: str
) -> tuple[MemslotTracker, EventRows, int, int] | None:
    """The tracker (summary, vm.slots), events, lines and unrelated lines of a QEMU log.

    None when this path cannot vouch for the Python importer's result (module doc).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    # A row for every line that names the event, and one the scan writes into while it
    # reads a line that turns out to be another one.
    rows = np.zeros((data.count(NAME.encode()) + 1, lk.N_QCOLS), dtype=np.int64)
    counts = np.zeros(lk.N_SCAN, dtype=np.int64)
    words = np.frombuffer(_WORD_BYTES, dtype=np.uint8)
    lk.qemu_lines(buf, words, _WORD_SPANS, rows, counts)
    if counts[lk.S_ODD]:
        return None
    rows = rows[: counts[lk.S_CALLS]]
    extras: Counter[str] = Counter()
    if not _slow_rows(rows, data, path, extras):
        return None
    tracker = MemslotTracker(path, first_sight)
    events = _replay(tracker, rows, extras)
    if events is None:
        return None
    return tracker, events, int(counts[lk.S_LINES]), int(counts[lk.S_UNRELATED])


def _summarise(
    tracker: MemslotTracker,
    tally: NDArray[np.int64],
    notes: NDArray[np.int64],
    extras: Counter[str],
) -> None:
    """Fill the tracker's summary and declarations as its own replay would have."""
    summary = tracker.summary
    summary.records = int(tally[lk.T_RECORDS])
    summary.failed = int(tally[lk.T_FAILED])
    summary.guest_memfd = int(tally[lk.T_GUEST_MEMFD])
    summary.noop_deletes = int(tally[lk.T_NOOP_DELETES])
    summary.moves_with_flags = int(tally[lk.T_MOVES_WITH_FLAGS])
    summary.extras = extras
    for space in (0, 1):
        if tally[lk.T_PER_AS + space]:
            summary.per_as[space] = int(tally[lk.T_PER_AS + space])
    for op, name in enumerate(_OPS[: lk.OP_ACCESS]):  # the four update ops
        if tally[lk.T_PER_OP + op]:
            summary.per_op[name] = int(tally[lk.T_PER_OP + op])
    summary.updates = sum(summary.per_op.values())
    if tally[lk.T_MID_RUN] >= 0:
        tracker.starts_mid_run = bool(tally[lk.T_MID_RUN])
    for kind, line, space, slot, a, b, c in notes.tolist():
        if kind in (lk.NOTE_DECLARED_DELETED, lk.NOTE_DECLARED_FLAGS):
            tracker.decls.append({"slot": slot, "as": space, "gfn": a, "pages": b, "flags": c})
            why = (
                "deleted; size unknown, declared as 1 page"
                if kind == lk.NOTE_DECLARED_DELETED
                else "flags changed; prior flags taken as bit 0 flipped"
            )
            summary.preexisting.append(f"slot {slot} (as {space}) at line {line}: {why}")
        elif kind == lk.NOTE_SIZE_CHANGED:
            summary.inferred_deletes.append(
                f"slot {slot} (as {space}) before line {line}: its size changed "
                f"({a:#x} -> {b:#x} pages)"
            )
        else:
            summary.inferred_deletes.append(
                f"slot {slot} (as {space}) before line {line}: slot {a} was created over it"
            )


class EventRows:
    """Imported events as rows (``line_kernels.E_*``), written as text without a dict each.

    Iterating gives the event mappings the Python importer makes, for callers
    that want them; :meth:`write_items` is how :func:`kvmgen.importers.emit.write_trace`
    writes them.
    """

    def __init__(self, rows: NDArray[np.int64]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for op, space, slot, value, pages, flags, note, t_ns in self.rows.tolist():
            event: dict[str, Any] = {"op": _OPS[op]}
            if op == lk.OP_ACCESS:
                event["gfn"] = value
                if slot:  # E_VCPU
                    event["vcpu"] = slot
                if flags:  # E_WRITE
                    event["kind"] = "write"
            else:
                event["slot"] = slot
                if space:
                    event["as"] = space
                if note < 0:
                    event["note"] = PROBED.format(-1 - note)
                if op == lk.OP_FLAGS and value >= 0:
                    event["flags"] = value
                elif op == lk.OP_MOVE:
                    event["gfn"] = value
                elif op == lk.OP_CREATE:
                    event.update(gfn=value, pages=pages, **({"flags": flags} if flags else {}))
                if note > 0:
                    event["note"] = INFERRED.format(note)
                if op == lk.OP_FLAGS and pages:  # E_REPEAT
                    event["repeat"] = pages
            if t_ns >= 0:
                event["t"] = seconds(t_ns)
            yield event

    def write_items(self, out: IO[str], fmt: str, lead: tuple[str, str, str]) -> int:
        """Write every event, led by ``lead[0]`` (the first) or ``lead[1]``, then ``lead[2]``."""
        return write_rows(self.rows, lk.write_events, out, fmt, lead)


def write_rows(
    rows: NDArray[np.int64], writer: Any, out: IO[str], fmt: str, lead: tuple[str, str, str]
) -> int:
    """Write ``rows`` as text with the jitted ``writer``, a block at a time; their number.

    ``writer`` is :func:`~kvmgen.importers.line_kernels.write_events` or
    :func:`~kvmgen.importers.line_kernels.write_observations`.
    """
    text, spans = _pieces(fmt, lead)
    hex_keys = np.int64(_hex_keys(fmt))
    buffer = np.zeros(_BLOCK * lk.LONGEST_EVENT, dtype=np.uint8)
    # The text is ASCII: a text file's own byte stream takes it without two copies.
    encoding = getattr(out, "encoding", None)
    utf8 = isinstance(encoding, str) and codecs.lookup(encoding).name == "utf-8"
    raw = getattr(out, "buffer", None) if utf8 else None
    if raw is not None:
        out.flush()
    total = int(rows.shape[0])
    for start in range(0, total, _BLOCK):
        stop = min(start + _BLOCK, total)
        size = writer(rows, np.int64(start), np.int64(stop), text, spans, hex_keys, buffer)
        if raw is not None:
            raw.write(buffer[:size].data)
        else:
            out.write(buffer[:size].tobytes().decode("ascii"))
    if raw is not None:
        raw.flush()
    return total


def _pieces(fmt: str, lead: tuple[str, str, str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The text table write_events copies from: emit.py's spelling of each part in ``fmt``.

    Parts around a number are cut out of the spelling of a sample value (gfn 0xa,
    a note at line 7), so the two writers cannot drift apart.
    """
    hex_sample = value_text("gfn", 0xA, fmt)  # 0xa, "0xa", or 10 where hex is not used
    note_sample = value_text("note", INFERRED.format(7), fmt)
    note_at = note_sample.rindex("7")
    src_sample = value_text("note", PROBED.format(7), fmt)
    src_at = src_sample.rindex("7")
    pieces = {
        "lead_first": lead[0],
        "lead_rest": lead[1],
        "tail": lead[2],
        "open": "{",
        "sep": ", ",
        "close": "}",
        **{name: key_text(name[4:], fmt) for name in lk.PIECES if name.startswith("key_")},
        **{
            name: value_text(word, name[len(word) + 1 :], fmt)
            for name in lk.PIECES
            for word in ("op", "kind", "event", "outcome")
            if name.startswith(word + "_")
        },
        "note_head": note_sample[:note_at],
        "note_tail": note_sample[note_at + 1 :],
        "src_head": src_sample[:src_at],
        "src_tail": src_sample[src_at + 1 :],
        "hex_open": hex_sample.partition("a")[0],
        "hex_close": hex_sample.partition("a")[2],
    }
    parts = [pieces[name].encode() for name in lk.PIECES]
    if any(len(part) > 40 for part in parts):
        raise ValueError("a list lead longer than write_events allows")
    starts = np.cumsum([0, *map(len, parts)])[:-1]
    spans = np.array([(s, len(p)) for s, p in zip(starts, parts, strict=True)], dtype=np.int64)
    return np.frombuffer(b"".join(parts), dtype=np.uint8), spans


def _hex_keys(fmt: str) -> bool:
    """Whether ``fmt`` writes gfns and page counts in hex (emit.py decides)."""
    return value_text("gfn", 0xA, fmt) != "10"
