"""kvmgen gen: deterministic workloads that load, replay and mean what they say."""

from __future__ import annotations

import io

import pytest

from kvmgen.errors import UsageError
from kvmgen.importers.emit import write_trace
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.session import Target, run_session
from kvmgen.trace.records import Op
from kvmgen.workloads import boot, churn, seed, vga


def text_of(workload, fmt: str = "yaml") -> str:
    out = io.StringIO()
    write_trace(out, fmt, workload.events, vm=workload.vm, comments=workload.comments)
    return out.getvalue()


def load(text: str, name: str = "w.yaml"):
    return open_trace(text.encode(), name=name)


MAKERS = {
    "boot": lambda s: boot.generate(boot.BootOptions(smm=True, reboots=1, seed=s)),
    "vga": lambda s: vga.generate(vga.VgaOptions(duration=2, seed=s)),
    "churn": lambda s: churn.generate(churn.ChurnOptions(updates=500, seed=s)),
}


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_same_seed_same_trace_other_seed_other_trace(name):
    make = MAKERS[name]
    first, again, other = text_of(make(1)), text_of(make(1)), text_of(make(2))
    assert first == again
    assert first != other
    load(first)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_json_output_loads_to_the_same_events(name):
    workload_y, workload_j = MAKERS[name](3), MAKERS[name](3)
    yaml_trace = load(text_of(workload_y))
    json_trace = load(text_of(workload_j, "json"), "w.json")
    strip = lambda t: [(e.op, e.slot, e.gfn, e.repeat, e.address_space, e.vcpu) for e in t.events]  # noqa: E731
    assert strip(yaml_trace) == strip(json_trace)


def test_stats_count_what_streams_out():
    workload = MAKERS["boot"](5)
    trace = load(text_of(workload))
    updates = sum(e.repeat for e in trace.events if e.op not in (Op.ACCESS, Op.BUMP))
    accesses = sum(e.repeat for e in trace.events if e.op == Op.ACCESS)
    assert workload.stats.updates == updates
    assert workload.stats.accesses == accesses
    assert workload.stats.events == len(trace.events)
    assert f"{updates:,} updates" in workload.stats.describe()


def test_boot_with_smm_churns_both_address_spaces_and_maps_smram_in_one():
    workload = boot.generate(boot.BootOptions(smm=True, seed=0))
    trace = load(text_of(workload))
    assert trace.vm.address_spaces == 2
    per_as = workload.stats.per_as
    assert per_as[0] > 50 and per_as[1] > 50
    smram = [e for e in trace.events if e.note == "smram"]
    assert [(e.op, e.address_space, e.gfn) for e in smram] == [(Op.CREATE, 1, 0xA0)]
    # PAM: every region made writable then read-only again, in both address spaces.
    pam = [e for e in trace.events if e.note and e.note.startswith("pam") and e.op == Op.CREATE]
    assert len(pam) == 13 * 3 * 2
    assert any(e.op == Op.ACCESS and e.address_space == 1 for e in trace.events)


def test_boot_reboots_repeat_the_pam_churn():
    def pam_deletes(reboots: int) -> int:
        trace = load(text_of(boot.generate(boot.BootOptions(seed=0, reboots=reboots))))
        return sum(1 for e in trace.events if e.op == Op.DELETE and e.note.startswith("pam"))

    # Each boot: 13 ROM->RAM and 13 RAM->read-only deletes; each reset 13 RAM->ROM.
    assert pam_deletes(0) == 26
    assert pam_deletes(2) == 3 * 26 + 2 * 13


def test_vga_makes_rate_times_duration_toggles_in_batches():
    workload = vga.generate(vga.VgaOptions(rate=60, duration=10, seed=0))
    trace = load(text_of(workload))
    flags = [e for e in trace.events if e.op == Op.FLAGS]
    assert sum(e.repeat for e in flags) == 600 and len(flags) == 600
    big = vga.VgaOptions(rate=1000, duration=100_000)
    assert big.toggles == 10**8 and big.effective_batch == 2000
    workload = vga.generate(vga.VgaOptions(rate=100, duration=100, batch=1000))
    trace = load(text_of(workload))
    assert [e.repeat for e in trace.events if e.op == Op.FLAGS] == [1000] * 10


def test_churn_makes_exactly_n_updates_of_a_valid_layout():
    workload = churn.generate(churn.ChurnOptions(updates=3000, slots=5, smm=True, seed=9))
    trace = load(text_of(workload))
    assert (
        sum(e.repeat for e in trace.events if e.op in (Op.CREATE, Op.DELETE, Op.MOVE, Op.FLAGS))
        == 3000
    )
    assert set(workload.stats.per_op) == {"create", "delete", "move", "flags"}
    assert workload.stats.per_as[1] > 1000
    assert len(trace.vm.slots) == 2 * (1 + 3)  # the RAM slot and the odd slots, per space


def test_churn_reaches_1e8_updates_in_few_lines():
    workload = churn.generate(
        churn.ChurnOptions(updates=10**8, mix={"flags": 1.0}, accesses=0, flags_run=1000)
    )
    text = text_of(workload, "jsonl")
    assert workload.stats.updates == 10**8
    assert len(text.splitlines()) < 200_000


@pytest.mark.parametrize(
    ("mix", "message"),
    [
        ("explode=1", "unknown op 'explode'"),
        ("flags=x", "'x' is not a number"),
        ("flags=0", "at least one op"),
        ("flags=-1", "must be >= 0"),
    ],
)
def test_churn_mix_errors(mix, message):
    with pytest.raises(UsageError, match=message):
        churn.parse_mix(mix)


def test_churn_mix_parses_weights():
    assert churn.parse_mix("create=2, flags") == {"create": 2.0, "flags": 1.0}


@pytest.mark.parametrize(
    ("era", "nas", "update"),
    [
        ("E1", 1, 524288),
        ("E3", 1, 524288),
        ("E4", 2, 524288),
        ("E5", 2, 262144),
        ("E10", 2, 262144),
        ("E12", 1, 524288),
    ],
)
def test_seed_case_wrap_update_follows_the_era_arithmetic(era, nas, update):
    assert seed.wrap_update(ERAS[era], nas) == update


def test_seed_case_has_no_generation_in_e0():
    with pytest.raises(UsageError, match="no MMIO generation"):
        seed.wrap_update(ERAS["E0"], 1)


def _seed_trace(era: str, nas: int):
    options = seed.SeedOptions(era=ERAS[era], address_spaces=nas, noise=10)
    return load(text_of(seed.generate(options, header={"era": era})))


@pytest.mark.usefixtures("warm_engine")
@pytest.mark.parametrize(
    ("era", "nas", "harmful_at", "with_bias"),
    [
        ("E3", 1, 524288, 0),  # the bias wraps at update 75, long before any stamp is old
        ("E5", 2, 262144, 2),  # ... but in E5 address space 0 never zaps with the bias
        ("E10", 2, None, 0),  # zap before publish: no stale hit
    ],
)
def test_seed_case_stale_hit_without_the_bias_only_before_e6(era, nas, harmful_at, with_bias):
    trace = _seed_trace(era, nas)
    session = run_session(
        trace, [Target(ERAS[era])], policies=[parse_policy("historical"), parse_policy("none")]
    )
    none = next(run.result for run in session.runs if "none" in run.spec.policies)
    historical = next(run.result for run in session.runs if "historical" in run.spec.policies)
    hits = [(h.update, h.kind, h.race) for h in none.stale_hits]
    if harmful_at is None:
        assert hits == []
    else:
        assert hits[0] == (harmful_at, "harmful", "before_zap")
    assert historical.stale_harmful == with_bias
