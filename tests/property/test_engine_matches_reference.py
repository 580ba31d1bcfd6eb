"""The numba engine and the plain-Python reference agree on every counter and record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.engine.replay import replay_engine
from kvmgen.model.reference import replay_reference
from tests.property.strategies import runs, traces

pytestmark = pytest.mark.usefixtures("warm_engine")


@st.composite
def scenario(draw, big_bumps=()):
    spec = draw(runs())
    trace = draw(traces(spec.address_spaces, big_bumps))
    limit = draw(st.sampled_from((1, 3, 10_000)))
    return spec, trace, limit


@given(scenario())
def test_engine_equals_reference(case):
    spec, trace, limit = case
    assert replay_engine(trace, spec, record_limit=limit) == replay_reference(
        trace, spec, record_limit=limit
    )


# Whole periods of raw bumps: SPTEs stamped long ago meet their generation again
# (the seed's case, E5's blind address space, the E6+ residual window).
PERIODS = (2**17 - 2, 2**17, 2**18 - 1, 2**18, 2**18 + 1, 2**19 - 2, 2**19, 2**19 + 1)


@settings(max_examples=25)
@given(scenario(big_bumps=PERIODS))
def test_engine_equals_reference_across_whole_periods(case):
    spec, trace, limit = case
    assert replay_engine(trace, spec, record_limit=limit) == replay_reference(
        trace, spec, record_limit=limit
    )
