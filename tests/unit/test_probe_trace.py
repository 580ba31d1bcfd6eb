"""kvmgen probe TRACE: a trace's updates as steps a fresh VM can perform, and live runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from kvmgen.errors import UsageError
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
    assert document["updates"] == document["planned"] > 0
    assert document["checked_live"][0].startswith("performed ")


@live
@pytest.mark.usefixtures("warm_engine")
def test_a_search_counterexample_pipes_straight_into_the_probe(tmp_path):
    found = kvmgen("search", "--kernel", "3.17", "--bias", "none", "--goal", "harmful", "--no-race")
    assert found.returncode == 0, found.stderr
    done = kvmgen("probe", "-", "-o", str(tmp_path / "p.yaml"), stdin=found.stdout)
    assert done.returncode == 0, done.stderr
    assert "performed 1 of the trace's 1 updates" in done.stdout


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
    assert document["interrupted"] and 0 < document["updates"] < document["planned"]
    assert document["agree"]
    (comparison,) = document["comparisons"]
    assert comparison["window"] == [1, document["updates"]]
