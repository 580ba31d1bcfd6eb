"""``kvmgen search``: the shortest trace that reaches a goal in one era and policy.

Goals: a ``harmful`` stale hit, a ``benign`` one, or an ``undetected-wrap``.

**The space.** A candidate is a sequence of at most ``max_events`` top-level events
over a small alphabet (:mod:`kvmgen.analysis.tracegen`): accesses to ``gfns`` guest
frames by ``vcpus`` vCPUs in any address space; creates of one-page slots at those
frames (lowest free slot id), deletes, moves and flags toggles of existing slots,
each optionally carrying up to ``max_during`` racing accesses (``in_progress`` or
``before_zap``; none with ``race=False``); and ``bump`` events whose counts are
*guided*: 1, the counts that put the address space's next wrap 0 to 3 bumps after
the event, and the counts that bring its truncated generation 0 to 2 bumps short of
a value an earlier access stamped (a full period when it is the current value).
Symmetric variants are generated once (frames and vCPUs are used in order).

**Pruning**, each a consequence of the model (docs/model.md section 6), so no
shortest candidate is lost: a stale hit needs an MMIO SPTE that an earlier access
to the same (address space, gfn) installed, so the last access must revisit a pair
accessed before; a harmful hit's frame is in a slot as that access sees the layout,
a benign one's is not; for a harmful hit from any source (or from a vCPU cache)
every access names the hit's frame, because an access to another frame can only
evict a vCPU cache entry, and a valid cache entry for a frame that is RAM now is a
harmful hit already; wraps do not depend on accesses, so the undetected-wrap search
uses none; two ``bump`` events of one address space in a row are one event.

**Order.** Lengths 1, 2, ... and within a length fewer updates first, so the first
hit is the shortest (fewest events, then fewest updates). A length is searched
exhaustively when its candidates fit in the remaining budget. Beyond that the
search is seeded and random but still systematic: it draws a random *sub-alphabet*
(some address spaces, vCPUs, update kinds and race windows), enumerates the longer
lengths exhaustively inside it when they fit a slice of the budget, and repeats
with another draw; a candidate already replayed is not replayed again. A hit there
is the shortest within that sub-alphabet, not necessarily overall. Every candidate
is replayed by the jitted engine.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from kvmgen.analysis.tracegen import Step, Touch, to_trace
from kvmgen.errors import UsageError
from kvmgen.model.eras import InProgressView
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import RunSpec
from kvmgen.stats import ReplayResult
from kvmgen.trace.records import Op, Window

GOALS = ("harmful", "benign", "undetected-wrap")
SOURCES = ("any", "spte", "vcpu_cache")
SLOT_IDS = 4
"""Slots per address space a searched trace may hold at once."""
_UPDATES = frozenset({Op.CREATE, Op.DELETE, Op.MOVE, Op.FLAGS})


@dataclass(frozen=True)
class SearchConfig:
    """The bound and the budget of one search."""

    goal: str
    max_events: int = 4
    race: bool = True
    max_during: int = 1
    vcpus: int = 2
    gfns: int = 2
    budget: int = 200_000
    seed: int = 0
    time_limit: float | None = None
    source: str = "any"  # a stale hit from an SPTE check, from a vCPU cache, or either

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise UsageError(f"--goal {self.goal!r}: expected one of {', '.join(GOALS)}")
        if self.source not in SOURCES:
            raise UsageError(f"--via {self.source!r}: expected one of {', '.join(SOURCES)}")
        if self.source != "any" and self.goal == "undetected-wrap":
            raise UsageError("--via applies to stale-hit goals, not undetected-wrap")
        if not 1 <= self.max_events <= 64:
            raise UsageError("--max-events: expected 1..64")
        if not 0 <= self.max_during <= 3:
            raise UsageError("--during: expected 0..3")
        if not 1 <= self.vcpus <= 4 or not 1 <= self.gfns <= 3:
            raise UsageError("--vcpus 1..4, --gfns 1..3")
        if self.budget < 1:
            raise UsageError("--budget: expected at least 1 candidate")

    @property
    def stale(self) -> bool:
        """Whether the goal is a stale hit (else an undetected wrap)."""
        return self.goal != "undetected-wrap"

    @property
    def during_cap(self) -> int:
        """Racing accesses an update may carry in this search."""
        return self.max_during if self.race and self.stale else 0


@dataclass(frozen=True)
class Restriction:
    """A sub-alphabet for the random phase (None = no restriction)."""

    spaces: frozenset[int] | None = None  # address spaces steps and accesses may name
    vcpus: int | None = None
    ops: frozenset[Op] | None = None  # update kinds
    windows: frozenset[Window] | None = None  # race windows

    def allows_touch(self, touch: Touch) -> bool:
        """Whether an access is inside the sub-alphabet."""
        if self.spaces is not None and touch.address_space not in self.spaces:
            return False
        if self.vcpus is not None and touch.vcpu >= self.vcpus:
            return False
        return not (
            self.windows is not None
            and touch.window != Window.NONE
            and touch.window not in self.windows
        )

    def allows(self, step: Step) -> bool:
        """Whether a step is inside the sub-alphabet."""
        if self.spaces is not None and step.address_space not in self.spaces:
            return False
        if self.ops is not None and step.op in _UPDATES and step.op not in self.ops:
            return False
        return all(self.allows_touch(t) for t in step.touches())


@dataclass(frozen=True)
class State:
    """What the enumeration knows after a prefix: layout, generations, stamps, usage."""

    slots: tuple[tuple[tuple[int, int], ...], ...]  # per AS: (slot id, gfn index)
    gens: tuple[int, ...]
    targets: tuple[frozenset[int], ...]  # per AS: stamped MMIO-generation values
    accessed: frozenset[tuple[int, int]]  # (as, gfn) pairs accessed so far
    touch_gfn: int  # the frame every access so far named, -1 before any, -2 if several
    gfn_used: int  # frames used so far (indices below this)
    vcpu_used: int
    updates: int
    last_bump_as: int  # address space of the previous step if it was a bump, else -1
    last_touch: tuple[int, int] | None  # (as, gfn) of the last access so far
    last_in_slot: bool  # whether that access's gfn was in a slot, as it saw the layout

    def covered(self, a: int, layout: tuple[tuple[int, int], ...] | None = None) -> set[int]:
        """Frames inside a slot of address space ``a`` (of ``layout`` if given)."""
        return {g for _, g in (self.slots[a] if layout is None else layout)}


class _Accounting:
    """The access bookkeeping of one step: stamps, pending revisits, the last access."""

    def __init__(self, math: GenMath, state: State) -> None:
        self.math = math
        self.targets = [set(t) for t in state.targets]
        self.accessed = set(state.accessed)
        self.touch_gfn = state.touch_gfn
        self.last = state.last_touch
        self.in_slot = state.last_in_slot

    def touch(self, touch: Touch, gen: int, covered: set[int]) -> None:
        """One access seeing generation ``gen`` and the frames ``covered`` of its AS."""
        key = (touch.address_space, touch.gfn)
        self.accessed.add(key)
        if self.touch_gfn == -1:
            self.touch_gfn = touch.gfn
        elif self.touch_gfn != touch.gfn:
            self.touch_gfn = -2
        self.in_slot = touch.gfn in covered
        if not self.in_slot:
            self.targets[touch.address_space].add(self.math.stamp(gen))
        self.last = key


@dataclass
class SearchStats:
    """How the search went: counts, rate, what was exhausted."""

    evaluated: int = 0
    enumerated: int = 0
    seconds: float = 0.0
    engine_seconds: float = 0.0  # of which replaying candidates (trace building included)
    exhaustive_through: int = 0  # every candidate of at most this many events was tried
    partial_length: int | None = None  # a length started exhaustively but cut by the budget
    random_evaluated: int = 0
    random_lengths: tuple[int, int] | None = None
    stopped_by: str | None = None  # "budget" | "time" | "sub-alphabets" | None

    @property
    def rate(self) -> float:
        """Candidates replayed per second of search (enumeration included)."""
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0

    @property
    def engine_rate(self) -> float:
        """Candidates replayed per second spent replaying them."""
        return self.evaluated / self.engine_seconds if self.engine_seconds > 0 else 0.0


@dataclass
class SearchOutcome:
    """The result: the trace found (shrunk) and its replay, or None, with the stats."""

    config: SearchConfig
    spec: RunSpec
    steps: tuple[Step, ...] | None
    result: ReplayResult | None
    method: str | None  # "exhaustive" | "random"
    stats: SearchStats = field(default_factory=SearchStats)

    @property
    def found(self) -> bool:
        """Whether a trace reaching the goal was found."""
        return self.steps is not None

    @property
    def updates(self) -> int:
        """Numbered updates in the found trace."""
        return sum(1 for s in self.steps or () if s.is_update)


class _Budget(Exception):
    """Raised inside the enumeration when the candidate budget or time is used up."""


class Searcher:
    """Enumerates and samples candidates for one run spec and evaluates them."""

    def __init__(
        self,
        spec: RunSpec,
        config: SearchConfig,
        evaluate: Callable[[tuple[Step, ...]], ReplayResult] | None = None,
        restriction: Restriction | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.math = GenMath(spec)
        self.nas = spec.address_spaces
        self.era = spec.era
        self.restriction = restriction or Restriction()
        self._evaluate = evaluate or self._engine_evaluate
        self.stats = SearchStats()
        self._deadline: float | None = None
        self._step_cache: dict[tuple[object, ...], list[Step]] = {}
        self._best: tuple[tuple[Step, ...], ReplayResult] | None = None

    def narrowed(self, restriction: Restriction) -> Searcher:
        """A searcher over a sub-alphabet sharing this one's budget, clock and stats."""
        other = Searcher(self.spec, self.config, self._evaluate, restriction)
        other.stats = self.stats
        other._deadline = self._deadline
        return other

    # -- evaluation -------------------------------------------------------------

    def _engine_evaluate(self, steps: tuple[Step, ...]) -> ReplayResult:
        from kvmgen.engine.replay import replay_engine

        # Counters stay exact past the record limit; records are only read for --via.
        limit = 1 if self.config.source == "any" else 64
        return replay_engine(to_trace(steps, self.nas), self.spec, record_limit=limit)

    def reached(self, result: ReplayResult) -> bool:
        """Whether ``result`` shows the goal."""
        goal = self.config.goal
        if goal == "undetected-wrap":
            return result.wraps_undetected > 0
        count = result.stale_harmful if goal == "harmful" else result.stale_benign
        if not count:
            return False
        if self.config.source == "any":
            return True
        return any(h.kind == goal and h.source == self.config.source for h in result.stale_hits)

    def _spend(self) -> None:
        if self.stats.evaluated >= self.config.budget:
            self.stats.stopped_by = "budget"
            raise _Budget
        if self._deadline is not None and time.perf_counter() > self._deadline:
            self.stats.stopped_by = "time"
            raise _Budget

    def evaluate(self, steps: tuple[Step, ...]) -> ReplayResult:
        """Replay one candidate (counts against the budget)."""
        self._spend()
        self.stats.evaluated += 1
        began = time.perf_counter()
        result = self._evaluate(steps)
        self.stats.engine_seconds += time.perf_counter() - began
        return result

    # -- state --------------------------------------------------------------------

    def initial(self) -> State:
        """The state before the first event."""
        nas = self.nas
        return State(
            slots=tuple(() for _ in range(nas)),
            gens=tuple(self.spec.init_generations),
            targets=tuple(frozenset() for _ in range(nas)),
            accessed=frozenset(),
            touch_gfn=-1,
            gfn_used=0,
            vcpu_used=0,
            updates=0,
            last_bump_as=-1,
            last_touch=None,
            last_in_slot=False,
        )

    def apply(self, state: State, step: Step) -> State:
        """The state after ``step``."""
        acc = _Accounting(self.math, state)
        gens = list(state.gens)
        slots = [list(s) for s in state.slots]
        a = step.address_space
        if step.op == Op.ACCESS:
            assert step.access is not None
            touch = step.access
            b = touch.address_space
            acc.touch(touch, gens[b], {g for _, g in slots[b]})
        elif step.op == Op.BUMP:
            gens[a] = self.math.advance(gens[a], step.count)
        else:
            self._apply_update(step, gens, slots, acc)
        used_gfn = max([state.gfn_used, step.gfn + 1] + [t.gfn + 1 for t in step.touches()])
        used_vcpu = max([state.vcpu_used] + [t.vcpu + 1 for t in step.touches()])
        return State(
            slots=tuple(tuple(sorted(s)) for s in slots),
            gens=tuple(gens),
            targets=tuple(frozenset(t) for t in acc.targets),
            accessed=frozenset(acc.accessed),
            touch_gfn=acc.touch_gfn,
            gfn_used=used_gfn,
            vcpu_used=used_vcpu,
            updates=state.updates + (1 if step.op in _UPDATES else 0),
            last_bump_as=a if step.op == Op.BUMP else -1,
            last_touch=acc.last,
            last_in_slot=acc.in_slot,
        )

    def _apply_update(
        self,
        step: Step,
        gens: list[int],
        slots: list[list[tuple[int, int]]],
        acc: _Accounting,
    ) -> None:
        """One update's bumps, layout change and racing accesses (docs/model.md 4.1)."""
        a = step.address_space
        before = list(slots[a])
        if step.op in (Op.DELETE, Op.MOVE):
            # Bump 1 publishes the slot invalid; the racing accesses ride bump 2.
            gens[a] = self.math.advance(gens[a], 1)
            before = [s for s in before if s[0] != step.slot]
        after = list(before)
        if step.op in (Op.CREATE, Op.MOVE):
            after.append((step.slot, step.gfn))
        old = gens[a]
        new = self.math.advance(old, 1)
        view = self.era.in_progress_view
        for touch in step.during:
            if touch.window != Window.IN_PROGRESS:
                continue
            b = touch.address_space
            if b != a:
                acc.touch(touch, gens[b], {g for _, g in slots[b]})
            elif view == InProgressView.OLD_LAYOUT_NEW_GEN:
                acc.touch(touch, new, {g for _, g in before})
            else:
                acc.touch(touch, self.math.shown(old), {g for _, g in after})
        gens[a] = new
        if step.op != Op.FLAGS:
            slots[a] = after
        for touch in step.during:
            if touch.window == Window.BEFORE_ZAP:
                b = touch.address_space
                acc.touch(touch, gens[b], {g for _, g in slots[b]})

    # -- the alphabet ---------------------------------------------------------------

    def bump_counts(self, state: State, a: int) -> list[int]:
        """Guided bump counts for address space ``a`` after ``state``."""
        g = state.gens[a]
        counts = {1}
        if self.math.has_generation:
            to_wrap = self.math.bumps_to_wrap(g)
            counts.update(to_wrap - j for j in range(4))
            for target in state.targets[a]:
                k = self.math.bumps_to_nominal(g, target)
                if k is not None:
                    counts.update(k - j for j in range(3))
        return sorted(c for c in counts if 1 <= c < 1 << 62)

    def _touch_options(self, state: State) -> list[Touch]:
        out = []
        for a in range(self.nas):
            for gfn in range(min(state.gfn_used + 1, self.config.gfns)):
                for v in range(min(state.vcpu_used + 1, self.config.vcpus)):
                    out.append(Touch(a, gfn, v))
        return out

    def _during_options(self, gfn_used: int, vcpu_used: int) -> list[tuple[Touch, ...]]:
        """Racing-access lists (in_progress ones first) over frames and vCPUs in use + 1."""
        cap = self.config.during_cap
        options: list[tuple[Touch, ...]] = [()]
        if cap == 0:
            return options
        frontier: list[tuple[tuple[Touch, ...], int, int]] = [((), gfn_used, vcpu_used)]
        for _ in range(cap):
            grown = []
            for lst, gused, vused in frontier:
                last_window = lst[-1].window if lst else Window.IN_PROGRESS
                for window in (Window.IN_PROGRESS, Window.BEFORE_ZAP):
                    if window < last_window:
                        continue
                    for a in range(self.nas):
                        for gfn in range(min(gused + 1, self.config.gfns)):
                            for v in range(min(vused + 1, self.config.vcpus)):
                                item = (*lst, Touch(a, gfn, v, window))
                                grown.append((item, max(gused, gfn + 1), max(vused, v + 1)))
            options.extend(lst for lst, _, _ in grown)
            frontier = grown
        return options

    def steps(self, state: State, *, updates_left: int | None = None) -> list[Step]:
        """Every step allowed after ``state``: accesses, guided bumps, then updates."""
        out: list[Step] = list(self._fixed_steps(state, updates=False))
        spaces = self.restriction.spaces
        for a in range(self.nas):
            if a != state.last_bump_as and (spaces is None or a in spaces):
                out.extend(Step(Op.BUMP, a, count=c) for c in self.bump_counts(state, a))
        if updates_left != 0:
            out.extend(self._fixed_steps(state, updates=True))
        return out

    def _fixed_steps(self, state: State, *, updates: bool) -> list[Step]:
        """The accesses (or the updates) allowed after ``state``; they do not depend on the
        generations, so they are built once per layout and usage and then reused."""
        key = (updates, state.slots, state.gfn_used, state.vcpu_used)
        cached = self._step_cache.get(key)
        if cached is not None:
            return cached
        out: list[Step] = []
        stale = self.config.stale
        if not updates:
            if stale:
                out = [
                    Step(Op.ACCESS, t.address_space, access=t) for t in self._touch_options(state)
                ]
            out = [step for step in out if self.restriction.allows(step)]
            self._step_cache[key] = out
            return out
        gfn_limit = min(state.gfn_used + 1, self.config.gfns)
        lists: dict[int, list[tuple[Touch, ...]]] = {}

        def during(gfn: int = -1) -> list[tuple[Touch, ...]]:
            # A create or move names its frame first: its racing accesses may use the next.
            used = max(state.gfn_used, gfn + 1)
            if used not in lists:
                lists[used] = self._during_options(used, state.vcpu_used) if stale else [()]
            return lists[used]

        for a in range(self.nas):
            covered = state.covered(a)
            ids = {s for s, _ in state.slots[a]}
            free = next((i for i in range(SLOT_IDS) if i not in ids), None)
            if free is not None:
                for gfn in range(gfn_limit):
                    if gfn not in covered:
                        out.extend(Step(Op.CREATE, a, free, gfn, during=d) for d in during(gfn))
            for slot, here in state.slots[a]:
                out.extend(Step(Op.FLAGS, a, slot, during=d) for d in during())
                out.extend(Step(Op.DELETE, a, slot, during=d) for d in during())
                for gfn in range(gfn_limit):
                    if gfn != here and gfn not in covered:
                        out.extend(Step(Op.MOVE, a, slot, gfn, during=d) for d in during(gfn))
        out = [step for step in out if self.restriction.allows(step)]
        self._step_cache[key] = out
        return out

    def final_steps(self, state: State, *, updates_left: int) -> Iterator[Step]:
        """The steps that may end a candidate: for a stale goal, their last access revisits
        an (address space, gfn) accessed before and sees the frame in a slot (harmful) or
        not (benign); for an undetected wrap, anything that bumps."""
        options = self.steps(state, updates_left=updates_left)
        for step in options:
            if (step.op in _UPDATES) != (updates_left == 1):
                continue
            if not self.config.stale:
                if step.op != Op.ACCESS:
                    yield step
                continue
            if not step.touches() or not self.touches_ok(state, step):
                continue
            if not self._revisit_last(state, step):
                continue
            if self.final_in_slot(state, step) == (self.config.goal == "harmful"):
                yield step

    def final_in_slot(self, state: State, step: Step) -> bool:
        """Whether the last access of ``step`` sees its frame inside a slot."""
        touch = step.touches()[-1]
        b = touch.address_space
        if step.op == Op.ACCESS or b != step.address_space:
            return touch.gfn in state.covered(b)
        layout = [
            s for s in state.slots[b] if not (step.op in (Op.DELETE, Op.MOVE) and s[0] == step.slot)
        ]
        before = {g for _, g in layout}
        after = before | ({step.gfn} if step.op in (Op.CREATE, Op.MOVE) else set())
        if step.op == Op.FLAGS:
            after = before
        if touch.window == Window.IN_PROGRESS and (
            self.era.in_progress_view == InProgressView.OLD_LAYOUT_NEW_GEN
        ):
            return touch.gfn in before
        return touch.gfn in after

    # -- pruning ------------------------------------------------------------------------

    @property
    def one_frame(self) -> bool:
        """Whether every access of a candidate must name the hit's frame.

        For a harmful hit from either source, an access to another frame can only
        evict a vCPU cache entry, and a valid cache entry for a frame that is RAM now
        is itself a harmful hit: evictions cannot help. They can for a benign hit
        or for a hit required to come from an SPTE check, so those searches keep them.
        """
        return self.config.goal == "harmful" and self.config.source != "spte"

    def touches_ok(self, state: State, step: Step) -> bool:
        """Whether ``step``'s accesses keep to one frame when :attr:`one_frame` asks it."""
        if not self.one_frame:
            return True
        frame = state.touch_gfn
        for touch in step.touches():
            if frame == -1:
                frame = touch.gfn
            elif touch.gfn != frame:
                return False
        return True

    # -- exhaustive phase -----------------------------------------------------------

    def enumerate(self, length: int, updates: int) -> Iterator[tuple[Step, ...]]:
        """Every candidate of exactly ``length`` events and ``updates`` updates."""
        stale = self.config.stale

        def rec(state: State, prefix: tuple[Step, ...]) -> Iterator[tuple[Step, ...]]:
            remaining = length - len(prefix)
            left = updates - state.updates
            if left < 0 or left > remaining:
                return
            if remaining == 1:
                for step in self.final_steps(state, updates_left=left):
                    yield (*prefix, step)
                return
            for step in self.steps(state, updates_left=left):
                is_update = step.op in _UPDATES
                if not is_update and left == remaining:
                    continue
                if stale and not self.touches_ok(state, step):
                    continue
                yield from rec(self.apply(state, step), (*prefix, step))

        yield from rec(self.initial(), ())

    @staticmethod
    def _revisit_last(state: State, step: Step) -> bool:
        """The last access of the final step must revisit a pair accessed before it."""
        touches = step.touches()
        last = touches[-1]
        key = (last.address_space, last.gfn)
        earlier = set(state.accessed) | {(t.address_space, t.gfn) for t in touches[:-1]}
        return key in earlier

    def collect(self, length: int, updates: int, cap: int) -> list[tuple[Step, ...]] | None:
        """Candidates of ``length`` events and ``updates`` updates; None if more than ``cap``."""
        out = []
        for cand in self.enumerate(length, updates):
            out.append(cand)
            if len(out) > cap:
                return None
            late = self._deadline is not None and time.perf_counter() > self._deadline
            if late and len(out) % 4096 == 0:
                self.stats.stopped_by = "time"
                raise _Budget
        return out

    # -- driver -----------------------------------------------------------------------

    def run(self) -> SearchOutcome:
        """Search: exhaustive while lengths fit the budget, then guided random."""
        config = self.config
        start = time.perf_counter()
        if config.time_limit is not None:
            self._deadline = start + config.time_limit
        found: tuple[Step, ...] | None = None
        result: ReplayResult | None = None
        method: str | None = None
        try:
            found, result, method = self._exhaustive()
            if found is None and self.stats.exhaustive_through < config.max_events:
                found, result, method = self._random()
        except _Budget:
            if self._best is not None:
                (found, result), method = self._best, "random"
        self.stats.seconds = time.perf_counter() - start
        if found is not None and result is not None:
            found, result = self.shrink(found, result)
        return SearchOutcome(config, self.spec, found, result, method, self.stats)

    def _exhaustive(self) -> tuple[tuple[Step, ...] | None, ReplayResult | None, str | None]:
        """Whole lengths, shortest first, while a length's candidates fit the budget."""
        for length in range(1, self.config.max_events + 1):
            remaining = self.config.budget - self.stats.evaluated
            groups = []
            total = 0
            for updates in range(length + 1):
                group = self.collect(length, updates, remaining - total)
                if group is None:
                    self.stats.partial_length = length
                    return None, None, None
                total += len(group)
                groups.append(group)
            self.stats.enumerated += total
            for group in groups:
                for cand in group:
                    result = self.evaluate(cand)
                    if self.reached(result):
                        return cand, result, "exhaustive"
            self.stats.exhaustive_through = length
        return None, None, None

    def draw_restriction(self, rng: random.Random) -> Restriction:
        """A random sub-alphabet: usually one address space, one vCPU, some update kinds."""
        spaces = frozenset(range(self.nas))
        if self.nas > 1 and rng.random() < 0.75:
            spaces = frozenset({rng.randrange(self.nas)})
        ops = frozenset(op for op in sorted(_UPDATES) if rng.random() < 0.45)
        windows = frozenset(
            w for w in (Window.IN_PROGRESS, Window.BEFORE_ZAP) if rng.random() < 0.6
        )
        vcpus = 1 if rng.random() < 0.6 else None
        return Restriction(spaces=spaces, vcpus=vcpus, ops=ops, windows=windows)

    def _random(self) -> tuple[tuple[Step, ...] | None, ReplayResult | None, str | None]:
        """Exhaustive search of the longer lengths inside random sub-alphabets."""
        config = self.config
        rng = random.Random(config.seed)
        lo = self.stats.exhaustive_through + 1
        hi = config.max_events
        self.stats.random_lengths = (lo, hi)
        seen: set[tuple[Step, ...]] = set()
        done: set[Restriction] = set()
        redraws = 0
        while lo <= hi:
            restriction = self.draw_restriction(rng)
            if restriction in done:
                # Drawn before: its lengths were searched as far as they fit.
                redraws += 1
                if redraws > 50 * (len(done) + 1):
                    self.stats.stopped_by = "sub-alphabets"
                    break
                continue
            done.add(restriction)
            sub = self.narrowed(restriction)
            left = config.budget - self.stats.evaluated
            cap = max(256, min(left, config.budget // 8))
            tried = 0
            for length in range(lo, hi + 1):
                found = False
                for updates in range(length + 1):
                    group = sub.collect(length, updates, cap - tried)
                    if group is None:
                        break
                    for cand in group:
                        if cand in seen:
                            continue
                        if len(seen) < 2_000_000:
                            seen.add(cand)
                        tried += 1
                        result = self.evaluate(cand)
                        self.stats.random_evaluated += 1
                        if self.reached(result):
                            if self._best is None or _rank(cand) < _rank(self._best[0]):
                                self._best = (cand, result)
                            found = True
                            break
                    if found:
                        break
                if found:
                    # Shortest in this sub-alphabet; look for shorter ones elsewhere.
                    hi = len(self._best[0]) - 1 if self._best else hi
                    break
        if self._best is None:
            return None, None, None
        return self._best[0], self._best[1], "random"

    # -- shrinking ---------------------------------------------------------------------

    def shrink(
        self, steps: tuple[Step, ...], result: ReplayResult
    ) -> tuple[tuple[Step, ...], ReplayResult]:
        """Smaller variants while the goal holds: drop an event or a racing access, turn an
        update with no racing access into a ``bump``, merge neighbouring bumps (not budgeted).
        """
        evaluate = self._evaluate
        changed = True
        while changed:
            changed = False
            for variant in self._smaller(steps):
                if not variant or not _well_formed(variant):
                    continue
                res = evaluate(variant)
                if self.reached(res):
                    steps, result, changed = variant, res, True
                    break
        return steps, result

    @staticmethod
    def _smaller(steps: tuple[Step, ...]) -> Iterator[tuple[Step, ...]]:
        for i in range(len(steps)):
            yield steps[:i] + steps[i + 1 :]
        for i, step in enumerate(steps):
            for j in range(len(step.during)):
                during = step.during[:j] + step.during[j + 1 :]
                yield (*steps[:i], replace(step, during=during), *steps[i + 1 :])
        for i in range(len(steps) - 1):
            a, b = steps[i], steps[i + 1]
            if a.op == b.op == Op.BUMP and a.address_space == b.address_space:
                merged = replace(a, count=a.count + b.count)
                yield (*steps[:i], merged, *steps[i + 2 :])
        for i, step in enumerate(steps):
            if step.op in (Op.FLAGS, Op.DELETE) and not step.during:
                count = 2 if step.op == Op.DELETE else 1
                bump = Step(Op.BUMP, step.address_space, count=count)
                yield (*steps[:i], bump, *steps[i + 1 :])


def _well_formed(steps: tuple[Step, ...]) -> bool:
    """Whether ``steps`` is a valid trace: slots exist, creates and moves do not overlap."""
    slots: dict[tuple[int, int], int] = {}
    for step in steps:
        key = (step.address_space, step.slot)
        taken = {g for (a, _), g in slots.items() if a == step.address_space}
        if step.op == Op.CREATE:
            if key in slots or step.gfn in taken:
                return False
            slots[key] = step.gfn
        elif step.op in (Op.DELETE, Op.FLAGS, Op.MOVE):
            if key not in slots:
                return False
            if step.op == Op.DELETE:
                del slots[key]
            elif step.op == Op.MOVE:
                if step.gfn in taken - {slots[key]}:
                    return False
                slots[key] = step.gfn
    return True


def _rank(steps: tuple[Step, ...]) -> tuple[int, int, int]:
    return (len(steps), sum(1 for s in steps if s.is_update), sum(len(s.during) for s in steps))


def search(spec: RunSpec, config: SearchConfig) -> SearchOutcome:
    """Search for the shortest trace reaching ``config.goal`` under ``spec``."""
    return Searcher(spec, config).run()
