"""Plain-language reasons for each stale hit, wrap and zap (``--events`` and the tables)."""

from __future__ import annotations

from typing import Any

from kvmgen.model.eras import Era
from kvmgen.session import RunOutcome
from kvmgen.stats import StaleHit, WrapEvent, ZapEvent

_SCOPE_TEXT = {
    "all_sptes": "every SPTE of every address space",
    "mmio_sptes": "every MMIO SPTE of every address space",
    "slot_ram_sptes": "the RAM SPTEs of the slot's old range",
}


def stale_reason(hit: StaleHit, era: Era) -> str:
    """Why this access was served as MMIO although memslots changed."""
    gfn = f"gfn {hit.gfn:#x} (AS {hit.address_space})"
    if hit.kind == "harmful":
        effect = f"{gfn} is RAM now, so the guest's access exits to the VMM as MMIO"
    else:
        effect = f"{gfn} is still MMIO, so the result is right only by luck"
    race = f" inside the {hit.race} window of update {hit.update}" if hit.race else ""
    if hit.source == "vcpu_cache":
        if not era.cache_has_generation:
            how = (
                f"vCPU {hit.vcpu}'s MMIO cache holds {gfn}; {era.name}'s cache carries no "
                "generation, so nothing invalidates it"
            )
        else:
            how = (
                f"vCPU {hit.vcpu}'s MMIO cache was filled in AS {hit.cache_address_space} "
                f"at generation {hit.cache_generation:#x} and is checked only against AS 0's "
                f"generation, which still reads {hit.cache_as0_generation:#x}"
            )
    elif not era.has_mmio_generation:
        how = f"the MMIO SPTE for {gfn} carries no generation ({era.name}), so it is trusted"
    else:
        how = (
            f"the MMIO SPTE was made at generation {hit.spte_generation:#x} and stores "
            f"{hit.spte_stored:#x}; the current generation {hit.current_generation:#x} "
            f"checks as {hit.current_mmio_generation:#x}, which matches"
        )
    return f"{how}{race}: {effect}"


def wrap_reason(wrap: WrapEvent, era: Era) -> str:
    """Why a wrap was or was not caught."""
    base = (
        f"AS {wrap.address_space}'s {era.nominal_width}-bit generation went "
        f"{wrap.before:#x} -> {wrap.after:#x} at its bump {wrap.bump}"
    )
    if wrap.detected:
        return base + "; a wrap zap fired for this address space, so no old SPTE survives it"
    return (
        base + "; no wrap zap fired for this address space since its previous wrap, so MMIO "
        "SPTEs stamped one period ago pass the check again (undetected wrap)"
    )


def zap_reason(zap: ZapEvent, era: Era) -> str:
    """What triggered a zap and what it dropped."""
    what = _SCOPE_TEXT[zap.scope]
    if zap.kind == "wrap":
        cause = f"{era.name}'s wrap test fired on AS {zap.address_space}'s bump {zap.bump}"
    else:
        cause = f"update {zap.update} changed the memslot layout of AS {zap.address_space}"
    return f"{cause}: dropped {what} ({zap.dropped_ram} RAM, {zap.dropped_mmio} MMIO SPTEs)"


def event_records(run: RunOutcome, notes: dict[int, str]) -> list[dict[str, Any]]:
    """Per-event JSON Lines records of one run: zaps, wraps and stale hits, each with a why.

    ``notes`` maps trace event index -> the event's ``note`` text.
    """
    spec, era = run.spec, run.spec.era
    head = {
        "era": era.name,
        "kernel": spec.kernel,
        "policies": list(spec.policies),
        "bias": spec.bias,
    }
    out: list[dict[str, Any]] = []
    for zap in run.result.zap_events:
        out.append(
            {
                **head,
                "type": "zap",
                "kind": zap.kind,
                "scope": zap.scope,
                "as": zap.address_space,
                "update": zap.update,
                "bump": zap.bump,
                "dropped_ram": zap.dropped_ram,
                "dropped_mmio": zap.dropped_mmio,
                "why": zap_reason(zap, era),
            }
        )
    for wrap in run.result.wraps:
        out.append(
            {
                **head,
                "type": "wrap",
                "as": wrap.address_space,
                "update": wrap.update,
                "bump": wrap.bump,
                "detected": wrap.detected,
                "before": wrap.before,
                "after": wrap.after,
                "why": wrap_reason(wrap, era),
            }
        )
    for hit in run.result.stale_hits:
        out.append(
            {
                **head,
                "type": "stale_hit",
                "kind": hit.kind,
                "source": hit.source,
                "race": hit.race,
                "update": hit.update,
                "event": hit.event,
                "during": None if hit.sub < 0 else hit.sub,
                "as": hit.address_space,
                "gfn": hit.gfn,
                "vcpu": hit.vcpu,
                "count": hit.count,
                "spte_generation": hit.spte_generation,
                "spte_stored": hit.spte_stored,
                "current_generation": hit.current_generation,
                "current_mmio_generation": hit.current_mmio_generation,
                "note": notes.get(hit.event),
                "why": stale_reason(hit, era),
            }
        )
    out.sort(key=lambda rec: (rec["update"], _ORDER[rec["type"]]))
    return out


_ORDER = {"zap": 0, "wrap": 1, "stale_hit": 2}
