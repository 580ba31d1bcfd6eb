"""The closed-form forecast (kvmgen.analysis.forecast, genmath) against the jitted engine."""

from __future__ import annotations

import pytest

from kvmgen.analysis.forecast import (
    forecast_run,
    forecast_space,
    parse_rate,
    trace_rates,
)
from kvmgen.engine.replay import replay_engine
from kvmgen.errors import UsageError
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.model.genmath import BIT63, GenMath
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.trace.records import Event, Op, SlotDecl, Trace, VmHeader

pytestmark = pytest.mark.usefixtures("warm_engine")

ALL_ERAS = (*ERAS.values(), E6_SLOT_FLUSH)
POLICIES = ("historical", "none", "1", "3", "150", "151", "literal:3", "literal:150")


def _specs():
    for era in ALL_ERAS:
        for nas in sorted(era.allowed_address_spaces):
            for text in POLICIES:
                for spec in resolve_runs(era, nas, [parse_policy(text)]):
                    yield pytest.param(spec, id=f"{era.name}{era.variant or ''}-{nas}-{text}")


def _flags_trace(a: int, repeat: int) -> Trace:
    """One create in address space ``a``, then ``repeat`` flags toggles: 1 bump per update."""
    return Trace(
        path="<forecast>",
        format="yaml",
        version=1,
        vm=VmHeader(),
        events=(
            Event(index=0, op=Op.CREATE, address_space=a, slot=0, gfn=0, pages=1, flags=0),
            Event(index=1, op=Op.FLAGS, address_space=a, slot=0, repeat=repeat),
        ),
    )


def _engine_wraps(spec, a, trace):
    result = replay_engine(trace, spec)
    wraps = [(w.bump, w.update, w.detected) for w in result.wraps if w.address_space == a]
    return result, wraps


@pytest.mark.parametrize("spec", list(_specs()))
def test_forecast_matches_engine_over_two_periods(spec):
    for a in range(spec.address_spaces):
        f = forecast_space(spec, a, bumps_per_update=1, bumps_per_second=30.0)
        if not spec.era.has_mmio_generation:
            assert f.first_wrap_bump is None
            result, wraps = _engine_wraps(spec, a, _flags_trace(a, 5000))
            assert wraps == []
            continue
        total = f.first_wrap_bump + 2 * f.period_bumps + 3
        result, wraps = _engine_wraps(spec, a, _flags_trace(a, total - 1))
        assert result.bumps[a] == total
        expected = [(k, k, det) for k, det in f.wraps_until(total)]
        assert wraps == expected
        assert len(expected) == 3
        # The closed-form generation is the engine's, bit 63 included.
        assert result.final_generation[a] == GenMath(spec).advance(spec.init_generations[a], total)
        assert f.first_wrap_seconds == pytest.approx(f.first_wrap_bump / 30.0)


@pytest.mark.parametrize(
    ("era", "nas", "policy"),
    [
        ("E1", 1, "historical"),
        ("E1", 1, "151"),
        ("E1", 1, "152"),
        ("E2", 1, "historical"),
        ("E3", 1, "historical"),
        ("E4", 2, "historical"),
        ("E5", 2, "historical"),
        ("E5", 2, "148"),
        ("E6", 2, "150"),
        ("E8", 2, "151"),
        ("E12", 1, "150"),
        ("E12", 2, "literal:150"),
        ("E12", 1, "literal:7"),
    ],
)
def test_two_bump_updates_match_engine(era, nas, policy):
    """Moves (2 bumps, one ioctl): E1's once-per-ioctl wrap test sees every other bump."""
    (spec,) = resolve_runs(ERAS[era], nas, [parse_policy(policy)])
    for a in range(nas):
        f = forecast_space(spec, a, bumps_per_update=2)
        moves = f.first_wrap_update + 3
        events = tuple(
            Event(index=i, op=Op.MOVE, address_space=a, slot=0, gfn=(i + 1) % 2)
            for i in range(moves)
        )
        vm = VmHeader(slots=(SlotDecl(slot=0, address_space=a, gfn=0, pages=1),))
        trace = Trace(path="<moves>", format="yaml", version=1, vm=vm, events=events)
        _, wraps = _engine_wraps(spec, a, trace)
        assert wraps[0] == (f.first_wrap_bump, f.first_wrap_update, f.first_detected)
        assert len(wraps) == 1


def test_known_numbers():
    """kernel-semantics.md section 6 and model.md section 6, through the forecast."""

    def first(era, nas, policy, a=0, b=1):
        (spec,) = resolve_runs(ERAS[era], nas, [parse_policy(policy)])
        return forecast_space(spec, a, bumps_per_update=b)

    assert first("E1", 1, "historical").first_zap_bumps == (149, 150)
    assert first("E1", 1, "historical").first_wrap_bump == 151
    assert first("E2", 1, "historical").first_zap_bumps == (150,)
    assert first("E3", 1, "historical").first_wrap_bump == 75
    e5 = [first("E5", 2, "historical", a) for a in (0, 1)]
    assert (e5[0].first_wrap_bump, e5[0].first_detected, e5[0].later_detected) == (38, False, False)
    assert (e5[1].first_wrap_bump, e5[1].first_detected) == (37, True)
    assert e5[0].period_bumps == 262_144
    e12 = first("E12", 1, "none")
    assert (e12.first_wrap_bump, e12.period_bumps) == (524_288, 524_288)
    assert first("E12", 1, "150").first_wrap_bump == 150
    # Delete-only ioctls on 3.11 (2 bumps each): the zap comes at ioctl 75.
    assert first("E1", 1, "historical", b=2).first_zap_bumps == (150,)


def test_literal_bit63_windows_match_engine():
    (spec,) = resolve_runs(ERAS["E12"], 2, [parse_policy("literal:150")])
    f = forecast_space(spec, 0)
    assert [w.after_bump for w in f.bit63] == [0, 75]
    for bumps, set_ in ((74, False), (75, True), (76, False)):
        result = replay_engine(_flags_trace(0, bumps - 1), spec)
        assert bool(result.final_generation[0] & BIT63) is set_
    assert spec.init_generations[0] & BIT63
    # Masked bias and none never rest with bit 63 set within the horizon.
    for text in ("150", "none"):
        (other,) = resolve_runs(ERAS["E12"], 2, [parse_policy(text)])
        assert forecast_space(other, 0).bit63 == ()


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("30/s", 30.0), ("2000/min", 2000 / 60), ("5/h", 5 / 3600), ("2/d", 2 / 86400), ("7", 7.0)],
)
def test_parse_rate(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "0/s", "-3/s", "3/fortnight", "abc", "inf/s"])
def test_parse_rate_rejects(text):
    with pytest.raises(UsageError, match="--rate"):
        parse_rate(text)


def test_trace_rates_need_timestamps():
    trace = _flags_trace(0, 10)
    with pytest.raises(UsageError, match="timestamps"):
        trace_rates(trace)
    stamped = Trace(
        path="<t>",
        format="yaml",
        version=1,
        vm=VmHeader(),
        events=(
            Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=1, flags=0, t=0.0),
            Event(index=1, op=Op.FLAGS, slot=0, repeat=99, t=10.0),
        ),
    )
    rates = trace_rates(stamped)
    assert (rates.updates, rates.bumps, rates.span_seconds) == (100, (100, 0), 10.0)
    (spec,) = resolve_runs(ERAS["E12"], 1, [parse_policy("none")])
    run = forecast_run(
        spec,
        updates_per_second=rates.updates_per_second,
        bumps_per_second=rates.bumps_per_second(1),
    )
    assert run.spaces[0].first_wrap_seconds == pytest.approx(524_288 / 10.0)
