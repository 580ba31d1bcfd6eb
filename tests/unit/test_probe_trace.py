"""kvmgen probe TRACE: a trace's updates as steps a fresh VM can perform, and live runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from kvmgen.errors import UsageError
from kvmgen.host.guest import free_block
from kvmgen.inputs import open_trace
from kvmgen.probe.plan import ProbeOptions, TracePlan
from kvmgen.probe.run import _steps, missing_prerequisites
from tests.conftest import TRACES


def trace_of(text: str):
    return open_trace(text.encode(), name="t.yaml")


MIXED = """\
kvmgen: 1
vm:
  era: E5
  slots:
    - {slot: 9, as: 0, gfn: 0x500, pages: 4}
    - {slot: 9, as: 1, gfn: 0x500, pages: 4}
events:
  - {op: create, slot: 0, gfn: 0x100, pages: 8}
  - {op: flags, slot: 0, repeat: 3}
  - {op: flags, slot: 0, flags: 1, repeat: 2}
  - {op: access, gfn: 0x900, repeat: 5}
  - {op: bump, as: 1, count: 7}
  - {op: create, slot: 1, as: 1, gfn: 0x100, pages: 8}
  - {op: flags, slot: 1, as: 1}
  - {op: create, slot: 2, gfn: 0x200, pages: 2, flags: 2}
  - {op: flags, slot: 2, flags: 3}
  - {op: flags, slot: 2, flags: 0}
  - op: move
    slot: 0
    gfn: 0x300
    during:
      - {op: access, gfn: 0x100, window: before_zap}
  - {op: delete, slot: 0}
"""


def test_a_trace_becomes_steps_and_an_account_of_what_was_left_out():
    plan = TracePlan(trace_of(MIXED), address_spaces=1)
    steps = list(plan.steps())
    assert [(s.op, s.address_space, s.slot) for s in steps] == [
        ("create", 0, 9),  # the header slot of address space 0, first
        ("create", 0, 0),
        ("flags", 0, 0),
        ("flags", 0, 0),
        ("flags", 0, 0),
        ("flags", 0, 0),
        ("flags", 0, 0),
        ("create", 0, 2),
        ("flags", 0, 2),
        ("move", 0, 0),
        ("delete", 0, 0),
    ]
    assert [s.flags for s in steps[2:7]] == [1, 0, 1, 1, 1]  # three toggles, then flags: 1 twice
    assert [s.source for s in steps[1:7]] == [0, 1, None, None, 2, None]
    assert steps[9].gpa == 0x300 << 12 and steps[9].pages == 8
    assert plan.setup == 1 and plan.performed == 10
    assert plan.skipped == {
        "header slots: updates in address space 1 (this VM has 1 memslot address space)": 1,
        "updates in address space 1 (this VM has 1 memslot address space)": 2,
        "bump events (KVM-internal slot changes: no ioctl makes one alone)": 1,
        "flags updates that change read-only on a live slot (KVM refuses them)": 1,
    }
    assert plan.accesses == 6
    account = plan.account()
    assert account[0] == (
        "performed 10 of the trace's 13 updates (repeats expanded) on a fresh VM, after "
        "creating its 1 header slot (probe updates 1-1)"
    )
    assert (
        "not performed: 6 guest accesses (the probe runs no vCPU, so the MMIO fault path "
        "is not checked live)"
    ) in account


def test_two_address_spaces_perform_both():
    plan = TracePlan(trace_of(MIXED), address_spaces=2)
    steps = list(plan.steps())
    assert sum(s.address_space == 1 for s in steps) == 3  # header slot, create, toggle


def test_a_trace_with_nothing_this_host_can_perform_is_refused_in_one_line():
    only_as1 = trace_of(
        "kvmgen: 1\nvm: {era: E5}\nevents:\n  - {op: create, slot: 0, as: 1, gfn: 0, pages: 1}\n"
    )
    with pytest.raises(UsageError, match=r"has updates only in address spaces >= 1: nothing"):
        _steps(ProbeOptions(trace=only_as1), 1)
    accesses = trace_of("kvmgen: 1\nevents:\n  - {op: access, gfn: 5}\n")
    with pytest.raises(UsageError, match="has no memslot updates"):
        _steps(ProbeOptions(trace=accesses), 1)


def test_probe_refuses_workload_options_with_a_trace(run_cli):
    result = run_cli("probe", str(TRACES / "churn-delete-move.yaml"), "--full")
    assert result.exit_code == 2
    assert "shape the built-in workload; a TRACE brings its own updates" in result.stderr


def _can_probe() -> str | None:
    missing = missing_prerequisites()
    return "; ".join(missing) if missing else None


live = pytest.mark.skipif(_can_probe() is not None, reason=f"probe unavailable: {_can_probe()}")


def kvmgen(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kvmgen", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@live
@pytest.mark.usefixtures("warm_engine")
@pytest.mark.parametrize(
    "trace", ["captures/qemu-boot.yaml", "churn-delete-move.yaml", "vga-dirty-log.yaml"]
)
def test_probing_a_trace_compares_every_update_it_performed(tmp_path, trace):
    report = tmp_path / "probe.json"
    done = kvmgen(
        "probe", str(TRACES / trace), "-o", str(tmp_path / "p.yaml"), "--json", str(report)
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(report.read_text())
    assert document["agree"] and not document["interrupted"]
    (comparison,) = document["comparisons"]
    assert comparison["window"] == [1, document["updates"]]
    assert document["updates"] == document["steps"] == document["planned_steps"] > 0
    assert document["checked_live"][0].startswith("performed ")


@live
@pytest.mark.usefixtures("warm_engine")
def test_a_search_counterexample_pipes_straight_into_the_probe(tmp_path):
    found = kvmgen("search", "--kernel", "3.17", "--bias", "none", "--goal", "harmful", "--no-race")
    assert found.returncode == 0, found.stderr
    report = tmp_path / "probe.json"
    done = kvmgen(
        "probe", "-", "-o", str(tmp_path / "p.yaml"), "--json", str(report), stdin=found.stdout
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(report.read_text())
    assert document["agree"] and document["workload"] == "<stdin>"
    assert document["checked_live"][0].startswith("performed 1 of the trace's 1 update ")


@live
@pytest.mark.usefixtures("warm_engine")
def test_ctrl_c_stops_between_updates_and_still_compares_what_was_done(tmp_path):
    long = tmp_path / "long.yaml"
    long.write_text(
        "kvmgen: 1\nevents:\n  - {op: create, slot: 0, gfn: 0x100, pages: 1}\n"
        "  - {op: flags, slot: 0, repeat: 2000000}\n"
    )
    report = tmp_path / "probe.json"
    args = ["probe", str(long), "-o", str(tmp_path / "p.yaml"), "--json", str(report)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "kvmgen", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    document = json.loads(report.read_text())
    assert document["interrupted"] and 0 < document["steps"] < document["planned_steps"]
    assert document["agree"]
    (comparison,) = document["comparisons"]
    assert comparison["window"] == [1, document["updates"]]


ACCESSES = """\
kvmgen: 1
vm: {vcpus: 10}
events:
  - {op: create, slot: 0, gfn: 0x100, pages: 0x10}
  - {op: access, gfn: 0xfebf1, repeat: 2}
  - {op: access, gfn: 0x105, vcpu: 1, kind: write}
  - {op: access, gfn: 0x200000, vcpu: 2}
  - {op: access, gfn: 0xfee00, as: 1}
  - op: flags
    slot: 0
    during:
      - {op: access, gfn: 0xfebf1, window: in_progress}
  - {op: access, gfn: 0xfebf1, vcpu: 9}
"""


def test_accesses_become_guest_steps_and_the_rest_is_counted():
    plan = TracePlan(trace_of(ACCESSES.replace("as: 1", "as: 0")), address_spaces=1)
    plan.perform_accesses = True
    plan.prepare_guest()
    gfn, slot = plan.guest_block
    assert slot == 1 and not (gfn < 0x110 and gfn + 16 > 0x100)  # clear of slot 0 and its pages
    steps = list(plan.steps())
    assert steps[0].guest_block and steps[0].gpa == gfn << 12
    accesses = [(s.vcpu, s.gpa >> 12, s.flags) for s in steps if s.op == "access"]
    assert accesses == [(0, 0xFEBF1, 0), (0, 0xFEBF1, 0), (1, 0x105, 1), (0, 0xFEE00, 0)]
    assert plan.guest_vcpus == 8  # vCPU 9 is beyond the guest's eight
    assert plan.skipped == {
        "accesses above 4 GiB (the probe's guest runs in flat 32-bit mode)": 1,
        "racing accesses (during an update: the probe cannot place an access inside an ioctl)": 1,
        "accesses by vCPUs 8 and up (the guest has 8)": 1,
    }
    account = plan.account()
    assert any(line.startswith("performed 4 of the trace's 7 guest accesses") for line in account)
    assert "not performed: 1 access above 4 GiB (the probe's guest runs in flat 32-bit mode)" in (
        account
    )


def test_accesses_in_address_space_1_are_not_performed():
    plan = TracePlan(trace_of(ACCESSES.replace("vcpus: 10", "vcpus: 10, era: E5")), 2)
    plan.perform_accesses = True
    plan.prepare_guest()
    list(plan.steps())
    assert plan.skipped["accesses in address space 1 (the probe's guest never enters SMM)"] == 1


def test_the_guest_block_avoids_everything_the_trace_maps_or_touches():
    assert free_block([]) == 0x100
    assert free_block([(0x100, 1)]) == 0x110
    assert free_block([(0x0, 0x100000)]) is None  # all of the first 4 GiB is taken
    assert free_block([(0xFF, 2), (0x120, 1)]) == 0x110


def test_a_guest_on_one_thread_is_read_as_several_vcpus_by_its_thread_name():
    # What the probe's guest makes the kernel print on a host with MMIO caching: every
    # vCPU runs on the probe's thread, named "CPU n/KVM" while it runs.
    def line(comm: str, t: float, event: str, payload: str) -> str:
        return f"{comm:>16}-{3892:<6} [000] ...1. {t:12.6f}: {event}: {payload}"

    text = [
        line("kvmgen", 1.0, "tracing_mark_write", "kvmgen: capture start source=kvmgen-probe-trace "
             "kernel=6.18.44 nas=1 vm_start=1 mmio_caching=1 events=kvm_mmu_zap_all_fast"),
        line("kvmgen", 1.1, "tracing_mark_write", "kvmgen: update 1 op=create as=0 slot=1 "
             "gfn=0x110 pages=0x10 flags=0x0"),
        line("CPU 0/KVM", 1.2, "mark_mmio_spte", "sptep:00000000c5a1f2e0 gfn febf1 access 0 gen 1"),
        line("CPU 0/KVM", 1.21, "kvm_mmio", "mmio unsatisfied-read len 4 gpa 0xfebf1000 val 0x0"),
        line("CPU 0/KVM", 1.22, "kvm_mmio", "mmio read len 4 gpa 0xfebf1000 val 0x0"),
        line("CPU 0/KVM", 1.3, "kvm_mmio", "mmio unsatisfied-read len 4 gpa 0xfebf1000 val 0x0"),
        line("CPU 0/KVM", 1.31, "kvm_mmio", "mmio read len 4 gpa 0xfebf1000 val 0x0"),
        line("CPU 1/KVM", 1.4, "check_mmio_spte", "spte febf100e kvm_gen 1 spte-gen 1 valid 1"),
        line("CPU 1/KVM", 1.41, "handle_mmio_page_fault", "addr:0 gfn febf1 access 0"),
        line("CPU 1/KVM", 1.42, "kvm_mmio", "mmio write len 4 gpa 0xfebf1000 val 0x0"),
        line("kvmgen", 1.5, "tracing_mark_write", "kvmgen: update 2 op=flags as=0 slot=1 "
             "flags=0x1 src=4"),
        line("kvmgen", 1.6, "tracing_mark_write", "kvmgen: capture end updates=2"),
    ]  # fmt: skip
    from kvmgen.importers.tracefs import import_tracefs

    result = import_tracefs("guest.txt", text)
    accesses = [
        (e.get("vcpu", 0), e.get("kind", "read")) for e in result.events if e["op"] == "access"
    ]
    assert accesses == [(0, "read"), (0, "read"), (1, "write")]
    outcomes = [o["outcome"] for o in result.observations if o["kind"] == "access"]
    assert outcomes == ["slow_path", "cache_hit", "fast_path"]
    assert result.events[-1]["note"] == "event 4 of the probed trace"


@live
@pytest.mark.usefixtures("warm_engine")
def test_the_guest_makes_the_traces_accesses_on_this_kernel(tmp_path):
    capture = tmp_path / "p.yaml"
    done = kvmgen(
        "probe", str(TRACES / "vga-dirty-log.yaml"), "--accesses", "on", "-o", str(capture)
    )
    assert done.returncode == 0, done.stderr
    assert "guest accesses from the probe's guest" in done.stdout
    events = open_trace(capture).events
    mmio = [e for e in events if e.op.name == "ACCESS"]
    # Every MMIO access the trace makes is in the kernel's trace (kvm_mmio), with its vCPU.
    assert len(mmio) > 0 and {e.vcpu for e in mmio} == {0, 1}
