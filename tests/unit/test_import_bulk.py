"""The bulk QEMU import (jitted loops) against the Python importer: same trace, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError, UsageError
from kvmgen.importers import bulk, imports
from kvmgen.importers import line_kernels as lk

ROOT = Path(__file__).resolve().parent.parent.parent
FORMATS = ("yaml", "json", "jsonl")


def _python(text: str, first_sight: str) -> imports.Imported | str:
    """The Python importer's trace, or its message."""
    try:
        return imports.from_qemu("log", text.splitlines(), first_sight=first_sight)
    except (TraceError, UsageError) as error:
        return str(error)


def _bulk(text: str, first_sight: str) -> imports.Imported | str:
    """The trace from the log's bytes, whatever their size (the bulk loops, or the fallback)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imports, "BULK_MIN_BYTES", 0)
        try:
            return imports.from_qemu("log", text.encode(), first_sight=first_sight)
        except (TraceError, UsageError) as error:
            return str(error)


def _same(text: str, first_sight: str) -> bool:
    """Assert both importers agree; True when the bulk loops did the work themselves."""
    expected = _python(text, first_sight)
    got = _bulk(text, first_sight)
    if isinstance(expected, str):
        assert got == expected
        return False
    assert not isinstance(got, str), got
    assert got.summary == expected.summary
    assert got.vm == expected.vm
    for fmt in FORMATS:
        assert got.text(fmt) == expected.text(fmt)
    assert list(got.events) == list(expected.events)
    return bulk.import_qemu("log", text.encode(), first_sight) is not None


SLOTS = st.sampled_from([0, 1, 2, 3, 5, 1 << 16 | 1, 1 << 16 | 3])
GPAS = st.sampled_from([0, 0x1000, 0x8000, 0x10000, 0xFD000000, 0x100000000, 0xFFFFF000])
SIZES = st.sampled_from([0, 0, 0x1000, 0x8000, 0x10000, 0x1000000, 0x80000000])


@st.composite
def qemu_line(draw: st.DrawFn, t: int) -> str:
    slot, gpa, size = draw(SLOTS), draw(GPAS), draw(SIZES)
    flags = draw(st.sampled_from([0, 1, 2, 3, 4]))
    ret = draw(st.sampled_from([0, 0, 0, 0, -17, -22]))
    shape = draw(st.sampled_from(["combined", "split", "memfd", "extra", "spaced", "prefixless"]))
    prefix = "" if shape == "prefixless" else f"7341@{t // 10**6}.{t % 10**6:06d}:"
    tail = f"flags={flags:#x} gpa={gpa:#x} size={size:#x} ua=0x7f0a3e000000"
    split = f"{prefix}kvm_set_user_memory AddrSpace#{slot >> 16} Slot#{slot & 0xFFFF} {tail}"
    if shape == "split":
        return f"{split} ret={ret}"
    if shape == "memfd":
        return f"{split} guest_memfd=-1 guest_memfd_offset=0x0 ret={ret}"
    if shape == "extra":  # a field kvmgen does not know: the Python parser reads the line
        return f"{prefix}kvm_set_user_memory Slot#{slot} {tail} ret={ret} restricted_fd=19"
    if shape == "spaced":
        return f"  {prefix}kvm_set_user_memory Slot#{slot} {tail} ret={ret} \t"
    return f"{prefix}kvm_set_user_memory Slot#{slot} {tail} ret={ret}"


@st.composite
def qemu_log(draw: st.DrawFn) -> str:
    lines = []
    t = draw(st.integers(0, 1 << 31)) * 10**6
    if draw(
        st.booleans()
    ):  # QEMU's first call: RAM at gpa 0 in slot 0 (the log starts at creation)
        lines.append(f"7341@{t // 10**6}.000000:kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 "
                     "size=0x80000000 ua=0x7f0000000000 ret=0")  # fmt: skip
    for _ in range(draw(st.integers(0, 40))):
        t += draw(st.integers(0, 5000))
        kind = draw(st.sampled_from(["call"] * 8 + ["unrelated", "blank"]))
        if kind == "call":
            lines.append(draw(qemu_line(t)))
        elif kind == "unrelated":
            lines.append("7341@1.000000:kvm_vm_ioctl type 0xc020ae46, arg 0x7ffd")
        else:
            lines.append(draw(st.sampled_from(["", "   "])))
    return "\n".join(lines) + draw(st.sampled_from(["\n", ""]))


@settings(max_examples=300)
@given(log=qemu_log(), first_sight=st.sampled_from(["auto", "create", "flags"]))
def test_bulk_import_matches_python(log: str, first_sight: str) -> None:
    _same(log, first_sight)


def test_bulk_loops_do_the_work_on_real_and_generated_logs() -> None:
    """Not a test that always falls back: real captures and a churn log stay in the loops."""
    captured = [
        *sorted((ROOT / "traces" / "captures").glob("*.qemu.log")),
        ROOT / "traces" / "qemu-smm.log",
    ]
    assert captured
    for path in captured:
        assert _same(path.read_text(), "auto"), path
    churn = []
    for i in range(
        3000
    ):  # creates, flags, moves, deletes, size changes, a slot created over another
        slot, step = i % 7, (i // 7) % 6
        base = slot << 20
        gpa, size = [
            (base, 0x2000),
            (base, 0x2000),
            (base + 0x10000, 0x2000),
            (base + 0x10000, 0x4000),
            ((slot - 1) << 20 if slot else base, 0x1000),
            (0, 0),
        ][step]
        churn.append(
            f"9@{10 + i}.{i % 10**6:06d}:kvm_set_user_memory Slot#{slot} flags={i % 2:#x} "
            f"gpa={gpa:#x} size={size:#x} ua=0x7f0000000000 ret=0"
        )
    assert _same("\n".join(churn), "create")


CALL = "kvm_set_user_memory Slot#3 flags=0x0 gpa={} size=0x1000 ua=0x0 ret=0{}\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("5@1.000000:" + CALL.format("0x0", "\r"), "CR"),
        ("5@1.000000:" + CALL.format("0x0", "") + "\u00e9\n", "UTF-8"),
        ("5@1.0000001:" + CALL.format("0x0", ""), "ns"),
        (CALL.format("0x10", ""), "unaligned"),
        (CALL.format("0x0", "") * 2 + CALL.format("0xfffffffffffff000", ""), "huge"),
        (CALL.format("0x0", " what"), "bad field"),
    ],
)
def test_what_the_loops_leave_to_python(text: str, why: str) -> None:
    """Odd bytes, nanosecond times and refused calls: Python's result or Python's message."""
    _same(text, "auto")
    if why in ("CR", "UTF-8", "ns", "unaligned", "huge"):
        assert bulk.import_qemu("log", text.encode(), "auto") is None


def test_write_events_text_table_fits_the_longest_event() -> None:
    """The block buffer holds LONGEST_EVENT bytes a row: the longest event or observation fits."""
    import numpy as np

    big, t_ns = (1 << 62) - 1, ((1 << 32) - 1) * 10**9
    event = np.zeros((1, lk.N_ECOLS), dtype=np.int64)
    event[0] = [lk.OP_CREATE, 1, 32767, big, big, big, big, t_ns]
    toggles = np.array([[lk.OP_FLAGS, 1, 32767, -1, big, 0, -big, t_ns]], dtype=np.int64)
    observation = np.array([[lk.OBS_ACCESS, t_ns, big, 3, big, big, big]], dtype=np.int64)
    for fmt in FORMATS:
        text, spans = bulk._pieces(fmt, ("x" * 40, "x" * 40, "x" * 40))
        buffer = np.zeros(lk.LONGEST_EVENT * 2, dtype=np.uint8)
        for rows, writer in (
            (event, lk.write_events),
            (toggles, lk.write_events),
            (observation, lk.write_observations),
        ):
            size = writer(rows, np.int64(0), np.int64(1), text, spans, np.int64(1), buffer)
            assert size <= lk.LONGEST_EVENT, (fmt, writer)
