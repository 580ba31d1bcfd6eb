"""A trace's identity by content: the same whatever format or path it was read from.

Reports and compiled traces name a trace by this digest, so a trace gives the same
report, byte for byte, read as YAML, JSON, JSON Lines, from stdin or compiled. It is
the SHA-256 of a canonical serialization of the header and of every event's
fields (source positions excluded), fed block by block so a streamed trace can be
digested as it replays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import orjson

from kvmgen.trace.records import Event, VmHeader

DIGEST_VERSION = 1


def _event_key(e: Event) -> list[object]:
    return [
        int(e.op),
        e.address_space,
        e.slot,
        e.gfn,
        e.pages,
        e.flags,
        e.vcpu,
        int(e.kind),
        e.repeat,
        int(e.window),
        e.sub,
        e.t,
        e.note,
        [_event_key(d) for d in e.during],
    ]


class TraceDigest:
    """Incremental content digest: the header first, then events in order."""

    def __init__(self, vm: VmHeader) -> None:
        self._hash = hashlib.sha256()
        slots = [[s.slot, s.address_space, s.gfn, s.pages, s.flags] for s in vm.slots]
        header = [DIGEST_VERSION, vm.kernel, vm.era, vm.address_spaces, vm.vcpus, slots]
        self._hash.update(orjson.dumps(header))

    def update(self, events: Iterable[Event]) -> None:
        """Add events (in trace order); how they are split into calls does not matter."""
        dumps = orjson.dumps
        self._hash.update(b"".join(dumps(_event_key(e)) + b"\n" for e in events))

    def hexdigest(self) -> str:
        """The digest so far, as hex."""
        return self._hash.hexdigest()


def content_digest(vm: VmHeader, events: Iterable[Event], block: int = 65536) -> str:
    """The content digest of a whole in-memory trace."""
    digest = TraceDigest(vm)
    pending: list[Event] = []
    for event in events:
        pending.append(event)
        if len(pending) >= block:
            digest.update(pending)
            pending = []
    digest.update(pending)
    return digest.hexdigest()
