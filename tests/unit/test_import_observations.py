"""The optional ``observations`` key of trace v1: parsing, validation, both formats."""

from __future__ import annotations

import pytest

from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.observed import AccessSeen, CaptureInfo, ZapSeen

HEAD = """\
kvmgen: 1
vm: {kernel: "6.18", address_spaces: 1}
events:
  - {op: create, slot: 0, gfn: 0x100, pages: 16}
  - {op: access, gfn: 0xfebf1, vcpu: 1, kind: write}
  - {op: flags, slot: 0, repeat: 3}
  - {op: delete, slot: 0}
"""


def load(observations: str, name: str = "t.yaml"):
    return open_trace((HEAD + "observations:\n" + observations).encode(), name=name)


def error(observations: str) -> str:
    with pytest.raises(TraceError) as info:
        load(observations)
    return str(info.value)


def test_every_kind_parses():
    trace = load(
        "  - {kind: capture, source: kvmgen probe, kernel: 6.18.44, first_update: 1,\n"
        "     last_update: 5, zap_events: [kvm_mmu_zap_all_fast], from_vm_start: true, lost: 0}\n"
        "  - {kind: zap, update: 5, event: kvm_mmu_zap_all_fast, valid_gen: 1, used_pages: 0x1a,\n"
        "     t: 1588.571985}\n"
        "  - {kind: access, access: 1, update: 1, outcome: slow_path, gen: 0x1, note: first}\n"
    )
    cap, zap, acc = trace.observations
    assert cap == CaptureInfo(
        index=0,
        line=9,
        source="kvmgen probe",
        kernel="6.18.44",
        first_update=1,
        last_update=5,
        zap_events=("kvm_mmu_zap_all_fast",),
        from_vm_start=True,
    )
    assert isinstance(zap, ZapSeen) and (zap.update, zap.valid_gen, zap.used_pages) == (5, 1, 26)
    assert zap.t == pytest.approx(1588.571985)
    assert isinstance(acc, AccessSeen)
    assert (acc.access, acc.update, acc.outcome, acc.gen, acc.note) == (
        1,
        1,
        "slow_path",
        1,
        "first",
    )


def test_access_update_is_derived_when_left_out():
    trace = load("  - {kind: access, access: 1, outcome: cache_hit}\n")
    assert trace.observations[0].update == 1


def test_no_observations_key_means_none():
    assert open_trace(HEAD.encode(), name="t.yaml").observations == ()


def test_json_traces_carry_observations_too():
    text = (
        '{"kvmgen": 1, "events": [{"op": "create", "slot": 0, "gfn": "0x100", "pages": 16},\n'
        '{"op": "delete", "slot": 0}],\n'
        '"observations": [{"kind": "zap", "update": 2, "event": "kvm_mmu_zap_all_fast"}]}'
    )
    trace = open_trace(text.encode(), name="t.json")
    assert trace.observations == (ZapSeen(index=0, line=3, update=2, event="kvm_mmu_zap_all_fast"),)


@pytest.mark.parametrize(
    ("observations", "expected"),
    [
        (
            "  - {kind: guess}\n",
            "t.yaml:9:12: observations[0].kind: expected one of capture, zap, access, got 'guess'",
        ),
        ("  - {kind: zap, update: 6, event: kvm_mmu_zap_all_fast}\n", "update 6 does not exist"),
        ("  - {kind: zap, update: 2}\n", "observations[0].event: missing required key 'event'"),
        ("  - {kind: zap, update: 2, event: zap}\n", "expected one of kvm_mmu_zap_all_fast"),
        (
            "  - {kind: zap, update: 2, event: kvm_mmu_zap_all_fast, size: 1}\n",
            "unknown key 'size'",
        ),
        ("  - {kind: access, access: 0, outcome: slow_path}\n", "event 0 is a create"),
        ("  - {kind: access, access: 9, outcome: slow_path}\n", "the trace has 4 events"),
        (
            "  - {kind: access, access: 1, update: 3, outcome: slow_path}\n",
            "update 3 does not match",
        ),
        ("  - {kind: access, access: 1, outcome: fast}\n", "expected one of slow_path, fast_path"),
        ("  - {kind: capture, from_vm_start: 1}\n", "from_vm_start: expected true or false"),
        ("  - {kind: capture, first_update: 4, last_update: 2}\n", "comes before first_update"),
        ("  - {kind: capture, zap_events: [zap]}\n", "zap_events[0]: expected one of"),
        ("  - {kind: capture}\n  - {kind: capture}\n", "only one capture observation"),
        ("  - 3\n", "expected an observation mapping, got 3"),
    ],
)
def test_bad_observations_are_one_line_errors(observations, expected):
    message = error(observations)
    assert message.startswith("t.yaml:")
    assert expected in message
    assert "\n" not in message


def test_observations_must_be_a_list():
    with pytest.raises(TraceError, match="observations: expected a list of observations"):
        open_trace((HEAD + "observations: {kind: zap}\n").encode(), name="t.yaml")
