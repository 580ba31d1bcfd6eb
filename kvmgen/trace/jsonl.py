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
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, BinaryIO

import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.digest import TraceDigest
from kvmgen.trace.fastpath import VCPU_LIMIT
from kvmgen.trace.fields import Problem, parse_int
from kvmgen.trace.records import Event, Trace, VmHeader
from kvmgen.trace.table import EventTable
from kvmgen.trace.tree import Map, Seq
from kvmgen.trace.validate import FORMAT_VERSION, _Validator

BLOCK_EVENTS = 100_000
_HEADER_KEYS = ("kvmgen", "vm")


def _locate(value: Any, line: int) -> Any:
    """A parsed JSON value as a located tree; every position is the line (no column)."""
    at = (line, None)
    if isinstance(value, dict):
        node = Map(at)
        for key, item in value.items():
            node.put(key, _locate(item, line), at, at)
        return node
    if isinstance(value, list):
        seq = Seq(at)
        for item in value:
            seq.add(_locate(item, line), at)
        return seq
    return value


def _parse_line(path: str, raw: bytes, line: int) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise TraceError(path, f"not valid JSON: {error.msg}", line=line) from None


def _lines(path: str, name: str | None = None, digest: Any = None) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of file ``path`` with their 1-based numbers (``name`` in messages).

    With ``digest`` (a hashlib object), every byte read, blank lines included, is fed
    to it, so the scan hashes the file in the same read.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the generator's with
    except OSError as error:
        message = f"cannot read the trace: {error.strerror or error}"
        raise TraceError(name or path, message) from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if digest is not None:
                digest.update(raw)
            if raw.strip():
                yield number, raw


@dataclass
class StreamedTrace:
    """A JSON Lines trace, scanned once; its events are read again block by block."""

    path: str
    vm: VmHeader
    sha256: str
    event_count: int
    access_gfns: set[int]
    max_vcpu: int
    max_address_space: int
    # First event (index, line, op name) that names each address space, for run checks.
    first_use_of_as: dict[int, tuple[int, int, str]]
    notes: dict[int, str] = field(default_factory=dict)
    file: str = ""  # where the bytes are (a spooled copy for stdin); path names it
    digest: str | None = None  # content digest, known once a pass has read every event
    format: str = "jsonl"
    version: int = FORMAT_VERSION

    def blocks(self, size: int = BLOCK_EVENTS) -> Iterator[EventTable]:
        """Validated events in order, ``size`` at a time, as tables (re-reads the file)."""
        lines = _lines(self.file or self.path, self.path)
        number, raw = next(lines)
        validator, vm = _header(self.path, raw, number)
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        digest = TraceDigest(vm)
        block: list[Event] = []
        for index, (number, raw) in enumerate(lines):
            value = _parse_line(self.path, raw, number)
            locate = partial(_locate, value, number)
            block.append(validator.fast_event(value, index, (number, 0), vcpus, locate))
            if len(block) >= size:
                table = EventTable.from_events(block)
                digest.update(table)
                yield table
                block = []
        table = EventTable.from_events(block)
        digest.update(table)
        if block:
            yield table
        self.digest = digest.hexdigest()

    def content_digest(self) -> str:
        """The trace's content digest (reads the file once more if no pass finished)."""
        if self.digest is None:
            for _ in self.blocks():
                pass
        assert self.digest is not None
        return self.digest

    def materialize(self) -> Trace:
        """The whole trace in memory (for the reference model and small files)."""
        events = tuple(event for block in self.blocks() for event in block.records())
        return Trace(
            path=self.path,
            format=self.format,
            version=self.version,
            vm=self.vm,
            events=events,
            sha256=self.sha256,
            max_address_space=self.max_address_space,
            max_vcpu=self.max_vcpu,
        )


def _header(path: str, raw: bytes, number: int) -> tuple[_Validator, VmHeader]:
    """Check the header line; return a validator primed with its vCPUs and slots."""
    root = _locate(_parse_line(path, raw, number), number)
    if isinstance(root, dict) and "events" in root:
        raise TraceError(
            path,
            "a JSON Lines trace has no events key: put one event per line after the header",
            line=number,
            field="events",
        )
    if isinstance(root, dict):
        root["events"] = Seq((number, None))
    validator = _Validator(path)
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
        head = orjson.loads(first_line)
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


def scan_jsonl(file: str, name: str | None = None) -> StreamedTrace:
    """First pass: hash the file, check the header, collect what the engine needs first.

    Events are fully validated in the second pass; this one only picks out fields
    and skips what it cannot read (the second pass reports it with its line).
    ``name`` is how messages call the input (``<stdin>``); default: ``file``.
    """
    path = name or file
    digest = hashlib.sha256()
    lines = _lines(file, path, digest)
    first = next(lines, None)
    if first is None:
        raise TraceError(path, 'empty trace: expected a header line {"kvmgen": 1, ...}')
    number, raw = first
    _, vm = _header(path, raw, number)
    gfns: set[int] = set()
    notes: dict[int, str] = {}
    first_use: dict[int, tuple[int, int, str]] = {}
    max_vcpu = 0
    count = 0
    for index, (number, raw) in enumerate(lines):
        count += 1
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        subs = event.get("during") if isinstance(event.get("during"), list) else []
        for entry in [event, *subs]:
            if not isinstance(entry, dict):
                continue
            if entry.get("op") == "access":
                gfn = _gfn_of(entry)
                if gfn is not None:
                    gfns.add(gfn)
                vcpu = entry.get("vcpu", 0)
                if isinstance(vcpu, int) and not isinstance(vcpu, bool):
                    max_vcpu = max(max_vcpu, vcpu)
            space = entry.get("as", 0)
            if isinstance(space, int) and not isinstance(space, bool) and space not in first_use:
                first_use[space] = (index, number, str(event.get("op")))
        note = event.get("note")
        if isinstance(note, str) and note:
            notes[index] = note
    return StreamedTrace(
        path=path,
        vm=vm,
        sha256=digest.hexdigest(),
        event_count=count,
        access_gfns=gfns,
        max_vcpu=max_vcpu,
        max_address_space=max(first_use, default=0),
        first_use_of_as=first_use,
        notes=notes,
        file=file,
    )


def check_streamed_for_run(trace: Any, address_spaces: int) -> None:
    """Refuse a run whose address-space count the trace exceeds (names the first event).

    For any trace not held as events (streamed or compiled): it needs ``path``,
    ``vm`` and ``first_use_of_as``.
    """
    for decl in trace.vm.slots:
        if decl.address_space >= address_spaces:
            raise TraceError(
                trace.path,
                f"address space {decl.address_space} does not exist in this run",
                line=decl.line,
                field="vm.slots.as",
            )
    bad = [a for a in trace.first_use_of_as if a >= address_spaces]
    if bad:
        index, line, op = min(trace.first_use_of_as[a] for a in bad)
        only = ", ".join(str(a) for a in range(address_spaces))
        raise TraceError(
            trace.path,
            f"address space {min(bad)} does not exist in this run, which has only "
            f"address space{'s' if address_spaces > 1 else ''} {only}",
            line=line,
            event=index,
            op=op,
            field="as",
        )
