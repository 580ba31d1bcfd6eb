"""Traces too big to hold: read once to learn what the engine needs, then block by block.

A :class:`StreamedTrace` is what a streaming format's first pass found (the
gfns accesses name, vCPUs, address spaces, notes, the source's hash), as a
:class:`FirstPass` collects it; its :meth:`~StreamedTrace.blocks` read the
source again and yield validated events as
:class:`~kvmgen.trace.table.EventTable` blocks, in order, with the same rules
and messages as any other trace. JSON Lines is always read so; big JSON and
YAML documents too (:data:`kvmgen.trace.formats.scan.STREAM_MIN_BYTES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from kvmgen.trace.checks import SpaceUse, merge_uses, slot_uses, table_uses
from kvmgen.trace.digest import TraceDigest
from kvmgen.trace.records import Op, Trace, VmHeader
from kvmgen.trace.table import EventTable


@dataclass
class StreamedTrace:
    """A trace scanned once; its events are read again, validated, block by block."""

    path: str
    vm: VmHeader
    sha256: str
    event_count: int
    access_gfns: np.ndarray  # sorted, once each
    max_vcpu: int
    # Where each address space is first named, for the run checks.
    space_uses: dict[int, SpaceUse]
    # Reads the source again: the validated events in order, as blocks.
    read_blocks: Callable[[], Iterator[EventTable]]
    format: str
    version: int
    notes: dict[int, str] = field(default_factory=dict)
    digest: str | None = None  # content digest, known once a pass has read every event

    @property
    def max_address_space(self) -> int:
        """The largest address space the trace names."""
        return max(self.space_uses, default=0)

    def blocks(self) -> Iterator[EventTable]:
        """Validated events in order, a block at a time (re-reads the source)."""
        digest = TraceDigest(self.vm)
        for table in self.read_blocks():
            digest.update(table)
            yield table
        self.digest = digest.hexdigest()

    def content_digest(self) -> str:
        """The trace's content digest (reads the source once more if no pass finished)."""
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


class FirstPass:
    """What a first pass collects from the events it reads: gfns, vCPUs, address spaces, notes.

    It is lenient: events it cannot read or that are invalid are left out, and
    the second pass reports them where they are.
    """

    def __init__(self) -> None:
        self.gfn_blocks: list[np.ndarray] = []
        self.max_vcpu = 0
        self.notes: dict[int, str] = {}
        self.uses: dict[int, SpaceUse] = {}
        self.events = 0

    def add(self, table: EventTable) -> None:
        """The events of one block (in order, after those of the blocks before)."""
        if not len(table):
            return
        accesses = table.op == Op.ACCESS
        if accesses.any():
            self.gfn_blocks.append(np.unique(table.gfn[accesses]))
            self.max_vcpu = max(self.max_vcpu, int(table.vcpu[accesses].max()))
        self.uses = merge_uses(self.uses, table_uses(table))
        self.notes.update(table.event_notes())

    def trace(
        self,
        *,
        path: str,
        vm: VmHeader,
        sha256: str,
        read_blocks: Callable[[], Iterator[EventTable]],
        format: str,
        version: int,
    ) -> StreamedTrace:
        """The streamed trace these events make, with the header ``vm``."""
        gfns = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *self.gfn_blocks]))
        return StreamedTrace(
            path=path,
            vm=vm,
            sha256=sha256,
            event_count=self.events,
            access_gfns=gfns.astype(np.int64),
            max_vcpu=self.max_vcpu,
            space_uses=merge_uses(slot_uses(vm.slots), self.uses),
            read_blocks=read_blocks,
            format=format,
            version=version,
            notes=self.notes,
        )
