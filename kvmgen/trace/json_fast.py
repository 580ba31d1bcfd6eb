"""A fast path for JSON traces: one jitted scan reads events straight into columns.

The full JSON loader tracks the position of every value as it parses, in Python,
and builds one record per event. Here :mod:`kvmgen.trace.scan_kernels` walks the
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

from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from kvmgen.errors import TraceError
from kvmgen.trace.fastpath import VCPU_LIMIT
from kvmgen.trace.json_loader import parse_json
from kvmgen.trace.records import Event, Trace
from kvmgen.trace.table import EventTable, TableEvents, merge_by_index
from kvmgen.trace.tree import Map, Seq, is_map
from kvmgen.trace.validate import _Validator

_LBRACE = 123

# Below this size the full loader is quicker than importing numba for the scan
# (about 0.25 s; it reads some 600 kB in that time).
JSON_SCAN_MIN_BYTES = 1 << 18


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


class _Scan:
    """The tables one scan of a document fills."""

    def __init__(self, buf: np.ndarray) -> None:
        from kvmgen.trace import scan_kernels as sk

        self.sk = sk
        capacity = int(sk.count_byte(buf, _LBRACE)) + 1  # every event is an object
        self.acc = np.empty((capacity, sk.N_ACOLS), dtype=np.int64)
        self.other = np.empty((capacity, sk.N_XCOLS), dtype=np.int64)
        self.nested = np.empty((capacity, sk.N_NCOLS), dtype=np.int64)
        self.counts = np.zeros(sk.N_COUNTS, dtype=np.int64)
        self.ok = sk.scan_json_events(buf, self.acc, self.other, self.nested, self.counts) == sk.OK

    def count(self, which: int) -> int:
        return int(self.counts[which])

    def accesses(self) -> EventTable:
        """The plain accesses as table rows."""
        sk = self.sk
        acc = self.acc[: self.count(sk.C_ACCESSES)]
        table = EventTable.empty(acc.shape[0])
        table.index[:] = acc[:, sk.A_INDEX]
        table.gfn[:] = acc[:, sk.A_GFN]
        table.address_space[:] = acc[:, sk.A_AS]
        table.vcpu[:] = acc[:, sk.A_VCPU]
        table.repeat[:] = acc[:, sk.A_REPEAT]
        table.kind[:] = acc[:, sk.A_KIND]
        table.line[:] = acc[:, sk.A_LINE]
        table.column[:] = acc[:, sk.A_COLUMN]
        return table

    def others(self, data: bytes) -> Iterator[tuple[int, tuple[int, int], Any, list[Any]]]:
        """Each other event: index, position, parsed value, its during entries' positions.

        Stops early at the first event it is unsure of (the caller counts them).
        """
        sk = self.sk
        nested = self.nested[: self.count(sk.C_NESTED)].tolist()
        by_event: dict[int, list[Any]] = {}
        for row in nested:
            by_event.setdefault(row[sk.N_EVENT], []).append(row)
        for row in self.other[: self.count(sk.C_OTHERS)].tolist():
            index = row[sk.X_INDEX]
            try:
                value = orjson.loads(data[row[sk.X_START] : row[sk.X_END]])
            except orjson.JSONDecodeError:
                return
            subs = by_event.get(index, [])
            if not isinstance(value, dict) or len(value) != row[sk.X_KEYS]:
                return  # orjson kept only the last of duplicate keys
            during = value.get("during")
            entries = during if isinstance(during, list) else []
            if len(entries) != len(subs) or any(
                not isinstance(e, dict) or len(e) != s[sk.N_KEYS]
                for e, s in zip(entries, subs, strict=True)
            ):
                return
            at = (row[sk.X_LINE], row[sk.X_COLUMN])
            yield index, at, value, [(s[sk.N_LINE], s[sk.N_COLUMN]) for s in subs]


def load_json_fast(path: str, data: bytes, sha256: str) -> Trace | None:
    """The trace, if the document is plain ASCII JSON and valid; else None (use the full loader)."""
    if not data.isascii():
        return None
    scan = _Scan(np.frombuffer(data, dtype=np.uint8))
    if not scan.ok:
        return None
    sk = scan.sk
    start, end = scan.count(sk.C_LIST_START), scan.count(sk.C_LIST_END)
    try:
        # The header through the full loader, on the document minus the events list:
        # small, and every header position (vm, its slots) comes out exactly right.
        header, header_pos = parse_json(path, data[:start] + b"[]" + data[end + 1 :])
        if not _header_is_safe(header):
            return None
        validator = _Validator(path)
        vm = validator.trace(header, header_pos, "json", sha256).vm
        vcpus = vm.vcpus if vm.vcpus is not None else VCPU_LIMIT
        accesses = scan.accesses()
        if len(accesses) and int(accesses.vcpu.max()) >= vcpus:
            return None
        others: list[Event] = []
        for index, at, value, subs in scan.others(data):
            locate = _locator(value, at, subs)
            others.append(validator.fast_event(value, index, at, vcpus, locate))
        if len(others) != scan.count(sk.C_OTHERS):
            return None
    except TraceError:
        return None
    if len(accesses):
        validator.max_as = max(validator.max_as, int(accesses.address_space.max()))
        validator.max_vcpu = max(validator.max_vcpu, int(accesses.vcpu.max()))
    table = merge_by_index(accesses, EventTable.from_events(others))
    return validator.finish(vm, TableEvents(table), "json", sha256)


def _locator(value: dict[str, Any], at: tuple[int, int], subs: list[tuple[int, int]]) -> Any:
    return lambda: _located(value, at, subs)
