"""A strict fast path for the common YAML layout: one flow-style event per line.

Generated and imported traces look like ``  - {op: access, gfn: 0xfebf1, vcpu: 0}``,
one event per line after the header. Parsing those lines with a small tokenizer
instead of a YAML parser is an order of magnitude faster. The path is strict: the
header still goes through the full YAML loader, and any line it does not fully
understand (block style, ``during`` lists, quotes with escapes, YAML's special words,
comments after data, ...) makes :func:`load_yaml_fast` return None so the caller
uses the full loader for the whole file. Invalid input is also handed back, so
errors always come from the full loader, with its exact messages and positions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from kvmgen.errors import TraceError
from kvmgen.trace.formats import scan as scanned
from kvmgen.trace.formats.scan import ScanTables, merged
from kvmgen.trace.formats.yaml_full import parse_yaml
from kvmgen.trace.records import Event, ReadProgress, Trace
from kvmgen.trace.table import TableEvents
from kvmgen.trace.tree import Map, decode
from kvmgen.trace.validate import Validator
from kvmgen.trace.validate.access import VCPU_LIMIT

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

    From :data:`~kvmgen.trace.formats.scan.SCAN_MIN_BYTES` on, a jitted scan classifies the
    lines and reads plain accesses straight into columns; the other event lines (and every
    line of a smaller file) are read here in Python. ``progress(lines done,
    lines)`` is called every 65,536 lines read in Python, and at the end.
    """
    text = decode(path, data)
    if any(mark in text for mark in _OTHER_LINE_BREAKS):
        return None  # YAML counts these as line breaks too: the full loader numbers lines
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
        events: Sequence[Event] | None
        if len(data) >= scanned.SCAN_MIN_BYTES:
            events = _scanned(data, start, reader)
        else:
            events = _read_lines(lines, start, reader)
    except TraceError:
        return None
    if progress is not None:
        progress(len(lines), len(lines))
    if not events:
        return None  # "events:" with no list is null, an error only the full loader words
    return validator.finish(vm, events, "yaml", sha256)


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


def _scanned(data: bytes, start: int, reader: _LineReader) -> TableEvents | None:
    """Every event line after ``events:`` (line ``start``), classified by the jitted scan."""
    offset = -1
    for _ in range(start + 1):
        offset = data.find(b"\n", offset + 1)
        if offset < 0:
            return None  # "events:" ends the file: no list, an error the full loader words
    buf = np.frombuffer(data, dtype=np.uint8)[offset + 1 :]
    scan = ScanTables(buf)
    sk = scan.sk
    scan.counts[sk.C_INDENT] = -1
    status = sk.scan_yaml_lines(buf, start + 2, scan.acc, scan.other, scan.counts, reader.vcpus)
    if status != sk.OK:
        return None
    others: list[Event] = []
    for other in scan.others():
        inside = bytes(buf[other.start : other.end]).decode("utf-8")
        event = reader.event(inside, other.index, (other.line, other.column))
        if event is None:
            return None
        others.append(event)
    return TableEvents(merged(scan.accesses(), others, reader.validator))


def _located(value: dict[str, Any], at: tuple[int, int]) -> Map:
    """One line's event as a located tree (the line is known, values' columns are not)."""
    node = Map(at)
    for key, item in value.items():
        node.put(key, item, (at[0], None), (at[0], None))
    return node
