"""The report as plain data: the JSON document and what every renderer reads.

The layout is versioned by ``REPORT_VERSION`` and described by
``kvmgen/schema/report.schema.json``. Keys come out in a fixed order and carry
no timestamps or machine details, so the same input gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from kvmgen.model.costs import COST_KEYS, SOURCES
from kvmgen.model.policy import HISTORICAL, NONE
from kvmgen.session import RunOutcome, Session
from kvmgen.stats import OUTCOMES, StaleHit
from kvmgen.version import __version__

REPORT_VERSION = 3  # 3: the trace digest is taken over event columns (digest version 2)
"""Bumped whenever a key is removed or changes meaning (adding keys does not bump it).

2: ``trace`` lost ``path`` and ``format``; ``trace.sha256`` is the content digest.
"""

# Metrics compared between the historical-bias run and the no-bias run.
DELTA_METRICS: tuple[str, ...] = (
    "wrap_zaps",
    "memslot_flush_zaps",
    "sptes_dropped",
    "ram_refaults",
    "mmio_refaults",
    "mmio_slow_paths",
    "wraps",
    "undetected_wraps",
    "harmful_stale_hits",
    "benign_stale_hits",
    "invalidation_cycles",
    "total_cycles",
)


def metrics(run: RunOutcome) -> dict[str, int]:
    """The headline numbers of a run, by the names ``DELTA_METRICS`` and gates use."""
    r = run.result
    counts = r.access_counts()
    return {
        "wrap_zaps": r.wrap_zaps,
        "memslot_flush_zaps": r.flush_zaps,
        "sptes_dropped": r.dropped_wrap_ram
        + r.dropped_wrap_mmio
        + r.dropped_flush_ram
        + r.dropped_flush_mmio,
        "ram_refaults": counts["ram_refault"],
        "mmio_refaults": counts["mmio_refault"],
        "mmio_slow_paths": counts["mmio_slow_path"],
        "wraps": r.wraps_total,
        "undetected_wraps": r.wraps_undetected,
        "harmful_stale_hits": r.stale_harmful,
        "benign_stale_hits": r.stale_benign,
        "invalidation_cycles": run.costs.invalidation,
        "total_cycles": run.costs.total,
    }


def _stale_dict(hit: StaleHit) -> dict[str, Any]:
    cache = None
    if hit.source == "vcpu_cache":
        cache = {
            "as": hit.cache_address_space,
            "generation": hit.cache_generation,
            "as0_generation": hit.cache_as0_generation,
        }
    return {
        "update": hit.update,
        "event": hit.event,
        "during": None if hit.sub < 0 else hit.sub,
        "as": hit.address_space,
        "gfn": hit.gfn,
        "vcpu": hit.vcpu,
        "source": hit.source,
        "kind": hit.kind,
        "race": hit.race,
        "count": hit.count,
        "spte": {"generation": hit.spte_generation, "stored": hit.spte_stored},
        "cache": cache,
        "current": {
            "generation": hit.current_generation,
            "mmio_generation": hit.current_mmio_generation,
        },
    }


def run_dict(run: RunOutcome) -> dict[str, Any]:
    """One run of the report (model.md section 5 keys first)."""
    spec, r = run.spec, run.result
    era = spec.era
    return {
        "era": era.name,
        "era_variant": era.variant,
        "era_versions": era.versions,
        "kernel": spec.kernel,
        "address_spaces": spec.address_spaces,
        "policies": list(spec.policies),
        "bias": spec.bias,
        "as_shipped": spec.as_shipped,
        "initial_generation": list(spec.init_generations),
        "warnings": list(spec.warnings),
        "updates": r.updates,
        "bumps": list(r.bumps),
        "final_generation": list(r.final_generation),
        "wraps": [
            {
                "as": w.address_space,
                "update": w.update,
                "bump": w.bump,
                "detected": w.detected,
                "before": w.before,
                "after": w.after,
            }
            for w in r.wraps
        ],
        "wraps_total": r.wraps_total,
        "wraps_undetected": r.wraps_undetected,
        "zaps": {
            "wrap": r.wrap_zaps,
            "memslot_flush": r.flush_zaps,
            "dropped": {
                "wrap": {"ram": r.dropped_wrap_ram, "mmio": r.dropped_wrap_mmio},
                "memslot_flush": {"ram": r.dropped_flush_ram, "mmio": r.dropped_flush_mmio},
            },
            "events": [asdict(z) for z in r.zap_events],
        },
        "accesses": {**r.access_counts(), "total": sum(r.accesses)},
        "stale_hits": {
            "harmful": r.stale_harmful,
            "benign": r.stale_benign,
            "records": r.stale_records,
            "list": [_stale_dict(h) for h in r.stale_hits],
        },
        "costs": run.costs.as_dict(),
        "records_truncated": {
            "wraps": r.wraps_total - len(r.wraps),
            "zap_events": r.wrap_zaps + r.flush_zaps - len(r.zap_events),
            "stale_hits": r.stale_records - len(r.stale_hits),
        },
        "events_replayed": r.events_replayed,
        "partial": r.partial,
    }


def _group_key(run: RunOutcome) -> tuple[object, ...]:
    s = run.spec
    return (s.era.name, s.era.variant, s.kernel, s.address_spaces)


def comparisons(session: Session) -> list[dict[str, Any]]:
    """Historical bias minus no bias, per era (the headline of model.md section 4)."""
    out = []
    groups: dict[tuple[object, ...], list[RunOutcome]] = {}
    for run in session.runs:
        groups.setdefault(_group_key(run), []).append(run)
    for (era, variant, kernel, nas), runs in groups.items():
        hist = next((r for r in runs if HISTORICAL in r.spec.policies), None)
        none = next((r for r in runs if NONE in r.spec.policies), None)
        if hist is None or none is None:
            continue
        a, b = metrics(hist), metrics(none)
        out.append(
            {
                "era": era,
                "era_variant": variant,
                "kernel": kernel,
                "address_spaces": nas,
                "historical_bias": hist.spec.bias,
                "same_run": hist is none,
                "delta": {m: a[m] - b[m] for m in DELTA_METRICS},
            }
        )
    return out


def cost_model_dict(session: Session) -> dict[str, Any]:
    """Unit costs used, with their cycle equivalents and sources."""
    model = session.cost_model
    out: dict[str, Any] = {}
    for key in COST_KEYS:
        entry: dict[str, Any] = {"value": getattr(model, key), "source": SOURCES[key]}
        if key != "clock_ghz":
            entry["cycles"] = model.cycles(key)
        out[key] = entry
    return out


def build_document(
    session: Session, *, partial: bool = False, observed: Sequence[Any] = ()
) -> dict[str, Any]:
    """The whole report for one session.

    ``observed`` holds observed-vs-modelled comparisons (``kvmgen.probe.compare``)
    for a trace that carries what a real kernel did; they become the
    ``observed`` key, which other reports do not have.
    """
    document = {
        "kvmgen_report": REPORT_VERSION,
        "generator": f"kvmgen {__version__}",
        # Content identity only (no path, no format): the same trace gives the same
        # bytes whether read as YAML, JSON, JSON Lines, from stdin or compiled.
        "trace": {"sha256": session.digest(), "events": session.event_count()},
        "outcomes": list(OUTCOMES),
        "cost_model": cost_model_dict(session),
        "runs": [run_dict(run) for run in session.runs],
        "comparisons": comparisons(session),
        "skipped": [
            {"era": s.era, "kernel": s.kernel, "reason": s.reason} for s in session.skipped
        ],
        "partial": partial or session.partial or any(run.result.partial for run in session.runs),
    }
    if observed:
        document["observed"] = [comparison.as_dict() for comparison in observed]
    return document
