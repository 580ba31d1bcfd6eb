"""kvmgen probe: ioctl encoding, the plan, prerequisites, the comparison, and live runs."""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from kvmgen.errors import UsageError
from kvmgen.host import kvm as kvmio
from kvmgen.host.tracefs import find_tracefs
from kvmgen.inputs import open_trace
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.probe.compare import compare_run, update_classes, visible
from kvmgen.probe.run import WRAP_UPDATES, ProbeOptions, missing_prerequisites, plan, run_probe
from kvmgen.session import Target, run_session


def test_ioctl_numbers_match_the_uapi_header():
    assert kvmio.KVM_GET_API_VERSION == 0xAE00
    assert kvmio.KVM_CREATE_VM == 0xAE01
    assert kvmio.KVM_CHECK_EXTENSION == 0xAE03
    assert kvmio.KVM_SET_USER_MEMORY_REGION == 0x4020AE46
    assert kvmio.REGION.size == 32


def test_region_packs_the_address_space_into_the_slot_field():
    raw = kvmio.region_bytes(3, 1, 1, 0x1_0000_0000, 0x10000, 0x7F00_0000_0000)
    assert kvmio.REGION.unpack(raw) == (0x10003, 1, 0x1_0000_0000, 0x10000, 0x7F00_0000_0000)


def test_short_plan_has_every_update_class():
    steps = list(plan(ProbeOptions(), 1))
    ops = Counter(s.op for s in steps)
    assert ops == {"create": 1 + 16 + 1, "delete": 16 + 1 + 1, "move": 8, "flags": 64 + 4}
    assert {s.address_space for s in steps} == {0}
    assert steps[0].op == "create" and steps[-1].op == "delete"


def test_plan_uses_address_space_1_when_the_vm_has_it():
    steps = list(plan(ProbeOptions(), 2))
    as1 = Counter(s.op for s in steps if s.address_space == 1)
    assert as1 == {"create": 1 + 4, "delete": 4 + 1, "flags": 8}


def test_full_plan_runs_past_the_first_wrap():
    steps = plan(ProbeOptions(full=True, flags=0, noops=0, cycles=0, moves=0), 1)
    first = next(steps)
    count = 1 + sum(1 for _ in steps)
    assert first.op == "create"
    assert count == WRAP_UPDATES + 16 + 1  # + the final delete


def test_missing_prerequisites_say_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    missing = missing_prerequisites(str(tmp_path / "no-tracefs"))
    text = "; ".join(missing)
    assert "root (running as uid 1000)" in text
    assert "mount -t tracefs nodev /sys/kernel/tracing" in text


def test_probe_refuses_to_run_without_its_prerequisites(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="kvmgen probe cannot run here: missing root"):
        run_probe(ProbeOptions(tracefs=str(tmp_path)))


@pytest.mark.parametrize(
    ("era", "wrap", "flush"),
    [
        (ERAS["E0"], False, False),  # 3.10: no generation, walk zaps
        (ERAS["E2"], True, True),  # kvm_mmu_invalidate_zap_all_pages
        (ERAS["E5"], True, True),
        (E6_SLOT_FLUSH, False, False),  # 5.1/5.2: list walk, slot-only flush
        (ERAS["E6"], False, True),  # 5.3: fast memslot flush, MMIO list-walk wrap zap
        (ERAS["E12"], True, True),  # kvm_mmu_zap_all_fast
    ],
)
def test_which_modelled_zaps_fire_a_tracepoint(era, wrap, flush):
    assert visible(era, "wrap", "all_sptes" if era.name != "E6" else "mmio_sptes") == wrap
    scope = "slot_ram_sptes" if era.variant else "all_sptes"
    assert visible(era, "memslot_flush", scope) == flush


CLASSES = """\
kvmgen: 1
vm:
  address_spaces: 1
  slots: [{slot: 5, as: 0, gfn: 0x500, pages: 4, flags: 1}]
events:
  - {op: create, slot: 0, gfn: 0x100, pages: 16}
  - {op: flags, slot: 0, repeat: 3}
  - {op: flags, slot: 0, flags: 1, repeat: 2}
  - {op: flags, slot: 5, flags: 1}
  - {op: move, slot: 0, gfn: 0x100}
  - {op: move, slot: 0, gfn: 0x200}
  - {op: delete, slot: 0}
"""


def test_update_classes_tell_changes_from_no_ops():
    trace = open_trace(CLASSES.encode(), name="c.yaml")
    ranges = update_classes(trace)
    assert [ranges.class_of(u) for u in range(1, 11)] == [
        "create",
        "flags",
        "flags",
        "flags",
        "no change",  # flags: 1 after an odd number of toggles from 0: already 1
        "no change",
        "no change",  # slot 5 was declared with flags 1
        "no change",  # a move to its own gfn
        "move",
        "delete",
    ]
    assert ranges.counts(2, 9) == {"flags": 3, "no change": 4, "move": 1}


def _mid_run(observations: str):
    text = (
        "kvmgen: 1\nvm: {kernel: '6.18', address_spaces: 1}\nevents:\n"
        "  - {op: create, slot: 0, gfn: 0x100, pages: 16}\n"
        "  - {op: flags, slot: 0, repeat: 524287}\n"
        "  - {op: delete, slot: 0}\n"
        "observations:\n" + observations
    )
    trace = open_trace(text.encode(), name="m.yaml")
    session = run_session(trace, [Target(ERAS["E12"])], policies=[parse_policy("historical")])
    run = session.runs[0]
    return compare_run(trace, run.spec, run.result, "E12")


@pytest.mark.usefixtures("warm_engine")
def test_a_mid_run_capture_reports_but_does_not_gate_generation_dependent_differences():
    # The kernel zapped at the delete but not at the wrap: mid-run, the wrap position is unknown.
    comp = _mid_run(
        "  - {kind: capture, zap_events: [kvm_mmu_zap_all_fast], from_vm_start: false}\n"
        "  - {kind: zap, update: 524289, event: kvm_mmu_zap_all_fast}\n"
    )
    assert [(d.update, d.observed, d.modelled, d.gated) for d in comp.disagreements] == [
        (524288, "0", "1 (wrap)", False)
    ]
    assert not comp.failed
    assert any("did not start at VM creation" in n for n in comp.notes)


@pytest.mark.usefixtures("warm_engine")
def test_a_missing_delete_zap_is_gated_even_mid_run():
    comp = _mid_run(
        "  - {kind: capture, zap_events: [kvm_mmu_zap_all_fast], from_vm_start: false}\n"
        "  - {kind: zap, update: 524288, event: kvm_mmu_zap_all_fast}\n"
    )
    assert [(d.update, d.gated) for d in comp.disagreements] == [(524289, True)]
    assert comp.failed
    delete = next(r for r in comp.classes if r.name == "delete")
    assert (delete.updates, delete.agree, delete.observed_zaps, delete.modelled_zaps) == (
        1,
        0,
        0,
        1,
    )


@pytest.mark.usefixtures("warm_engine")
def test_zaps_outside_the_capture_window_are_not_compared():
    comp = _mid_run(
        "  - {kind: capture, first_update: 524289, last_update: 524289,\n"
        "     zap_events: [kvm_mmu_zap_all_fast], from_vm_start: true}\n"
        "  - {kind: zap, update: 524289, event: kvm_mmu_zap_all_fast}\n"
    )
    assert comp.disagreements == [] and comp.window == (524289, 524289)
    assert any("outside the capture window" in n for n in comp.notes)


def _can_probe() -> str | None:
    missing = missing_prerequisites()
    return "; ".join(missing) if missing else None


live = pytest.mark.skipif(_can_probe() is not None, reason=f"probe unavailable: {_can_probe()}")


@live
@pytest.mark.usefixtures("warm_engine")
def test_short_probe_on_this_kernel_agrees_with_the_model():
    start = time.monotonic()
    run = run_probe(ProbeOptions())
    assert time.monotonic() - start < 10
    assert run.lost == 0
    (comp,) = run.comparisons
    assert comp.disagreements == [], comp.disagreements
    rows = {r.name: r for r in comp.classes}
    # Deletes and moves zap (whole-MMU memslot flush); creates and flags updates do not.
    assert (
        rows["delete"].observed_zaps
        == rows["delete"].updates
        == 16 + 1 + 1 + (5 if run.address_spaces > 1 else 0)
    )
    assert rows["move"].observed_zaps == rows["move"].updates == 8
    assert rows["create"].observed_zaps == 0 and rows["create"].updates > 0
    assert rows["flags"].observed_zaps == 0 and rows["no change"].observed_zaps == 0
    trace = open_trace(run.text.encode(), name="probe.yaml")
    assert trace.vm.kernel == run.kernel and trace.observations[0].from_vm_start


@live
@pytest.mark.slow
@pytest.mark.usefixtures("warm_engine")
def test_full_probe_sees_the_wrap_at_update_524288():
    run = run_probe(ProbeOptions(full=True))
    (comp,) = run.comparisons
    assert comp.disagreements == []
    if run.address_spaces == 1 and run.era == "E12":
        assert 524288 in comp.observed_zap_updates
        flags = next(r for r in comp.classes if r.name == "flags")
        assert flags.observed_zaps == flags.modelled_zaps == 1


def test_tracefs_is_found_only_where_it_is_mounted(tmp_path):
    assert find_tracefs(str(tmp_path)) is None
    (tmp_path / "trace_marker").write_text("")
    assert find_tracefs(str(tmp_path)) == str(tmp_path)
