"""The plain-Python reference model: the slow, obviously correct oracle for the engine.

It follows ``docs/model.md`` literally: Python ints masked to 64 bits, dicts for
the layout, SPTEs and vCPU caches, one loop iteration per repetition and per
bump. The numba engine is written independently and compared against it field
by field; neither may branch on era names, only on the fields of the era record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kvmgen.model.eras import ZapScope
from kvmgen.model.policy import RunSpec
from kvmgen.reference.state import RefState, Slot
from kvmgen.stats import DEFAULT_RECORD_LIMIT, OUTCOMES, ReplayResult
from kvmgen.trace.records import Event, Op, Trace, Window


def replay_reference(
    trace: Trace, spec: RunSpec, *, record_limit: int = DEFAULT_RECORD_LIMIT
) -> ReplayResult:
    """Replay a validated ``trace`` under ``spec`` and return its counters and records."""
    state = RefState(spec, record_limit)
    apply_trace(state, trace)
    return ReplayResult(
        updates=state.update,
        bumps=tuple(state.bumps),
        final_generation=tuple(state.g),
        accesses=tuple(state.outcomes[name] for name in OUTCOMES),
        wrap_zaps=state.wrap_zaps,
        flush_zaps=state.flush_zaps,
        dropped_wrap_ram=state.dropped_wrap_ram,
        dropped_wrap_mmio=state.dropped_wrap_mmio,
        dropped_flush_ram=state.dropped_flush_ram,
        dropped_flush_mmio=state.dropped_flush_mmio,
        wraps_total=state.wraps_total,
        wraps_undetected=state.wraps_undetected,
        stale_harmful=state.stale_harmful,
        stale_benign=state.stale_benign,
        stale_records=state.stale_records,
        wraps=tuple(state.wraps),
        zap_events=tuple(state.zap_events),
        stale_hits=state.stale_hits(),
        record_limit=record_limit,
        events_replayed=len(trace.events),
        partial=False,
    )


def apply_trace(state: RefState, trace: Trace, *, stop: Callable[[], bool] | None = None) -> None:
    """Replay ``trace``'s header slots and events into ``state``, every repetition literally.

    Public so that tools can watch the oracle at work: subclass :class:`RefState`
    (override ``access``, say) and pass an instance. ``stop`` is asked after each
    event; True ends the replay there.
    """
    for decl in trace.vm.slots:
        state.slots[decl.address_space][decl.slot] = Slot(decl.gfn, decl.pages, decl.flags)
    for ev in trace.events:
        for _ in range(ev.repeat):
            if ev.op == Op.ACCESS:
                state.access(ev, None)
            elif ev.op == Op.BUMP:
                state.bump(ev.address_space, None, (), ioctl_end=True, create_flush=False)
            else:
                _UPDATES[ev.op](state, ev)
        if stop is not None and stop():
            return


def _unbumped(state: RefState, during: Sequence[Event]) -> None:
    """An update that changes nothing: its ``during`` accesses run as plain accesses."""
    state.run_window(during, Window.IN_PROGRESS)
    state.run_window(during, Window.BEFORE_ZAP)


def _create(state: RefState, ev: Event) -> None:
    state.update += 1
    a = ev.address_space
    flags = 0 if ev.flags is None else ev.flags

    def add() -> None:
        state.slots[a][ev.slot] = Slot(ev.gfn, ev.pages, flags)

    state.bump(a, add, ev.during, ioctl_end=True, create_flush=True)


def _flags(state: RefState, ev: Event) -> None:
    state.update += 1
    a = ev.address_space
    slot = state.slots[a][ev.slot]
    value = slot.flags ^ 1 if ev.flags is None else ev.flags
    if value == slot.flags:
        _unbumped(state, ev.during)
        return

    def set_flags() -> None:
        slot.flags = value

    state.bump(a, set_flags, ev.during, ioctl_end=True, create_flush=False)


def _invalidate_and_flush(state: RefState, ev: Event) -> Slot:
    """Bump 1 of a delete or move (slot made invalid), then the memslot flush."""
    a = ev.address_space
    slot = state.slots[a][ev.slot]

    def invalidate() -> None:
        slot.valid = False

    state.bump(a, invalidate, (), ioctl_end=False, create_flush=False)
    if state.era.flush_scope != ZapScope.NOTHING:
        state.zap("memslot_flush", state.era.flush_scope, a, (slot.gfn, slot.pages))
    return slot


def _delete(state: RefState, ev: Event) -> None:
    state.update += 1
    a = ev.address_space
    _invalidate_and_flush(state, ev)

    def remove() -> None:
        del state.slots[a][ev.slot]

    state.bump(a, remove, ev.during, ioctl_end=True, create_flush=False)


def _move(state: RefState, ev: Event) -> None:
    state.update += 1
    a = ev.address_space
    if state.slots[a][ev.slot].gfn == ev.gfn:
        _unbumped(state, ev.during)
        return
    slot = _invalidate_and_flush(state, ev)

    def place() -> None:
        slot.gfn = ev.gfn
        slot.valid = True

    state.bump(a, place, ev.during, ioctl_end=True, create_flush=True)


_UPDATES: dict[Op, Callable[[RefState, Event], None]] = {
    Op.CREATE: _create,
    Op.FLAGS: _flags,
    Op.DELETE: _delete,
    Op.MOVE: _move,
}
