"""The result of replaying one trace under one run: shared by the engine and the reference.

Both implementations return a :class:`ReplayResult`; the property tests compare
them with ``==``. Generations are plain Python ints in ``[0, 2^64)``.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES: tuple[str, ...] = (
    "ram_fault",
    "ram_refault",
    "ram_access",
    "mmio_slow_path",
    "mmio_fast_path",
    "mmio_refault",
    "cache_hit",
)
"""Access outcomes of model.md section 3, in the order of ``ReplayResult.accesses``."""

DEFAULT_RECORD_LIMIT = 10_000
"""How many wrap, zap and stale-hit records a run keeps; counts stay exact beyond it."""


@dataclass(frozen=True)
class StaleHit:
    """A cache hit or passed check that was wrong (harmful) or right only by luck (benign).

    ``count`` is how many consecutive repetitions of the same access event this
    record stands for. ``spte_*`` describe the MMIO SPTE (always present: the
    check path starts from one); ``cache_*`` are set only when ``source`` is
    ``vcpu_cache``. ``*_stored`` and ``current_mmio_generation`` are None in E0.
    """

    update: int
    event: int
    sub: int
    address_space: int
    gfn: int
    vcpu: int
    source: str  # "spte" | "vcpu_cache"
    kind: str  # "harmful" | "benign"
    race: str | None  # "in_progress" | "before_zap" | None
    count: int
    spte_generation: int
    spte_stored: int | None
    cache_address_space: int | None
    cache_generation: int | None
    cache_as0_generation: int | None
    current_generation: int
    current_mmio_generation: int | None


@dataclass(frozen=True)
class WrapEvent:
    """A bump on which the nominal truncated generation passed its maximum."""

    address_space: int
    update: int
    bump: int  # 1-based bump ordinal within the address space
    detected: bool
    before: int  # nominal truncated value before the bump
    after: int


@dataclass(frozen=True)
class ZapEvent:
    """One zap: a wrap zap or a memslot-flush zap, with what it dropped."""

    kind: str  # "wrap" | "memslot_flush"
    scope: str  # "all_sptes" | "mmio_sptes" | "slot_ram_sptes"
    address_space: int
    update: int
    bump: int
    dropped_ram: int
    dropped_mmio: int


@dataclass(frozen=True)
class ReplayResult:
    """Counters and records of one run; identical from engine and reference."""

    updates: int
    bumps: tuple[int, ...]
    final_generation: tuple[int, ...]
    accesses: tuple[int, ...]  # in OUTCOMES order
    wrap_zaps: int
    flush_zaps: int
    dropped_wrap_ram: int
    dropped_wrap_mmio: int
    dropped_flush_ram: int
    dropped_flush_mmio: int
    wraps_total: int
    wraps_undetected: int
    stale_harmful: int
    stale_benign: int
    stale_records: int  # records made, including those beyond record_limit
    wraps: tuple[WrapEvent, ...]
    zap_events: tuple[ZapEvent, ...]
    stale_hits: tuple[StaleHit, ...]
    record_limit: int = DEFAULT_RECORD_LIMIT
    events_replayed: int = 0
    partial: bool = False

    def access_counts(self) -> dict[str, int]:
        """Access outcome counts by name."""
        return dict(zip(OUTCOMES, self.accesses, strict=True))
