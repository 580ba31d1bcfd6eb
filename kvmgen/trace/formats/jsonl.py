"""JSON Lines traces (``.jsonl``): a header object, then one event object per line.

Line 1 is ``{"kvmgen": 1, "vm": {...}}`` (``vm`` optional); every later non-blank
line is one event in the format-v1 event syntax. Such a file is never held in
memory: a first pass (:func:`scan_jsonl`) hashes it and collects what the engine
must know up front (the gfns accesses name, vCPUs, address spaces, notes); a
second pass (:meth:`StreamedTrace.blocks`) validates and yields events block by
block, with the same rules and messages as format v1 and the line of each event.
Both passes read lines with the jitted scan into columns; only lines it leaves
aside (escapes, string numbers, anything invalid) are parsed in Python.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from functools import partial
from typing import Any, BinaryIO

import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.formats.scan import (
    BadEvent,
    BlockChecker,
    Chunk,
    OtherEvent,
    ScanTables,
    line_chunks,
)
from kvmgen.trace.records import Event, ReadProgress, VmHeader
from kvmgen.trace.streamed import FirstPass, StreamedTrace
from kvmgen.trace.table import EventTable, merge_by_index
from kvmgen.trace.tree import Map, Seq, describe
from kvmgen.trace.validate import FORMAT_VERSION, Validator
from kvmgen.trace.validate.access import VCPU_LIMIT

CHUNK_BYTES = 1 << 22  # read and replayed in blocks of about 4 MiB of whole lines


def _locate(value: Any, line: int) -> Any:
    """A parsed JSON value as a located tree; every position is the line (no column)."""
    at = (line, None)
    if isinstance(value, dict):
        node = Map(at)
        for key, item in value.items():
            node.put(key, _locate(item, line), at, at)
        node.dup = value.dup if isinstance(value, Map) else None
        return node
    if isinstance(value, list):
        seq = Seq(at)
        for item in value:
            seq.add(_locate(item, line), at)
        return seq
    return value


# An integer literal of 20 digits or more may exceed 2^64, which orjson reads as a float.
_LONG_NUMBER = re.compile(rb"\d{20}")


def _parse_line(path: str, raw: bytes, line: int, offset: int) -> Any:
    """One line's JSON value; ``offset`` is where the line starts in the file (for messages)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            # Worded as the YAML and JSON loaders word it (kvmgen.trace.tree.decode).
            column = len(raw[: bad.start].decode("utf-8", "replace")) + 1
            raise TraceError(
                path,
                f"invalid UTF-8 (byte {raw[bad.start]:#04x} at offset {offset + bad.start}): "
                "a trace must be UTF-8 text",
                line=line,
                column=column,
            ) from None
        if line == 1 and text.startswith("\ufeff"):
            return _parse_line(path, raw[3:], line, offset + 3)  # a byte-order mark
        raise TraceError(path, f"not valid JSON: {error.msg}", line=line) from None
    if _LONG_NUMBER.search(raw):
        # The standard parser keeps big integers whole, so the validator can name them.
        return json.loads(raw)
    return value


def _located_with_duplicates(raw: bytes, line: int) -> Any:
    """A line parsed so that a repeated key is kept for the validator to report."""
    at = (line, None)

    def pairs(items: list[tuple[str, Any]]) -> Map:
        node = Map(at)
        for key, item in items:
            node.put(key, item, at, at)
        return node

    return _locate(json.loads(raw, object_pairs_hook=pairs), line)


def _chunks(path: str, name: str, digest: Any = None) -> Iterator[Chunk]:
    return line_chunks(path, name, CHUNK_BYTES, digest)


def _header_line(chunks: Iterator[Chunk]) -> tuple[Chunk, Iterator[Chunk]] | None:
    """The first non-blank line (as a one-line chunk) and the chunks after it; None if none."""
    for first_line, base, chunk in chunks:
        offset, number = 0, first_line
        while offset < len(chunk):
            end = chunk.find(b"\n", offset)
            end = len(chunk) if end < 0 else end + 1
            if chunk[offset:end].strip():
                rest = chunk[end:]
                after = [Chunk(number + 1, base + end, rest)] if rest else []
                head = Chunk(number, base + offset, chunk[offset:end])
                return head, itertools.chain(after, chunks)
            offset, number = end, number + 1
    return None


def _scan(chunk: bytes, first_line: int, first_index: int, reuse: ScanTables | None) -> ScanTables:
    """One jitted pass over a block of whole lines (``reuse``: the block before's scan)."""
    scan = ScanTables(chunk, reuse=reuse)
    sk = scan.sk
    status = sk.json_lines(
        scan.buf,
        first_line,
        first_index,
        scan.rows,
        scan.other,
        scan.counts,
        scan.scratch,
    )
    assert status == sk.OK, "the scan tables are sized for every object"
    return scan


def _blocks(path: str, file: str) -> Iterator[EventTable]:
    """Validated events in order, a block of lines at a time, as tables (re-reads ``file``)."""
    found = _header_line(_chunks(file, path))
    assert found is not None, "scan_jsonl read a header"
    head, chunks = found
    validator, vm = _header(path, head)
    vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
    checker = BlockChecker(validator)
    index = 0
    scan = None
    for chunk in chunks:
        scan = _scan(chunk.data, chunk.line, index, scan)
        read = partial(_read_other, path, chunk, validator, vcpus)
        try:
            table = checker.check(scan, read, vcpus)
        except BadEvent as bad:
            raise _bad_event(path, chunk, scan, checker, bad.index) from None
        index += scan.count(scan.sk.C_EVENTS)
        if len(table):
            yield table


def _read_other(
    path: str, chunk: Chunk, validator: Validator, vcpus: int, other: OtherEvent
) -> Event:
    """One line the scan left to Python, its fields checked (the layout is checked over columns)."""
    raw = chunk.data[other.start : other.end]
    value = _parse_line(path, raw, other.line, chunk.offset + other.start)
    if isinstance(value, dict):  # the scan reads nearly every line: no need to be quick here
        value = _located_with_duplicates(raw, other.line)
    locate = partial(_locate, value, other.line)
    return validator.fast_event(value, other.index, (other.line, 0), vcpus, locate, layout=False)


def _bad_event(
    path: str, chunk: Chunk, scan: ScanTables, checker: BlockChecker, index: int
) -> TraceError:
    """The message for bad event ``index`` of a block: its line read again, fully checked."""
    start, end, line, _ = scan.span(index)
    raw = chunk.data[start:end]
    value = _parse_line(path, raw, line, chunk.offset + start)  # a syntax error is the message
    node = _located_with_duplicates(raw, line) if isinstance(value, dict) else _locate(value, line)
    return checker.word(index, node, (line, 0))


def _header(path: str, head: Chunk) -> tuple[Validator, VmHeader]:
    """Check the header line; return a validator primed with its vCPUs and slots."""
    number = head.line
    root = _locate(_parse_line(path, head.data, number, head.offset), number)
    if not isinstance(root, dict):
        raise TraceError(
            path,
            f'expected the header object {{"kvmgen": 1, ...}} on the first line, got '
            f"{describe(root)}",
            line=number,
        )
    if "events" in root:
        raise TraceError(
            path,
            "a JSON Lines trace has no events key: put one event per line after the header",
            line=number,
            field="events",
        )
    root["events"] = Seq((number, None))
    validator = Validator(path)
    return validator, validator.trace(root, (number, None), "jsonl", "").vm


def looks_like_jsonl(first_line: bytes) -> bool:
    """Whether a stream's first line is a JSON Lines header (an object without events)."""
    try:
        head = orjson.loads(first_line.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return False
    return isinstance(head, dict) and "kvmgen" in head and "events" not in head


def spool(head: bytes, stream: BinaryIO, suffix: str = ".jsonl") -> str:
    """Copy ``head`` and the rest of ``stream`` to a temporary file, removed at exit."""
    with tempfile.NamedTemporaryFile("wb", prefix="kvmgen-", suffix=suffix, delete=False) as out:
        out.write(head)
        shutil.copyfileobj(stream, out, 1 << 20)
    atexit.register(os.unlink, out.name)
    return out.name


def scan_jsonl(
    file: str, name: str | None = None, progress: ReadProgress | None = None
) -> StreamedTrace:
    """First pass: hash the file, check the header, collect what the engine needs first.

    Events are fully validated in the second pass; this one skips what it cannot
    read or finds invalid (the second pass reports it with its line).
    ``name`` is how messages call the input (``<stdin>``); default: ``file``.
    ``progress(bytes read, file size)`` is called after each block.
    """
    path = name or file
    digest = hashlib.sha256()
    found = _header_line(_chunks(file, path, digest))
    if found is None:
        raise TraceError(path, 'empty trace: expected a header line {"kvmgen": 1, ...}')
    head, chunks = found
    _, vm = _header(path, head)
    seen = FirstPass()
    lenient = Validator(path)
    size, done = os.path.getsize(file), head.offset + len(head.data)
    scan = None
    for chunk in chunks:
        done += len(chunk.data)
        if progress is not None:
            progress(done, size)
        scan = _scan(chunk.data, chunk.line, seen.events, scan)
        events = []
        table, others = scan.lenient()
        for other in others:
            try:
                events.append(_read_other(path, chunk, lenient, VCPU_LIMIT, other))
            except TraceError:
                continue
        seen.add(merge_by_index(table, EventTable.from_events(events)) if events else table)
        seen.events += scan.count(scan.sk.C_EVENTS)
    if progress is not None:
        progress(size, size)
    return seen.trace(
        path=path,
        vm=vm,
        sha256=digest.hexdigest(),
        read_blocks=partial(_blocks, path, file),
        format="jsonl",
        version=FORMAT_VERSION,
    )
