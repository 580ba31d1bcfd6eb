"""Observation records: what a real kernel reported while a trace was captured.

The optional top-level key ``observations`` of a trace (format version 1) holds a
list of mappings, each with a ``kind``; :mod:`kvmgen.trace.validate.observations`
checks them and builds these records:

- ``capture`` (at most one): where the observations come from and what they
  cover: ``source``, ``kernel``, ``first_update``/``last_update`` (the updates the
  capture saw completely), ``zap_events`` (the zap tracepoints that were enabled:
  an update in the window with no observed zap really had none), ``from_vm_start``
  (the capture began at VM creation, so absolute generations are comparable),
  ``lost`` (events the ring buffer dropped).
- ``zap``: a zap tracepoint fired during (or after) update ``update``: ``event``
  (``kvm_mmu_zap_all_fast`` or ``kvm_mmu_invalidate_zap_all_pages``), ``valid_gen``,
  ``used_pages``.
- ``access``: what the MMU reported for the access event at index ``access`` of
  ``events``: ``outcome`` (``slow_path``, ``fast_path``, ``refault``, ``cache_hit``),
  and the generations it printed: ``kvm_gen``/``spte_gen`` (check_mmio_spte),
  ``gen`` (mark_mmio_spte).

Every observation may carry ``t`` (seconds) and ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass

ZAP_EVENTS = ("kvm_mmu_zap_all_fast", "kvm_mmu_invalidate_zap_all_pages")
"""The tracepoints that report a zap of the whole MMU (kernel-semantics.md section 5)."""

ACCESS_OUTCOMES = ("slow_path", "fast_path", "refault", "cache_hit")
"""What the kernel's MMIO fault path did for one access, as its tracepoints show it."""


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """Where the observations come from and which updates they cover completely."""

    index: int
    line: int
    source: str | None = None
    kernel: str | None = None
    first_update: int | None = None
    last_update: int | None = None
    zap_events: tuple[str, ...] = ()
    from_vm_start: bool = False
    lost: int = 0
    t: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ZapSeen:
    """A zap tracepoint that fired; ``update`` is the last update before it (0 if none)."""

    index: int
    line: int
    update: int
    event: str
    valid_gen: int | None = None
    used_pages: int | None = None
    t: float | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AccessSeen:
    """What the kernel reported for one access event (``access`` is its index in events)."""

    index: int
    line: int
    access: int
    update: int
    outcome: str
    kvm_gen: int | None = None
    spte_gen: int | None = None
    gen: int | None = None
    t: float | None = None
    note: str | None = None


Observation = CaptureInfo | ZapSeen | AccessSeen
