"""kvmgen import strace: real strace 6.1 logs of one tiny VMM under every option set.

tests/data/captures/minivmm.py made the logs (make_captures.sh beside it): one VM
whose slots 1 and 2 are churned by two threads (so strace splits calls over
``<unfinished ...>``/``<... resumed>``), a call the kernel refused, and a second VM.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError, UsageError
from kvmgen.importers.imports import from_strace
from kvmgen.importers.strace import choose_vm, read_strace, vm_log
from tests.conftest import ROOT

CAPTURES = ROOT / "tests" / "data" / "captures"
VARIANTS = ["none", "r", "raw", "t-y", "tt", "ttt-T", "verbose"]


def lines_of(name: str) -> list[str]:
    return (CAPTURES / f"strace-{name}.log").read_text().splitlines()


def per_slot(events: list[dict]) -> dict[int, list[tuple]]:
    """Each slot's own sequence (the two threads interleave differently in every run)."""
    out: dict[int, list[tuple]] = defaultdict(list)
    for ev in events:
        out[ev["slot"]].append(
            (ev["op"], ev.get("gfn"), ev.get("pages"), ev.get("flags"), ev.get("repeat"))
        )
    return dict(out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_option_set_gives_the_same_updates(variant):
    imported = from_strace(f"strace-{variant}.log", lines_of(variant), vm="4")
    assert per_slot(imported.events) == per_slot(
        from_strace("strace-tt.log", lines_of("tt"), vm="4").events
    )
    assert imported.summary[0].startswith(
        "48 updates (3 create, 3 delete, 40 flags, 2 move; 48 in address space 0) from 49 "
        "KVM_SET_USER_MEMORY_REGION calls"
    )
    assert any("skipped 1 call with ret != 0" in line for line in imported.summary)
    assert imported.vm["address_spaces"] == 1  # the VMM asked KVM_CAP_MULTI_ADDRESS_SPACE: 0
    assert "slots" not in imported.vm  # the log shows the VM created: nothing pre-existed


def test_a_log_with_two_vms_names_them_and_imports_the_one_asked_for():
    log = read_strace("s.log", lines_of("tt"))
    with pytest.raises(UsageError, match=r"2 VMs made memslot calls: pick one with --vm"):
        choose_vm(log, None)
    other = from_strace("s.log", lines_of("tt"), vm="5")
    assert [e["op"] for e in other.events] == ["create", "delete"]
    pid = log.vms[0].creator
    assert choose_vm(log, f"{pid}:4") is log.vms[0]
    with pytest.raises(UsageError, match=r"--vm 7: no VM of s.log match \(VMs: fd 4 of pid"):
        choose_vm(log, "7")
    with pytest.raises(UsageError, match="expected FD or PID:FD"):
        choose_vm(log, "four")


def test_calls_split_by_other_threads_are_joined():
    text = lines_of("tt")
    assert any(line.endswith("<unfinished ...>") for line in text)
    assert any("<... ioctl resumed>" in line for line in text)
    calls = vm_log(read_strace("s.log", text), read_strace("s.log", text).vms[0]).calls
    assert len(calls) == 49 and len({c.tid for c in calls}) == 3


def test_times_are_entry_times_unless_the_log_has_durations():
    plain = read_strace("s.log", lines_of("ttt-T"))
    with_durations = vm_log(plain, plain.vms[0])
    assert with_durations.at_exit
    raw = plain.vms[0].calls
    assert [c.t_ns + c.duration_ns for c in raw] == [c.t_ns for c in with_durations.calls]
    tt = read_strace("s.log", lines_of("tt"))
    assert not vm_log(tt, tt.vms[0]).at_exit


def test_relative_timestamps_are_said():
    imported = from_strace("s.log", lines_of("r"), vm="4")
    assert any("-r timestamps" in line for line in imported.summary)


def test_region2_that_strace_cannot_decode_is_refused_in_one_line():
    with pytest.raises(TraceError) as info:
        read_strace("r2.log", (CAPTURES / "strace-region2.log").read_text().splitlines())
    message = str(info.value)
    assert message.startswith("r2.log:63: KVM_SET_USER_MEMORY_REGION2 whose struct strace")
    assert "\n" not in message


def test_a_decoded_region2_struct_is_read():
    lines = [
        "100 1.000000 ioctl(3, KVM_CREATE_VM, 0) = 4",
        "100 1.000100 ioctl(4, KVM_SET_USER_MEMORY_REGION2, {slot=65537, flags=KVM_MEM_GUEST_MEMFD"
        "|KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr=0x100000, memory_size=8192, "
        "userspace_addr=0x7f0000000000, guest_memfd_offset=0, guest_memfd=9}) = 0",
    ]
    (call,) = read_strace("s.log", lines).vms[0].calls
    assert (call.address_space, call.slot, call.flags, call.gpa, call.size) == (
        1,
        1,
        5,
        0x100000,
        8192,
    )
    assert call.guest_memfd == 9


@pytest.mark.parametrize(
    "line",
    [
        "[pid   100] 12:00:00.000100 ioctl(4<anon_inode:kvm-vm>, KVM_SET_USER_MEMORY_REGION, "
        "{slot=0, flags=0, guest_phys_addr=0, memory_size=4096, userspace_addr=0x7f00}) = 0 "
        "<0.000020>",
        "ioctl(4, KVM_SET_USER_MEMORY_REGION, {slot=0, flags=0, guest_phys_addr=0, "
        "memory_size=4096, userspace_addr=0x7f00}) = 0",
    ],
)
def test_prefixes_without_a_creation_line(line):
    log = read_strace("s.log", [line])
    (vm,) = log.vms
    assert vm.created_line is None and vm.calls[0].size == 4096


def test_no_memslot_calls_says_how_to_run_strace():
    with pytest.raises(UsageError, match="no KVM_SET_USER_MEMORY_REGION calls"):
        from_strace("s.log", ["100 ioctl(3, KVM_CREATE_VM, 0) = 4"])


def test_an_undecoded_field_is_an_error_with_its_line():
    bad = (
        "100 ioctl(4, KVM_SET_USER_MEMORY_REGION, {slot=0, flags=0, guest_phys_addr=zero, "
        "memory_size=1}) = 0"
    )
    with pytest.raises(TraceError, match=r"s.log:1: guest_phys_addr='zero'"):
        read_strace("s.log", [bad])


def _args_char_by_char(text: str) -> list[str]:
    """The plain definition _args must keep: split at commas outside brackets and quotes."""
    out: list[str] = []
    current: list[str] = []
    depth = 0
    quote = False
    for char in text:
        if char == '"':
            quote = not quote
        elif not quote and char in "{[(":
            depth += 1
        elif not quote and char in "}])":
            depth -= 1
        if char == "," and depth == 0 and not quote:
            out.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current:
        out.append("".join(current).strip())
    return out


@settings(max_examples=2000)
@given(st.text(alphabet=' a,{}[]()"=\t', max_size=40))
def test_argument_split_matches_its_definition(text):
    from kvmgen.importers.strace import _args

    assert _args(text) == _args_char_by_char(text)


def test_a_whole_region_line_reads_as_the_same_call_split_in_two():
    """The one-match read of a common line and the general reader give the same call."""
    whole = (
        "11233 1796284858.330494 ioctl(4</anon_inode:kvm-vm>, KVM_SET_USER_MEMORY_REGION, "
        "{slot=65539, flags=KVM_MEM_LOG_DIRTY_PAGES|KVM_MEM_READONLY, guest_phys_addr=0, "
        "memory_size=65536, userspace_addr=0x7f79be63b000}) = -1 EEXIST (File exists) <0.000014>"
    )
    split = [
        whole[: whole.index(") = ")] + " <unfinished ...>",
        "11233 1796284858.330510 <... ioctl resumed>" + whole[whole.index(") = ") :],
    ]
    create = "11233 1796284858.328248 ioctl(3, KVM_CREATE_VM, 0) = 4 <0.000366>"
    one = read_strace("s.log", [create, whole]).vms[0].calls
    two = read_strace("s.log", [create, *split]).vms[0].calls
    assert one == two and len(one) == 1
    assert (one[0].address_space, one[0].slot, one[0].flags, one[0].ret) == (1, 3, 3, -17)
