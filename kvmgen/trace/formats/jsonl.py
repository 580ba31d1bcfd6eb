"""JSON Lines traces (``.jsonl``): a header object, then one event object per line.

Line 1 is ``{"kvmgen": 1, "vm": {...}}`` (``vm`` optional); every later non-blank
line is one event in the format-v1 event syntax. Such a file is never held in
memory: a first pass (:func:`scan_jsonl`) hashes it and collects what the engine
must know up front (the gfns accesses name, vCPUs, address spaces, notes); a
second pass (:meth:`StreamedTrace.blocks`) validates and yields events block by
block, with the same rules and messages as format v1 and the line of each event.
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
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.checks import SpaceUse, event_use, merge_uses, slot_uses
from kvmgen.trace.formats.scan import OtherEvent, ScanTables, keys_as_written, merged
from kvmgen.trace.records import ReadProgress, VmHeader
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import EventTable
from kvmgen.trace.tree import Map, Seq, describe
from kvmgen.trace.validate import FORMAT_VERSION, Validator
from kvmgen.trace.validate.access import VCPU_LIMIT
from kvmgen.trace.validate.fields import Problem, parse_int

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


class Chunk(NamedTuple):
    """A block of whole lines: the number of its first line and its offset in the file."""

    line: int
    offset: int
    data: bytes


def _chunks(path: str, name: str, digest: Any = None) -> Iterator[Chunk]:
    """File ``path`` in blocks of whole lines, each with where it starts.

    With ``digest`` (a hashlib object) every byte read is fed to it, so a scan
    hashes the file in the same read. ``name`` is the file's name in messages.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator's with
    except OSError as error:
        raise TraceError(name, f"cannot read the trace: {error.strerror or error}") from None
    with handle:
        line, offset, carry = 1, 0, b""
        while True:
            data = handle.read(CHUNK_BYTES)
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


def _scan(chunk: bytes, first_line: int, first_index: int, vcpus: int) -> ScanTables:
    """One jitted pass over a block of whole lines."""
    buf = np.frombuffer(chunk, dtype=np.uint8)
    scan = ScanTables(buf)
    status = scan.sk.scan_json_lines(
        buf, first_line, first_index, scan.acc, scan.other, scan.nested, scan.counts, vcpus
    )
    assert status == scan.sk.OK, "the scan tables are sized for every object"
    return scan


def _blocks(path: str, file: str) -> Iterator[EventTable]:
    """Validated events in order, a block of lines at a time, as tables (re-reads ``file``)."""
    found = _header_line(_chunks(file, path))
    assert found is not None, "scan_jsonl read a header"
    head, chunks = found
    validator, vm = _header(path, head)
    vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
    index = 0
    for chunk in chunks:
        scan = _scan(chunk.data, chunk.line, index, vcpus)
        others = [
            validator.fast_event(value, other.index, (other.line, 0), vcpus, locate)
            for other, value, locate in _parsed(path, scan, chunk)
        ]
        table = merged(scan.accesses(), others, validator)
        index += scan.count(scan.sk.C_EVENTS)
        if len(table):
            yield table


def _parsed(path: str, scan: ScanTables, chunk: Chunk) -> Iterator[tuple[OtherEvent, Any, Any]]:
    """Each event the scan left to Python: parsed value and how to locate it."""
    for other in scan.others():
        raw = chunk.data[other.start : other.end]
        value = _parse_line(path, raw, other.line, chunk.offset + other.start)
        if isinstance(value, dict) and not keys_as_written(value, other):
            value = _located_with_duplicates(raw, other.line)
        yield other, value, partial(_locate, value, other.line)


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


def _gfn_of(entry: dict[str, Any]) -> int | None:
    try:
        if "gfn" in entry:
            return parse_int(entry["gfn"])
        if "gpa" in entry:
            return parse_int(entry["gpa"]) >> 12
    except Problem:
        return None
    return None


def looks_like_jsonl(first_line: bytes) -> bool:
    """Whether a stream's first line is a JSON Lines header (an object without events)."""
    try:
        head = orjson.loads(first_line.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return False
    return isinstance(head, dict) and "kvmgen" in head and "events" not in head


def spool(head: bytes, stream: BinaryIO) -> str:
    """Copy ``head`` and the rest of ``stream`` to a temporary file, removed at exit."""
    with tempfile.NamedTemporaryFile("wb", prefix="kvmgen-", suffix=".jsonl", delete=False) as out:
        out.write(head)
        shutil.copyfileobj(stream, out, 1 << 20)
    atexit.register(os.unlink, out.name)
    return out.name


def scan_jsonl(
    file: str, name: str | None = None, progress: ReadProgress | None = None
) -> StreamedTrace:
    """First pass: hash the file, check the header, collect what the engine needs first.

    Events are fully validated in the second pass; this one only picks out fields
    and skips what it cannot read (the second pass reports it with its line).
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
    vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
    seen = _Seen()
    count = 0
    size, done = os.path.getsize(file), head.offset + len(head.data)
    for chunk in chunks:
        done += len(chunk.data)
        if progress is not None:
            progress(done, size)
        scan = _scan(chunk.data, chunk.line, count, vcpus)
        seen.accesses(scan)
        for other in scan.others():
            try:
                event = orjson.loads(chunk.data[other.start : other.end])
            except orjson.JSONDecodeError:
                continue
            seen.other(other, event)
        count += scan.count(scan.sk.C_EVENTS)
    if progress is not None:
        progress(size, size)
    return StreamedTrace(
        path=path,
        vm=vm,
        sha256=digest.hexdigest(),
        event_count=count,
        access_gfns=seen.gfns(),
        max_vcpu=seen.max_vcpu,
        space_uses=merge_uses(slot_uses(vm.slots), seen.uses),
        read_blocks=partial(_blocks, path, file),
        format="jsonl",
        version=FORMAT_VERSION,
        notes=seen.notes,
    )


class _Seen:
    """What the first pass collects: gfns, vCPUs, notes, first use of each address space."""

    def __init__(self) -> None:
        self.gfn_blocks: list[np.ndarray] = []
        self.other_gfns: set[int] = set()
        self.max_vcpu = 0
        self.notes: dict[int, str] = {}
        self.uses: dict[int, SpaceUse] = {}

    def gfns(self) -> np.ndarray:
        """Every gfn accesses name, sorted, once each."""
        others = np.array(sorted(self.other_gfns), dtype=np.int64)
        return np.unique(np.concatenate([*self.gfn_blocks, others]))

    def _use(self, space: int, use: SpaceUse) -> None:
        if space not in self.uses or use.order < self.uses[space].order:
            self.uses[space] = use

    def accesses(self, scan: ScanTables) -> None:
        sk = scan.sk
        acc = scan.acc[: scan.count(sk.C_ACCESSES)]
        if not acc.shape[0]:
            return
        self.gfn_blocks.append(np.unique(acc[:, sk.A_GFN]))
        self.max_vcpu = max(self.max_vcpu, int(acc[:, sk.A_VCPU].max()))
        for space in np.unique(acc[:, sk.A_AS]).tolist():
            row = acc[int(np.argmax(acc[:, sk.A_AS] == space))]
            self._use(space, event_use(int(row[sk.A_INDEX]), -1, int(row[sk.A_LINE]), 0, "access"))

    def other(self, other: OtherEvent, event: Any) -> None:
        if not isinstance(event, dict):
            return
        during = event.get("during")
        subs: list[Any] = during if isinstance(during, list) else []
        for sub, entry in enumerate([event, *subs], start=-1):
            if not isinstance(entry, dict):
                continue
            if entry.get("op") == "access":
                gfn = _gfn_of(entry)
                if gfn is not None:
                    self.other_gfns.add(gfn)
                vcpu = entry.get("vcpu", 0)
                if isinstance(vcpu, int) and not isinstance(vcpu, bool):
                    self.max_vcpu = max(self.max_vcpu, vcpu)
            space = entry.get("as", 0)
            if isinstance(space, int) and not isinstance(space, bool):
                use = event_use(other.index, sub, other.line, 0, str(event.get("op")))
                self._use(space, use)
        note = event.get("note")
        if isinstance(note, str) and note:
            self.notes[other.index] = note
