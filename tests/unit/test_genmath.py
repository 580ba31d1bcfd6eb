"""The closed-form generation arithmetic (model/genmath.py) against the reference model.

The forecast, the search and the plots use :class:`GenMath` instead of replaying;
here the reference replays raw bumps and flags updates from every starting phase
a bias can give, and GenMath must predict each generation, wrap and wrap zap.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, BumpScheme
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import Policy, resolve_runs
from kvmgen.reference.replay import replay_reference
from kvmgen.trace.records import Event, Op, Trace, VmHeader

ALL_ERAS = [*ERAS.values(), E6_SLOT_FLUSH]


@st.composite
def runs(draw):
    era = draw(st.sampled_from(ALL_ERAS))
    nas = draw(st.sampled_from(sorted(era.allowed_address_spaces)))
    literal = era.bump_scheme == BumpScheme.BIT63 and draw(st.booleans())
    # Any bias puts the start at any phase of the truncated generation.
    bias = draw(st.integers(0, (1 << max(era.nominal_width, 1)) + 300))
    name = f"literal:{bias}" if literal else str(bias)
    (spec,) = resolve_runs(era, nas, [Policy(name, bias, literal=literal)])
    return spec


def _trace(events):
    return Trace(path="g", format="yaml", version=1, vm=VmHeader(), events=tuple(events))


def _wrap_bumps(math: GenMath, g0: int, count: int) -> list[int]:
    return [
        k for k in range(1, count + 1) if math.nominal_after(g0, k) < math.nominal_after(g0, k - 1)
    ]


@given(spec=runs(), a=st.integers(0, 1), count=st.integers(1, 700))
def test_raw_bumps_follow_genmath(spec, a, count) -> None:
    a = min(a, spec.address_spaces - 1)
    math = GenMath(spec)
    g0 = spec.init_generations[a]
    result = replay_reference(
        _trace([Event(index=0, op=Op.BUMP, address_space=a, repeat=count)]), spec
    )
    assert result.final_generation[a] == math.advance(g0, count)
    if not math.has_generation:
        assert result.wrap_zaps == 0 and result.wraps_total == 0
        return
    wraps = _wrap_bumps(math, g0, count)
    assert [w.bump for w in result.wraps] == wraps
    zaps = [z.bump for z in result.zap_events if z.kind == "wrap"]
    # Every bump is its own ioctl: E1's once-per-ioctl test runs after each.
    expected = [k for k in range(1, count + 1) if math.wrap_test(math.advance(g0, k))]
    assert zaps == expected
    for hi in wraps:
        lo = max((w for w in wraps if w < hi), default=0)
        assert math.zaps_between(g0, lo, hi, 1) == [k for k in expected if lo < k <= hi]
    assert [math.nominal(math.advance(g0, k)) for k in wraps] == [w.after for w in result.wraps]


@given(spec=runs(), count=st.integers(1, 400))
def test_flags_updates_follow_genmath(spec, count) -> None:
    """Updates of one bump each (create, then flags): E1 tests once per update."""
    math = GenMath(spec)
    g0 = spec.init_generations[0]
    events = [
        Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=1, flags=0),
        Event(index=1, op=Op.FLAGS, slot=0, repeat=count),
    ]
    result = replay_reference(_trace(events), spec)
    bumps = count + 1
    assert result.final_generation[0] == math.advance(g0, bumps)
    if not math.has_generation:
        return
    zaps = [z.bump for z in result.zap_events if z.kind == "wrap"]
    expected = [
        k
        for k in range(1, bumps + 1)
        if math.test_runs(k, 1) and math.wrap_test(math.advance(g0, k))
    ]
    assert zaps == expected
    assert result.wraps_total == len(_wrap_bumps(math, g0, bumps))


@given(spec=runs(), g_steps=st.integers(0, 2000))
def test_bumps_to_wrap_lands_on_the_wrap(spec, g_steps) -> None:
    math = GenMath(spec)
    if not math.has_generation:
        return
    g = math.advance(spec.init_generations[0], g_steps)
    k = math.bumps_to_wrap(g)
    assert math.nominal_after(g, k) < math.nominal_after(g, k - 1)
    assert all(math.nominal_after(g, j) > math.nominal_after(g, j - 1) for j in range(1, k))
