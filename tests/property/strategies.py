"""Hypothesis strategies: valid traces over tiny gfn/slot universes, and runs near wraps.

The universes are small on purpose so that creates, moves and accesses collide,
and biases are drawn near each era's wrap so that wraps, zaps and ``during``
windows happen within a few bumps.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, Era
from kvmgen.model.policy import Policy, RunSpec, resolve_runs
from kvmgen.trace.records import AccessKind, Event, Op, Trace, VmHeader, Window

ALL_ERAS: tuple[Era, ...] = (*ERAS.values(), E6_SLOT_FLUSH)
UNIVERSE = 12  # gfns 0..11
SLOT_IDS = 4


@dataclass
class _Layout:
    """Slots per address space while a trace is generated: (as, slot) -> [gfn, pages, flags]."""

    slots: dict[tuple[int, int], list[int]]

    def free_range(self, a: int, pages: int, gfn: int, ignore: int | None = None) -> bool:
        if gfn + pages > UNIVERSE:
            return False
        for (b, slot), (g, p, _) in self.slots.items():
            if b == a and slot != ignore and gfn < g + p and g < gfn + pages:
                return False
        return True


@st.composite
def runs(draw: st.DrawFn) -> RunSpec:
    """An era, an address-space count and a bias that puts the first wrap close."""
    era = draw(st.sampled_from(ALL_ERAS))
    nas = draw(st.sampled_from(sorted(era.allowed_address_spaces)))
    period = 1 << max(era.nominal_width, 1)
    bias = draw(
        st.one_of(
            st.just(0),
            st.just(era.historical_bias),
            st.integers(0, 48),
            st.integers(period - 48, period + 48),
            st.integers(0, 2**64 - 1),
        )
    )
    (spec,) = resolve_runs(era, nas, [Policy(str(bias), bias)])
    return spec


def _access(draw: st.DrawFn, index: int, nas: int, vcpus: int, window: Window, sub: int) -> Event:
    return Event(
        index=index,
        op=Op.ACCESS,
        sub=sub,
        address_space=draw(st.integers(0, nas - 1)),
        gfn=draw(st.integers(0, UNIVERSE - 1)),
        vcpu=draw(st.integers(0, vcpus - 1)),
        kind=draw(st.sampled_from(AccessKind)),
        repeat=draw(st.sampled_from((1, 1, 1, 2, 3, 7))),
        window=window,
    )


def _during(draw: st.DrawFn, index: int, nas: int, vcpus: int) -> tuple[Event, ...]:
    count = draw(st.integers(0, 3))
    items = [
        _access(
            draw,
            index,
            nas,
            vcpus,
            draw(st.sampled_from((Window.IN_PROGRESS, Window.BEFORE_ZAP))),
            sub,
        )
        for sub in range(count)
    ]
    return tuple(sorted(items, key=lambda e: (e.window, e.sub)))


@st.composite
def traces(draw: st.DrawFn, nas: int, big_bumps: tuple[int, ...] = ()) -> Trace:
    """A valid trace for ``nas`` address spaces; ``big_bumps`` adds long raw-bump runs."""
    vcpus = draw(st.integers(1, 3))
    layout = _Layout({})
    header = []
    for a in range(nas):
        if draw(st.booleans()):
            layout.slots[(a, 0)] = [0, 2, 0]
            header.append((a, 0))
    events: list[Event] = []
    n = draw(st.integers(0, 24))
    for index in range(n):
        op = draw(
            st.sampled_from(
                (
                    "access",
                    "access",
                    "access",
                    "create",
                    "create",
                    "delete",
                    "move",
                    "flags",
                    "bump",
                )
            )
        )
        a = draw(st.integers(0, nas - 1))
        existing = sorted(s for (b, s) in layout.slots if b == a)
        if op == "access":
            events.append(_access(draw, index, nas, vcpus, Window.NONE, -1))
        elif op == "bump":
            counts = (1, 2, 3, 5, *big_bumps) if big_bumps else (1, 2, 3, 5)
            events.append(
                Event(
                    index=index, op=Op.BUMP, address_space=a, repeat=draw(st.sampled_from(counts))
                )
            )
        elif op == "create":
            free = [s for s in range(SLOT_IDS) if (a, s) not in layout.slots]
            pages = draw(st.integers(1, 4))
            gfn = draw(st.integers(0, UNIVERSE - 1))
            if not free or not layout.free_range(a, pages, gfn):
                continue
            slot = free[0]
            layout.slots[(a, slot)] = [gfn, pages, 0]
            events.append(
                Event(
                    index=index,
                    op=Op.CREATE,
                    address_space=a,
                    slot=slot,
                    gfn=gfn,
                    pages=pages,
                    flags=0,
                    during=_during(draw, index, nas, vcpus),
                )
            )
        elif not existing:
            continue
        elif op == "delete":
            slot = draw(st.sampled_from(existing))
            del layout.slots[(a, slot)]
            events.append(
                Event(
                    index=index,
                    op=Op.DELETE,
                    address_space=a,
                    slot=slot,
                    during=_during(draw, index, nas, vcpus),
                )
            )
        elif op == "move":
            slot = draw(st.sampled_from(existing))
            entry = layout.slots[(a, slot)]
            gfn = draw(st.integers(0, UNIVERSE - 1))
            if not layout.free_range(a, entry[1], gfn, ignore=slot):
                continue
            entry[0] = gfn
            events.append(
                Event(
                    index=index,
                    op=Op.MOVE,
                    address_space=a,
                    slot=slot,
                    gfn=gfn,
                    during=_during(draw, index, nas, vcpus),
                )
            )
        else:
            slot = draw(st.sampled_from(existing))
            value = draw(st.sampled_from((None, None, 0, 1, 2)))
            during = _during(draw, index, nas, vcpus)
            repeat = 1 if during else draw(st.sampled_from((1, 1, 2, 3, 6)))
            entry = layout.slots[(a, slot)]
            for _ in range(repeat):
                entry[2] = entry[2] ^ 1 if value is None else value
            events.append(
                Event(
                    index=index,
                    op=Op.FLAGS,
                    address_space=a,
                    slot=slot,
                    flags=value,
                    repeat=repeat,
                    during=during,
                )
            )
    from kvmgen.trace.records import SlotDecl

    vm = VmHeader(
        address_spaces=nas,
        vcpus=vcpus,
        slots=tuple(SlotDecl(slot=s, address_space=a, gfn=0, pages=2) for a, s in header),
    )
    # Re-index so event indices are positions, as the loaders produce them.
    events = [_reindex(e, i) for i, e in enumerate(events)]
    return Trace(path="<generated>", format="yaml", version=1, vm=vm, events=tuple(events))


def _reindex(event: Event, index: int) -> Event:
    from dataclasses import replace

    return replace(event, index=index, during=tuple(replace(d, index=index) for d in event.during))
