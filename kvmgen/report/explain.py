"""Plain-language reasons for each stale hit, wrap and zap (``--events`` and the tables)."""

from __future__ import annotations

from typing import Any

from kvmgen.formatting import count, hexadecimal, join_words, plural
from kvmgen.model.eras import BumpScheme, Era, WrapCheckTiming, WrapTest
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import RunSpec
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
    race = f" inside the {hit.race} window of update {count(hit.update)}" if hit.race else ""
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
        how = f"The MMIO SPTE for {gfn} carries no generation ({era.name}), so it is trusted"
    else:
        how = (
            f"The MMIO SPTE was made at generation {hit.spte_generation:#x} and stores "
            f"{hit.spte_stored:#x}; the current generation {hit.current_generation:#x} "
            f"checks as {hit.current_mmio_generation:#x}, which matches"
        )
    return f"{how}{race}: {effect}"


def wrap_reason(wrap: WrapEvent, era: Era, spec: RunSpec | None = None) -> str:
    """Why a wrap was or was not caught (with ``spec``, why an address space is never zapped)."""
    base = (
        f"AS {wrap.address_space}'s {era.nominal_width}-bit generation went "
        f"{hexadecimal(wrap.before)} -> {hexadecimal(wrap.after)} at its bump {count(wrap.bump)}"
    )
    if wrap.detected:
        return base + "; a wrap zap fired for this address space, so no old SPTE survives it"
    never = never_zapped(spec, wrap.address_space) if spec is not None else None
    return (
        base + "; no wrap zap fired for this address space since its previous wrap, so MMIO "
        "SPTEs stamped one period ago pass the check again (undetected wrap)"
        + (f". {never[0].upper()}{never[1:]}" if never else "")
    )


def zap_reason(zap: ZapEvent, era: Era) -> str:
    """What triggered a zap and what it dropped."""
    what = _SCOPE_TEXT[zap.scope]
    if zap.kind == "wrap":
        cause = f"{era.name}'s wrap test fired on AS {zap.address_space}'s bump {count(zap.bump)}"
    else:
        cause = f"update {count(zap.update)} changed the memslot layout of AS {zap.address_space}"
    return (
        f"{cause}: dropped {what} ({count(zap.dropped_ram)} RAM, "
        f"{plural(zap.dropped_mmio, 'MMIO SPTE')})"
    )


def wrap_test_text(era: Era, nas: int) -> str:
    """When ``era``'s wrap test runs and zaps: ``E1's wrap test runs once per ioctl ...``."""
    width = f"{era.nominal_width}-bit generation"
    if era.wrap_test == WrapTest.AT_LEAST:
        fires = f"the {width} is at least {hexadecimal(era.wrap_threshold)}"
    elif era.bump_scheme == BumpScheme.BIT63 and nas > 1:
        fires = f"the {width} is below {nas}"
    else:
        fires = f"the {width} is 0"
    runs = {
        WrapCheckTiming.PER_IOCTL_AFTER_PUBLISH: "runs once per ioctl",
        WrapCheckTiming.PER_BUMP_AFTER_PUBLISH: "runs after every bump",
        WrapCheckTiming.PER_BUMP_BEFORE_PUBLISH: "runs on every bump",
    }.get(era.wrap_timing, "never runs")
    return f"{era.name}'s wrap test {runs} and zaps when {fires}"


def never_zapped(spec: RunSpec, address_space: int) -> str | None:
    """Why no wrap of ``address_space`` can ever be zapped in this run, when the era's
    arithmetic rules it out from the start (E5: an address space whose generation
    moves by 4 from a value that is not a multiple of 4 never reads 0); else None."""
    era = spec.era
    if not era.has_mmio_generation or era.wrap_test != WrapTest.LOW_BITS_ZERO:
        return None
    math = GenMath(spec)
    ignore = spec.address_spaces - 1 if era.bump_scheme == BumpScheme.BIT63 else 0
    start = math.nominal(spec.init_generations[address_space])
    # The values it takes are start + k*step (mod 2^W, a multiple of step).
    if any((value - start) % math.step == 0 for value in range(ignore + 1)):
        return None
    values = join_words([str(v) for v in range(ignore + 1)]).replace(" and ", " or ")
    return (
        f"AS {address_space}'s {era.nominal_width}-bit generation starts at "
        f"{hexadecimal(start)} and moves by {math.step} per bump, so it never reads {values}, "
        f"the only value on which {era.name}'s wrap test zaps: none of its wraps is zapped"
    )


def wrap_zap_notes(run: RunOutcome) -> list[str]:
    """Why a run has more wrap zaps than detected wraps, one line per address space.

    E1 tests once per ioctl and zaps whenever the generation is at or above its
    threshold, so it zaps on the last ioctls before a wrap, not on the wrap itself.
    Nothing is said when the records were truncated (the counts would not match).
    """
    r, spec = run.result, run.spec
    if len(r.zap_events) != r.wrap_zaps + r.flush_zaps or len(r.wraps) != r.wraps_total:
        return []
    out = []
    for a in range(spec.address_spaces):
        zaps = [z for z in r.zap_events if z.kind == "wrap" and z.address_space == a]
        wraps = [w for w in r.wraps if w.address_space == a]
        detected = sum(1 for w in wraps if w.detected)
        if len(zaps) <= detected:
            continue
        shown = [count(z.update) for z in zaps[:4]] + (["..."] if len(zaps) > 4 else [])
        after = f"update {shown[0]}" if len(zaps) == 1 else f"updates {join_words(shown)}"
        if wraps:
            at = [count(w.update) for w in wraps[:3]] + (["..."] if len(wraps) > 3 else [])
            wrapped = f"before the wrap at update {join_words(at)}"
        else:
            wrapped = "and the trace ends before the wrap"
        out.append(
            f"{plural(len(zaps), 'wrap zap')} for {plural(len(wraps), 'wrap')} of AS {a}: "
            f"{wrap_test_text(spec.era, spec.address_spaces)}, which it is after {after}, "
            f"{wrapped}"
        )
    return out


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
                "why": wrap_reason(wrap, era, spec),
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
