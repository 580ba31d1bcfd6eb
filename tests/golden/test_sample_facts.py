"""What each sample trace is for, checked against arithmetic done outside the engine."""

from __future__ import annotations

import pytest

from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.session import Target, run_session
from kvmgen.trace.records import Op
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")
BUMPS = {Op.CREATE: 1, Op.DELETE: 2, Op.MOVE: 2}


def _runs(name, era, *policies, nas=None):
    trace = open_trace(TRACES / name)
    session = run_session(
        trace, [Target(ERAS[era])], address_spaces=nas, policies=[parse_policy(p) for p in policies]
    )
    return trace, session.runs


def _update_of_bump(trace, address_space, wanted):
    """The update ordinal at which ``address_space`` makes its ``wanted``-th bump."""
    update, bumps, flags = 0, 0, {}
    for event in trace.events:
        if event.op in (Op.ACCESS, Op.BUMP):
            continue
        key = (event.address_space, event.slot)
        for _ in range(event.repeat):
            update += 1
            if event.op == Op.FLAGS:
                old = flags.get(key, 0)
                new = old ^ 1 if event.flags is None else event.flags
                flags[key] = new
                n = int(new != old)
            else:
                n = BUMPS[event.op]
            if event.address_space == address_space:
                bumps += n
                if bumps >= wanted:
                    return update
    return None


def test_qemu_boot_counts():
    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    updates = [e for e in trace.events if e.op not in (Op.ACCESS, Op.BUMP)]
    assert len(updates) == 112
    assert sum(e.address_space == 0 for e in updates) == 58
    assert sum(e.address_space == 1 for e in updates) == 54


@pytest.mark.parametrize(("era", "zap_bump"), [("E4", {0: 75, 1: 75}), ("E5", {1: 37})])
def test_qemu_boot_wrap_zaps_only_with_the_bias(era, zap_bump):
    trace, (hist, none) = _runs("qemu-boot-smm.yaml", era, "historical", "none")
    expected = sorted((_update_of_bump(trace, a, n), a) for a, n in zap_bump.items())
    got = sorted((z.update, z.address_space) for z in hist.result.zap_events if z.kind == "wrap")
    assert got == expected
    assert none.result.wrap_zaps == 0 and none.result.wraps_total == 0


def test_qemu_boot_e5_as0_wrap_is_undetected():
    trace, (hist,) = _runs("qemu-boot-smm.yaml", "E5", "historical")
    (wrap,) = [w for w in hist.result.wraps if w.address_space == 0]
    assert (wrap.bump, wrap.detected, wrap.before, wrap.after) == (38, False, 0xFFFFE, 0x2)
    assert wrap.update == _update_of_bump(trace, 0, 38)


def test_wrap_probe_matches_the_real_kernel():
    _, (run,) = _runs("wrap-probe-6.18.yaml", "E12", "historical", "none", nas=1)
    assert [(z.kind, z.update) for z in run.result.zap_events] == [
        ("wrap", 524_288),
        ("wrap", 1_048_576),
    ]
    assert run.result.updates == 1_100_000 and run.result.flush_zaps == 0


@pytest.mark.parametrize(
    ("era", "update", "gfn"),
    [("E3", 524_288, 0xFE100), ("E4", 524_288, 0xFE100), ("E5", 262_144, 0xFE000)],
)
def test_seed_case_stale_without_bias(era, update, gfn):
    _, (hist, none) = _runs("seed-stale-gen0.yaml", era, "historical", "none")
    if era == "E5":
        # With the bias E5's address space 0 never zaps: its stamps (0xfff6a, not 0)
        # come back every period, so the bias does not hide these hits: it adds one.
        got = [(h.update, h.spte_stored, h.kind) for h in hist.result.stale_hits]
        assert got == [(262_144, 0xFFF6A, "harmful"), (524_288, 0xFFF6A, "harmful")]
    else:
        assert hist.result.stale_harmful == 0
    (hit,) = none.result.stale_hits
    assert (hit.update, hit.gfn, hit.kind, hit.race, hit.spte_stored) == (
        update,
        gfn,
        "harmful",
        "before_zap",
        0,
    )


@pytest.mark.parametrize("era", ["E6", "E9", "E10", "E12"])
def test_seed_case_closed_from_e6(era):
    _, runs = _runs("seed-stale-gen0.yaml", era, "none", nas=2)
    assert runs[0].result.stale_harmful == runs[0].result.stale_benign == 0


def test_e5_blind_address_space_lets_a_stale_spte_through():
    _, (hist, none) = _runs("e5-undetected-wrap.yaml", "E5", "historical", "none")
    assert hist.result.wraps_undetected == 1 and hist.result.stale_harmful == 1
    assert none.result.wraps_undetected == 0 and none.result.stale_harmful == 0


def test_smm_cache_is_validated_against_address_space_0():
    _, (run,) = _runs("smm-cache-as0.yaml", "E12", "none")
    (hit,) = run.result.stale_hits
    assert (hit.source, hit.kind, hit.count, hit.address_space, hit.race) == (
        "vcpu_cache",
        "harmful",
        3,
        1,
        None,
    )


def test_vga_trace_wraps_only_with_bias():
    _, (hist, none) = _runs("vga-dirty-log.yaml", "E3", "historical", "none")
    assert [w.update for w in hist.result.wraps] == [75]
    assert none.result.wraps_total == 0
