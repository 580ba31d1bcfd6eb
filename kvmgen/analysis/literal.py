"""``--bias literal:B`` made visible: when the generation rests with bit 63 set, for how
long, and what it costs, next to ``none`` and the masked bias ``B``.

From E6 on bit 63 of a generation means "memslot update in progress": every MMIO
check fails and no vCPU caches MMIO info while it is set. The 2019 patch removed
the ``-150`` start because, written literally, it sets that bit. With
``literal:B`` each address space starts at ``-B mod 2^64`` (bit 63 set until its
first bump) and, counting up by NAS, reaches 2^63 again at its bump
``ceil(B / NAS)``, where the bit stays set until the next bump. This module finds
those windows in a trace and prices them by replaying the trace up to each
window's edges with the engine, for the literal run and for the masked run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from kvmgen.analysis.timeline import BumpWalk, walk_bumps
from kvmgen.formatting import count, cycles, seconds
from kvmgen.model.costs import CostModel, run_costs
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import RunSpec, parse_policy, resolve_runs
from kvmgen.trace.records import Op, Trace


@dataclass(frozen=True)
class Window:
    """One stretch during which an address space rests with bit 63 set."""

    address_space: int
    after_bump: int  # 0 = from VM creation
    until_bump: int | None  # None: still set when the trace ends
    start_event: int  # -1 = creation
    end_event: int | None
    start_update: int
    end_update: int | None
    start_t: float | None
    end_t: float | None
    events: int  # top-level events strictly inside
    accesses: int  # accesses (repeats counted) strictly inside
    mmio_refaults: int  # in the literal run
    cache_hits: int
    cycles: int
    masked_mmio_refaults: int | None  # the same events in the masked run
    masked_cache_hits: int | None
    masked_cycles: int | None

    @property
    def extra_cycles(self) -> int | None:
        """What the window costs over the masked bias."""
        return None if self.masked_cycles is None else self.cycles - self.masked_cycles


def _event_of_bump(walk: BumpWalk, a: int, k: int) -> int:
    for seg in walk.segments_of(a):
        if seg.first_bump <= k < seg.first_bump + seg.count:
            return seg.event
    return -1


def _prefix(trace: Trace, n: int) -> Trace:
    # The cached event table is the whole trace's: the prefix builds its own.
    return replace(trace, events=trace.events[: max(n, 0)], _table=None)


def _counts(trace: Trace, spec: RunSpec, n: int, model: CostModel) -> tuple[int, int, int]:
    """(mmio refaults, cache hits, total cycles) after the first ``n`` events."""
    from kvmgen.engine.replay import replay_engine

    if n <= 0:
        return 0, 0, 0
    result = replay_engine(_prefix(trace, n), spec, record_limit=1)
    counts = result.access_counts()
    return counts["mmio_refault"], counts["cache_hit"], run_costs(model, spec.era, result).total


def windows(
    trace: Trace,
    spec: RunSpec,
    masked: RunSpec | None = None,
    model: CostModel | None = None,
) -> list[Window]:
    """Every bit-63-at-rest window of ``spec`` over ``trace``, priced."""
    if not spec.literal:
        return []
    model = model or CostModel()
    math = GenMath(spec)
    walk = walk_bumps(trace)
    out = []
    for a in range(spec.address_spaces):
        bumps = walk.bumps[a] if a < len(walk.bumps) else 0
        for k in math.bit63_rest_bumps(spec.init_generations[a]):
            if k > bumps:
                continue
            start_event = _event_of_bump(walk, a, k) if k else -1
            ends = k + 1 <= bumps
            end_event = _event_of_bump(walk, a, k + 1) if ends else None
            stop = end_event if end_event is not None else len(trace.events)
            inside = trace.events[start_event + 1 : stop] if stop > start_event else ()
            lit = _diff(trace, spec, start_event + 1, stop, model)
            mask = _diff(trace, masked, start_event + 1, stop, model) if masked else None
            out.append(
                Window(
                    address_space=a,
                    after_bump=k,
                    until_bump=k + 1 if ends else None,
                    start_event=start_event,
                    end_event=end_event,
                    start_update=walk.event_update[start_event] if start_event >= 0 else 0,
                    end_update=walk.event_update[end_event] if end_event is not None else None,
                    start_t=trace.events[start_event].t if start_event >= 0 else None,
                    end_t=trace.events[end_event].t if end_event is not None else None,
                    events=len(inside),
                    accesses=sum(e.repeat for e in inside if e.op == Op.ACCESS),
                    mmio_refaults=lit[0],
                    cache_hits=lit[1],
                    cycles=lit[2],
                    masked_mmio_refaults=None if mask is None else mask[0],
                    masked_cache_hits=None if mask is None else mask[1],
                    masked_cycles=None if mask is None else mask[2],
                )
            )
    return out


def _diff(trace: Trace, spec: RunSpec, lo: int, hi: int, model: CostModel) -> tuple[int, int, int]:
    """Counters of events ``[lo, hi)``: a replay to ``hi`` minus a replay to ``lo``."""
    if hi <= lo:
        return 0, 0, 0
    a, b = _counts(trace, spec, lo, model), _counts(trace, spec, hi, model)
    return b[0] - a[0], b[1] - a[1], b[2] - a[2]


def masked_twin(spec: RunSpec) -> RunSpec:
    """The masked-bias run of the same era, address spaces and ``B``."""
    (twin,) = resolve_runs(spec.era, spec.address_spaces, [parse_policy(str(spec.bias))])
    return replace(twin, kernel=spec.kernel)


def session_windows(session: Any) -> list[tuple[Any, list[Window]]]:
    """(run, windows) for every literal run of a replay session."""
    trace = session.trace
    if not isinstance(trace, Trace):
        materialize = getattr(trace, "materialize", None)
        if materialize is None:
            return []
        trace = materialize()
    out = []
    for run in session.runs:
        if run.spec.literal:
            out.append((run, windows(trace, run.spec, masked_twin(run.spec), session.cost_model)))
    return out


def _where(event: int | None, update: int | None, t: float | None, trace_len: int) -> str:
    if event is None:
        return f"the end of the trace (event {count(trace_len - 1)})"
    if event < 0:
        return "VM creation"
    at = f" (t={seconds(t)})" if t is not None else ""
    return f"update {count(update or 0)}, event {count(event)}{at}"


def _pair(literal: int, masked: int | None, show: Any = count) -> str:
    return show(literal) if masked is None else f"{show(literal)} / {show(masked)}"


def render(session: Any, console: Any) -> None:
    """The literal-bias section of ``replay``'s human report."""
    found = session_windows(session)
    if not found:
        return
    from rich.markup import escape

    from kvmgen.report.layout import Column, Grid, print_grid, print_prose

    n = len(session.trace.events) if isinstance(session.trace, Trace) else 0
    for run, wins in found:
        spec = run.spec
        grid = Grid(
            escape(
                f"{spec.label}: bit 63 (update in progress) at rest "
                f"(literal / masked bias {spec.bias}, same events)"
            ),
            [
                Column("AS", right=True, key=True),
                Column("from", key=True),
                Column("until"),
                Column("events", right=True),
                Column("accesses", right=True),
                Column("MMIO\nrefaults", right=True),
                Column("cache\nhits", right=True),
                Column("cycles", right=True),
                Column("extra\ncycles", right=True),
            ],
        )
        for w in wins:
            start = _where(w.start_event, w.start_update, w.start_t, n)
            grid.add_row(
                str(w.address_space),
                "creation" if w.after_bump == 0 else f"bump {count(w.after_bump)}: {start}",
                _where(w.end_event, w.end_update, w.end_t, n),
                count(w.events),
                count(w.accesses),
                _pair(w.mmio_refaults, w.masked_mmio_refaults),
                _pair(w.cache_hits, w.masked_cache_hits),
                _pair(w.cycles, w.masked_cycles, cycles),
                "-" if w.extra_cycles is None else cycles(w.extra_cycles, sign=True),
            )
        print_grid(console, grid)
        if not wins:
            print_prose(
                console,
                f"  bit 63 never rests set within this trace for {escape(spec.label)}",
                indent=2,
            )
        print_prose(
            console,
            "while bit 63 is set every MMIO check fails (refault and re-stamp) and no vCPU "
            "caches MMIO info: what the 2019 patch said the literal -150 would break",
            indent=2,
        )
