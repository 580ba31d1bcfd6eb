"""kvmgen import qemu: QEMU kvm_set_user_memory lines -> trace v1, rules and round trips."""

from __future__ import annotations

import io

import pytest

from kvmgen.errors import TraceError
from kvmgen.importers.emit import write_trace
from kvmgen.importers.memslots import header_for, parse_time
from kvmgen.importers.memslots import import_calls as import_qemu
from kvmgen.importers.qemu import parse_line, read_log
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import parse_policy
from kvmgen.session import Target, run_session
from kvmgen.trace.records import Op
from tests.conftest import ROOT

# One line of each shape QEMU has printed, as a real log has them.
OLD = (
    "21530@1712345678.123456:kvm_set_user_memory Slot#65539 flags=0x0 gpa=0xfd000000 "
    "size=0x1000000 ua=0x7f3c5a000000 ret=0"
)
NEW = (
    "21530@1712345678.123500:kvm_set_user_memory AddrSpace#1 Slot#3 flags=0x1 gpa=0xfd000000 "
    "size=0x1000000 ua=0x7f3c5a000000 ret=0"
)
GMEMFD = (
    "4242@1712345690.000001:kvm_set_user_memory AddrSpace#0 Slot#2 flags=0x4 gpa=0x100000 "
    "size=0x7ff00000 ua=0x7f0000100000 guest_memfd=27 guest_memfd_offset=0x100000 ret=0"
)
BARE = (
    "kvm_set_user_memory AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 size=0xa0000 ua=0x7f1234000000 ret=0"
)
UNRELATED = [
    "qemu-system-x86_64: -accel kvm: warning: host doesn't support requested feature",
    "21530@1712345678.100000:kvm_set_ioeventfd_mmio fd: 21 @0xfebf1000 val=0x0 assign: 1 "
    "size: 4 match: 0",
    "21530@1712345678.100100:kvm_irqchip_commit_routes ",
    "",
]


def qemu_line(
    a: int, slot: int, flags: int, gpa: int, size: int, *, ret: int = 0, t_us: int = 0
) -> str:
    """A QEMU 7.0+ log line with the -msg timestamp=on prefix."""
    return (
        f"21530@{1712345678 + t_us // 1_000_000}.{t_us % 1_000_000:06d}:kvm_set_user_memory "
        f"AddrSpace#{a} Slot#{slot} flags={flags:#x} gpa={gpa:#x} size={size:#x} "
        f"ua=0x7f3c{gpa & 0xFFFFFFFF:08x} ret={ret}"
    )


def imported(lines: list[str], first_sight: str = "auto", kernel: str | None = None):
    log = read_log("qemu.log", lines)
    tracker, events = import_qemu(log, first_sight)
    out = io.StringIO()
    write_trace(out, "yaml", events, vm=header_for(tracker, kernel))
    trace = open_trace(out.getvalue().encode(), name="qemu.yaml")
    return tracker, events, trace


@pytest.mark.parametrize(
    ("text", "a", "slot", "flags", "gpa", "size", "t_ns", "memfd"),
    [
        (OLD, 1, 3, 0, 0xFD000000, 0x1000000, 1712345678_123456000, None),
        (NEW, 1, 3, 1, 0xFD000000, 0x1000000, 1712345678_123500000, None),
        (GMEMFD, 0, 2, 4, 0x100000, 0x7FF00000, 1712345690_000001000, 27),
        (BARE, 0, 0, 0, 0x0, 0xA0000, None, None),
    ],
)
def test_every_line_shape_parses(text, a, slot, flags, gpa, size, t_ns, memfd):
    rec = parse_line(text, path="q.log", line=7)
    assert rec is not None
    assert (rec.address_space, rec.slot, rec.flags, rec.gpa, rec.size, rec.ret) == (
        a,
        slot,
        flags,
        gpa,
        size,
        0,
    )
    assert rec.t_ns == t_ns
    assert rec.guest_memfd == memfd
    assert rec.line == 7


def test_old_format_slot_zero_of_address_space_zero():
    rec = parse_line(
        "kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x80000000 ua=0x7f00 ret=0",
        path="q",
        line=1,
    )
    assert (rec.address_space, rec.slot) == (0, 0)


def test_unrelated_lines_are_not_records():
    for text in UNRELATED:
        assert parse_line(text, path="q", line=1) is None


def test_malformed_event_line_is_an_error_with_file_and_line():
    bad = "21530@1712345678.1:kvm_set_user_memory AddrSpace#0 Slot#x flags=0x0 gpa=0x0 ret=0"
    with pytest.raises(TraceError) as info:
        read_log("boot.log", [BARE, bad])
    message = str(info.value)
    assert message.startswith("boot.log:2: ")
    assert "kvm_set_user_memory" in message and "\n" not in message


def test_failed_calls_and_unrelated_lines_are_skipped_and_counted():
    lines = [
        *UNRELATED,
        qemu_line(0, 0, 0, 0x0, 0xA0000),
        qemu_line(0, 1, 0, 0xC0000, 0x4000, ret=-17),  # EEXIST: the kernel changed nothing
        qemu_line(0, 1, 0, 0x100000, 0x7FF00000),
    ]
    tracker, events, trace = imported(lines)
    assert [e["op"] for e in events] == ["create", "create"]
    assert tracker.summary.failed == 1
    assert tracker.summary.unrelated == 3  # the blank line is not counted
    text = " ".join(tracker.summary.describe())
    assert "1 call with ret != 0" in text and "3 unrelated" in text
    assert trace.events[1].gfn == 0x100 and trace.events[1].pages == 0x7FF00


def test_timestamps_are_kept_as_t():
    _, events, trace = imported([qemu_line(0, 0, 0, 0, 0xA0000, t_us=250)])
    assert events[0]["t"] == pytest.approx(1712345678.000250)
    assert trace.events[0].t == pytest.approx(1712345678.000250)


def test_delete_flags_move_and_inferred_delete():
    lines = [
        qemu_line(0, 0, 0, 0x0, 0xA0000),  # create: the log starts at VM creation
        qemu_line(0, 5, 0, 0xFD000000, 0x1000000),  # create
        qemu_line(0, 5, 1, 0xFD000000, 0x1000000),  # same range, new flags: flags
        qemu_line(0, 5, 1, 0xFE000000, 0x1000000),  # same size, new start: move
        qemu_line(0, 5, 1, 0xFE000000, 0x2000000),  # new size: delete + create
        qemu_line(0, 5, 1, 0xFE000000, 0x0),  # size 0: delete
    ]
    tracker, events, trace = imported(lines)
    assert [e["op"] for e in events] == [
        "create",
        "create",
        "flags",
        "move",
        "delete",
        "create",
        "delete",
    ]
    assert events[2]["flags"] == 1
    assert events[3]["gfn"] == 0xFE000
    assert events[4]["note"].startswith("inferred")
    assert len(tracker.summary.inferred_deletes) == 1
    assert trace.events[5].pages == 0x2000


def test_create_over_a_live_slot_infers_its_delete():
    lines = [
        qemu_line(0, 0, 0, 0x0, 0xA0000),
        qemu_line(0, 3, 0, 0xC0000, 0x4000),
        qemu_line(0, 4, 0, 0xC0000, 0x4000),  # slot 3's delete is missing from the log
    ]
    tracker, events, _trace = imported(lines)
    assert [(e["op"], e["slot"]) for e in events] == [
        ("create", 0),
        ("create", 3),
        ("delete", 3),
        ("create", 4),
    ]
    assert "slot 3" in tracker.summary.inferred_deletes[0]


def test_mid_run_log_declares_preexisting_slots():
    # Starts mid-run: a delete and a dirty-log change of slots the log never created.
    lines = [
        qemu_line(0, 7, 2, 0xFEB80000, 0x0),  # delete of slot 7: size unknown
        qemu_line(0, 4, 1, 0xFD000000, 0x1000000),  # dirty logging on for slot 4
        qemu_line(0, 4, 0, 0xFD000000, 0x1000000),  # and off again
        qemu_line(0, 7, 0, 0xFEB80000, 0x40000),  # slot 7 comes back: a create
    ]
    tracker, events, trace = imported(lines)
    assert [e["op"] for e in events] == ["delete", "flags", "flags", "create"]
    assert tracker.starts_mid_run is True
    decls = {(d["as"], d["slot"]): d for d in tracker.decls}
    assert decls[(0, 7)]["pages"] == 1  # the log never said how big it was
    assert decls[(0, 4)] == {"slot": 4, "as": 0, "gfn": 0xFD000, "pages": 0x1000, "flags": 0}
    assert len(trace.vm.slots) == 2
    assert "existed before the log started" in " ".join(tracker.summary.describe())
    # Pre-existing slots cost no bumps: 4 updates, 5 bumps (the delete makes 2).
    session = run_session(trace, [Target(ERAS["E12"])], policies=[parse_policy("none")])
    assert session.runs[0].result.bumps[0] == 2 + 1 + 1 + 1


def test_first_sight_create_policy_reads_the_same_line_as_a_create():
    lines = [qemu_line(0, 4, 1, 0xFD000000, 0x1000000)]
    tracker, events, _ = imported(lines, first_sight="create")
    assert events[0]["op"] == "create" and not tracker.decls
    tracker, events, _ = imported(lines, first_sight="auto")
    assert events[0]["op"] == "flags" and tracker.decls


def test_preexisting_slot_overlapping_an_earlier_create_is_an_error():
    lines = [
        qemu_line(0, 0, 0, 0x0, 0xA0000),
        qemu_line(0, 0, 0, 0x0, 0x0),  # makes the log a from-creation one; slot 0 gone
        qemu_line(0, 9, 0, 0xC0000, 0x4000),
        qemu_line(0, 6, 0, 0xC0000, 0x0),  # delete of a slot at the range slot 9 holds
    ]
    with pytest.raises(TraceError) as info:
        imported(lines)
    assert str(info.value).startswith("qemu.log:4: ")
    assert "overlaps slot 9" in str(info.value)


def test_unaligned_region_with_ret_zero_is_an_error():
    with pytest.raises(TraceError, match="not page aligned"):
        imported([qemu_line(0, 0, 0, 0x800, 0x1000)])


def _smm_boot_log() -> tuple[list[str], int, int]:
    """A QEMU q35 SMM boot: both address spaces, PAM churn mirrored in each, 150+ updates."""
    lines = ["qemu-system-x86_64: warning: TCG doesn't support requested feature"]
    t = 0
    counts = {0: 0, 1: 0}

    def add(a, slot, flags, gpa, size):
        nonlocal t
        t += 37
        lines.append(qemu_line(a, slot, flags, gpa, size, t_us=t))
        counts[a] += 1

    for a in (0, 1):
        add(a, 0, 0, 0x0, 0xA0000)
        add(a, 1, 0, 0x100000, 0x7FF00000)
        add(a, 2, 2, 0xFFFC0000, 0x40000)
    add(1, 3, 0, 0xA0000, 0x20000)  # SMRAM, address space 1 only
    lines.append("21530@1712345679.000000:kvm_irqchip_commit_routes ")
    for round_ in range(6):
        for region in range(13):
            gpa = 0xC0000 + region * 0x4000
            size = 0x4000 if region < 12 else 0x10000
            for a in (0, 1):
                slot = 10 + region
                add(a, slot, 2 if round_ % 2 else 0, gpa, size)
                add(a, slot, 0, gpa, 0)
    return lines, counts[0], counts[1]


def test_smm_boot_log_imports_to_its_update_counts_and_address_spaces():
    lines, as0, as1 = _smm_boot_log()
    tracker, _events, trace = imported(lines, kernel="4.19")
    assert trace.vm.address_spaces == 2 and trace.vm.kernel == "4.19"
    updates = [e for e in trace.events if e.op != Op.ACCESS]
    assert len(updates) == as0 + as1 == 7 + 6 * 13 * 2 * 2
    assert sum(e.address_space == 0 for e in updates) == as0
    assert sum(e.address_space == 1 for e in updates) == as1
    assert tracker.summary.per_as == {0: as0, 1: as1}
    assert not tracker.decls


def _update_of_bump(trace, address_space, wanted):
    """The update at which ``address_space`` makes its ``wanted``-th bump (create 1, delete 2)."""
    update = bumps = 0
    for event in trace.events:
        if event.op == Op.ACCESS:
            continue
        update += 1
        if event.address_space == address_space:
            bumps += 2 if event.op == Op.DELETE else 1
            if bumps >= wanted:
                return update
    raise AssertionError("not reached")


@pytest.mark.usefixtures("warm_engine")
@pytest.mark.parametrize(("era", "zap_bumps"), [("E4", {0: 75, 1: 75}), ("E5", {1: 37})])
def test_smm_boot_log_replays_with_the_era_arithmetic_wrap_zaps(era, zap_bumps):
    # E4: both address spaces start at -150 and step 2 per bump: 20-bit value 0 at bump 75.
    # E5: AS 1 starts at -148 and steps 4: zero at its 37th bump; AS 0 (-150) never zaps.
    # Deletes bump twice: the zap lands on the update holding that bump.
    lines, _, _ = _smm_boot_log()
    _, _, trace = imported(lines, kernel="4.19")
    session = run_session(trace, [Target(ERAS[era])], policies=[parse_policy("historical")])
    zaps = [z for z in session.runs[0].result.zap_events if z.kind == "wrap"]
    expected = sorted((_update_of_bump(trace, a, n), a) for a, n in zap_bumps.items())
    assert sorted((z.update, z.address_space) for z in zaps) == expected


# A QEMU of the guest_memfd development series printed its memfd under other names.
DEVTREE = (
    "4242@1712345690.000001:kvm_set_user_memory AddrSpace#0 Slot#2 flags=0x0 gpa=0x100000 "
    "size=0x7ff00000 ua=0x7f0000100000 ret=0 restricted_fd=19 restricted_offset=0x0"
)


def test_unknown_trailing_fields_are_kept_out_counted_and_named():
    tracker, events, _trace = imported(
        [BARE, DEVTREE, DEVTREE.replace("size=0x7ff00000", "size=0x0")]
    )
    assert [e["op"] for e in events] == ["create", "create", "delete"]
    summary = tracker.summary.describe()
    assert (
        "fields this kvmgen does not know were kept out: restricted_fd (2), restricted_offset (2)"
        in summary
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("kvm_set_user_memory slot 3 gpa 0x0", "has no Slot#N"),
        ("kvm_set_user_memory Slot#3 flags=0x0 gpa=0x0 ret=0", "lacks size"),
        (
            "kvm_set_user_memory Slot#3 flags=0x0 gpa=0x0 size=0x1000 ret=0 junk",
            "which is not key=value",
        ),
        (
            "kvm_set_user_memory Slot#3 flags=0x0 flags=0x1 gpa=0x0 size=0x1000 ret=0",
            "names flags twice",
        ),
        ("kvm_set_user_memory Slot#3 flags=zero gpa=0x0 size=0x1000 ret=0", "not a number"),
    ],
)
def test_a_line_of_an_unknown_shape_is_still_refused(text, why):
    with pytest.raises(TraceError, match=why):
        read_log("q.log", [text])


@pytest.mark.parametrize(
    "text",
    [
        OLD,
        NEW,
        GMEMFD,
        BARE,
        "  21530@1712345678.5:kvm_set_user_memory Slot#0 flags=0xA gpa=0xFD000000 size=0x0 "
        "ua=0x7f00 ret=-17   ",
        *(ROOT / "traces" / "captures" / "qemu-boot.qemu.log").read_text().splitlines(),
    ],
)
def test_the_one_regex_reading_reads_as_the_general_parser(text):
    from kvmgen.importers.qemu import _PREFIX, NAME, parse_payload

    fast = parse_line(text, path="q", line=3)
    prefix = _PREFIX.match(text)
    at = text.find(NAME)
    t_ns = tid = None
    if prefix is not None and prefix.end() <= at:
        t_ns = parse_time(prefix["sec"], prefix["frac"])
        tid = int(prefix["tid"])
    assert fast == parse_payload(text[at + len(NAME) :], path="q", line=3, t_ns=t_ns, tid=tid)
