"""JSON documents read by a jitted scan straight into columns: held in memory, or streamed.

The full JSON loader tracks the position of every value as it parses, in Python,
and builds one record per event. Here :mod:`~kvmgen.trace.formats.scan_kernels`
walks the bytes: every event it reads (nearly all of a trace, whatever the op)
goes straight into an :class:`~kvmgen.trace.table.EventTable`, the few others
are parsed by the full parser alone and checked by the format-v1 validator, and
the memslot layout is checked over the columns. The events list is read a block
at a time either way. The header is the full parser's, read from the document
without its events list and placed exactly where it stands.

:func:`load_json_fast` reads a document held in memory and is strict: anything
unusual or invalid makes it return None, and the full loader reads the file and
words the error. :func:`stream_json` reads a big file in two passes in bounded
memory, as JSON Lines is read: the first checks the syntax of every event and
collects what the engine needs up front (a document it cannot vouch for gives
None: read it whole); the second validates block by block, and words an invalid
event as the full loader would, from that event's bytes alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C scanner, not stubbed
from typing import Any, BinaryIO

from kvmgen.errors import TraceError
from kvmgen.trace.formats.json_full import parse_json_text
from kvmgen.trace.formats.scan import BadEvent, BlockChecker, OtherEvent, ScanTables, SlotState
from kvmgen.trace.records import Event, ReadProgress, Trace
from kvmgen.trace.streamed import FirstPass, StreamedTrace
from kvmgen.trace.table import EventTable, TableEvents, concat, merge_by_index
from kvmgen.trace.tree import Pos, decode, is_map
from kvmgen.trace.validate import FORMAT_VERSION, Validator
from kvmgen.trace.validate.access import VCPU_LIMIT

CHUNK_BYTES = 1 << 22  # a streamed document is read in blocks of about 4 MiB
PART_LIMIT = 1 << 26  # a header, a tail or one event larger than this is not streamed
_BOM = b"\xef\xbb\xbf"
# An integer literal of 20 digits or more may exceed 2^64, which orjson reads as a float.
_LONG_NUMBER = re.compile(rb"\d{20}")


def _exact(path: str, raw: bytes, at: tuple[int, int]) -> Any:
    """One event's located tree from its bytes by the full parser, positioned as in its file."""
    return parse_json_text(path, raw.decode("ascii"), ((0, at[0], at[1]),))[0]


def _read_other(path: str, data: bytes, validator: Validator, other: OtherEvent) -> Event:
    """An event the scan left to Python, its fields checked (the layout is checked over columns).

    The scan reads nearly every event; the few others (escapes, string numbers...)
    are read by the full parser, so positions and duplicate keys are its own.
    """
    at = (other.line, other.column)
    node = _exact(path, data[other.start : other.end], at)
    return validator.event_at(other.index, node, at, layout=False)


@dataclass(frozen=True)
class _List:
    """Where a document's events list starts, and the text before it."""

    offset: int  # byte offset of its "["
    line: int
    # Where the "["'s line starts, in bytes less the extra bytes of non-ASCII text
    # before it on that line: offset - line_start + 1 is its character column.
    line_start: int
    head: str  # the document before the "[" (without a byte-order mark)


def _find_list(path: str, data: bytes) -> _List | bool | None:
    """Where the events list of the document starting ``data`` opens.

    None: the document is not one the scan reads; False: ``data`` ends too soon.
    """
    skip = len(_BOM) if data.startswith(_BOM) else 0
    size = 1 << 16  # the header before the list is small: decode no more than it takes
    while True:
        found = _list_start(data[skip : skip + size].decode("utf-8", "surrogateescape"))
        if found is not False or skip + size >= len(data):
            break
        size <<= 4
    if not isinstance(found, str):
        return found
    offset = skip + len(found.encode("utf-8", "surrogateescape"))
    try:
        head = decode(path, data[:offset])
    except TraceError:
        return None
    line_begins = data.rfind(b"\n", 0, offset) + 1
    last_line = data[max(line_begins, skip) : offset]
    extra = len(last_line) - len(last_line.decode("utf-8"))
    line = data.count(b"\n", 0, offset) + 1
    return _List(offset, line, max(line_begins, skip) + extra, head)


_SPACES = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _list_start(text: str) -> str | bool | None:
    """The text before the "[" of the top-level ``"events"`` list of a JSON document.

    Walks the top-level object's keys with the standard library's scanner (the
    values before the list are small: the header). None: no such list; False:
    the text ends first. Bytes that do not decode are one character each.
    """
    i = _SPACES.match(text).end()  # type: ignore[union-attr]  # matches the empty string
    if text[i : i + 1] != "{":
        return None if text[i:] else False
    while True:
        i = _SPACES.match(text, i + 1).end()  # type: ignore[union-attr]  # past "{" or ","
        if text[i : i + 1] != '"':
            return None if text[i:] else False
        try:
            key, i = scanstring(text, i + 1)
            i = _SPACES.match(text, i).end()  # type: ignore[union-attr]
            if text[i : i + 1] != ":":
                return None if text[i:] else False
            i = _SPACES.match(text, i + 1).end()  # type: ignore[union-attr]
            if key == "events":
                return text[:i] if text[i : i + 1] == "[" else (None if text[i:] else False)
            i = _DECODER.raw_decode(text, i)[1]
        except (ValueError, StopIteration):
            return False  # not valid, or cut short: the caller reads on to the end to know
        i = _SPACES.match(text, i).end()  # type: ignore[union-attr]
        if text[i : i + 1] != ",":
            return None if text[i:] else False


def _header(
    path: str, where: _List, tail: bytes, end_line: int, end_column: int
) -> tuple[Any, Pos] | None:
    """The located header: the document with ``[]`` for its events, positioned as in the file.

    ``tail`` is everything after the list's "]", which is at (``end_line``,
    ``end_column``). None for a header the scan does not take: observations
    (checked against the events) or a mapping or list after the events (an
    unusual layout), both left to the full loader.
    """
    try:
        text = where.head + "[]" + decode(path, tail)
        root, pos = parse_json_text(
            path, text, ((0, 1, 1), (len(where.head) + 1, end_line, end_column))
        )
    except TraceError:
        return None
    if not is_map(root) or "observations" in root:
        return None
    keys = list(root)
    after = keys[keys.index("events") + 1 :] if "events" in keys else keys
    if any(isinstance(root[key], dict | list) for key in after):
        return None
    return root, pos


def _scan(
    chunk: bytes,
    line: int,
    line_start: int,
    index: int,
    first: bool,
    final: bool,
    reuse: ScanTables | None,
) -> tuple[ScanTables, int]:
    """One jitted pass over a chunk of the events list; the scan and its status.

    ``reuse``: the scan of the chunk before, whose arrays this one may take over.
    """
    scan = ScanTables(chunk, reuse=reuse)
    status = scan.sk.json_events(
        scan.buf,
        0,
        line,
        line_start,
        index,
        int(first),
        int(final),
        scan.rows,
        scan.other,
        scan.counts,
        scan.scratch,
    )
    return scan, int(status)


class _Unstreamable(Exception):
    """Something only the whole-document loader reads (or words): read it whole."""


@dataclass
class _End:
    """Where a document's events list ends: what follows its "]", and where that "]" is."""

    tail: bytes = b""
    line: int = 0
    column: int = 0


def _list_scans(
    handle: BinaryIO, where: _List, carry: bytes, read: Callable[[bytes], None], end: _End
) -> Iterator[tuple[bytes, ScanTables]]:
    """The events list, a chunk at a time: each chunk of whole events and its scan.

    ``handle`` is read on from just past ``carry``, the bytes after the list's
    "[" already read; ``read`` is shown every block read (to hash it). When the
    list ends, ``end`` holds where; _Unstreamable for a list the scan does not
    read (its syntax, non-ASCII bytes, an event too big).
    """
    line, line_start = where.line, where.line_start - (where.offset + 1)
    index, first = 0, True
    scan: ScanTables | None = None
    while True:
        more = handle.read(CHUNK_BYTES)
        read(more)
        chunk = carry + more
        scan, status = _scan(chunk, line, line_start, index, first, not more, scan)
        sk = scan.sk
        stop = scan.count(sk.C_RESUME)
        if status == sk.FALLBACK or not chunk[:stop].isascii():
            raise _Unstreamable
        yield chunk, scan
        index += scan.count(sk.C_EVENTS)
        first = first and index == 0
        line, line_start = scan.count(sk.C_LINE), scan.count(sk.C_LINE_START) - stop
        if status == sk.OK:
            end.tail, end.line, end.column = chunk[stop + 1 :], line, stop - line_start + 1
            return
        carry = chunk[stop:]
        if len(carry) > PART_LIMIT:
            raise _Unstreamable


def _ignore(_: bytes) -> None:
    pass


def load_json_fast(path: str, data: bytes, sha256: str) -> Trace | None:
    """The trace, if the scan reads the document and it is valid; else None (read it in full).

    The events list is scanned a block at a time; each block's events are kept
    as columns (the rows the scan fills are reused), and checked once the header
    after the list is read too.
    """
    where = _find_list(path, data)
    if not isinstance(where, _List):
        return None
    tables: list[EventTable] = []
    pending: list[tuple[OtherEvent, bytes]] = []  # other events, with their bytes
    end = _End()
    handle = io.BytesIO(data)
    handle.seek(where.offset + 1)
    try:
        for chunk, scan in _list_scans(handle, where, b"", _ignore, end):
            table, others = scan.read(VCPU_LIMIT)
            tables.append(table)
            pending += [(other, chunk[other.start : other.end]) for other in others]
    except _Unstreamable:
        return None
    header = _header(path, where, end.tail, end.line, end.column)
    if header is None:
        return None
    try:
        validator = Validator(path)
        vm = validator.trace(*header, "json", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        events = []
        for other, raw in pending:
            at = (other.line, other.column)
            events.append(validator.event_at(other.index, _exact(path, raw, at), at, layout=False))
    except TraceError:
        return None
    table = concat(tables)
    if len(table) and int(table.vcpu.max()) >= vcpus:
        return None  # the header has fewer vCPUs than the scan allowed
    if events:
        table = merge_by_index(table, EventTable.from_events(events))
    if SlotState.of(validator.layout).apply(table) >= 0:
        return None
    validator.note_rows(table)
    return validator.finish(vm, TableEvents(table), "json", sha256)


# --- streamed -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What the first pass learnt about the document, for the second."""

    where: _List
    header: tuple[Any, Pos]


def stream_json(
    file: str, name: str | None = None, progress: ReadProgress | None = None
) -> StreamedTrace | None:
    """First pass over a big JSON document: check, hash, collect; None if it is not streamable.

    ``name`` is how messages call the input (default: ``file``);
    ``progress(bytes read, file size)`` is called after each block. A header
    error is raised here; event errors come from the second pass
    (:meth:`StreamedTrace.blocks`), in order, worded as the full loader words them.
    """
    path = name or file
    digest = hashlib.sha256()
    size = os.path.getsize(file)
    seen = FirstPass()
    lenient = Validator(path)
    end = _End()
    try:
        with _open(file, path) as handle:
            data = b""
            while True:  # the document up to its events list, block by block
                more = handle.read(CHUNK_BYTES)
                digest.update(more)
                data += more
                where = _find_list(path, data)
                if isinstance(where, _List):
                    break
                if where is None or not more or len(data) > PART_LIMIT:
                    return None
            done = len(data)

            def read(more: bytes) -> None:
                nonlocal done
                digest.update(more)
                done += len(more)
                if progress is not None:
                    progress(done, size)

            carry = data[where.offset + 1 :]
            for chunk, scan in _list_scans(handle, where, carry, read, end):
                seen.add(_lenient_table(path, chunk, scan, lenient))
                seen.events += scan.count(scan.sk.C_EVENTS)
            rest = handle.read(max(PART_LIMIT + 1 - len(end.tail), 0))
            digest.update(rest)
            if len(end.tail) + len(rest) > PART_LIMIT:
                return None
    except _Unstreamable:
        return None
    header = _header(path, where, end.tail + rest, end.line, end.column)
    if header is None:
        return None
    vm = Validator(path).trace(*header, "json", "").vm  # a header error is the first error
    if progress is not None:
        progress(size, size)
    return seen.trace(
        path=path,
        vm=vm,
        sha256=digest.hexdigest(),
        read_blocks=partial(_second_pass, path, file, _Layout(where, header)),
        format="json",
        version=FORMAT_VERSION,
    )


def _open(file: str, path: str) -> BinaryIO:
    try:
        return open(file, "rb")
    except OSError as error:
        raise TraceError(path, f"cannot read the trace: {error.strerror or error}") from None


def _lenient_table(path: str, chunk: bytes, scan: ScanTables, validator: Validator) -> EventTable:
    """A first pass's events of one scan: every row, and the other events that check out.

    An event that does not check out is left for the second pass to report;
    one that is not valid JSON makes the document unstreamable (the full
    loader reports syntax errors before anything else).
    """
    events: list[Event] = []
    table, others = scan.lenient()
    for other in others:
        at = (other.line, other.column)
        try:
            node = _exact(path, chunk[other.start : other.end], at)
        except TraceError:
            raise _Unstreamable from None
        try:
            events.append(validator.event_at(other.index, node, at, layout=False))
        except TraceError:
            continue
    return merge_by_index(table, EventTable.from_events(events)) if events else table


def _second_pass(path: str, file: str, layout: _Layout) -> Iterator[EventTable]:
    """Validated events in order, a block at a time (re-reads ``file``)."""
    validator = Validator(path)
    vm = validator.trace(*layout.header, "json", "").vm
    vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
    checker = BlockChecker(validator)
    with _open(file, path) as handle:
        handle.seek(layout.where.offset + 1)
        for chunk, scan in _list_scans(handle, layout.where, b"", _ignore, _End()):
            read = partial(_read_other, path, chunk, validator)
            try:
                table = checker.check(scan, read, vcpus)
            except BadEvent as bad:
                raise _bad_event(path, chunk, scan, checker, bad.index) from None
            if len(table):
                yield table


def _bad_event(
    path: str, chunk: bytes, scan: ScanTables, checker: BlockChecker, index: int
) -> TraceError:
    """The full loader's message for bad event ``index``: its bytes parsed and checked fully."""
    start, end, line, column = scan.span(index)
    try:
        node = _exact(path, chunk[start:end], (line, column))
    except TraceError as error:
        return error
    return checker.word(index, node, (line, column))
