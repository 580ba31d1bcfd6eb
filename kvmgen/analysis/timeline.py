"""Where every generation bump of a trace falls, and each address space's truncated
generation over time, without replaying accesses.

The x axis of every timeline is the count of generation bumps since VM creation,
all address spaces together: updates, raw ``bump`` events and repeats all advance
it, so a 262,143-bump ``bump`` event takes its true share of the picture. Bumps per
event follow docs/model.md section 4 (create 1, delete 2, move 2 or 0, flags 1 or 0
for a value already set, bump ``count``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import RunSpec
from kvmgen.trace.records import Op, Trace

MAX_WRAPS_DRAWN = 4000
"""Beyond this many wraps in one run of bumps, a sawtooth is drawn as a band."""


@dataclass(frozen=True)
class Segment:
    """Consecutive bumps of one address space within one event."""

    event: int
    address_space: int
    first_bump: int  # the address space's 1-based ordinal of the first bump here
    count: int
    x0: int  # bumps of all address spaces before this segment


@dataclass
class BumpWalk:
    """Bumps and updates of a trace, event by event."""

    address_spaces: int
    updates: int = 0
    bumps: list[int] = field(default_factory=lambda: [0, 0])
    segments: list[Segment] = field(default_factory=list)
    event_x: list[int] = field(default_factory=list)  # bumps after each top-level event
    event_update: list[int] = field(default_factory=list)  # update ordinal after each event
    update_x: list[tuple[int, int, int]] = field(default_factory=list)  # (x0, x1, updates)

    @property
    def total(self) -> int:
        """Bumps of every address space."""
        return sum(self.bumps)

    def segments_of(self, a: int) -> list[Segment]:
        """The segments of address space ``a``, in order."""
        return [s for s in self.segments if s.address_space == a]

    def x_of_bump(self, a: int, k: int) -> int:
        """Global position (bumps so far, this one included) of ``a``'s ``k``-th bump."""
        segs = self.segments_of(a)
        if k <= 0 or not segs:
            return 0
        i = bisect.bisect_right([s.first_bump for s in segs], k) - 1
        seg = segs[max(i, 0)]
        return seg.x0 + min(k - seg.first_bump, seg.count - 1) + 1

    def x_of_event(self, index: int) -> int:
        """Global position after top-level event ``index``."""
        if not self.event_x:
            return 0
        return self.event_x[min(max(index, 0), len(self.event_x) - 1)]


def walk_bumps(trace: Trace) -> BumpWalk:
    """Walk ``trace`` and place every bump (no model state beyond slot flags and gfns)."""
    nas = max(2, trace.max_address_space + 1)
    walk = BumpWalk(nas, bumps=[0] * nas)
    slots: dict[tuple[int, int], list[int]] = {
        (d.address_space, d.slot): [d.gfn, d.flags] for d in trace.vm.slots
    }
    x = 0
    for event in trace.events:
        a = event.address_space
        count, updates = 0, 0
        if event.op == Op.CREATE:
            slots[(a, event.slot)] = [event.gfn, event.flags or 0]
            count, updates = 1, 1
        elif event.op == Op.DELETE:
            slots.pop((a, event.slot), None)
            count, updates = 2, 1
        elif event.op == Op.MOVE:
            entry = slots.get((a, event.slot), [event.gfn, 0])
            count = 0 if entry[0] == event.gfn else 2
            entry[0] = event.gfn
            updates = 1
        elif event.op == Op.FLAGS:
            entry = slots.setdefault((a, event.slot), [0, 0])
            updates = event.repeat
            if event.flags is None:
                count = event.repeat
                entry[1] ^= event.repeat & 1
            else:
                count = 1 if entry[1] != event.flags else 0
                entry[1] = event.flags
        elif event.op == Op.BUMP:
            count = event.repeat
        if count:
            walk.segments.append(Segment(event.index, a, walk.bumps[a] + 1, count, x))
            walk.bumps[a] += count
        if updates:
            walk.update_x.append((x, x + count, updates))
        x += count
        walk.updates += updates
        walk.event_x.append(x)
        walk.event_update.append(walk.updates)
    return walk


@dataclass
class Curve:
    """One address space's nominal generation: polyline pieces and sawtooth bands."""

    address_space: int
    xs: list[float] = field(default_factory=list)  # NaN separates pieces
    ys: list[float] = field(default_factory=list)
    bands: list[tuple[int, int]] = field(default_factory=list)  # x ranges drawn as a band
    bit63: list[tuple[int, int]] = field(default_factory=list)  # x ranges at rest with bit 63


def curves(walk: BumpWalk, spec: RunSpec) -> list[Curve]:
    """The nominal generation of every address space of ``spec`` along ``walk``."""
    math = GenMath(spec)
    out = []
    nan = float("nan")
    end = walk.total
    for a in range(spec.address_spaces):
        curve = Curve(a)
        g = spec.init_generations[a]
        x = 0
        curve.xs.append(0)
        curve.ys.append(math.nominal(g))
        for seg in walk.segments_of(a):
            n = math.nominal(g)
            curve.xs.append(seg.x0)
            curve.ys.append(n)
            done = 0
            wraps = 0
            while done < seg.count and math.has_generation:
                to_wrap = math.bumps_to_wrap(math.advance(g, done))
                if done + to_wrap > seg.count:
                    break
                wraps += 1
                if wraps > MAX_WRAPS_DRAWN:
                    curve.bands.append((seg.x0 + done, seg.x0 + seg.count))
                    break
                top = math.nominal(math.advance(g, done + to_wrap - 1))
                low = math.nominal(math.advance(g, done + to_wrap))
                curve.xs += [seg.x0 + done + to_wrap - 1, nan, seg.x0 + done + to_wrap]
                curve.ys += [top, nan, low]
                done += to_wrap
            g = math.advance(g, seg.count)
            x = seg.x0 + seg.count
            if curve.bands and curve.bands[-1][1] == x:
                curve.xs += [nan, x]
                curve.ys += [nan, math.nominal(g)]
            else:
                curve.xs.append(x)
                curve.ys.append(math.nominal(g))
        curve.xs.append(max(end, x))
        curve.ys.append(math.nominal(g))
        for k in math.bit63_rest_bumps(spec.init_generations[a]):
            if k > walk.bumps[a] if a < len(walk.bumps) else True:
                continue
            start = walk.x_of_bump(a, k) if k else 0
            stop = walk.x_of_bump(a, k + 1) if k + 1 <= walk.bumps[a] else end
            curve.bit63.append((start, stop))
        out.append(curve)
    return out
