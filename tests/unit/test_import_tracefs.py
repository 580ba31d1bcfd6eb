"""kvmgen import tracefs: line shapes, access grouping, zap attribution, QEMU merging."""

from __future__ import annotations

import io

import pytest

from kvmgen.errors import TraceError, UsageError
from kvmgen.importers.emit import write_trace
from kvmgen.importers.qemu import read_log
from kvmgen.importers.tracefs import import_tracefs, parse_trace_line, update_marker
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.probe.compare import compare_run
from kvmgen.session import Target, run_session
from kvmgen.trace.observed import AccessSeen, CaptureInfo, ZapSeen

# (line, comm, pid, cpu, seconds, event, payload start)
SHAPES = [
    # tracefs on 6.18: 5-character flags column
    (
        "  kvm_wrap_probe-3892    [001] ...1.  1588.571985: kvm_mmu_zap_all_fast: "
        "kvm-mmu-valid-gen 0 used_pages 0",
        "kvm_wrap_probe",
        3892,
        1,
        1588.571985,
        "kvm_mmu_zap_all_fast",
        "kvm-mmu-valid-gen 0",
    ),
    # older tracefs: 4-character flags, the record-tgid column, a comm with spaces
    (
        "       CPU 0/KVM-4245  ( 4242) [003] d..1   811.204512: check_mmio_spte: "
        "spte 7ff00000febf1e4e kvm_gen fff92 spte-gen fff92 valid 1",
        "CPU 0/KVM",
        4245,
        3,
        811.204512,
        "check_mmio_spte",
        "spte 7ff00000febf1e4e",
    ),
    # no flags column, a comm with dashes
    (
        " qemu-system-x86-4242  [003]   811.204331: mark_mmio_spte: "
        "sptep:00000000c5a1f2e0 gfn febf1 access 0 gen 2a",
        "qemu-system-x86",
        4242,
        3,
        811.204331,
        "mark_mmio_spte",
        "sptep:00000000c5a1f2e0",
    ),
    # trace-cmd report: padded event names, markers as print events
    (
        "       CPU 1/KVM-4246  [002]   901.000200: kvm_mmio:             mmio write len 4 "
        "gpa 0xfebf1000 val 0x1",
        "CPU 1/KVM",
        4246,
        2,
        901.0002,
        "kvm_mmio",
        "mmio write len 4",
    ),
    (
        "            bash-1379  [002]   353.397813: print:                tracing_mark_write: "
        "kvmgen: update 1 op=create as=0 slot=0 gfn=0x100 pages=0x10",
        "bash",
        1379,
        2,
        353.397813,
        "tracing_mark_write",
        "kvmgen: update 1",
    ),
    # trace-cmd 3 with a flags column and nanoseconds
    (
        "  CPU 0/KVM-4245  [000] d..2. 12345.678901234: handle_mmio_page_fault: "
        "addr:0 gfn febf1 access 6",
        "CPU 0/KVM",
        4245,
        0,
        12345.678901234,
        "handle_mmio_page_fault",
        "addr:0 gfn febf1",
    ),
    # perf script: "comm tid [cpu] time: system:event: payload"
    (
        "       CPU 0/KVM  4245 [001]   811.204512: kvmmmu:check_mmio_spte: spte febf1156 "
        "kvm_gen 2a spte-gen 2a valid 1",
        "CPU 0/KVM",
        4245,
        1,
        811.204512,
        "check_mmio_spte",
        "spte febf1156",
    ),
    (
        " qemu-system-x86  4242/4245 [003]   811.204530: kvm:kvm_mmio: mmio read len 4 "
        "gpa 0xfed00000 val 0x8086a201",
        "qemu-system-x86",
        4245,
        3,
        811.20453,
        "kvm_mmio",
        "mmio read len 4",
    ),
    (
        "       fc_vcpu 1 2335220 [069] 12345.679300: kvmmmu:kvm_mmu_zap_all_fast: "
        "kvm-mmu-valid-gen 1 used_pages 1a3",
        "fc_vcpu 1",
        2335220,
        69,
        12345.6793,
        "kvm_mmu_zap_all_fast",
        "kvm-mmu-valid-gen 1",
    ),
]


@pytest.mark.parametrize(("text", "comm", "pid", "cpu", "t", "event", "payload"), SHAPES)
def test_every_line_shape_parses(text, comm, pid, cpu, t, event, payload):
    tl = parse_trace_line(text, 5)
    assert tl is not None
    assert (tl.comm, tl.pid, tl.cpu, tl.event) == (comm, pid, cpu, event)
    assert tl.t_ns / 1e9 == pytest.approx(t, abs=1e-9)
    assert tl.payload.startswith(payload)
    assert tl.line == 5


@pytest.mark.parametrize(
    "text",
    [
        "# tracer: nop",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "cpus=2",
        "version = 6",
        "",
    ],
)
def test_headers_are_not_trace_lines(text):
    assert parse_trace_line(text) is None


def tracefs(comm: str, pid: int, t: float, event: str, payload: str, cpu: int = 1) -> str:
    return f"{comm:>16}-{pid:<6} [{cpu:03d}] ...1. {t:12.6f}: {event}: {payload}"


def marker(t: float, text: str) -> str:
    return tracefs("kvmgen", 3892, t, "tracing_mark_write", text, cpu=0)


def _capture(fast_ok: bool = True, gen: int = 2) -> list[str]:
    """A kvmgen-marked capture on E12 (one address space) with MMIO faults and a zap."""
    cpu0, cpu1 = ("CPU 0/KVM", 4245), ("CPU 1/KVM", 4246)
    return [
        "# tracer: nop",
        marker(
            10.0,
            "kvmgen: capture start source=test kernel=6.18.44 nas=1 vm_start=1 mmio_caching=1 "
            "events=kvm_mmu_zap_all_fast,mark_mmio_spte,check_mmio_spte",
        ),
        marker(10.1, update_marker(1, "create", 0, 0, gfn=0x100, pages=0x10, flags=0)),
        # vCPU 0: slow path, MMIO SPTE stamped with generation 1
        tracefs(*cpu0, 10.2, "mark_mmio_spte", "sptep:00000000c5a1f2e0 gfn febf1 access 0 gen 1"),
        tracefs(*cpu0, 10.21, "kvm_mmio", "mmio write len 4 gpa 0xfebf1000 val 0x1"),
        # vCPU 1 (empty cache): the check passes, fast path (or, for a kernel that
        # differs, fails and re-stamps)
        tracefs(
            *cpu1,
            10.3,
            "check_mmio_spte",
            f"spte febf100e kvm_gen 1 spte-gen 1 valid {int(fast_ok)}",
        ),
        tracefs(*cpu1, 10.31, "handle_mmio_page_fault", "addr:0 gfn febf1 access 0")
        if fast_ok
        else tracefs(
            *cpu1, 10.31, "mark_mmio_spte", "sptep:00000000c5a1f2e0 gfn febf1 access 0 gen 1"
        ),
        tracefs(*cpu1, 10.32, "kvm_mmio", "mmio unsatisfied-read len 4 gpa 0xfebf1000 val 0x0"),
        tracefs(*cpu1, 10.33, "kvm_mmio", "mmio read len 4 gpa 0xfebf1000 val 0x5"),
        marker(10.4, update_marker(2, "flags", 0, 0, flags=1)),
        # vCPU 0 again: its cache is stale (generation 2), the check fails, refault
        tracefs(*cpu0, 10.5, "check_mmio_spte", "spte febf100e kvm_gen 2 spte-gen 1 valid 0"),
        tracefs(
            *cpu0, 10.51, "mark_mmio_spte", f"sptep:00000000c5a1f2e0 gfn febf1 access 0 gen {gen}"
        ),
        tracefs(*cpu0, 10.52, "kvm_mmio", "mmio read len 4 gpa 0xfebf1000 val 0x5"),
        marker(10.6, update_marker(3, "delete", 0, 0)),
        tracefs(
            "kvmgen", 3892, 10.61, "kvm_mmu_zap_all_fast", "kvm-mmu-valid-gen 0 used_pages 3", cpu=0
        ),
        "CPU:1 [LOST 0 EVENTS]",
        marker(10.7, "kvmgen: capture end updates=3"),
    ]


def _load(result):
    out = io.StringIO()
    write_trace(out, "yaml", result.events, vm=result.vm, observations=result.observations)
    return open_trace(out.getvalue().encode(), name="t.yaml")


def test_capture_imports_to_updates_accesses_and_observations():
    result = import_tracefs("cap.txt", _capture())
    ops = [(e["op"], e.get("vcpu", 0), e.get("kind", "read")) for e in result.events]
    assert ops == [
        ("create", 0, "read"),
        ("access", 0, "write"),
        ("access", 1, "read"),
        ("flags", 0, "read"),
        ("access", 0, "read"),
        ("delete", 0, "read"),
    ]
    trace = _load(result)
    assert trace.vm.kernel == "6.18.44" and trace.vm.address_spaces == 1
    cap, *rest = trace.observations
    assert isinstance(cap, CaptureInfo)
    assert (cap.first_update, cap.last_update, cap.from_vm_start) == (1, 3, True)
    assert cap.zap_events == ("kvm_mmu_zap_all_fast",)
    zaps = [o for o in rest if isinstance(o, ZapSeen)]
    assert [(z.update, z.valid_gen, z.used_pages) for z in zaps] == [(3, 0, 3)]
    accesses = [o for o in rest if isinstance(o, AccessSeen)]
    assert [(a.access, a.update, a.outcome) for a in accesses] == [
        (1, 1, "slow_path"),
        (2, 1, "fast_path"),
        (4, 2, "refault"),
    ]
    assert (accesses[2].kvm_gen, accesses[2].spte_gen, accesses[2].gen) == (2, 1, 2)
    assert result.summary.accesses == 3 and result.summary.zaps == 1


@pytest.mark.usefixtures("warm_engine")
def test_a_consistent_capture_agrees_with_the_model():
    trace = _load(import_tracefs("cap.txt", _capture()))
    session = run_session(trace, [Target(ERAS["E12"])], policies=[parse_policy("historical")])
    run = session.runs[0]
    comp = compare_run(trace, run.spec, run.result, "E12")
    assert comp.disagreements == []
    assert (comp.access_compared, comp.access_agree) == (3, 3)
    delete = next(r for r in comp.classes if r.name == "delete")
    assert (delete.updates, delete.observed_zaps, delete.modelled_zaps) == (1, 1, 1)


@pytest.mark.usefixtures("warm_engine")
def test_a_kernel_that_differs_is_caught():
    trace = _load(import_tracefs("cap.txt", _capture(fast_ok=False, gen=7)))
    session = run_session(trace, [Target(ERAS["E12"])], policies=[parse_policy("historical")])
    run = session.runs[0]
    comp = compare_run(trace, run.spec, run.result, "E12")
    assert comp.failed
    texts = [(d.what, d.observed, d.modelled) for d in comp.disagreements]
    assert any("outcome refault" in obs and "outcome fast_path" in mod for _, obs, mod in texts)
    assert any("gen 0x7" in obs and "gen 0x2" in mod for _, obs, mod in texts)


def test_lost_events_are_counted():
    lines = _capture()
    lines.insert(5, "CPU:0 [LOST 12 EVENTS]")
    result = import_tracefs("cap.txt", lines)
    assert result.observations[0]["lost"] == 12
    assert "lost 12 events" in " ".join(result.summary.describe())


def test_malformed_payload_names_file_and_line():
    lines = [tracefs("CPU 0/KVM", 4245, 1.0, "check_mmio_spte", "spte zz kvm_gen")]
    with pytest.raises(TraceError) as info:
        import_tracefs("cap.txt", lines)
    assert str(info.value).startswith("cap.txt:1: check_mmio_spte: ")


def test_mmu_events_without_mmio_caching_give_accesses_but_no_outcomes():
    lines = [
        marker(1.0, "kvmgen: capture start nas=1 vm_start=1 mmio_caching=0 events=kvm_mmio"),
        tracefs("CPU 0/KVM", 4245, 1.1, "mark_mmio_spte", "sptep:1 gfn febf1 access 0 gen 1"),
        tracefs("CPU 0/KVM", 4245, 1.2, "kvm_mmio", "mmio write len 4 gpa 0xfebf1000 val 0x1"),
    ]
    result = import_tracefs("cap.txt", lines)
    assert [e["op"] for e in result.events] == ["access"]
    assert [o["kind"] for o in result.observations] == ["capture"]


QEMU_FTRACE = (
    "kvm_set_user_memory AddrSpace#{a} Slot#{slot} flags=0x0 gpa={gpa:#x} size={size:#x} "
    "ua=0x7f3c5a000000 ret=0"
)


def test_qemu_ftrace_markers_are_updates_and_zaps_belong_to_the_call_they_precede():
    # QEMU's ftrace backend writes its line after the ioctl: the zap comes first.
    q = ("qemu-system-x86", 4242)
    lines = [
        tracefs(
            *q, 5.000, "tracing_mark_write", QEMU_FTRACE.format(a=0, slot=0, gpa=0, size=0xA0000)
        ),
        tracefs(
            *q,
            5.100,
            "tracing_mark_write",
            QEMU_FTRACE.format(a=0, slot=3, gpa=0xC0000, size=0x4000),
        ),
        tracefs(*q, 5.2000, "kvm_mmu_zap_all_fast", "kvm-mmu-valid-gen 0 used_pages 1a"),
        tracefs(
            *q, 5.2001, "tracing_mark_write", QEMU_FTRACE.format(a=0, slot=3, gpa=0xC0000, size=0)
        ),
        tracefs(*q, 5.300, "tracing_mark_write", "some other marker"),
    ]
    result = import_tracefs("cap.txt", lines)
    assert [e["op"] for e in result.events] == ["create", "create", "delete"]
    zaps = [o for o in result.observations if o["kind"] == "zap"]
    assert [z["update"] for z in zaps] == [3]
    assert result.summary.other_markers == 1


def test_qemu_log_merged_on_another_clock_is_aligned_on_its_delete():
    qemu_lines = [
        "21530@1712345678.000100:kvm_set_user_memory AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 "
        "size=0xa0000 ua=0x7f1234000000 ret=0",
        "21530@1712345678.500000:kvm_set_user_memory AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 "
        "size=0x0 ua=0x7f1234000000 ret=0",
        "21530@1712345679.000000:kvm_set_user_memory AddrSpace#0 Slot#1 flags=0x0 gpa=0x0 "
        "size=0x1000 ua=0x7f1234000000 ret=0",
    ]
    trace_lines = [
        tracefs("CPU 0/KVM", 4245, 900.100, "mark_mmio_spte", "sptep:1 gfn febf1 access 0 gen 1"),
        tracefs("CPU 0/KVM", 4245, 900.101, "kvm_mmio", "mmio write len 4 gpa 0xfebf1000 val 0x1"),
        tracefs(
            "qemu-system-x86",
            21530,
            900.4999,
            "kvm_mmu_zap_all_fast",
            "kvm-mmu-valid-gen 0 used_pages 0",
        ),
        tracefs("CPU 0/KVM", 4245, 900.800, "kvm_mmio", "mmio write len 4 gpa 0xfebf1000 val 0x1"),
    ]
    qemu = read_log("qemu.log", qemu_lines)
    result = import_tracefs("cap.txt", trace_lines, calls=qemu)
    assert [e["op"] for e in result.events] == ["create", "access", "delete", "access", "create"]
    assert [o["update"] for o in result.observations if o["kind"] == "zap"] == [2]
    assert any("aligned on 1 delete/zap pair:" in n for n in result.summary.notes)
    cap = result.observations[0]
    assert (cap["first_update"], cap["last_update"]) == (2, 2)
    assert cap["from_vm_start"] is False
    _load(result)  # a valid trace


def test_qemu_log_without_timestamps_cannot_be_merged():
    qemu = read_log(
        "qemu.log", ["kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 ua=0x1 ret=0"]
    )
    with pytest.raises(UsageError, match="no timestamps"):
        import_tracefs("cap.txt", [marker(1.0, "hello")], calls=qemu, offset_ns=0)


def test_missing_kvmgen_markers_are_reported():
    lines = [
        marker(1.0, update_marker(1, "create", 0, 0, gfn=0x100, pages=0x10, flags=0)),
        marker(1.1, update_marker(3, "flags", 0, 0, flags=1)),
    ]
    result = import_tracefs("cap.txt", lines)
    assert any("1 of 3 between 1 and 3" in n for n in result.summary.notes)


def test_bad_kvmgen_marker_is_an_error():
    with pytest.raises(TraceError, match=r"cap.txt:1: kvmgen marker"):
        import_tracefs("cap.txt", [marker(1.0, "kvmgen: update 1 op=explode slot=0")])
