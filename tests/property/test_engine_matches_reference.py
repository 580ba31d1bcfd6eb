"""The numba engine and the plain-Python reference agree on every counter and record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.engine import encode, replay
from kvmgen.engine.replay import replay_engine
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.reference.replay import replay_reference
from kvmgen.stats import DEFAULT_RECORD_LIMIT
from kvmgen.trace.records import Event, Op, Trace, VmHeader
from tests.property.strategies import ALL_ERAS, runs, traces

pytestmark = pytest.mark.usefixtures("warm_engine")


@st.composite
def scenario(draw, big_bumps=()):
    spec = draw(runs())
    trace = draw(traces(spec.address_spaces, big_bumps))
    limit = draw(st.sampled_from((1, 3, 10_000)))
    return spec, trace, limit


def engine_run(trace, spec, limit=DEFAULT_RECORD_LIMIT, *, compiled=True):
    """The engine's result, from its compiled kernels or from their code run as Python."""
    with pytest.MonkeyPatch.context() as patch:
        # Small blocks replay as Python (replay.PYTHON_WORK): both ways are checked.
        patch.setattr(replay, "PYTHON_WORK", -1 if compiled else 1 << 62)
        return replay_engine(trace, spec, record_limit=limit)


@given(case=scenario(), compiled_updates=st.booleans())
def test_engine_equals_reference(case, compiled_updates):
    spec, trace, limit = case
    expected = replay_reference(trace, spec, record_limit=limit)
    with pytest.MonkeyPatch.context() as patch:
        # The encoder's slot-table kernel, compiled or run as Python (few updates).
        patch.setattr(encode, "PYTHON_UPDATES", 0 if compiled_updates else 1 << 62)
        assert engine_run(trace, spec, limit) == expected
        assert engine_run(trace, spec, limit, compiled=False) == expected


# Whole periods of raw bumps: SPTEs stamped long ago meet their generation again
# (the seed's case, E5's blind address space, the E6+ residual window).
PERIODS = (2**17 - 2, 2**17, 2**18 - 1, 2**18, 2**18 + 1, 2**19 - 2, 2**19, 2**19 + 1)


@settings(max_examples=25)
@given(scenario(big_bumps=PERIODS))
def test_engine_equals_reference_across_whole_periods(case):
    spec, trace, limit = case
    expected = replay_reference(trace, spec, record_limit=limit)
    assert engine_run(trace, spec, limit) == expected
    assert engine_run(trace, spec, limit, compiled=False) == expected


def _stamp_meets_its_generation_again(nas: int, space: int, bumps: int) -> Trace:
    """An MMIO SPTE stamped, then a run of raw bumps, then the same gfn again.

    vCPU 0 caches another gfn in between, so the second access misses the vCPU
    cache and meets the SPTE's stored stamp: passed check, refault or stale hit.
    """
    accesses = (5, 6, 5)
    events = [Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=2, flags=0)]
    events += [
        Event(index=1 + i, op=Op.ACCESS, address_space=space, gfn=g)
        for i, g in enumerate(accesses[:2])
    ]
    events.append(Event(index=3, op=Op.BUMP, address_space=space, repeat=bumps))
    events.append(Event(index=4, op=Op.ACCESS, address_space=space, gfn=5))
    events.append(Event(index=5, op=Op.ACCESS, address_space=space, gfn=5, vcpu=1))
    vm = VmHeader(vcpus=2, address_spaces=nas)
    return Trace(path="t", format="yaml", version=1, vm=vm, events=tuple(events))


def _check_stamps_met_again(era, bumps):
    for nas in sorted(era.allowed_address_spaces):
        for space in range(nas):
            trace = _stamp_meets_its_generation_again(nas, space, bumps)
            for policy in ("historical", "none"):
                (spec,) = resolve_runs(era, nas, [parse_policy(policy)])
                expected = replay_reference(trace, spec)
                assert engine_run(trace, spec) == expected
                assert engine_run(trace, spec, compiled=False) == expected


# One era of each stamp width and wrap behaviour, at the period that matters to it.
@pytest.mark.parametrize(
    ("era", "bumps"),
    [("E6", 2**10), ("E8", 2**9), ("E5", 2**18), ("E4", 2**18), ("E12", 2**18)],
)
def test_stamps_met_again_after_a_period(era, bumps):
    _check_stamps_met_again(ERAS[era], bumps)


@pytest.mark.slow
@pytest.mark.parametrize("era", ALL_ERAS, ids=lambda e: e.name)
@pytest.mark.parametrize("bumps", (2**9, 2**10, 2**10 + 1, *PERIODS))
def test_stamps_met_again_after_whole_periods_every_era(era, bumps):
    _check_stamps_met_again(era, bumps)
