"""Trace records: what a loaded, validated trace is, independent of its file format.

Loaders (YAML, JSON) produce a :class:`Trace`; the engine's encoder and the
reference model both consume it. Every record remembers where it came from so
that later checks (address-space count of a run, for example) can still name
the file, line and event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from kvmgen.trace.observed import Observation

ReadProgress = Callable[[int, int], None]
"""How far a loader has read a big input: called with (done, total) in its own unit."""


class Op(IntEnum):
    """Trace operations; the integer codes are what the engine's kernels see."""

    CREATE = 0
    DELETE = 1
    MOVE = 2
    FLAGS = 3
    BUMP = 4
    ACCESS = 5


UPDATE_OPS = frozenset({Op.CREATE, Op.DELETE, Op.MOVE, Op.FLAGS})


class Window(IntEnum):
    """Where a ``during`` access runs inside its update's last bump (model.md section 2)."""

    NONE = 0
    IN_PROGRESS = 1
    BEFORE_ZAP = 2


class AccessKind(IntEnum):
    """Read or write; kept for per-event output, it does not change the model."""

    READ = 0
    WRITE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One trace event after validation.

    ``index`` is the 0-based position in ``events`` (for a ``during`` access, the
    index of its parent update); ``sub`` is the 0-based position in the parent's
    ``during`` list, or -1. ``repeat`` is the repetition count of an update or an
    access, or the ``count`` of a ``bump``. ``flags`` is the value an update sets
    (``None`` on a ``flags`` op means "toggle bit 0"); on ``create`` it is the new
    slot's flags. ``during`` is in execution order: every ``in_progress`` access
    before every ``before_zap`` one, each group in list order (``sub`` keeps the
    position in the file).
    """

    index: int
    op: Op
    line: int = 0
    column: int = 0
    sub: int = -1
    address_space: int = 0
    slot: int = -1
    gfn: int = -1
    pages: int = 0
    flags: int | None = None
    vcpu: int = 0
    kind: AccessKind = AccessKind.READ
    repeat: int = 1
    window: Window = Window.NONE
    during: tuple[Event, ...] = ()
    t: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SlotDecl:
    """A memslot that exists before the first event (costs no bumps)."""

    slot: int
    address_space: int
    gfn: int
    pages: int
    flags: int = 0
    line: int = 0


@dataclass(frozen=True, slots=True)
class VmHeader:
    """The optional ``vm:`` header; the command line overrides each field."""

    kernel: str | None = None
    era: str | None = None
    address_spaces: int | None = None
    vcpus: int | None = None
    slots: tuple[SlotDecl, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class Trace:
    """A whole validated trace.

    ``sha256`` is the hash of the source bytes: reports and compiled traces
    carry it so a result can be tied to the exact input. ``events`` is a tuple
    of records, or (from a loader that reads into columns) a
    :class:`~kvmgen.trace.table.TableEvents` that builds them on demand;
    :func:`kvmgen.trace.table.table_of` gives the columns either way.
    """

    path: str
    format: str
    version: int
    vm: VmHeader
    events: Sequence[Event]
    sha256: str = ""
    max_address_space: int = field(default=0)
    max_vcpu: int = field(default=0)
    # What a real kernel reported during the capture (kvmgen.trace.observed).
    observations: tuple[Observation, ...] = ()
    # The events as columns, once kvmgen.trace.table.table_of has built them.
    _table: Any = field(default=None, compare=False, repr=False)

    def iter_all(self) -> list[Event]:
        """All events in replay order, each update followed by its ``during`` accesses."""
        out: list[Event] = []
        for event in self.events:
            out.append(event)
            out.extend(event.during)
        return out
