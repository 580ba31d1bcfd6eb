"""A fast path for JSON traces: one jitted scan reads events straight into columns.

The full JSON loader tracks the position of every value as it parses, in Python,
and builds one record per event. Here :mod:`kvmgen.trace.formats.scan_kernels` walks the
bytes once: plain accesses (nearly every event of a big trace) go straight into
an :class:`~kvmgen.trace.table.EventTable`, and every other event is delimited,
parsed with orjson and checked by the format-v1 validator, in order, so the
slot-layout rules see every update. Events keep the line and column the full
loader gives them.

The path is strict: non-ASCII input, duplicate keys, a container after the
events list and anything the validator rejects make :func:`load_json_fast`
return None; the full loader then reads the file and words the error, so
messages and positions are always the full loader's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.formats.json_full import parse_json
from kvmgen.trace.formats.scan import ScanTables, keys_as_written, merged
from kvmgen.trace.records import Event, Trace
from kvmgen.trace.table import TableEvents
from kvmgen.trace.tree import Map, Seq, is_map
from kvmgen.trace.validate import Validator
from kvmgen.trace.validate.access import VCPU_LIMIT


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


def _header_is_safe(header: Any) -> bool:
    """Whether the header read without the events list has every position right.

    The events list is cut out of the text, so a container after it would move
    up; observations are left to the full loader.
    """
    if not is_map(header) or "observations" in header:
        return False
    keys = list(header)
    after = keys[keys.index("events") + 1 :] if "events" in keys else keys
    return not any(isinstance(header[key], dict | list) for key in after)


def load_json_fast(path: str, data: bytes, sha256: str) -> Trace | None:
    """The trace, if the document is plain ASCII JSON and valid; else None (use the full loader)."""
    if not data.isascii():
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    scan = ScanTables(buf)
    sk = scan.sk
    status = sk.scan_json_events(buf, scan.acc, scan.other, scan.nested, scan.counts, VCPU_LIMIT)
    if status != sk.OK:
        return None
    start, end = scan.count(sk.C_LIST_START), scan.count(sk.C_LIST_END)
    try:
        # The header through the full loader, on the document minus the events list:
        # small, and every header position (vm, its slots) comes out exactly right.
        header, header_pos = parse_json(path, data[:start] + b"[]" + data[end + 1 :])
        if not _header_is_safe(header):
            return None
        validator = Validator(path)
        vm = validator.trace(header, header_pos, "json", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        accesses = scan.accesses()
        if len(accesses) and int(accesses.vcpu.max()) >= vcpus:
            return None
        others: list[Event] = []
        for other in scan.others():
            try:
                value = orjson.loads(data[other.start : other.end])
            except orjson.JSONDecodeError:
                return None
            if not keys_as_written(value, other):
                return None
            at = (other.line, other.column)
            subs = [(line, column) for line, column, _ in other.nested]
            locate = partial(_located, value, at, subs)
            others.append(validator.fast_event(value, other.index, at, vcpus, locate))
    except TraceError:
        return None
    return validator.finish(vm, TableEvents(merged(accesses, others, validator)), "json", sha256)
