"""Observed vs modelled: does the model predict what the kernel reported?

For a trace with observations (``kvmgen.trace.observed``) and one replayed run:

- **Zaps, per update.** Within the capture window, every update's observed zap
  count is compared with the model's zaps *that the era traces*: the fast
  invalidations (``kvm_mmu_invalidate_zap_all_pages`` in 3.11-5.0,
  ``kvm_mmu_zap_all_fast`` from 5.3/5.4) fire a tracepoint, E6's MMIO list walk and
  the slot-only flushes of 5.1/5.2 and 3.10 do not. Agreement is counted per
  update class (create, delete, move, flags, and updates that change nothing).
- **Accesses.** Each ``access`` observation is compared with what the model did for
  that access event (its first repetition): the outcome (slow path, fast path,
  refault, cache hit) and, when the capture started at VM creation, the generations
  the kernel printed (``kvm_gen``, ``spte-gen``, ``gen``).

A capture that started mid-run cannot know the generation at its start: a
disagreement that depends on it (a wrap zap, a generation value, an access
outcome) is reported but does not fail ``--fail-on disagree``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kvmgen.model.eras import ERAS, Era, ZapStyle
from kvmgen.model.policy import RunSpec
from kvmgen.stats import ReplayResult
from kvmgen.trace.observed import AccessSeen, CaptureInfo, ZapSeen
from kvmgen.trace.records import Op, Trace

CLASSES = ("create", "delete", "move", "flags", "no change")
_MODEL_OUTCOME = {
    "mmio_slow_path": "slow_path",
    "mmio_fast_path": "fast_path",
    "mmio_refault": "refault",
    "cache_hit": "cache_hit",
    "ram_fault": "ram",
    "ram_refault": "ram",
    "ram_access": "ram",
}
_E8 = list(ERAS).index("E8")


@dataclass
class ClassRow:
    """Agreement for one update class."""

    name: str
    updates: int = 0
    agree: int = 0
    observed_zaps: int = 0
    modelled_zaps: int = 0

    @property
    def disagree(self) -> int:
        """Updates of this class where the counts differ."""
        return self.updates - self.agree


@dataclass
class Disagreement:
    """One place where the kernel and the model differ."""

    update: int
    what: str
    observed: str
    modelled: str
    gated: bool = True
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "update": self.update,
            "what": self.what,
            "observed": self.observed,
            "modelled": self.modelled,
            "gated": self.gated,
            "note": self.note,
        }


@dataclass
class RunComparison:
    """Observed vs modelled for one run (era, policy)."""

    label: str
    window: tuple[int, int] | None
    zaps_compared: bool
    classes: list[ClassRow]
    observed_zap_updates: list[int]
    modelled_zap_updates: list[int]
    accesses: Counter[str] = field(default_factory=Counter)
    access_agree: int = 0
    access_compared: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether any disagreement counts for ``--fail-on disagree``."""
        return any(d.gated for d in self.disagreements)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (stable key order)."""
        return {
            "run": self.label,
            "window": list(self.window) if self.window else None,
            "zaps_compared": self.zaps_compared,
            "classes": [
                {
                    "class": r.name,
                    "updates": r.updates,
                    "agree": r.agree,
                    "disagree": r.disagree,
                    "observed_zaps": r.observed_zaps,
                    "modelled_zaps": r.modelled_zaps,
                }
                for r in self.classes
            ],
            "observed_zap_updates": self.observed_zap_updates,
            "modelled_zap_updates": self.modelled_zap_updates,
            "accesses": {
                "compared": self.access_compared,
                "agree": self.access_agree,
                "observed": dict(sorted(self.accesses.items())),
            },
            "disagreements": [d.as_dict() for d in self.disagreements],
            "notes": self.notes,
            "agree": not self.failed,
        }


def capture_of(trace: Trace) -> CaptureInfo | None:
    """The trace's capture observation, if any."""
    return next((o for o in trace.observations if isinstance(o, CaptureInfo)), None)


def visible(era: Era, kind: str, scope: str) -> bool:
    """Whether a modelled zap of this kind fires a zap tracepoint in ``era``."""
    if kind == "wrap":
        return era.has_mmio_generation and era.wrap_zap_style == ZapStyle.FAST
    return scope == "all_sptes" and era.flush_style == ZapStyle.FAST and era.has_mmio_generation


@dataclass
class _Ranges:
    """Update ordinals as runs: (first ordinal, count, class), in order."""

    starts: list[int] = field(default_factory=list)
    runs: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, first: int, count: int, name: str) -> None:
        if count > 0:
            self.starts.append(first)
            self.runs.append((first, count, name))

    def class_of(self, ordinal: int) -> str:
        i = bisect.bisect_right(self.starts, ordinal) - 1
        return self.runs[i][2] if i >= 0 else "none"

    def counts(self, lo: int, hi: int) -> Counter[str]:
        out: Counter[str] = Counter()
        for first, count, name in self.runs:
            a, b = max(first, lo), min(first + count - 1, hi)
            if a <= b:
                out[name] += b - a + 1
        return out


def update_classes(trace: Trace) -> _Ranges:
    """The class of every update ordinal (create, delete, move, flags, no change)."""
    flags: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], int] = {}
    for decl in trace.vm.slots:
        flags[(decl.address_space, decl.slot)] = decl.flags
        where[(decl.address_space, decl.slot)] = decl.gfn
    ranges = _Ranges()
    ordinal = 1
    for ev in trace.events:
        key = (ev.address_space, ev.slot)
        if ev.op == Op.CREATE:
            ranges.add(ordinal, 1, "create")
            flags[key] = ev.flags or 0
            where[key] = ev.gfn
        elif ev.op == Op.DELETE:
            ranges.add(ordinal, ev.repeat, "delete")
        elif ev.op == Op.MOVE:
            ranges.add(ordinal, 1, "move" if where.get(key) != ev.gfn else "no change")
            where[key] = ev.gfn
        elif ev.op == Op.FLAGS:
            if ev.flags is None:
                ranges.add(ordinal, ev.repeat, "flags")
                flags[key] = flags.get(key, 0) ^ (ev.repeat & 1)
            else:
                changed = flags.get(key, 0) != ev.flags
                ranges.add(ordinal, 1, "flags" if changed else "no change")
                ranges.add(ordinal + 1, ev.repeat - 1, "no change")
                flags[key] = ev.flags
        else:
            continue
        ordinal += ev.repeat
    return ranges


@dataclass(frozen=True)
class ModelledAccess:
    """What the model did for one access event (its first repetition)."""

    outcome: str
    kvm_gen: int | None
    spte_gen: int | None
    mark_gen: int | None


def model_accesses(trace: Trace, spec: RunSpec, wanted: set[int]) -> dict[int, ModelledAccess]:
    """Replay ``trace`` with the reference model, noting what each wanted access did."""
    from kvmgen.reference import replay as reference
    from kvmgen.reference.state import RefState

    class _Watch(RefState):
        def __init__(self) -> None:
            super().__init__(spec, record_limit=1)
            self.seen: dict[int, ModelledAccess] = {}

        def access(self, ev: Any, race: str | None) -> None:
            if ev.sub >= 0 or ev.index not in wanted or ev.index in self.seen:
                super().access(ev, race)
                return
            key = (ev.address_space, ev.gfn)
            before = dict(self.outcomes)
            spte = self.sptes.get(key)
            now = self.g[ev.address_space]
            super().access(ev, race)
            name = next(k for k, v in self.outcomes.items() if v != before[k])
            after = self.sptes.get(key)
            made = after is not None and after.mmio and after is not spte
            modern = list(ERAS).index(self.era.name) >= _E8
            self.seen[ev.index] = ModelledAccess(
                outcome=_MODEL_OUTCOME[name],
                kvm_gen=self.mmio(now) if self.era.has_mmio_generation else None,
                spte_gen=spte.stored if spte is not None and spte.mmio else None,
                mark_gen=(after.stored if modern else self.mmio(now))
                if made and after is not None
                else None,
            )

    state = _Watch()
    # Every observed access placed: the rest of the trace cannot change them.
    reference.apply_trace(state, trace, stop=lambda: len(state.seen) == len(wanted))
    return state.seen


def compare_run(trace: Trace, spec: RunSpec, result: ReplayResult, label: str) -> RunComparison:
    """Compare the trace's observations with one run's result (zap records must be complete)."""
    era = spec.era
    cap = capture_of(trace)
    total = result.updates
    from_start = cap.from_vm_start if cap is not None else False
    lo = cap.first_update if cap is not None and cap.first_update is not None else 1
    hi = cap.last_update if cap is not None and cap.last_update is not None else total
    zap_obs = [o for o in trace.observations if isinstance(o, ZapSeen)]
    zaps_compared = bool(zap_obs) or bool(cap is not None and cap.zap_events)
    ranges = update_classes(trace)
    observed: Counter[int] = Counter(o.update for o in zap_obs)
    modelled: Counter[int] = Counter()
    modelled_wrap: set[int] = set()
    for z in result.zap_events:
        if visible(era, z.kind, z.scope):
            modelled[z.update] += 1
            if z.kind == "wrap":
                modelled_wrap.add(z.update)
    counts = ranges.counts(lo, hi) if total else Counter()
    rows = {name: ClassRow(name, updates=counts.get(name, 0)) for name in CLASSES}
    for row in rows.values():
        row.agree = row.updates
    out = RunComparison(
        label=label,
        window=(lo, hi) if total and lo <= hi else None,
        zaps_compared=zaps_compared,
        classes=[],
        observed_zap_updates=sorted(observed),
        modelled_zap_updates=sorted(modelled),
    )
    if cap is not None and cap.lost:
        out.notes.append(f"the capture lost {cap.lost} events: missing zaps may be losses")
    if not from_start:
        out.notes.append(
            "the capture did not start at VM creation: the generation at its start is unknown, "
            "so wrap zaps, generation values and access outcomes are reported, not gated"
        )
    outside = 0
    if zaps_compared and out.window is not None:
        for update in sorted(set(observed) | set(modelled)):
            if not lo <= update <= hi:
                outside += observed[update] != modelled[update]
                continue
            name = ranges.class_of(update)
            row = rows[name]
            row.observed_zaps += observed[update]
            row.modelled_zaps += modelled[update]
            if observed[update] == modelled[update]:
                continue
            row.agree -= 1
            wrapish = update in modelled_wrap or name not in ("delete", "move")
            out.disagreements.append(
                Disagreement(
                    update=update,
                    what=f"zaps during update {update:,} ({name})",
                    observed=str(observed[update]),
                    modelled=str(modelled[update]) + (" (wrap)" if update in modelled_wrap else ""),
                    gated=from_start or not wrapish,
                )
            )
        if outside:
            out.notes.append(
                f"{outside} updates outside the capture window {lo:,}-{hi:,} have different "
                "zap counts: not compared (the capture did not see them whole)"
            )
    elif zaps_compared:
        out.notes.append("the trace has no updates inside the capture: zaps not compared")
    else:
        out.notes.append("no zap tracepoint was recorded as enabled: zaps not compared")
    out.classes = [rows[name] for name in CLASSES]
    _compare_accesses(trace, spec, out, from_start)
    return out


def _compare_accesses(trace: Trace, spec: RunSpec, out: RunComparison, from_start: bool) -> None:
    seen = [o for o in trace.observations if isinstance(o, AccessSeen)]
    if not seen:
        return
    modelled = model_accesses(trace, spec, {o.access for o in seen})
    for obs in seen:
        out.accesses[obs.outcome] += 1
        model = modelled.get(obs.access)
        if model is None:
            continue
        out.access_compared += 1
        diffs = []
        if model.outcome != obs.outcome:
            diffs.append((f"outcome {obs.outcome}", f"outcome {model.outcome}"))
        if from_start:
            for name, seen_value, model_value in (
                ("kvm_gen", obs.kvm_gen, model.kvm_gen),
                ("spte_gen", obs.spte_gen, model.spte_gen),
                ("gen", obs.gen, model.mark_gen),
            ):
                if seen_value is not None and model_value is not None and seen_value != model_value:
                    diffs.append((f"{name} {seen_value:#x}", f"{name} {model_value:#x}"))
        if not diffs:
            out.access_agree += 1
            continue
        gfn = trace.events[obs.access].gfn
        out.disagreements.append(
            Disagreement(
                update=obs.update,
                what=f"access event {obs.access} (gfn {gfn:#x})",
                observed=", ".join(d[0] for d in diffs),
                modelled=", ".join(d[1] for d in diffs),
                gated=from_start,
            )
        )
