"""Engine-specific behaviour: O(1) repeats, encoding, record limits."""

from __future__ import annotations

import numpy as np
import pytest

from kvmgen.engine import kernels as k
from kvmgen.engine import replay
from kvmgen.engine.encode import encode
from kvmgen.engine.replay import new_state, python_work, replay_engine
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy, resolve_runs
from kvmgen.trace.records import Event, Op, SlotDecl, Trace, VmHeader, Window
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")
DEFAULT_PYTHON_WORK = replay.PYTHON_WORK


@pytest.fixture(autouse=True, params=["compiled", "python"])
def kernels(request, monkeypatch):
    """Each test on the compiled kernels and on their code run as Python (replay.PYTHON_WORK)."""
    monkeypatch.setattr(replay, "PYTHON_WORK", -1 if request.param == "compiled" else 1 << 62)
    return request.param


def _trace(*events, slots=()):
    return Trace(
        path="t", format="yaml", version=1, vm=VmHeader(slots=tuple(slots)), events=tuple(events)
    )


def _spec(era, nas, policy="none"):
    return resolve_runs(ERAS[era], nas, [parse_policy(policy)])[0]


def test_a_billion_flags_updates_replay_without_looping():
    n = 1_000_000_000
    trace = _trace(
        Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=1),
        Event(index=1, op=Op.FLAGS, slot=0, repeat=n),
    )
    result = replay_engine(trace, _spec("E12", 1))
    assert result.updates == n + 1
    assert result.wraps_total == (n + 1) // 2**19 == result.wrap_zaps
    assert result.wraps_undetected == 0
    assert result.final_generation == (n + 1,)
    assert [w.update for w in result.wraps[:2]] == [2**19, 2**20]


def test_a_billion_identical_accesses_cost_two_steps():
    trace = _trace(Event(index=0, op=Op.ACCESS, gfn=7, repeat=10**9))
    result = replay_engine(trace, _spec("E10", 2))
    counts = result.access_counts()
    assert counts["mmio_slow_path"] == 1
    assert counts["cache_hit"] == 10**9 - 1


def test_set_flags_repeat_bumps_once():
    trace = _trace(
        Event(index=0, op=Op.FLAGS, slot=0, flags=1, repeat=5),
        slots=[SlotDecl(slot=0, address_space=0, gfn=0, pages=1)],
    )
    result = replay_engine(trace, _spec("E3", 1))
    assert result.updates == 5 and result.bumps == (1,)


def test_raw_bumps_are_not_updates_and_e1_checks_each():
    trace = _trace(Event(index=0, op=Op.BUMP, repeat=200))
    result = replay_engine(trace, _spec("E1", 1, "historical"))
    assert result.updates == 0 and result.bumps == (200,)
    assert [(z.update, z.bump) for z in result.zap_events] == [(0, 149), (0, 150)]
    assert [(w.update, w.bump, w.detected) for w in result.wraps] == [(0, 151, True)]


def test_encode_maps_only_accessed_gfns():
    trace = _trace(
        Event(index=0, op=Op.CREATE, slot=0, gfn=0x100, pages=0x1000000),
        Event(index=1, op=Op.ACCESS, gfn=0x5000),
        Event(
            index=2,
            op=Op.MOVE,
            slot=0,
            gfn=0x2000000,
            during=(Event(index=2, op=Op.ACCESS, gfn=0x2000001, sub=0, window=Window.BEFORE_ZAP),),
        ),
        Event(index=3, op=Op.ACCESS, gfn=0x10),
    )
    enc = encode(trace)
    assert enc.gfns.tolist() == [0x10, 0x5000, 0x2000001]
    assert enc.ev_x[1] == 1 and enc.ev_x[3] == 0
    create, move = enc.aux[enc.ev_x[[0, 2]]]
    assert (create[0], create[1]) == (1, 2)  # covers 0x5000 only
    assert (move[0], move[1], move[2], move[3]) == (2, 3, 1, 2)
    assert enc.dur[:, 2].tolist() == [2]
    assert enc.ev_code.dtype == np.uint8 and enc.ev_x.dtype == np.uint32
    assert enc.first_index == 0


def test_encode_keeps_wide_fields_out_of_the_event_columns():
    """Plain accesses take 7 bytes; updates, bumps and repeated accesses name an aux row."""
    trace = _trace(
        Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=4),
        Event(index=1, op=Op.ACCESS, gfn=2, vcpu=3),
        Event(index=2, op=Op.ACCESS, gfn=9, repeat=10**12, address_space=1),
        Event(index=3, op=Op.BUMP, repeat=5),
    )
    enc = encode(trace)
    row_bytes = enc.ev_code.itemsize + enc.ev_vcpu.itemsize + enc.ev_x.itemsize
    assert row_bytes == 7
    codes = enc.ev_code.tolist()
    assert codes[1] == Op.ACCESS and enc.ev_vcpu[1] == 3 and enc.gfns[enc.ev_x[1]] == 2
    assert codes[2] == Op.ACCESS | 1 << k.EV_AS_SHIFT | k.EV_AUX
    repeated = enc.aux[enc.ev_x[2]]
    assert repeated[k.U_REPS] == 10**12 and enc.gfns[repeated[k.U_GID]] == 9
    assert codes[3] == Op.BUMP | k.EV_AUX and enc.aux[enc.ev_x[3], k.U_REPS] == 5
    assert enc.block(2, 4).first_index == 2


def test_record_limit_keeps_counts_exact():
    events = [Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=1)]
    events += [Event(index=i, op=Op.ACCESS, gfn=0x100 + i, repeat=1) for i in range(1, 6)]
    events.append(Event(index=6, op=Op.BUMP, repeat=2**19))
    events += [Event(index=7 + i, op=Op.ACCESS, gfn=0x101 + i) for i in range(5)]
    result = replay_engine(_trace(*events), _spec("E5", 2, "historical"), record_limit=2)
    # AS 0 of E5 never zaps with the bias: 2^19 bumps later all five stamps match again.
    assert result.stale_benign == result.stale_records == 5
    assert len(result.stale_hits) == 2 and len(result.wraps) == result.wraps_total == 2


@pytest.mark.parametrize("name", ["seed-stale-gen0", "wrap-probe-6.18", "e5-undetected-wrap"])
def test_few_events_with_huge_repeats_replay_uncompiled(name, monkeypatch):
    # Too many bumps for the reference model, a few steps for the engine's code: the
    # bundled traces that need the engine replay without compiling it (empty cache).
    trace = open_trace(str(TRACES / f"{name}.yaml"))
    spec = _spec("E5", trace.vm.address_spaces or 1, "historical")
    enc = encode(trace)
    params = new_state(enc, spec, 10).params
    assert python_work(enc, params, DEFAULT_PYTHON_WORK) <= DEFAULT_PYTHON_WORK
    monkeypatch.setattr(replay, "PYTHON_WORK", -1)
    compiled = replay_engine(trace, spec)
    monkeypatch.setattr(replay, "PYTHON_WORK", DEFAULT_PYTHON_WORK)

    def refuse(*args):
        raise AssertionError("the compiled kernel was called")

    monkeypatch.setattr(k, "replay_events", refuse)
    assert replay_engine(trace, spec) == compiled


def test_a_block_of_many_events_is_too_much_work_for_python():
    events = [Event(index=i, op=Op.ACCESS, gfn=i % 7) for i in range(DEFAULT_PYTHON_WORK + 1)]
    enc = encode(_trace(*events))
    params = new_state(enc, _spec("E5", 2), 10).params
    assert python_work(enc, params, DEFAULT_PYTHON_WORK) > DEFAULT_PYTHON_WORK
