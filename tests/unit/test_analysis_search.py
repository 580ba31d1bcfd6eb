"""``kvmgen search`` (kvmgen.analysis.search): the issue's must-hold cases and the machinery."""

from __future__ import annotations

import pytest

from kvmgen.analysis.search import SearchConfig, Searcher, _well_formed, search
from kvmgen.analysis.search_report import run_search
from kvmgen.analysis.tracegen import GFNS, Step, Touch, to_trace, to_yaml
from kvmgen.engine.replay import replay_engine
from kvmgen.errors import UsageError
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.model.versions import era_for_version
from kvmgen.trace.records import Op, Window

pytestmark = pytest.mark.usefixtures("warm_engine")
BIT63 = 1 << 63


def _spec(era: str, nas: int, policy: str = "none"):
    (spec,) = resolve_runs(ERAS[era], nas, [parse_policy(policy)])
    return spec


def _hit(outcome, kind="harmful"):
    result = replay_engine(to_trace(outcome.steps, outcome.spec.address_spaces), outcome.spec)
    return next(h for h in result.stale_hits if h.kind == kind)


@pytest.mark.parametrize(("era", "nas"), [("E3", 1), ("E4", 2), ("E5", 2)])
def test_e3_to_e5_without_bias_before_zap(era, nas):
    """A handful of events: stamp, bump (a whole period), the wrapping update's before_zap."""
    outcome = search(_spec(era, nas), SearchConfig(goal="harmful", source="spte"))
    assert outcome.found and outcome.method == "exhaustive"
    assert len(outcome.steps) <= 4
    assert any(s.op == Op.BUMP for s in outcome.steps)
    hit = _hit(outcome)
    assert hit.source == "spte" and hit.race == "before_zap"
    assert hit.spte_stored == hit.current_mmio_generation


def test_e3_harmful_is_three_events():
    outcome = search(_spec("E3", 1), SearchConfig(goal="harmful"))
    assert [s.op for s in outcome.steps] == [Op.ACCESS, Op.BUMP, Op.CREATE]
    assert outcome.steps[1].count == 2**19 - 1


def test_e2_without_race_through_the_vcpu_cache():
    outcome = search(_spec("E2", 1), SearchConfig(goal="harmful", race=False))
    assert outcome.found
    assert not any(s.during for s in outcome.steps)
    hit = _hit(outcome)
    assert hit.source == "vcpu_cache" and hit.race is None
    assert len(outcome.steps) == 3


def test_68_two_address_spaces_no_race_smm_cache():
    (spec,) = resolve_runs(era_for_version("6.8").era, 2, [parse_policy("none")])
    outcome = search(spec, SearchConfig(goal="harmful", race=False))
    assert outcome.found and len(outcome.steps) == 3
    hit = _hit(outcome)
    # Filled in SMM (AS 1), validated against AS 0's generation only.
    assert hit.source == "vcpu_cache" and hit.address_space == 1
    assert hit.cache_address_space == 1 and hit.cache_as0_generation == 0  # AS 0 never moved
    assert hit.cache_generation != hit.current_generation  # AS 1 did


def test_68_one_address_space_races_through_the_residual_window():
    outcome = search(_spec("E12", 1), SearchConfig(goal="harmful"))
    assert outcome.found and len(outcome.steps) == 4
    windows = {t.window for s in outcome.steps for t in s.during}
    assert Window.IN_PROGRESS in windows
    hit = _hit(outcome)
    # The SPTE was stamped while the wrapping bump was in progress (bit 63 set),
    # after that bump's zap, and matches one period later.
    assert hit.spte_generation & BIT63
    assert hit.source == "spte"


def test_68_one_address_space_no_race_none_within_bound():
    outcome = search(_spec("E12", 1), SearchConfig(goal="harmful", race=False))
    assert not outcome.found
    assert outcome.stats.exhaustive_through == 4
    assert outcome.stats.stopped_by is None


def test_undetected_wrap_e5_historical_is_one_bump_event():
    outcome = search(_spec("E5", 2, "historical"), SearchConfig(goal="undetected-wrap"))
    assert outcome.steps == (Step(Op.BUMP, 0, count=38),)


def test_no_undetected_wrap_in_e12():
    outcome = search(_spec("E12", 2), SearchConfig(goal="undetected-wrap", max_events=3))
    assert not outcome.found and outcome.stats.exhaustive_through == 3


def test_benign_hit():
    outcome = search(_spec("E3", 1), SearchConfig(goal="benign"))
    assert outcome.found
    hit = _hit(outcome, "benign")
    assert hit.spte_generation != hit.current_generation


def test_budget_stops_and_says_so():
    outcome = search(_spec("E12", 1), SearchConfig(goal="harmful", budget=50, max_events=4))
    assert not outcome.found
    assert outcome.stats.stopped_by == "budget"
    assert outcome.stats.evaluated == 50
    assert outcome.stats.exhaustive_through < 4


def test_random_phase_is_seeded():
    config = SearchConfig(goal="harmful", budget=3000, seed=0)
    first = search(_spec("E12", 1), config)
    second = search(_spec("E12", 1), config)
    assert first.stats.random_evaluated > 0
    assert first.steps == second.steps
    assert first.stats.evaluated == second.stats.evaluated


def test_printed_trace_replays_to_the_claim():
    report = run_search(_spec("E12", 1), SearchConfig(goal="harmful"), kernel=None)
    assert report.yaml is not None and report.yaml.startswith("# kvmgen search")
    trace = open_trace(report.yaml.encode(), name="found.yaml")
    result = replay_engine(trace, _spec("E12", 1))
    assert result.stale_harmful >= 1
    assert "--era E12 --bias none --address-spaces 1 --fail-on harmful" in report.yaml


def test_yaml_round_trip_of_every_op():
    steps = (
        Step(Op.ACCESS, 1, access=Touch(1, 0, 1)),
        Step(Op.CREATE, 0, 0, 1, during=(Touch(0, 0, 0, Window.IN_PROGRESS),)),
        Step(Op.FLAGS, 0, 0),
        Step(Op.MOVE, 0, 0, 2, during=(Touch(1, 1, 0, Window.BEFORE_ZAP),)),
        Step(Op.BUMP, 1, count=5),
        Step(Op.DELETE, 0, 0),
    )
    text = to_yaml(steps, 2, kernel="4.19", era=None, comments=("a comment",))
    loaded = open_trace(text.encode(), name="t.yaml")
    built = to_trace(steps, 2)
    assert [(e.op, e.address_space, e.gfn, e.repeat) for e in loaded.events] == [
        (e.op, e.address_space, e.gfn, e.repeat) for e in built.events
    ]
    assert loaded.events[3].during[0].window == Window.BEFORE_ZAP
    assert loaded.events[0].gfn == GFNS[0] and loaded.vm.kernel == "4.19"
    spec = _spec("E5", 2)
    assert replay_engine(loaded, spec).accesses == replay_engine(built, spec).accesses


def test_well_formed():
    create = Step(Op.CREATE, 0, 0, 0)
    assert _well_formed((create, Step(Op.FLAGS, 0, 0)))
    assert not _well_formed((Step(Op.FLAGS, 0, 0),))
    assert not _well_formed((create, Step(Op.CREATE, 0, 1, 0)))
    assert not _well_formed((create, Step(Op.DELETE, 0, 0), Step(Op.DELETE, 0, 0)))


def test_final_in_slot_follows_the_era_window_view():
    step = Step(Op.CREATE, 0, 0, 0, during=(Touch(0, 0, 0, Window.IN_PROGRESS),))
    old = Searcher(_spec("E2", 1), SearchConfig(goal="harmful"))
    new = Searcher(_spec("E3", 1), SearchConfig(goal="harmful"))
    assert not old.final_in_slot(old.initial(), step)  # E0-E2: the old layout
    assert new.final_in_slot(new.initial(), step)  # E3+: the new layout


def test_config_rejects_bad_values():
    with pytest.raises(UsageError):
        SearchConfig(goal="everything")
    with pytest.raises(UsageError):
        SearchConfig(goal="undetected-wrap", source="spte")
    with pytest.raises(UsageError):
        SearchConfig(goal="harmful", max_events=0)
