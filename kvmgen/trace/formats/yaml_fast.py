"""A strict fast path for the common YAML layout: one flow-style event per line.

Generated and imported traces look like ``  - {op: access, gfn: 0xfebf1, vcpu: 0}``,
one event per line after the header. Reading those lines without a YAML parser is
an order of magnitude faster (a jitted scan into columns: two orders). The header
still goes through the full YAML loader.

:func:`load_yaml_fast` reads a file held in memory and is strict: any line it
does not fully understand (block style, quotes with escapes, YAML's special words,
comments before the first event, ...) makes it return None so the caller uses
the full loader for the whole file. Invalid input is also handed back, so errors
come from the full loader, with its exact messages and positions. Small files
are read line by line in Python; from
:data:`~kvmgen.trace.formats.scan.SCAN_MIN_BYTES` on, the jitted scan reads
every event it can (whatever its op) into columns, and the other lines are read
here, by the tokenizer or by the full loader on that line alone.

:func:`stream_yaml` reads a big file in two passes in bounded memory, as JSON
Lines is read: the first checks every line and collects what the engine needs
up front (a file it cannot vouch for gives None: read it whole); the second
validates block by block and words an invalid event as the full loader does,
from its line alone.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import yaml

from kvmgen.errors import TraceError
from kvmgen.trace.formats import scan as scanned
from kvmgen.trace.formats.scan import (
    BadEvent,
    BlockChecker,
    Chunk,
    NotRead,
    OtherEvent,
    ScanTables,
    line_chunks,
    lines_of,
)
from kvmgen.trace.formats.yaml_full import parse_yaml, parse_yaml_text
from kvmgen.trace.records import Event, ReadProgress, Trace
from kvmgen.trace.streamed import FirstPass, StreamedTrace
from kvmgen.trace.table import EventTable, TableEvents, concat, merge_by_index
from kvmgen.trace.tree import Map, Pos, decode
from kvmgen.trace.validate import FORMAT_VERSION, Validator
from kvmgen.trace.validate.access import VCPU_LIMIT

CHUNK_BYTES = 1 << 22  # a streamed file is read in blocks of about 4 MiB of whole lines
PART_LIMIT = 1 << 26  # a header larger than this is not streamed

# YAML's own whitespace is the space and the tab; str.strip() and \s know more.
_YAML_SPACE = " \t"
_EVENTS_KEY = re.compile(r"^events:[ \t]*$")
_EVENT = re.compile(r"^( *)- \{(.*)\}[ \t]*$")
_PAIR = re.compile(r'[ \t]*([A-Za-z_]+): ("[^"\\]*"|[^,"{}\[\]#&*!|>\'%@`]*?)[ \t]*(,|$)')
_INT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?[0-9]+\.[0-9]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLAIN_TEXT = re.compile(r"\w[\w .()/+=-]*")
# Plain scalars YAML would not read as plain text.
_SPECIAL = frozenset({"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ""})
_TEXT_KEYS = frozenset({"note"})
_OTHER_LINE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")
# What PyYAML refuses to read (its reader's rule); the full loader words it.
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_EVENTS_LINE = re.compile(rb"^events:[ \t]*$", re.MULTILINE)


def _scalar(key: str, text: str) -> Any:
    """The value of one plain or double-quoted flow scalar; raise ValueError to give up."""
    if text.startswith('"'):
        return text[1:-1]
    if text.lower() in _SPECIAL:
        raise ValueError(text)
    if key in _TEXT_KEYS:
        # An unquoted note is its source text, as in the full loader, when YAML would
        # read it as plain text: no indicator up front, no ": " or " #" inside.
        if not _PLAIN_TEXT.fullmatch(text):
            raise ValueError(text)
        return text
    if _INT.fullmatch(text):
        return int(text, 0)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _WORD.fullmatch(text):
        return text
    raise ValueError(text)


_UNQUOTED_UNSAFE = re.compile(r"[{}\[\]#&*!|>'%@`\"]")


# Every key format v1 allows in an event; any other word goes to the full loader.
_KEYS = frozenset(
    {
        "op",
        "slot",
        "as",
        "gfn",
        "gpa",
        "pages",
        "flags",
        "repeat",
        "count",
        "vcpu",
        "kind",
        "t",
        "note",
        "window",
        "during",
    }
)
_MEMO_LIMIT = 1 << 16


def _parse_event(inside: str, memo: dict[str, Any]) -> dict[str, Any] | None:
    """``key: value`` pairs of one flow mapping, or None if any part is unusual.

    ``memo`` caches typed values by their text: traces repeat the same gfns, ops
    and vCPU numbers on many lines.
    """
    if _UNQUOTED_UNSAFE.search(inside):
        return _parse_pairs(inside)
    # No quotes or flow punctuation inside: commas split pairs, ": " splits each.
    out: dict[str, Any] = {}
    try:
        for part in inside.split(","):
            key, sep, text = part.partition(": ")
            key = key.strip(_YAML_SPACE)
            if not sep or key in out or key not in _KEYS:
                return None
            text = text.strip(_YAML_SPACE)
            if key in _TEXT_KEYS:
                out[key] = _scalar(key, text)
                continue
            value = memo.get(text, memo)
            if value is memo:
                value = _scalar(key, text)
                if len(memo) < _MEMO_LIMIT:
                    memo[text] = value
            out[key] = value
    except ValueError:
        return None
    return out


def _parse_pairs(inside: str) -> dict[str, Any] | None:
    """The general tokenizer, for lines with quoted strings."""
    out: dict[str, Any] = {}
    end = 0
    for match in _PAIR.finditer(inside):
        if match.start() != end:
            return None
        key, text = match.group(1), match.group(2)
        if key in out:
            return None
        try:
            out[key] = _scalar(key, text)
        except ValueError:
            return None
        end = match.end()
        if match.group(3) == "":
            break
    return out if end == len(inside) and out else None


def load_yaml_fast(
    path: str, data: bytes, sha256: str, progress: ReadProgress | None = None
) -> Trace | None:
    """The trace, if the file has the one-event-per-line layout and is valid; else None.

    From :data:`~kvmgen.trace.formats.scan.SCAN_MIN_BYTES` on, a jitted scan reads the
    lines into columns; a smaller file is read here in Python. ``progress(lines done,
    lines)`` is called every 65,536 lines read in Python, and at the end.
    """
    if len(data) >= scanned.SCAN_MIN_BYTES:
        return _load_scanned(path, data, sha256, progress)
    text = decode(path, data)
    if any(mark in text for mark in _OTHER_LINE_BREAKS) or _NON_PRINTABLE.search(text):
        return None  # other line breaks renumber lines; other characters are refused
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _EVENTS_KEY.match(line)), None)
    if start is None:
        return None
    header = "\n".join(lines[: start + 1]) + " []\n"
    try:
        root, pos = parse_yaml(path, header.encode())
        validator = Validator(path)
        vm = validator.trace(root, pos, "yaml", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        reader = _LineReader(validator, vcpus, progress, len(lines))
        events = _read_lines(lines, start, reader)
    except TraceError:
        return None
    if progress is not None:
        progress(len(lines), len(lines))
    if not events:
        return None  # "events:" with no list is null, an error only the full loader words
    return validator.finish(vm, events, "yaml", sha256)


def _plain(path: str, data: bytes) -> bool:
    """Whether every character of ``data`` is one YAML reads, and no line break but LF.

    Invalid UTF-8 raises the loaders' TraceError. ASCII passes here: the scan
    refuses ASCII control characters in event and comment lines itself, and the
    header goes to PyYAML, which refuses them too.
    """
    if data.isascii():
        return True
    text = decode(path, data)
    return not any(mark in text for mark in _OTHER_LINE_BREAKS) and not _NON_PRINTABLE.search(text)


def _events_line(data: bytes) -> tuple[int, int] | None:
    """Where the ``events:`` line ends, and where the line after it starts; None if none."""
    found = _EVENTS_LINE.search(data)
    if found is None or found.end() == len(data):
        return None  # "events:" ending the file is null, an error only the full loader words
    return found.end(), found.end() + 1


def _header(path: str, head: bytes) -> tuple[Any, Pos]:
    """The located header: the lines up to ``events:``, with an empty list for the events."""
    return parse_yaml_text(path, decode(path, head) + " []\n")


def _scan(
    data: bytes, first_line: int, first_index: int, indent: int, reuse: ScanTables | None = None
) -> ScanTables:
    """One jitted pass over event lines (``indent``: theirs, -1: none yet); NotRead if unusual."""
    scan = ScanTables(data, inside=True, reuse=reuse)
    sk = scan.sk
    scan.counts[sk.C_INDENT] = indent
    status = sk.yaml_lines(
        scan.buf,
        first_line,
        first_index,
        scan.rows,
        scan.other,
        scan.counts,
        scan.scratch,
    )
    if status != sk.OK:
        raise NotRead
    return scan


def _load_scanned(
    path: str, data: bytes, sha256: str, progress: ReadProgress | None
) -> Trace | None:
    """The trace read by the jitted scan in memory; None for anything unusual or invalid.

    The event lines are scanned and checked a block at a time (the rows the
    scan fills are reused); each block's events are kept as columns.
    """
    if not _plain(path, data):
        return None
    found = _events_line(data)
    if found is None:
        return None
    head_end, body_start = found
    handle = io.BytesIO(data)
    handle.seek(body_start)
    tables: list[EventTable] = []
    try:
        validator = Validator(path)
        vm = validator.trace(*_header(path, data[:head_end]), "yaml", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        checker = BlockChecker(validator)
        memo: dict[str, Any] = {}
        scan: ScanTables | None = None
        indent, index = -1, 0
        first_line = data.count(b"\n", 0, body_start) + 1
        for chunk in lines_of(handle, CHUNK_BYTES, None, body_start, first_line):
            scan = _scan(chunk.data, chunk.line, index, indent, scan)
            indent = scan.count(scan.sk.C_INDENT)
            index += scan.count(scan.sk.C_EVENTS)
            read = partial(_read_other, path, chunk.data, validator, vcpus, memo)
            tables.append(checker.check(scan, read, vcpus))
    except (TraceError, NotRead, BadEvent):
        return None
    if not index:
        return None  # "events:" with no list is null, an error only the full loader words
    table = concat(tables)
    if progress is not None:
        lines = data.count(b"\n") + 1
        progress(lines, lines)
    return validator.finish(vm, TableEvents(table), "yaml", sha256)


def _read_other(
    path: str,
    data: bytes,
    validator: Validator,
    vcpus: int,
    memo: dict[str, Any],
    other: OtherEvent,
) -> Event:
    """An event line the scan left aside, its fields checked (the layout is checked over columns).

    Read by the tokenizer; NotRead for a line it does not read (a during list
    the scan did not take, single quotes, ...): the full loader reads the file.
    """
    value = _parse_event(data[other.start : other.end].decode("utf-8"), memo)
    if value is None or "during" in value:
        raise NotRead
    at = (other.line, other.column)
    locate = partial(_located, value, at)
    return validator.fast_event(value, other.index, at, vcpus, locate, layout=False)


def _line_tree(path: str, data: bytes, offset: int, line: int) -> Any:
    """The located tree of the event on the line holding ``offset`` (line ``line``), alone.

    Parsed by the full loader as it stands in the file; NotRead if the line is
    not one event.
    """
    begin = data.rfind(b"\n", 0, offset) + 1
    end = data.find(b"\n", offset)
    text = data[begin : end if end >= 0 else len(data)].decode("utf-8")
    root, _ = parse_yaml_text(path, text, line)
    if not isinstance(root, list) or len(root) != 1:
        raise NotRead
    return root[0]


# --- streamed -------------------------------------------------------------------------


def stream_yaml(
    file: str, name: str | None = None, progress: ReadProgress | None = None
) -> StreamedTrace | None:
    """First pass over a big flow-style YAML file: check, hash, collect; None if not streamable.

    ``name`` is how messages call the input (default: ``file``);
    ``progress(bytes read, file size)`` is called after each block. A header
    error is raised here; event errors come from the second pass
    (:meth:`StreamedTrace.blocks`), in order, worded as the full loader words them.
    """
    path = name or file
    digest = hashlib.sha256()
    size = os.path.getsize(file)
    chunks = line_chunks(file, path, CHUNK_BYTES, digest)
    head = b""
    for chunk in chunks:
        head += chunk.data
        found = _events_line(head)
        if found is not None:
            break
        if len(head) > PART_LIMIT:
            return None
    else:
        return None
    head_end, body_start = found
    body_line = head.count(b"\n", 0, body_start) + 1
    seen = FirstPass()
    lenient = Validator(path)
    indent, done = -1, 0
    scan: ScanTables | None = None
    try:
        if not _plain(path, head[:head_end]):
            return None
        header = _header(path, head[:head_end])
        rest = itertools.chain([Chunk(body_line, body_start, head[body_start:])], chunks)
        for chunk in rest:
            done = chunk.offset + len(chunk.data)
            if not chunk.data or not _plain(path, chunk.data):
                if chunk.data:
                    return None
                continue
            scan = _scan(chunk.data, chunk.line, seen.events, indent, scan)
            indent = scan.count(scan.sk.C_INDENT)
            seen.add(_lenient_table(path, chunk.data, scan, lenient))
            seen.events += scan.count(scan.sk.C_EVENTS)
            if progress is not None:
                progress(done, size)
    except (TraceError, NotRead):
        return None
    if not seen.events:
        return None  # "events:" with no list is null, an error only the full loader words
    vm = Validator(path).trace(*header, "yaml", "").vm  # a header error is the first error
    if progress is not None:
        progress(size, size)
    return seen.trace(
        path=path,
        vm=vm,
        sha256=digest.hexdigest(),
        read_blocks=partial(_second_pass, path, file, header, body_start, body_line),
        format="yaml",
        version=FORMAT_VERSION,
    )


def _lenient_table(path: str, data: bytes, scan: ScanTables, validator: Validator) -> EventTable:
    """A first pass's events of one scan: every row, and the other lines that check out.

    A line that does not check out is left for the second pass to report; one
    the tokenizer cannot read raises NotRead (the full loader reads the file).
    """
    events: list[Event] = []
    memo: dict[str, Any] = {}
    table, others = scan.lenient()
    for other in others:
        try:
            events.append(_read_other(path, data, validator, VCPU_LIMIT, memo, other))
        except TraceError:
            continue
    return merge_by_index(table, EventTable.from_events(events)) if events else table


def _second_pass(
    path: str, file: str, header: tuple[Any, Pos], body_start: int, body_line: int
) -> Iterator[EventTable]:
    """Validated events in order, a block of lines at a time (re-reads ``file``)."""
    validator = Validator(path)
    vm = validator.trace(*header, "yaml", "").vm
    vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
    checker = BlockChecker(validator)
    memo: dict[str, Any] = {}
    indent, index = -1, 0
    scan: ScanTables | None = None
    for chunk in line_chunks(file, path, CHUNK_BYTES, start=body_start, first_line=body_line):
        scan = _scan(chunk.data, chunk.line, index, indent, scan)
        indent = scan.count(scan.sk.C_INDENT)
        read = partial(_read_other, path, chunk.data, validator, vcpus, memo)
        try:
            table = checker.check(scan, read, vcpus)
        except BadEvent as bad:
            raise _bad_event(path, chunk.data, scan, checker, bad.index) from None
        index += scan.count(scan.sk.C_EVENTS)
        if len(table):
            yield table


def _bad_event(
    path: str, data: bytes, scan: ScanTables, checker: BlockChecker, index: int
) -> TraceError:
    """The full loader's message for bad event ``index``: its line read alone and checked fully."""
    start, _, line, column = scan.span(index)
    try:
        node = _line_tree(path, data, start, line)
    except TraceError as error:
        return error
    return checker.word(index, node, (line, column))


class _LineReader:
    """Reads event lines in Python, in order, checking each with the validator."""

    def __init__(
        self, validator: Validator, vcpus: int, progress: ReadProgress | None, lines: int
    ) -> None:
        self.validator = validator
        self.vcpus = vcpus
        self.progress = progress
        self.lines = lines
        self.memo: dict[str, Any] = {}

    def event(self, inside: str, index: int, at: tuple[int, int]) -> Event | None:
        """The event inside one line's braces; None if the line is unusual."""
        if self.progress is not None and not at[0] & 0xFFFF:
            self.progress(at[0], self.lines)
        value = _parse_event(inside, self.memo)
        if value is None or "during" in value:
            return None
        return self.validator.fast_event(value, index, at, self.vcpus, partial(_located, value, at))


def _read_lines(lines: list[str], start: int, reader: _LineReader) -> tuple[Event, ...] | None:
    """Every event line after ``events:`` (line ``start``), read in Python."""
    events: list[Event] = []
    indent: str | None = None
    for number in range(start + 2, len(lines) + 1):
        line = lines[number - 1]
        stripped = line.strip(" ")  # a tab may not start a line in YAML's block style
        if not stripped or (stripped.startswith("#") and indent is not None):
            continue
        match = _EVENT.match(line)
        if match is None or (indent is not None and match.group(1) != indent):
            return None
        indent = match.group(1)
        event = reader.event(match.group(2), len(events), (number, match.start(2)))
        if event is None:
            return None
        events.append(event)
    return tuple(events)


def _located(value: dict[str, Any], at: tuple[int, int]) -> Map:
    """One line's event as a located tree (the line is known, values' columns are not)."""
    node = Map(at)
    for key, item in value.items():
        node.put(key, item, (at[0], None), (at[0], None))
    return node
