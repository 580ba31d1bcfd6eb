"""Unit costs and the modelled cycle cost of a run (model.md section 4).

Every unit cost is kept in the unit its source gives it in (cycles, ns, us) and
converted with one clock (3.0 GHz by default). A YAML file can override any of
them: ``kvmgen replay --costs FILE``; ``kvmgen costs`` prints the defaults and
their sources.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from kvmgen.errors import UsageError
from kvmgen.model.eras import Era, ZapStyle
from kvmgen.stats import ReplayResult

_TIME_UNITS = {"cycles": None, "ns": 1e-9, "us": 1e-6}


@dataclass(frozen=True)
class CostModel:
    """Unit costs; field names end in their unit."""

    clock_ghz: float = 3.0
    mmio_exit_cycles: float = 8796.0
    fault_walk_cycles: float = 3000.0
    zap_fixed_us: float = 5.0
    zap_fast_per_spte_ns: float = 41.2
    zap_walk_per_spte_ns: float = 87.9
    memslot_bump_us: float = 33.0

    def cycles(self, name: str) -> float:
        """The unit cost ``name`` in CPU cycles at this model's clock."""
        value = float(getattr(self, name))
        unit = name.rsplit("_", 1)[1]
        scale = _TIME_UNITS[unit]
        return value if scale is None else value * scale * self.clock_ghz * 1e9


SOURCES: dict[str, str] = {
    "clock_ghz": "kvmgen default; converts the time-based figures below",
    "mmio_exit_cycles": "kvm-unit-tests vmexit, pci-testdev mmio-no-eventfd (model.md section 4)",
    "fault_walk_cycles": "kvmgen choice (no public figure): EPT violation/misconfig handling "
    "with a page-table walk and SPTE install, about 1 us; a RAM (re)fault costs this, an MMIO "
    "slow path this plus an MMIO exit",
    "zap_fixed_us": "kvmgen choice (no public figure): TLB flush and reload requests to "
    "every vCPU per zap",
    "zap_fast_per_spte_ns": "fast invalidation: 21.6 ms for a 2 GiB (524,288-page) guest "
    "memslot delete+add (model.md section 4)",
    "zap_walk_per_spte_ns": "old page-by-page zap: 46.1 ms for the same 2 GiB guest "
    "(model.md section 4)",
    "memslot_bump_us": "KVM_SET_USER_MEMORY_REGION on 6.18.44, about 33 us per flags-only "
    "update (kernel-semantics.md section 11); charged per generation bump",
}

COST_KEYS: tuple[str, ...] = tuple(f.name for f in fields(CostModel))


def load_costs(path: str | Path, base: CostModel | None = None) -> CostModel:
    """Read overrides from a YAML mapping ``name: value``; unknown names are an error."""
    import yaml  # deferred: only needed when a cost file is given

    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UsageError(f"{path}{line}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of cost names to numbers")
    changes: dict[str, float] = {}
    for key, value in data.items():
        if key not in COST_KEYS:
            raise UsageError(
                f"{path}: unknown cost {key!r}: expected one of {', '.join(COST_KEYS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise UsageError(f"{path}: {key}: expected a number >= 0, got {value!r}")
        if key == "clock_ghz" and value <= 0:
            raise UsageError(f"{path}: clock_ghz: expected a number > 0, got {value!r}")
        changes[key] = float(value)
    return replace(base or CostModel(), **changes)


@dataclass(frozen=True)
class CostBreakdown:
    """Modelled cycles of one run, by what caused them."""

    mmio_exits: int
    mmio_slow_paths: int
    mmio_refaults: int
    ram_faults: int
    ram_refaults: int
    wrap_zaps: int
    memslot_flushes: int
    memslot_bumps: int

    @property
    def invalidation(self) -> int:
        """What invalidation costs: zaps, refaults after them, and failed-check refaults."""
        return self.wrap_zaps + self.memslot_flushes + self.ram_refaults + self.mmio_refaults

    @property
    def total(self) -> int:
        """Every modelled cycle of the run."""
        return sum(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, int]:
        """Components plus ``invalidation`` and ``total``, for reports."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["invalidation"] = self.invalidation
        out["total"] = self.total
        return out


def _per_spte(model: CostModel, style: ZapStyle) -> float:
    name = "zap_fast_per_spte_ns" if style == ZapStyle.FAST else "zap_walk_per_spte_ns"
    return model.cycles(name)


def run_costs(model: CostModel, era: Era, result: ReplayResult) -> CostBreakdown:
    """Price a run's counts with ``model``."""
    counts = result.access_counts()
    exit_ = model.cycles("mmio_exit_cycles")
    walk = model.cycles("fault_walk_cycles")
    fixed = model.cycles("zap_fixed_us")
    wrap_dropped = result.dropped_wrap_ram + result.dropped_wrap_mmio
    flush_dropped = result.dropped_flush_ram + result.dropped_flush_mmio
    return CostBreakdown(
        mmio_exits=round((counts["mmio_fast_path"] + counts["cache_hit"]) * exit_),
        mmio_slow_paths=round(counts["mmio_slow_path"] * (walk + exit_)),
        mmio_refaults=round(counts["mmio_refault"] * (walk + exit_)),
        ram_faults=round(counts["ram_fault"] * walk),
        ram_refaults=round(counts["ram_refault"] * walk),
        wrap_zaps=round(
            result.wrap_zaps * fixed + wrap_dropped * _per_spte(model, era.wrap_zap_style)
        ),
        memslot_flushes=round(
            result.flush_zaps * fixed + flush_dropped * _per_spte(model, era.flush_style)
        ),
        memslot_bumps=round(sum(result.bumps) * model.cycles("memslot_bump_us")),
    )
