"""Workload generators: realistic, deterministic traces (``kvmgen gen WORKLOAD``).

Every generator is a function of its options and a seed that returns a
:class:`Workload`: the ``vm`` header, an *iterator* of event mappings (so a
10^8-event workload streams straight to the output), and comments. Counting is
done while the events stream (:class:`GenStats`), so the summary is exact
without holding the events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kvmgen.formatting import count, plural

UPDATE_OPS = frozenset({"create", "delete", "move", "flags"})


@dataclass
class GenStats:
    """What a generator produced: counted as its events stream out."""

    events: int = 0
    updates: int = 0
    accesses: int = 0
    per_op: Counter[str] = field(default_factory=Counter)
    per_as: Counter[int] = field(default_factory=Counter)

    def count(self, events: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Pass ``events`` through, counting updates (repeats expanded) and accesses."""
        for ev in events:
            self.events += 1
            op = ev["op"]
            n = ev.get("repeat", 1)
            if op in UPDATE_OPS:
                self.updates += n
                self.per_op[op] += n
                self.per_as[ev.get("as", 0)] += n
            elif op == "access":
                self.accesses += n
            for sub in ev.get("during", ()):
                self.accesses += sub.get("repeat", 1)
            yield ev

    def describe(self) -> str:
        """One sentence: events, updates per op and address space, accesses."""
        ops = ", ".join(f"{count(n)} {op}" for op, n in sorted(self.per_op.items()))
        spaces = ", ".join(
            f"{count(n)} in address space {a}" for a, n in sorted(self.per_as.items())
        )
        return (
            f"{plural(self.events, 'event')}: {plural(self.updates, 'update')} "
            f"({ops or 'none'}; {spaces or 'none'}), "
            f"{plural(self.accesses, 'access', 'accesses')}"
        )


@dataclass
class Workload:
    """A generated trace: header, streamed events, comments, and live statistics."""

    name: str
    vm: dict[str, Any]
    events: Iterator[dict[str, Any]]
    comments: list[str]
    stats: GenStats


def make(
    name: str, vm: dict[str, Any], events: Iterable[dict[str, Any]], comments: list[str]
) -> Workload:
    """Wrap a generator's events with counting."""
    stats = GenStats()
    return Workload(name, vm, stats.count(events), comments, stats)


def access(
    gfn: int,
    *,
    address_space: int = 0,
    vcpu: int = 0,
    kind: str = "read",
    repeat: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """An access event mapping with the defaults left out (``note``, ``t`` in ``extra``)."""
    ev: dict[str, Any] = {"op": "access", "gfn": gfn}
    if address_space:
        ev["as"] = address_space
    if vcpu:
        ev["vcpu"] = vcpu
    if kind != "read":
        ev["kind"] = kind
    if repeat != 1:
        ev["repeat"] = repeat
    ev.update(extra)
    return ev


def update(op: str, slot: int, *, address_space: int = 0, **fields: Any) -> dict[str, Any]:
    """A memslot update mapping (``as`` left out for address space 0)."""
    ev: dict[str, Any] = {"op": op, "slot": slot}
    if address_space:
        ev["as"] = address_space
    note = fields.pop("note", None)
    ev.update(fields)
    if note is not None:
        ev["note"] = note
    return ev
