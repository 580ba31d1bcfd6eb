"""``--bias literal:B``: the old hack as written, bit 63 and all, engine against reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.engine.replay import replay_engine
from kvmgen.errors import UsageError
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, InitScheme
from kvmgen.model.policy import Policy, parse_policy, resolve_runs
from kvmgen.reference.replay import replay_reference
from tests.property.strategies import traces

pytestmark = pytest.mark.usefixtures("warm_engine")

U64 = (1 << 64) - 1
BIT63 = 1 << 63
MODERN = tuple(
    e
    for e in (*ERAS.values(), E6_SLOT_FLUSH)
    if e.init_scheme == InitScheme.AS_MINUS_BIAS_TRUNCATED
)


def test_parse_literal():
    assert parse_policy("literal:150") == Policy("literal:150", 150, literal=True)
    assert parse_policy("LITERAL:0x96") == Policy("literal:150", 150, literal=True)
    for bad in ("literal:", "literal:-1", "literal:historical", "literal:none", "literal:x"):
        with pytest.raises(UsageError, match="--bias"):
            parse_policy(bad)


def test_literal_start_values():
    (spec,) = resolve_runs(ERAS["E12"], 2, [parse_policy("literal:150")])
    assert spec.init_generations == ((-150) & U64, (-150) & U64)
    assert spec.literal and not spec.as_shipped
    assert spec.init_generations[0] & BIT63
    assert any("bit 63" in w for w in spec.warnings)
    assert "literal" in spec.label


def test_literal_is_its_own_run_beside_masked_and_none():
    specs = resolve_runs(
        ERAS["E10"], 2, [parse_policy(p) for p in ("none", "150", "literal:150", "historical")]
    )
    assert [s.policies for s in specs] == [("none", "historical"), ("150",), ("literal:150",)]
    assert [s.literal for s in specs] == [False, False, True]


@pytest.mark.parametrize("name", ["E1", "E2", "E3", "E4", "E5"])
def test_literal_means_the_integer_before_e6(name):
    # The hack is already applied as written there: literal:B and B are one run.
    era = ERAS[name]
    (spec,) = resolve_runs(
        era, era.default_address_spaces, [parse_policy("150"), parse_policy("literal:150")]
    )
    assert spec.policies == ("150", "literal:150") and not spec.literal


def test_literal_on_e0_has_no_bias():
    (spec,) = resolve_runs(ERAS["E0"], 1, [parse_policy("literal:150"), parse_policy("none")])
    assert spec.bias is None and not spec.literal


@st.composite
def literal_scenario(draw):
    era = draw(st.sampled_from(MODERN))
    nas = draw(st.sampled_from(sorted(era.allowed_address_spaces)))
    bias = draw(
        st.one_of(
            st.integers(0, 12),  # bit 63 set at creation, counted into again within a few bumps
            st.integers(BIT63 - 4, BIT63 + 12),  # around 2^63: clear at creation, set soon
            st.integers(U64 - 8, U64),
            st.integers(0, U64),
        )
    )
    (spec,) = resolve_runs(era, nas, [parse_policy(f"literal:{bias}")])
    trace = draw(traces(nas))
    limit = draw(st.sampled_from((1, 10_000)))
    return spec, trace, limit


@settings(max_examples=120)
@given(literal_scenario())
def test_engine_equals_reference_on_literal_bias(case):
    spec, trace, limit = case
    assert replay_engine(trace, spec, record_limit=limit) == replay_reference(
        trace, spec, record_limit=limit
    )


@pytest.mark.parametrize("era", MODERN, ids=lambda e: e.name + (e.variant or ""))
def test_bit63_at_rest_fails_every_check(era):
    """While bit 63 rests set, an MMIO access refaults every time and nothing is cached."""
    from kvmgen.trace.records import Event, Op, Trace, VmHeader

    (spec,) = resolve_runs(
        era, 1 if 1 in era.allowed_address_spaces else 2, [parse_policy("literal:150")]
    )
    events = (
        Event(index=0, op=Op.ACCESS, gfn=9),
        Event(index=1, op=Op.ACCESS, gfn=9, repeat=5),
    )
    trace = Trace(path="<t>", format="yaml", version=1, vm=VmHeader(), events=events)
    result = replay_engine(trace, spec)
    counts = result.access_counts()
    assert counts["mmio_slow_path"] == 1
    assert counts["mmio_refault"] == 5
    assert counts["mmio_fast_path"] == counts["cache_hit"] == 0
    (masked,) = resolve_runs(era, spec.address_spaces, [parse_policy("150")])
    other = replay_engine(trace, masked).access_counts()
    assert other["mmio_refault"] == 0 and other["cache_hit"] == 5


def test_windows_price_their_own_events_after_a_full_replay():
    """A window replays a prefix of the trace: the whole trace's cached event table
    (kept on the trace after the session's replay) must not stand in for it."""
    from kvmgen.analysis.literal import masked_twin, windows
    from kvmgen.inputs import open_trace
    from kvmgen.model.costs import CostModel
    from tests.conftest import TRACES

    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    (spec,) = resolve_runs(ERAS["E12"], 2, [parse_policy("literal:150")])
    replay_engine(trace, spec)  # caches the trace's table, as replay does first
    found = windows(trace, spec, masked_twin(spec), CostModel())
    late = [w for w in found if w.after_bump]
    # Both address spaces rest with bit 63 set from their bump 75 to the end: the
    # ~1,000 accesses there refault in the literal run and not in the masked one.
    assert [(w.address_space, w.end_event) for w in late] == [(0, None), (1, None)]
    assert all(w.mmio_refaults >= 999 and w.masked_mmio_refaults == 0 for w in late)
    assert [w.mmio_refaults for w in found if not w.after_bump] == [0, 0]
