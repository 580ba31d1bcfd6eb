"""Unit costs and run pricing (kvmgen/model/costs.py), per model.md section 4.

Cycle figures are worked out by hand: at 3.0 GHz one ns is 3 cycles and one us
3,000 cycles.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pytest

from kvmgen.errors import UsageError
from kvmgen.model.costs import (
    COST_KEYS,
    SOURCES,
    CostBreakdown,
    CostModel,
    load_costs,
    run_costs,
)
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.stats import OUTCOMES, ReplayResult


def test_defaults_in_their_own_units() -> None:
    model = CostModel()
    assert model.clock_ghz == 3.0
    assert model.mmio_exit_cycles == 8796.0  # kvm-unit-tests mmio-no-eventfd
    assert model.zap_fast_per_spte_ns == 41.2  # 21.6 ms / 524,288 pages
    assert model.zap_walk_per_spte_ns == 87.9  # 46.1 ms / 524,288 pages
    assert model.memslot_bump_us == 33.0


def test_published_zap_figures_per_page() -> None:
    pages = (2 << 30) // 4096  # a 2 GiB guest
    assert pages == 524_288
    assert CostModel().zap_fast_per_spte_ns == pytest.approx(21.6e6 / pages, abs=0.05)
    assert CostModel().zap_walk_per_spte_ns == pytest.approx(46.1e6 / pages, abs=0.05)


@pytest.mark.parametrize(
    ("name", "cycles"),
    [
        ("mmio_exit_cycles", 8796.0),
        ("fault_walk_cycles", 3000.0),
        ("zap_fixed_us", 15_000.0),  # 5 us
        ("zap_fast_per_spte_ns", 123.6),  # 41.2 ns
        ("zap_walk_per_spte_ns", 263.7),  # 87.9 ns
        ("memslot_bump_us", 99_000.0),  # 33 us
    ],
)
def test_default_conversions(name: str, cycles: float) -> None:
    assert CostModel().cycles(name) == pytest.approx(cycles, rel=1e-12)


@pytest.mark.parametrize(
    ("name", "cycles"),
    [
        ("mmio_exit_cycles", 8796.0),  # already cycles: unchanged
        ("fault_walk_cycles", 3000.0),
        ("zap_fixed_us", 10_000.0),
        ("zap_fast_per_spte_ns", 82.4),
        ("zap_walk_per_spte_ns", 175.8),
        ("memslot_bump_us", 66_000.0),
    ],
)
def test_clock_override_changes_time_based_costs_only(name: str, cycles: float) -> None:
    assert CostModel(clock_ghz=2.0).cycles(name) == pytest.approx(cycles, rel=1e-12)


def test_every_cost_has_a_source() -> None:
    assert tuple(f.name for f in fields(CostModel)) == COST_KEYS
    assert set(SOURCES) == set(COST_KEYS)
    assert all(text.strip() for text in SOURCES.values())
    assert "clock_ghz" in COST_KEYS


# ---- load_costs


def write(tmp_path: Path, text: str, name: str = "costs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_costs_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "clock_ghz: 2\nmmio_exit_cycles: 1000\nzap_fixed_us: 0.5\n")
    model = load_costs(path)
    assert model == replace(CostModel(), clock_ghz=2.0, mmio_exit_cycles=1000.0, zap_fixed_us=0.5)
    assert isinstance(model.clock_ghz, float)
    assert model.cycles("zap_fixed_us") == pytest.approx(1000.0)
    assert model.cycles("mmio_exit_cycles") == 1000.0


def test_load_costs_on_top_of_a_base(tmp_path: Path) -> None:
    base = CostModel(fault_walk_cycles=1234.0)
    model = load_costs(write(tmp_path, "memslot_bump_us: 0\n"), base)
    assert model.fault_walk_cycles == 1234.0
    assert model.memslot_bump_us == 0.0
    assert model.mmio_exit_cycles == 8796.0


def test_load_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_costs(write(tmp_path, "")) == CostModel()
    assert load_costs(write(tmp_path, "# nothing\n")) == CostModel()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("mmio_exit: 5\n", "unknown cost 'mmio_exit'"),
        ("mmio_exit_cycles: -1\n", "mmio_exit_cycles"),
        ("zap_fixed_us: -0.5\n", "zap_fixed_us"),
        ("mmio_exit_cycles: true\n", "mmio_exit_cycles"),
        ("fault_walk_cycles: no\n", "fault_walk_cycles"),
        ("fault_walk_cycles: '3000'\n", "fault_walk_cycles"),
        ("fault_walk_cycles: null\n", "fault_walk_cycles"),
        ("fault_walk_cycles: [1, 2]\n", "fault_walk_cycles"),
        ("- 1\n- 2\n", "mapping"),
        ("just a string\n", "mapping"),
        ("42\n", "mapping"),
        ("clock_ghz: 0\n", "clock_ghz"),
        ("a: [1, 2\n", "not valid YAML"),
        ("a: b: c\n", "not valid YAML"),
    ],
)
def test_load_costs_errors_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text, "my-costs.yaml")
    with pytest.raises(UsageError) as info:
        load_costs(path)
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "\n" not in message
    assert int(info.value.exit_code) == 2


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "clock_ghz: 3\nzap_fixed_us: [1, 2\n")
    with pytest.raises(UsageError) as info:
        load_costs(path)
    assert str(info.value).startswith(f"{path}:")


# ---- run_costs on a hand-built result


def result(**overrides: object) -> ReplayResult:
    counts = {
        "ram_fault": 2,
        "ram_refault": 3,
        "ram_access": 10,
        "mmio_slow_path": 4,
        "mmio_fast_path": 5,
        "mmio_refault": 6,
        "cache_hit": 7,
    }
    base = dict(
        updates=5,
        bumps=(3, 4),
        final_generation=(6, 9),
        accesses=tuple(counts[name] for name in OUTCOMES),
        wrap_zaps=2,
        flush_zaps=1,
        dropped_wrap_ram=6,
        dropped_wrap_mmio=4,
        dropped_flush_ram=15,
        dropped_flush_mmio=5,
        wraps_total=0,
        wraps_undetected=0,
        stale_harmful=0,
        stale_benign=0,
        stale_records=0,
        wraps=(),
        zap_events=(),
        stale_hits=(),
    )
    base.update(overrides)
    return ReplayResult(**base)  # type: ignore[arg-type]


def test_run_costs_fast_zaps_exact() -> None:
    costs = run_costs(CostModel(), ERAS["E5"], result())
    # exit 8,796; walk 3,000; zap fixed 15,000; fast per SPTE 123.6; bump 99,000
    assert costs == CostBreakdown(
        mmio_exits=(5 + 7) * 8796,  # 105,552
        mmio_slow_paths=4 * (3000 + 8796),  # 47,184
        mmio_refaults=6 * (3000 + 8796),  # 70,776
        ram_faults=2 * 3000,  # 6,000
        ram_refaults=3 * 3000,  # 9,000
        wrap_zaps=2 * 15_000 + 1236,  # 10 SPTEs x 123.6 = 1,236
        memslot_flushes=15_000 + 2472,  # 20 SPTEs x 123.6 = 2,472
        memslot_bumps=7 * 99_000,  # 693,000
    )
    assert costs.invalidation == 31_236 + 17_472 + 9_000 + 70_776  # 128,484
    assert costs.total == 980_220
    assert costs.as_dict() == {
        "mmio_exits": 105_552,
        "mmio_slow_paths": 47_184,
        "mmio_refaults": 70_776,
        "ram_faults": 6_000,
        "ram_refaults": 9_000,
        "wrap_zaps": 31_236,
        "memslot_flushes": 17_472,
        "memslot_bumps": 693_000,
        "invalidation": 128_484,
        "total": 980_220,
    }
    assert all(isinstance(v, int) for v in costs.as_dict().values())


def test_run_costs_walk_style_per_era() -> None:
    # E6's wrap zap walks the MMIO list (87.9 ns = 263.7 cycles per SPTE); its memslot
    # flush is fast, while the 5.1/5.2 variant walks the slot's RAM SPTEs.
    e6 = run_costs(CostModel(), ERAS["E6"], result())
    assert e6.wrap_zaps == 30_000 + 2637  # 10 x 263.7
    assert e6.memslot_flushes == 15_000 + 2472
    variant = run_costs(CostModel(), E6_SLOT_FLUSH, result())
    assert variant.wrap_zaps == 32_637
    assert variant.memslot_flushes == 15_000 + 5274  # 20 x 263.7
    # E0 walks for its flushes
    e0 = run_costs(CostModel(), ERAS["E0"], result())
    assert e0.memslot_flushes == 20_274


def test_run_costs_clock_override() -> None:
    costs = run_costs(CostModel(clock_ghz=2.0), ERAS["E5"], result())
    assert costs.mmio_exits == 105_552  # cycles figures do not move
    assert costs.mmio_slow_paths == 47_184
    assert costs.ram_faults == 6_000
    assert costs.wrap_zaps == 2 * 10_000 + 824  # 10 x 82.4
    assert costs.memslot_flushes == 10_000 + 1648  # 20 x 82.4
    assert costs.memslot_bumps == 7 * 66_000


def test_run_costs_rounds_to_whole_cycles() -> None:
    # 3 dropped SPTEs x 123.6 = 370.8 -> 371
    costs = run_costs(
        CostModel(),
        ERAS["E12"],
        result(
            wrap_zaps=1,
            dropped_wrap_ram=3,
            dropped_wrap_mmio=0,
            flush_zaps=0,
            dropped_flush_ram=0,
            dropped_flush_mmio=0,
        ),
    )
    assert costs.wrap_zaps == 15_371
    assert costs.memslot_flushes == 0


def test_run_costs_of_nothing_is_zero() -> None:
    empty = result(
        bumps=(0,),
        accesses=(0,) * 7,
        wrap_zaps=0,
        flush_zaps=0,
        dropped_wrap_ram=0,
        dropped_wrap_mmio=0,
        dropped_flush_ram=0,
        dropped_flush_mmio=0,
    )
    costs = run_costs(CostModel(), ERAS["E12"], empty)
    assert costs.total == 0
    assert costs.invalidation == 0


def test_zap_with_nothing_dropped_still_costs_the_fixed_part() -> None:
    costs = run_costs(
        CostModel(),
        ERAS["E12"],
        result(
            wrap_zaps=3,
            dropped_wrap_ram=0,
            dropped_wrap_mmio=0,
            flush_zaps=2,
            dropped_flush_ram=0,
            dropped_flush_mmio=0,
        ),
    )
    assert costs.wrap_zaps == 45_000
    assert costs.memslot_flushes == 30_000


def test_breakdown_properties() -> None:
    b = CostBreakdown(
        mmio_exits=1,
        mmio_slow_paths=2,
        mmio_refaults=4,
        ram_faults=8,
        ram_refaults=16,
        wrap_zaps=32,
        memslot_flushes=64,
        memslot_bumps=128,
    )
    assert b.invalidation == 32 + 64 + 16 + 4
    assert b.total == 255
    assert list(b.as_dict()) == [
        "mmio_exits",
        "mmio_slow_paths",
        "mmio_refaults",
        "ram_faults",
        "ram_refaults",
        "wrap_zaps",
        "memslot_flushes",
        "memslot_bumps",
        "invalidation",
        "total",
    ]
