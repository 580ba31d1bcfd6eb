"""What a jitted scan of trace bytes hands back, and how a block of it is validated.

:mod:`kvmgen.trace.formats.scan_kernels` fills preallocated arrays: one row per
event it read (updates, bumps, accesses, during entries alike) and one per
other event (its byte span, for Python to read). A :class:`ScanTables` owns
those arrays for one scan and turns them into an
:class:`~kvmgen.trace.table.EventTable`.

A :class:`BlockChecker` then validates a trace block by block: the other events
through the format-v1 validator (their fields only), and the memslot layout of
every update over the columns (:class:`SlotState`, carried from block to block).
The first event that fails either way is raised as :class:`BadEvent`; the loader
then has the Python validator word it, on the layout as it stood just before.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple

import numpy as np

from kvmgen.errors import TraceError
from kvmgen.trace.records import Event, Op
from kvmgen.trace.table import EventTable, merge_by_index
from kvmgen.trace.validate import OP_KEYS, Validator
from kvmgen.trace.validate.fields import AS, FLAGS, GFN, GPA, PAGES, REPEAT, SLOT, VCPU
from kvmgen.trace.validate.layout import GFN_LIMIT, Layout, Slot

# Loaders scan files from this size on. Below it, reading in Python is quicker
# than importing numba for the scan (about 0.25 s, in which the JSON loader
# reads some 600 kB).
SCAN_MIN_BYTES = 1 << 18

# JSON and YAML files from this size on are streamed, read twice block by block
# as JSON Lines is (kvmgen.trace.streamed), instead of held in memory. Held, a
# trace costs its bytes and about 80 bytes an event; streamed, about 100 MB of
# blocks whatever its size: below this, holding it costs no more (and reads once).
STREAM_MIN_BYTES = 1 << 26

_SLOT_IDS = 32768  # slot ids 0..32767, per address space
_SPACES = 2
# Up to so many updates in a trace, and so many times in a block, are checked or
# read by the kernels' own code run as Python (a few ms), not compiled (about a
# second on a fresh numba cache).
PYTHON_UPDATES = 20_000
PYTHON_TIMES = 256


@dataclass(frozen=True)
class OtherEvent:
    """An event the scan only delimited: the validator reads it from its bytes."""

    index: int
    start: int
    end: int
    line: int
    column: int


class ScanTables:
    """The arrays one scan of ``data`` fills, sized for it (every event is an object).

    ``inside`` (YAML): an other event's span is the text inside its braces.
    ``reuse``: the scan of the block before, whose arrays this one takes over
    when they are big enough (fresh pages cost a fault each on first write).
    """

    def __init__(self, data: bytes, inside: bool = False, reuse: ScanTables | None = None) -> None:
        from kvmgen.trace.formats import scan_kernels as sk

        self.sk = sk
        self.data = data
        self.inside = inside
        self.buf = np.frombuffer(data, dtype=np.uint8)
        # Bounds: a row is an object with a key and a value, 6 bytes or more ({t: 0});
        # any other event takes 2 bytes or more (a value and a newline or comma).
        # np.empty leaves untouched pages unallocated, so generous bounds cost no
        # memory, and the kernels never run out of room.
        capacity, others = len(data) // 6 + 2, len(data) // 2 + 2
        self.rows: np.ndarray
        self.other: np.ndarray
        if reuse is not None and reuse.other.shape[0] >= others:
            self.rows, self.other = reuse.rows, reuse.other
        else:
            self.rows = _sparse((sk.N_RCOLS, capacity))  # by column
            self.other = _sparse((others, sk.N_XCOLS))
        self.counts = np.zeros(sk.N_COUNTS, dtype=np.int64)
        self.scratch = sk.SCRATCH.copy()
        self._read: tuple[EventTable, list[OtherEvent]] | None = None

    def count(self, which: int) -> int:
        """One of the scan's counts (``scan_kernels.C_*``)."""
        return int(self.counts[which])

    def read(self, vcpus: int) -> tuple[EventTable, list[OtherEvent]]:
        """The events the scan read that keep the format's field rules, and every other event.

        ``vcpus`` is the header's vCPU count (4096 without one). Events that
        break a rule, or that the scan left aside, are the others, in order:
        the Python validator reads them (and words the first that is invalid).
        """
        if self._read is None:
            self._read = self._split(vcpus)
        return self._read

    def lenient(self) -> tuple[EventTable, list[OtherEvent]]:
        """Every event the scan read, rules unchecked, and the others: for a first pass.

        A first pass collects what the engine needs up front (the gfns accesses
        name, vCPUs, address spaces); an event that breaks a rule only adds to
        those, and the second pass stops at it.
        """
        sk = self.sk
        count = self.count(sk.C_ROWS)
        rows = self.rows[:, :count]
        return self._table(rows, self._times(rows)[0]), list(self._others())

    def _split(self, vcpus: int) -> tuple[EventTable, list[OtherEvent]]:
        sk = self.sk
        count = self.count(sk.C_ROWS)
        rows = self.rows[:, :count]
        t, t_read = self._times(rows)
        broken = rows[sk.R_INDEX][~(_keeps_rules(rows, vcpus) & t_read)]
        others = list(self._others())
        if broken.shape[0]:
            bad = np.isin(rows[sk.R_INDEX], broken)
            tops = rows[:, bad & (rows[sk.R_SUB] < 0)]
            edge = 1 if self.inside else 0
            others += [
                OtherEvent(index, start + edge, end - edge, line, column)
                for index, start, end, line, column in zip(
                    *tops[[sk.R_INDEX, sk.R_START, sk.R_END, sk.R_LINE, sk.R_COLUMN]].tolist(),
                    strict=True,
                )
            ]
            others.sort(key=lambda other: other.index)
            rows, t = rows[:, ~bad], t[~bad]
        return self._table(rows, t), others

    def _times(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's time (0.0 without one), and whether it could be read (True without one)."""
        sk = self.sk
        t = np.zeros(rows.shape[1], dtype=np.float64)
        read = np.ones(rows.shape[1], dtype=np.bool_)
        timed = np.flatnonzero(rows[sk.R_SEEN] & (1 << sk.K_T))
        if timed.shape[0]:
            values = np.zeros(timed.shape[0], dtype=np.float64)
            flags = np.zeros(timed.shape[0], dtype=np.bool_)
            starts, ends = rows[sk.K_T][timed], rows[sk.R_T_END][timed]
            if timed.shape[0] > PYTHON_TIMES:
                sk.times(self.buf, starts, ends, int(self.inside), values, flags)
            else:
                as_python(sk.times)(
                    self.data, starts.tolist(), ends.tolist(), self.inside, values, flags
                )
            t[timed], read[timed] = values, flags
        return t, read

    def _table(self, rows: np.ndarray, t: np.ndarray) -> EventTable:
        """Rows of events that keep the rules as a table, the columns an EventTable has."""
        sk = self.sk
        index, window = rows[sk.R_INDEX], rows[sk.K_WINDOW]
        if np.any((window[1:] == 1) & (window[:-1] == 2) & (index[1:] == index[:-1])):
            # During entries in execution order: every in_progress one, then every
            # before_zap one, each group in list order (the scan keeps list order).
            order = np.lexsort((rows[sk.R_SUB], window, index))
            rows, t = rows[:, order], t[order]
            index, window = rows[sk.R_INDEX], rows[sk.K_WINDOW]
        seen, op = rows[sk.R_SEEN], rows[sk.K_OP]
        noted = np.flatnonzero(seen & (1 << sk.K_NOTE))
        note = np.full(op.shape[0], -1, dtype=np.int32)
        note[noted] = np.arange(noted.shape[0], dtype=np.int32)
        data = self.data
        # Notes the scan reads are printable ASCII without escapes: the bytes are the text.
        notes = tuple(
            data[start:end].decode("ascii")
            for start, end in zip(
                rows[sk.R_NOTE_START][noted].tolist(),
                rows[sk.R_NOTE_END][noted].tolist(),
                strict=True,
            )
        )
        gfn = np.where((op == Op.CREATE) | (op == Op.MOVE), rows[sk.K_GFN], -1)
        accesses = op == Op.ACCESS
        by_gpa = accesses & ((seen & (1 << sk.K_GPA)) != 0)
        gfn[accesses] = rows[sk.K_GFN][accesses]
        gfn[by_gpa] = rows[sk.K_GPA][by_gpa] >> _PAGE_SHIFT
        # An absent repeat reads 0: 1; a bump's count is its repeat.
        repeat = np.where(op == Op.BUMP, rows[sk.K_COUNT], np.maximum(rows[sk.K_REPEAT], 1))
        return EventTable(
            index=index.copy(),
            sub=rows[sk.R_SUB].astype(np.int32),
            op=op.astype(np.int8),
            address_space=rows[sk.K_AS].astype(np.int8),
            slot=np.where(op <= Op.FLAGS, rows[sk.K_SLOT], -1).astype(np.int32),
            gfn=gfn,
            pages=rows[sk.K_PAGES].copy(),
            flags=rows[sk.K_FLAGS].copy(),
            flags_set=(op == Op.CREATE) | ((seen & (1 << sk.K_FLAGS)) != 0),
            vcpu=rows[sk.K_VCPU].astype(np.int32),
            kind=rows[sk.K_KIND].astype(np.int8),
            repeat=repeat,
            window=window.astype(np.int8),
            line=rows[sk.R_LINE].copy(),
            column=rows[sk.R_COLUMN].astype(np.int32),
            t=t,
            t_set=(seen & (1 << sk.K_T)) != 0,
            note=note,
            notes=notes,
        )

    def _others(self) -> Iterator[OtherEvent]:
        """The events the scan left aside, in order."""
        sk = self.sk
        for row in self.other[: self.count(sk.C_OTHERS)].tolist():
            yield OtherEvent(
                index=row[sk.X_INDEX],
                start=row[sk.X_START],
                end=row[sk.X_END],
                line=row[sk.X_LINE],
                column=row[sk.X_COLUMN],
            )

    def span(self, index: int) -> tuple[int, int, int, int]:
        """Where event ``index`` of this scan is: (start, end, line, column) of its bytes."""
        sk = self.sk
        rows = self.rows[:, : self.count(sk.C_ROWS)]
        found = np.flatnonzero((rows[sk.R_INDEX] == index) & (rows[sk.R_SUB] < 0))
        if found.shape[0]:
            row = rows[:, int(found[0])]
            edge = 1 if self.inside else 0
            return (
                int(row[sk.R_START]) + edge,
                int(row[sk.R_END]) - edge,
                int(row[sk.R_LINE]),
                int(row[sk.R_COLUMN]),
            )
        other = next(o for o in self._others() if o.index == index)
        return other.start, other.end, other.line, other.column


_PAGE_SHIFT = 12  # a gpa's gfn


def _rule_tables() -> dict[str, np.ndarray]:
    """The format-v1 field rules (kvmgen.trace.validate) as masks and ranges of key columns."""
    from kvmgen.trace.formats import scan_kernels as sk

    def bits(*names: str) -> int:
        return sum(1 << sk.KEY_NAMES.index(name) for name in names)

    common = bits("op", "t", "note")
    allowed = [common | bits(*OP_KEYS[op]) for op in sorted(OP_KEYS)]
    # What each op needs (the validator's required keys; an access's gfn or gpa apart).
    required = [
        bits("slot", "gfn", "pages"),
        bits("slot"),
        bits("slot", "gfn"),
        bits("slot"),
        bits("count"),
        0,
    ]
    ranges = {"slot": SLOT, "as": AS, "gfn": GFN, "gpa": GPA, "pages": PAGES, "flags": FLAGS}
    ranges |= {"repeat": REPEAT, "count": REPEAT, "vcpu": VCPU}
    return {
        "allowed": np.array(allowed, dtype=np.int64),
        "required": np.array(required, dtype=np.int64),
        "ranges": np.array(
            [(sk.KEY_NAMES.index(key), rng.lo, rng.hi) for key, rng in ranges.items()],
            dtype=np.int64,
        ),
    }


_RULES: dict[str, np.ndarray] = {}


def _keeps_rules(rows: np.ndarray, vcpus: int) -> np.ndarray:
    """Which rows keep every format-v1 field rule (the slot layout apart), as the validator does.

    ``rows`` is by column; an absent key's column holds 0, and the scan reads
    no sign, so each range check is one comparison or two.
    """
    from kvmgen.trace.formats import scan_kernels as sk

    if not _RULES:
        _RULES.update(_rule_tables())
    seen, op = rows[sk.R_SEEN], rows[sk.K_OP]
    inside = rows[sk.R_SUB] >= 0
    window = inside.astype(np.int64) << sk.K_WINDOW  # required of an entry, and allowed
    allowed = _RULES["allowed"][op] | window
    required = _RULES["required"][op] | window | (1 << sk.K_OP)
    ok = ((seen & ~allowed) | (required & ~seen)) == 0
    if inside.any():
        ok &= ~inside | (op == Op.ACCESS)
    for key, low, high in _RULES["ranges"].tolist():
        value = rows[key]
        ok &= value <= high
        if low > 0:
            ok &= (value >= low) | ((seen & (1 << key)) == 0)
    # A create, delete or move cannot repeat, nor an update with during.
    ok &= (rows[sk.K_REPEAT] <= 1) | ((op >= Op.FLAGS) & ((seen & (1 << sk.K_DURING)) == 0))
    ok &= (op != Op.CREATE) | (rows[sk.K_GFN] + rows[sk.K_PAGES] <= GFN_LIMIT)
    gfn_or_gpa = ((seen >> sk.K_GFN) ^ (seen >> sk.K_GPA)) & 1
    ok &= (op != Op.ACCESS) | (gfn_or_gpa == 1)
    ok &= rows[sk.K_VCPU] < vcpus  # only an access has one (0 elsewhere)
    return ok


def _sparse(shape: tuple[int, int]) -> np.ndarray:
    """A zeroed int64 array whose pages are allocated as they are first written.

    An anonymous mapping rather than numpy's allocator: numpy asks for huge
    pages on arrays this big, and a block's rows touch only the start of each
    column, which in 2 MB pages costs about three times the memory.
    """
    size = shape[0] * shape[1] * 8
    return np.frombuffer(mmap.mmap(-1, size), dtype=np.int64).reshape(shape)


class SlotState:
    """The live memslots as the layout kernel keeps them: arrays per address space."""

    def __init__(self) -> None:
        shape = (_SPACES, _SLOT_IDS)
        self.live = np.zeros(shape, dtype=np.int8)
        self.base = np.zeros(shape, dtype=np.int64)
        self.size = np.zeros(shape, dtype=np.int64)
        self.placed = np.zeros(shape, dtype=np.int64)
        self.starts = np.zeros(shape, dtype=np.int64)
        self.ids = np.zeros(shape, dtype=np.int64)
        self.used = np.zeros(_SPACES, dtype=np.int64)
        self.updates = 0  # updates applied so far

    @classmethod
    def of(cls, layout: Layout) -> SlotState:
        """The arrays of a Python layout (the header's slots)."""
        state = cls()
        live = sorted(layout.live(), key=lambda item: (item[0], item[1].gfn))
        for a, slot in live:
            state.live[a, slot.slot] = 1
            state.base[a, slot.slot] = slot.gfn
            state.size[a, slot.slot] = slot.pages
            state.placed[a, slot.slot] = slot.line or 0
            state.starts[a, state.used[a]] = slot.gfn
            state.ids[a, state.used[a]] = slot.slot
            state.used[a] += 1
        return state

    def layout(self) -> Layout:
        """The same slots as a Python layout (for the validator to word an error on)."""
        return Layout.of(
            (a, Slot(s, int(self.base[a, s]), int(self.size[a, s]), int(self.placed[a, s])))
            for a in range(_SPACES)
            for s in self.ids[a, : self.used[a]].tolist()
        )

    def apply(self, table: EventTable) -> int:
        """Apply the table's updates in order: -1, or the first row that breaks the layout.

        That row is not applied; a move's ``pages`` column gets its slot's size.
        """
        from kvmgen.trace.formats import scan_kernels as sk

        updates = np.flatnonzero((table.op < sk.OP_BUMP) & (table.sub < 0))
        if not updates.shape[0]:
            return -1
        # A few updates are checked by the same code run as Python: a trace with
        # few updates never waits for the kernel to compile.
        self.updates += updates.shape[0]
        compiled = self.updates > PYTHON_UPDATES
        layout = (self.live, self.base, self.size, self.placed, self.starts, self.ids, self.used)
        columns = (table.op, table.address_space, table.slot, table.gfn, table.pages, table.line)
        if compiled:
            return int(sk.check_slots(updates, *columns, *layout))
        return int(as_python(sk.check_slots)(updates.tolist(), *columns, *layout))


def as_python(kernel: Any) -> Callable[..., Any]:
    """A kernel's own Python function (numba keeps it): the same code, run uncompiled."""
    python: Callable[..., Any] = kernel.py_func
    return python


class BadEvent(Exception):
    """The first event of a block that is invalid (or that the fast reader could not read)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class NotRead(Exception):
    """An event a fast reader cannot read (its full loader may, or words why not)."""


class BlockChecker:
    """Validates one trace's blocks in order: header checked, slot layout carried over columns."""

    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        self.slots = SlotState.of(validator.layout)

    def check(
        self, scan: ScanTables, read: Callable[[OtherEvent], Event], vcpus: int
    ) -> EventTable:
        """The validated events of one scan, in order; :class:`BadEvent` for the first bad one.

        ``read`` checks one other event's fields (raising TraceError or
        :class:`NotRead`); the layout of every update is then checked in order.
        On BadEvent the layout is as it was just before that event. ``vcpus``:
        the header's count (4096 without one).
        """
        table, pending = scan.read(vcpus)
        others: list[Event] = []
        bad: int | None = None
        for other in pending:
            try:
                others.append(read(other))
            except (NotRead, TraceError):
                bad = other.index
                break
        if bad is not None:
            table = _before(table, bad)
        if others:
            table = merge_by_index(table, EventTable.from_events(others))
        row = self.slots.apply(table)
        if row >= 0:
            raise BadEvent(int(table.index[row]))
        if bad is not None:
            raise BadEvent(bad)
        self.validator.note_rows(table)
        return table

    def word(self, index: int, node: object, position: tuple[int, int]) -> TraceError:
        """The error of bad event ``index`` (its located tree at ``position``), from the validator.

        The validator sees the layout just before the event, so it gives the
        message a full load gives.
        """
        self.validator.layout = self.slots.layout()
        try:
            self.validator.event_at(index, node, position)
        except TraceError as error:
            return error
        raise AssertionError(f"event {index} failed the scan's checks but not the validator's")


def _before(table: EventTable, index: int) -> EventTable:
    """The rows of events before event ``index`` (rows are in event order)."""
    stop = int(np.searchsorted(table.index, index, side="left"))
    return EventTable(
        **{name: getattr(table, name)[:stop] for name in EventTable.columns()}, notes=table.notes
    )


class Chunk(NamedTuple):
    """A block of whole lines: the number of its first line and its offset in the file."""

    line: int
    offset: int
    data: bytes


def line_chunks(
    path: str, name: str, size: int, digest: Any = None, start: int = 0, first_line: int = 1
) -> Iterator[Chunk]:
    """File ``path`` from offset ``start`` (line ``first_line``) in blocks of whole lines.

    Blocks are about ``size`` bytes. With ``digest`` (a hashlib object) every
    byte read is fed to it, so a scan hashes the file in the same read.
    ``name`` is the file's name in messages.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator's with
    except OSError as error:
        raise TraceError(name, f"cannot read the trace: {error.strerror or error}") from None
    with handle:
        handle.seek(start)
        yield from lines_of(handle, size, digest, start, first_line)


def lines_of(
    handle: BinaryIO, size: int, digest: Any = None, offset: int = 0, line: int = 1
) -> Iterator[Chunk]:
    """What is left to read of ``handle`` in blocks of whole lines (as :func:`line_chunks`).

    ``offset`` and ``line`` are where its position is in the trace.
    """
    carry = b""
    while True:
        data = handle.read(size)
        if digest is not None:
            digest.update(data)
        if not data:
            if carry:
                yield Chunk(line, offset, carry)
            return
        data = carry + data
        cut = data.rfind(b"\n") + 1
        chunk, carry = data[:cut], data[cut:]
        if chunk:
            yield Chunk(line, offset, chunk)
            line += chunk.count(b"\n")
            offset += len(chunk)
