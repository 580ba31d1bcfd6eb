"""Validation of a trace's ``observations`` list (the records are in :mod:`kvmgen.trace.observed`).

The first problem is a :class:`~kvmgen.errors.TraceError` naming file, line and field,
as everywhere else in the format.
"""

from __future__ import annotations

from typing import Any

from kvmgen.trace.observed import (
    ACCESS_OUTCOMES,
    ZAP_EVENTS,
    AccessSeen,
    CaptureInfo,
    Observation,
    ZapSeen,
)
from kvmgen.trace.records import UPDATE_OPS, Event, Op
from kvmgen.trace.tree import describe, is_map, is_seq, item_pos, node_pos, value_pos
from kvmgen.trace.validate.fields import Range, Where

KINDS = ("capture", "zap", "access")

_COMMON = ("kind", "t", "note")
_KEYS = {
    "capture": (
        *_COMMON,
        "source",
        "kernel",
        "first_update",
        "last_update",
        "zap_events",
        "from_vm_start",
        "lost",
    ),
    "zap": (*_COMMON, "update", "event", "valid_gen", "used_pages"),
    "access": (*_COMMON, "access", "update", "outcome", "kvm_gen", "spte_gen", "gen"),
}
_U32 = Range(0, (1 << 32) - 1, "0..2^32-1")
_COUNT = Range(0, 1 << 62, "0..2^62")


def update_ordinals(events: tuple[Event, ...]) -> tuple[list[int], int]:
    """For each event, the last update ordinal before it; and the total update count."""
    before: list[int] = []
    total = 0
    for event in events:
        before.append(total)
        if event.op in UPDATE_OPS:
            total += event.repeat
    return before, total


def parse_observations(path: str, root: Any, events: tuple[Event, ...]) -> tuple[Observation, ...]:
    """Validate ``root["observations"]`` (if present) against the validated ``events``."""
    if "observations" not in root:
        return ()
    seq = root["observations"]
    if not is_seq(seq):
        Where(path).fail(
            f"expected a list of observations, got {describe(seq)}",
            value_pos(root, "observations"),
            "observations",
        )
    before, total = update_ordinals(events)
    out: list[Observation] = []
    capture_line: int | None = None
    for i, item in enumerate(seq):
        w = Where(path, prefix=f"observations[{i}].")
        if not is_map(item):
            w.fail(f"expected an observation mapping, got {describe(item)}", item_pos(seq, i))
        kind = w.require(item, "kind", f" ({', '.join(KINDS)})")
        if kind not in KINDS:
            w.fail(
                f"expected one of {', '.join(KINDS)}, got {describe(kind)}",
                value_pos(item, "kind"),
                "kind",
            )
        w.check_keys(item, _KEYS[kind])
        line = node_pos(item)[0] or 0
        t = w.number(item, "t") if "t" in item else None
        note = w.text(item, "note", yaml_raw=True) if "note" in item else None
        if kind == "capture":
            if capture_line is not None:
                w.fail(
                    f"only one capture observation is allowed (the first is on line "
                    f"{capture_line})",
                    node_pos(item),
                )
            capture_line = line
            out.append(_capture(w, item, i, line, total, t, note))
        elif kind == "zap":
            update = _update(w, item, total)
            event = w.choice(item, "event", {name: name for name in ZAP_EVENTS}, None)
            if event is None:
                w.require(item, "event", f" ({' or '.join(ZAP_EVENTS)})")
            out.append(
                ZapSeen(
                    index=i,
                    line=line,
                    update=update,
                    event=event,
                    valid_gen=w.opt_int(item, "valid_gen", _U32, None),
                    used_pages=w.opt_int(item, "used_pages", _U32, None),
                    t=t,
                    note=note,
                )
            )
        else:
            out.append(_access(w, item, i, line, events, before, t, note))
    return tuple(out)


def _update(w: Where, item: Any, total: int) -> int:
    update = w.req_int(item, "update", _COUNT)
    if update > total:
        w.fail(
            f"update {update} does not exist: the trace has {total} updates",
            value_pos(item, "update"),
            "update",
        )
    return update


def _capture(
    w: Where, item: Any, index: int, line: int, total: int, t: float | None, note: str | None
) -> CaptureInfo:
    first = w.opt_int(item, "first_update", _COUNT, None)
    last = w.opt_int(item, "last_update", _COUNT, None)
    for key, value in (("first_update", first), ("last_update", last)):
        if value is not None and value > total:
            w.fail(
                f"update {value} does not exist: the trace has {total} updates",
                value_pos(item, key),
                key,
            )
    if first is not None and last is not None and last < first:
        w.fail(
            f"last_update {last} comes before first_update {first}",
            value_pos(item, "last_update"),
            "last_update",
        )
    zap_events: tuple[str, ...] = ()
    if "zap_events" in item:
        seq = item["zap_events"]
        if not is_seq(seq):
            w.fail(
                f"expected a list of tracepoint names, got {describe(seq)}",
                value_pos(item, "zap_events"),
                "zap_events",
            )
        names = []
        for j, name in enumerate(seq):
            if name not in ZAP_EVENTS:
                w.fail(
                    f"expected one of {', '.join(ZAP_EVENTS)}, got {describe(name)}",
                    item_pos(seq, j),
                    f"zap_events[{j}]",
                )
            names.append(name)
        zap_events = tuple(names)
    from_vm_start = False
    if "from_vm_start" in item:
        value = item["from_vm_start"]
        if not isinstance(value, bool):
            w.fail(
                f"expected true or false, got {describe(value)}",
                value_pos(item, "from_vm_start"),
                "from_vm_start",
            )
        from_vm_start = value
    return CaptureInfo(
        index=index,
        line=line,
        source=w.text(item, "source", yaml_raw=True) if "source" in item else None,
        kernel=w.text(item, "kernel", yaml_raw=True) if "kernel" in item else None,
        first_update=first,
        last_update=last,
        zap_events=zap_events,
        from_vm_start=from_vm_start,
        lost=w.opt_int(item, "lost", _COUNT, 0),
        t=t,
        note=note,
    )


def _access(
    w: Where,
    item: Any,
    index: int,
    line: int,
    events: tuple[Event, ...],
    before: list[int],
    t: float | None,
    note: str | None,
) -> AccessSeen:
    access = w.req_int(item, "access", _COUNT)
    if access >= len(events) or events[access].op != Op.ACCESS:
        what = (
            f"event {access} is a {events[access].op.name.lower()}"
            if access < len(events)
            else f"the trace has {len(events)} events"
        )
        w.fail(
            f"access must be the index of an access event: {what}",
            value_pos(item, "access"),
            "access",
        )
    update = before[access]
    if "update" in item:
        given = w.int_value(item, "update", _COUNT)
        if given != update:
            w.fail(
                f"update {given} does not match event {access}, which comes after update {update}",
                value_pos(item, "update"),
                "update",
            )
    outcome = w.choice(item, "outcome", {name: name for name in ACCESS_OUTCOMES}, None)
    if outcome is None:
        w.require(item, "outcome", f" ({', '.join(ACCESS_OUTCOMES)})")
    return AccessSeen(
        index=index,
        line=line,
        access=access,
        update=update,
        outcome=outcome,
        kvm_gen=w.opt_int(item, "kvm_gen", _U32, None),
        spte_gen=w.opt_int(item, "spte_gen", _U32, None),
        gen=w.opt_int(item, "gen", _U32, None),
        t=t,
        note=note,
    )
