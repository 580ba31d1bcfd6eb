"""Bias and width sweeps (kvmgen.analysis.sweep): ranges, derived eras, engine = reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.analysis.sweep import parse_range, run_sweep, with_width
from kvmgen.engine.replay import replay_engine
from kvmgen.errors import UsageError
from kvmgen.inputs import open_trace
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.reference.replay import replay_reference
from tests.conftest import TRACES
from tests.property.strategies import traces

pytestmark = pytest.mark.usefixtures("warm_engine")
WITH_GEN = tuple(e for e in (*ERAS.values(), E6_SLOT_FLUSH) if e.has_mmio_generation)


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("0:100:50", [0, 50, 100]),
        ("0:99:50", [0, 50]),
        ("12:14", [12, 13, 14]),
        ("150", [150]),
        ("0x10:0x12", [16, 17, 18]),
        ("1,5,1,3:4", [1, 5, 3, 4]),
    ],
)
def test_parse_range(text, values):
    assert parse_range(text, "--bias") == values


@pytest.mark.parametrize("text", ["", "a:b", "5:1", "0:10:0", "-1:5", "0:100000:1"])
def test_parse_range_rejects(text):
    with pytest.raises(UsageError, match="--bias"):
        parse_range(text, "--bias")


def test_with_width_follows_each_era():
    e1 = with_width(ERAS["E1"], 12)
    assert (e1.check_mask, e1.stamp_mask, e1.wrap_threshold) == (0xFFF, 0xFFF, 0xFFE)
    assert with_width(ERAS["E2"], 12).wrap_threshold == 0xFFF
    e5 = with_width(ERAS["E5"], 16)
    assert (e5.nominal_width, e5.check_mask, e5.stamp_mask) == (16, 0xFFFF, 0xFFFE)
    e6 = with_width(ERAS["E6"], 24)
    assert (e6.check_mask, e6.stamp_mask) == ((1 << 24) - 1, 0x3FF)  # the bug keeps 10 bits
    assert with_width(ERAS["E8"], 8).stamp_mask == 0xFF
    e12 = with_width(ERAS["E12"], 14)
    assert e12.stamp_mask == e12.check_mask == 0x3FFF and "width 14" in e12.variant
    with pytest.raises(UsageError, match="no MMIO generation"):
        with_width(ERAS["E0"], 12)
    with pytest.raises(UsageError, match="--width"):
        with_width(ERAS["E12"], 2)


@pytest.mark.parametrize("era", WITH_GEN, ids=lambda e: e.name + (e.variant or ""))
def test_width_sweep_wraps_scale_with_the_period(era):
    """Four periods at 10 bits are two periods at 11 bits: the wrap count halves."""
    nas = era.default_address_spaces
    (spec,) = resolve_runs(with_width(era, 10), nas, [parse_policy("none")])
    from kvmgen.model.genmath import GenMath

    period = GenMath(spec).period
    text = (
        "kvmgen: 1\nevents:\n  - {op: create, slot: 0, gfn: 0, pages: 1}\n"
        f"  - {{op: flags, slot: 0, repeat: {4 * period - 1}}}\n"
    )
    trace = open_trace(text.encode(), name="p.yaml")
    sweep = run_sweep(trace, era, nas, widths=[10, 11], policy=parse_policy("none"))
    assert [row.metrics["wraps"] for row in sweep.rows] == [4, 2]


@settings(max_examples=60)
@given(
    era=st.sampled_from(WITH_GEN),
    width=st.integers(4, 16),
    bias=st.sampled_from(("none", "historical", "3", "literal:5")),
    data=st.data(),
)
def test_engine_equals_reference_at_any_width(era, width, bias, data):
    nas = data.draw(st.sampled_from(sorted(era.allowed_address_spaces)))
    (spec,) = resolve_runs(with_width(era, width), nas, [parse_policy(bias)])
    trace = data.draw(traces(nas, big_bumps=(1 << width, (1 << width) - 1)))
    assert replay_engine(trace, spec) == replay_reference(trace, spec)


def test_bias_sweep_rows_are_single_replays():
    trace = open_trace(TRACES / "seed-stale-gen0.yaml")
    sweep = run_sweep(trace, ERAS["E3"], 1, biases=[0, 2, 150])
    assert [row.value for row in sweep.rows] == [0, 2, 150]
    for row in sweep.rows:
        (spec,) = resolve_runs(ERAS["E3"], 1, [parse_policy(str(row.value))])
        result = replay_engine(trace, spec)
        assert row.metrics["harmful_stale_hits"] == result.stale_harmful
        assert row.metrics["wraps"] == result.wraps_total
    assert sweep.rows[0].metrics["harmful_stale_hits"] == 1  # the seed's case, bias 0 only
    assert sweep.rows[2].metrics["harmful_stale_hits"] == 0


def test_literal_bias_sweep():
    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    sweep = run_sweep(trace, ERAS["E12"], 2, biases=[0, 150], literal=True)
    assert all(row.spec.literal for row in sweep.rows)
    masked = run_sweep(trace, ERAS["E12"], 2, biases=[150])
    lit, mask = sweep.rows[1].metrics, masked.rows[0].metrics
    assert lit["mmio_refaults"] > mask["mmio_refaults"]
    assert lit["wraps"] == mask["wraps"]


def test_sweep_e0_bias_is_refused():
    trace = open_trace(TRACES / "seed-stale-gen0.yaml")
    with pytest.raises(UsageError, match="no MMIO generation"):
        run_sweep(trace, ERAS["E0"], 1, biases=[0, 1])
