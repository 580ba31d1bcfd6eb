"""Run state and primitive steps of the plain-Python reference model (docs/model.md).

This module holds the mutable state of one run and the operations of sections
2, 3, 5 and 6 of ``docs/model.md``: derived values, one bump, zaps and one
access. :mod:`kvmgen.reference.replay` walks the trace and calls them. Speed is
not a goal: every value is a Python int masked to 64 bits, every bump and
every repetition runs on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kvmgen.model.eras import BumpScheme, InProgressView, WrapCheckTiming, WrapTest, ZapScope
from kvmgen.model.policy import RunSpec
from kvmgen.stats import OUTCOMES, StaleHit, WrapEvent, ZapEvent
from kvmgen.trace.records import Event, Window

U64 = (1 << 64) - 1
BIT63 = 1 << 63

SCOPE_NAMES: dict[ZapScope, str] = {
    ZapScope.ALL_SPTES: "all_sptes",
    ZapScope.MMIO_SPTES: "mmio_sptes",
    ZapScope.SLOT_RAM_SPTES: "slot_ram_sptes",
}

RACE_NAMES: dict[Window, str | None] = {
    Window.NONE: None,
    Window.IN_PROGRESS: "in_progress",
    Window.BEFORE_ZAP: "before_zap",
}


@dataclass
class Slot:
    """One memslot of one address space; an invalid slot resolves no gfn."""

    gfn: int
    pages: int
    flags: int
    valid: bool = True


@dataclass(frozen=True)
class Spte:
    """A RAM SPTE (``mmio`` false) or an MMIO SPTE with its stored bits and full generation."""

    mmio: bool
    stored: int = 0
    made: int = 0


RAM_SPTE = Spte(mmio=False)


@dataclass(frozen=True)
class VcpuCache:
    """A filled per-vCPU MMIO info cache (an empty cache is simply absent)."""

    gfn: int
    fill_as: int
    fill_gen: int
    fill_as0_gen: int


@dataclass
class StaleRecord:
    """A stale-hit record being built: every StaleHit field but ``count``, in field order."""

    key: tuple[object, ...]
    count: int = 1


STALE_KEY_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(StaleHit) if f.name != "count"
)

LayoutChange = Callable[[], None]


class RefState:
    """The whole state of one reference run, with the model's primitive operations."""

    def __init__(self, spec: RunSpec, record_limit: int) -> None:
        self.era = spec.era
        self.nas = spec.address_spaces
        self.offset = spec.mmio_offset & U64
        self.record_limit = record_limit
        self.g: list[int] = [x & U64 for x in spec.init_generations]
        self.slots: list[dict[int, Slot]] = [{} for _ in range(self.nas)]
        self.sptes: dict[tuple[int, int], Spte] = {}
        self.dropped: set[tuple[int, int]] = set()
        self.caches: dict[int, VcpuCache] = {}
        self.update = 0
        self.bumps: list[int] = [0] * self.nas
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.zap_seen: list[bool] = [False] * self.nas
        self.wrap_zaps = 0
        self.flush_zaps = 0
        self.dropped_wrap_ram = 0
        self.dropped_wrap_mmio = 0
        self.dropped_flush_ram = 0
        self.dropped_flush_mmio = 0
        self.wraps_total = 0
        self.wraps_undetected = 0
        self.stale_harmful = 0
        self.stale_benign = 0
        self.stale_records = 0
        self.wraps: list[WrapEvent] = []
        self.zap_events: list[ZapEvent] = []
        # The last record is kept even past record_limit: later hits may still
        # merge into it, and must not count as new records.
        self.stale: list[StaleRecord] = []
        self.last_stale: StaleRecord | None = None

    # -- derived values (docs/model.md section 2) ---------------------------

    def mmio(self, x: int) -> int:
        """The MMIO generation the kernel compares."""
        return ((x + self.offset) & U64) & self.era.check_mask

    def stamp(self, x: int) -> int:
        """The generation bits an MMIO SPTE keeps."""
        return self.mmio(x) & self.era.stamp_mask

    def nominal(self, x: int) -> int:
        """The truncated generation whose wrap is reported."""
        return ((x + self.offset) & U64) & self.era.nominal_mask

    def in_progress(self, x: int) -> bool:
        """Whether ``x`` is an update-in-progress value for this era's bump scheme."""
        scheme = self.era.bump_scheme
        if scheme in (BumpScheme.ODD_EVEN, BumpScheme.ODD_STRIDE):
            return x & 1 == 1
        if scheme == BumpScheme.BIT63:
            return x & BIT63 != 0
        return False

    def check(self, spte: Spte, a: int) -> bool:
        """The era's generation check of an MMIO SPTE against address space ``a``."""
        if not self.era.has_mmio_generation:
            return True
        if self.era.bump_scheme == BumpScheme.BIT63 and self.g[a] & BIT63:
            return False
        return self.mmio(self.g[a]) == spte.stored

    def in_slot(self, a: int, gfn: int) -> bool:
        """Whether ``gfn`` resolves to a valid slot of address space ``a``."""
        return any(s.valid and s.gfn <= gfn < s.gfn + s.pages for s in self.slots[a].values())

    def cache_valid(self, v: int, gfn: int) -> bool:
        """Whether vCPU ``v``'s cache answers for ``gfn`` (the address space is not matched)."""
        cache = self.caches.get(v)
        if cache is None or cache.gfn != gfn:
            return False
        return not self.era.cache_has_generation or cache.fill_as0_gen == self.g[0]

    def cache_fill(self, v: int, a: int, gfn: int) -> None:
        """Fill vCPU ``v``'s cache, unless the era skips caching while AS 0 is in progress."""
        if self.era.cache_skips_in_progress and self.in_progress(self.g[0]):
            return
        self.caches[v] = VcpuCache(gfn=gfn, fill_as=a, fill_gen=self.g[a], fill_as0_gen=self.g[0])

    # -- zaps (section 5) ----------------------------------------------------

    def zap(self, kind: str, scope: ZapScope, a: int, old_range: tuple[int, int] = (0, 0)) -> None:
        """Drop the SPTEs ``scope`` names and record one zap event of ``kind``."""
        lo, pages = old_range
        victims = []
        for key, spte in self.sptes.items():
            if scope == ZapScope.ALL_SPTES:
                hit = True
            elif scope == ZapScope.MMIO_SPTES:
                hit = spte.mmio
            elif scope == ZapScope.SLOT_RAM_SPTES:
                hit = not spte.mmio and key[0] == a and lo <= key[1] < lo + pages
            else:
                hit = False
            if hit:
                victims.append(key)
        ram = mmio = 0
        for key in victims:
            if self.sptes.pop(key).mmio:
                mmio += 1
            else:
                ram += 1
            self.dropped.add(key)
        if kind == "wrap":
            self.wrap_zaps += 1
            self.dropped_wrap_ram += ram
            self.dropped_wrap_mmio += mmio
            self.zap_seen[a] = True
        else:
            self.flush_zaps += 1
            self.dropped_flush_ram += ram
            self.dropped_flush_mmio += mmio
        if len(self.zap_events) < self.record_limit:
            self.zap_events.append(
                ZapEvent(
                    kind=kind,
                    scope=SCOPE_NAMES[scope],
                    address_space=a,
                    update=self.update,
                    bump=self.bumps[a],
                    dropped_ram=ram,
                    dropped_mmio=mmio,
                )
            )

    # -- bumps (sections 3 and 4.1) -------------------------------------------

    def wrap_test(self, n: int) -> bool:
        """The era's wrap-zap test on the new generation ``n``."""
        era = self.era
        if era.wrap_test == WrapTest.AT_LEAST:
            return self.nominal(n) >= era.wrap_threshold
        if era.wrap_test == WrapTest.LOW_BITS_ZERO:
            ignore = self.nas - 1 if era.bump_scheme == BumpScheme.BIT63 else 0
            return self.nominal(n) & ~ignore == 0
        return False

    def _wrap_zap_if_due(self, u: int, n: int) -> None:
        if self.wrap_test(n):
            self.zap("wrap", self.era.wrap_zap_scope, u)

    def bump(
        self,
        u: int,
        change: LayoutChange | None,
        during: Sequence[Event],
        *,
        ioctl_end: bool,
        create_flush: bool,
    ) -> None:
        """One generation bump of address space ``u``, steps 1-6 of docs/model.md 4.1.

        ``change`` applies this bump's layout change, ``during`` are the accesses
        of this (last) bump in execution order, ``ioctl_end`` says whether E1's
        once-per-ioctl wrap test runs after it, ``create_flush`` whether E0's
        MMIO drop follows it.
        """
        era = self.era
        self.bumps[u] += 1
        old = self.g[u]
        scheme = era.bump_scheme
        if scheme == BumpScheme.PLAIN:
            shown = (old + 1) & U64
            new = shown
        elif scheme == BumpScheme.ODD_EVEN:
            shown = (old + 1) & U64
            new = (shown + 1) & U64
        elif scheme == BumpScheme.ODD_STRIDE:
            shown = (old + 1) & U64
            new = (shown + 2 * self.nas - 1) & U64
        else:
            shown = (old | BIT63) & U64
            new = ((shown & ~BIT63 & U64) + self.nas) & U64
        old_layout = era.in_progress_view == InProgressView.OLD_LAYOUT_NEW_GEN

        self.g[u] = shown
        if change is not None and not old_layout:
            change()
        if era.wrap_timing == WrapCheckTiming.PER_BUMP_BEFORE_PUBLISH:
            self._wrap_zap_if_due(u, new)
        self.run_window(during, Window.IN_PROGRESS)
        if change is not None and old_layout:
            change()
        self.g[u] = new

        self.run_window(during, Window.BEFORE_ZAP)
        if era.wrap_timing == WrapCheckTiming.PER_BUMP_AFTER_PUBLISH or (
            era.wrap_timing == WrapCheckTiming.PER_IOCTL_AFTER_PUBLISH and ioctl_end
        ):
            self._wrap_zap_if_due(u, new)
        if create_flush and era.create_flush_scope != ZapScope.NOTHING:
            self.zap("memslot_flush", era.create_flush_scope, u)

        before, after = self.nominal(old), self.nominal(new)
        if era.has_mmio_generation and after < before:
            detected = self.zap_seen[u]
            self.zap_seen[u] = False
            self.wraps_total += 1
            if not detected:
                self.wraps_undetected += 1
            if len(self.wraps) < self.record_limit:
                self.wraps.append(
                    WrapEvent(
                        address_space=u,
                        update=self.update,
                        bump=self.bumps[u],
                        detected=detected,
                        before=before,
                        after=after,
                    )
                )

    # -- accesses (section 6) ---------------------------------------------------

    def run_window(self, during: Sequence[Event], window: Window) -> None:
        """Run the ``during`` accesses of one window, in order, each repetition on its own."""
        race = RACE_NAMES[window]
        for ev in during:
            if ev.window == window:
                for _ in range(ev.repeat):
                    self.access(ev, race)

    def _install(self, v: int, a: int, gfn: int) -> bool:
        """The slow path: a RAM SPTE if ``gfn`` is in a slot, else a stamped MMIO SPTE."""
        self.dropped.discard((a, gfn))
        if self.in_slot(a, gfn):
            self.sptes[(a, gfn)] = RAM_SPTE
            return True
        made = self.g[a]
        self.sptes[(a, gfn)] = Spte(mmio=True, stored=self.stamp(made), made=made)
        self.cache_fill(v, a, gfn)
        return False

    def access(self, ev: Event, race: str | None) -> None:
        """One access of ``ev`` (one repetition), classified and checked for staleness."""
        a, gfn, v = ev.address_space, ev.gfn, ev.vcpu
        key = (a, gfn)
        spte = self.sptes.get(key)
        if spte is None:
            was_dropped = key in self.dropped
            if self._install(v, a, gfn):
                self.outcomes["ram_refault" if was_dropped else "ram_fault"] += 1
            else:
                self.outcomes["mmio_slow_path"] += 1
        elif not spte.mmio:
            self.outcomes["ram_access"] += 1
        elif self.cache_valid(v, gfn):
            self.outcomes["cache_hit"] += 1
            self._stale(ev, race, spte, self.caches[v])
        elif self.check(spte, a):
            self.cache_fill(v, a, gfn)
            self.outcomes["mmio_fast_path"] += 1
            self._stale(ev, race, spte, None)
        else:
            self._install(v, a, gfn)
            self.outcomes["mmio_refault"] += 1

    def _stale(self, ev: Event, race: str | None, spte: Spte, cache: VcpuCache | None) -> None:
        """Record a stale hit of a cache hit (``cache`` set) or passed check, if it is one."""
        era = self.era
        a, gfn = ev.address_space, ev.gfn
        now = self.g[a]
        if cache is None:
            differs = era.has_mmio_generation and spte.made != now
        else:
            differs = era.cache_has_generation and (cache.fill_as != a or cache.fill_gen != now)
        if self.in_slot(a, gfn):
            kind = "harmful"
        elif differs:
            kind = "benign"
        else:
            return
        if kind == "harmful":
            self.stale_harmful += 1
        else:
            self.stale_benign += 1
        gen = era.has_mmio_generation
        key = (
            self.update,
            ev.index,
            ev.sub,
            a,
            gfn,
            ev.vcpu,
            "spte" if cache is None else "vcpu_cache",
            kind,
            race,
            spte.made,
            spte.stored if gen else None,
            None if cache is None else cache.fill_as,
            None if cache is None else cache.fill_gen,
            None if cache is None else cache.fill_as0_gen,
            now,
            self.mmio(now) if gen else None,
        )
        last = self.last_stale
        if last is not None and last.key == key:
            last.count += 1
            return
        record = StaleRecord(key)
        self.stale_records += 1
        self.last_stale = record
        if len(self.stale) < self.record_limit:
            self.stale.append(record)

    def stale_hits(self) -> tuple[StaleHit, ...]:
        """The kept stale records as frozen :class:`StaleHit` values."""
        hits = []
        for rec in self.stale:
            fields: dict[str, Any] = dict(zip(STALE_KEY_FIELDS, rec.key, strict=True))
            hits.append(StaleHit(**fields, count=rec.count))
        return tuple(hits)
