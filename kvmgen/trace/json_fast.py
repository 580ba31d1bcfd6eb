"""A fast path for JSON traces: orjson for the values, a vectorized scan for positions.

The full JSON loader tracks the position of every value as it parses, in Python.
Here orjson parses the document, and one NumPy pass over the bytes finds where each
event (and each ``during`` entry) starts, which is all a valid trace needs: every
event keeps the same line and column the full loader gives it. The path is strict:
non-ASCII input, duplicate keys and anything the validator rejects make
:func:`load_json_fast` return None, and the full loader then reads the file and
words the error, so messages and positions are always the full loader's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.fastpath import VCPU_LIMIT
from kvmgen.trace.json_loader import parse_json
from kvmgen.trace.records import Event, Trace
from kvmgen.trace.tree import Map, Seq
from kvmgen.trace.validate import _Validator

_QUOTE, _BACKSLASH, _NEWLINE, _COLON = 34, 92, 10, 58
_OPEN = (123, 91)  # { [
_CLOSE = (125, 93)  # } ]


def _structure(b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Brackets outside strings with the depth before each; colons with their depth.

    Colons count the keys of each object: orjson keeps only the last of duplicate
    keys, so comparing counts is how a duplicate is noticed.
    """
    quotes = np.flatnonzero(b == _QUOTE)
    backslashes = b == _BACKSLASH
    if quotes.size and backslashes.any():
        # A quote is escaped by an odd run of backslashes right before it.
        positions = np.arange(b.shape[0], dtype=np.int32)
        last_plain = np.maximum.accumulate(np.where(backslashes, -1, positions))
        before = quotes - 1
        run = np.where(before >= 0, before - last_plain[np.maximum(before, 0)], 0)
        quotes = quotes[run % 2 == 0]
    toggles = np.zeros(b.shape[0], dtype=np.uint8)
    toggles[quotes] = 1
    outside = np.bitwise_xor.accumulate(toggles) == 0
    candidates = np.flatnonzero(
        (b == _OPEN[0]) | (b == _OPEN[1]) | (b == _CLOSE[0]) | (b == _CLOSE[1])
    )
    brackets = candidates[outside[candidates]]
    kinds = b[brackets]
    step = np.where((kinds == _OPEN[0]) | (kinds == _OPEN[1]), 1, -1).astype(np.int32)
    depth_after = np.cumsum(step, dtype=np.int32)
    colons = np.flatnonzero(b == _COLON)
    colons = colons[outside[colons]]
    owner = np.searchsorted(brackets, colons) - 1
    colon_depth = np.where(owner >= 0, depth_after[np.maximum(owner, 0)], 0)
    return brackets, depth_after - step, colons, colon_depth


def _positions(data: bytes, root: dict[str, Any]) -> tuple[int, int, list[int], list[int]] | None:
    """The events list's ``[`` and ``]``, and each event's and during entry's ``{``.

    None when unsure: duplicate keys, or a container after the events list (the
    header is re-read without the events, which must not move it).
    """
    b = np.frombuffer(data, dtype=np.uint8)
    brackets, depth, colons, colon_depth = _structure(b)
    containers = [key for key, value in root.items() if isinstance(value, dict | list)]
    tops = brackets[(depth == 1) & np.isin(b[brackets], _OPEN)]
    if len(tops) != len(containers) or containers[-1:] != ["events"]:
        return None
    start = int(tops[containers.index("events")])
    after = brackets[brackets > start]
    closes = after[(depth[brackets > start] == 2) & np.isin(b[after], _CLOSE)]
    end = int(closes[0]) if closes.size else len(data)
    inside = (brackets > start) & (brackets < end) & (b[brackets] == _OPEN[0])
    events = brackets[inside & (depth == 2)]
    during = brackets[inside & (depth == 4)]
    if not (_keys_match(events, colons[colon_depth == 3], root["events"])):
        return None
    subs = [
        d
        for e in root["events"]
        if isinstance(e, dict)
        for d in (e.get("during") if isinstance(e.get("during"), list) else [])
    ]
    if not _keys_match(during, colons[colon_depth == 5], subs):
        return None
    return start, end, events.tolist(), during.tolist()


def _keys_match(starts: np.ndarray, colons: np.ndarray, objects: list[Any]) -> bool:
    """Whether each object starting at ``starts`` has as many keys as colons in its text."""
    if len(starts) != len(objects):
        return False
    counts = np.bincount(np.searchsorted(starts, colons) - 1, minlength=len(starts))
    return all(
        isinstance(obj, dict) and len(obj) == int(n) for obj, n in zip(objects, counts, strict=True)
    )


class _LineCol:
    """Byte offset -> 1-based (line, column) for an ASCII document."""

    def __init__(self, data: bytes) -> None:
        self.newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE)
        self.line_starts = np.concatenate(([0], self.newlines + 1))

    def __call__(self, offsets: list[int]) -> tuple[list[int], list[int]]:
        at = np.asarray(offsets, dtype=np.int64)
        before = np.searchsorted(self.newlines, at)  # newlines before each offset
        return (before + 1).tolist(), (at - self.line_starts[before] + 1).tolist()


def _located(value: dict[str, Any], at: tuple[int, int], subs: list[tuple[int, int]]) -> Map:
    """One event as a located tree: its own position and its during entries' positions."""
    node = Map(at)
    for key, item in value.items():
        if key == "during" and isinstance(item, list):
            seq = Seq(at)
            for entry, entry_at in zip(item, subs, strict=False):
                sub = Map(entry_at)
                if isinstance(entry, dict):
                    for k, v in entry.items():
                        sub.put(k, v, entry_at, entry_at)
                seq.add(sub if isinstance(entry, dict) else entry, entry_at)
            item = seq
        node.put(key, item, at, at)
    return node


def load_json_fast(path: str, data: bytes, sha256: str) -> Trace | None:
    """The trace, if the document is plain ASCII JSON and valid; else None (use the full loader)."""
    if not data.isascii():
        return None
    try:
        root = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(root, dict) or not isinstance(root.get("events"), list):
        return None
    if "observations" in root:
        return None
    found = _positions(data, root)
    events_in = root["events"]
    if found is None:
        return None
    start, end, event_at, during_at = found
    to_line_col = _LineCol(data)
    lines, columns = to_line_col(event_at)
    sub_lines, sub_columns = to_line_col(during_at) if during_at else ([], [])
    sub_at = list(zip(sub_lines, sub_columns, strict=True))
    try:
        # The header through the full loader, on the document minus the events list:
        # small, and every header position (vm, its slots) comes out exactly right.
        header, header_pos = parse_json(path, data[:start] + b"[]" + data[end + 1 :])
        validator = _Validator(path)
        vm = validator.trace(header, header_pos, "json", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        events: list[Event] = []
        next_sub = 0
        for index, value in enumerate(events_in):
            if not isinstance(value, dict):
                return None
            at = (lines[index], columns[index])
            n_subs = len(value["during"]) if isinstance(value.get("during"), list) else 0
            subs = sub_at[next_sub : next_sub + n_subs]
            next_sub += n_subs
            locate = partial(_located, value, at, subs)
            events.append(validator.fast_event(value, index, at, vcpus, locate))
        if next_sub != len(sub_at):
            return None
    except TraceError:
        return None
    return validator.finish(vm, tuple(events), "json", sha256)
