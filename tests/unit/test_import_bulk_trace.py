"""The bulk kernel-trace import (jitted loops) against the Python importer: same trace."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError, UsageError
from kvmgen.importers import bulk_trace, imports
from kvmgen.importers.tracefs import update_marker

ROOT = Path(__file__).resolve().parent.parent.parent
FORMATS = ("yaml", "json")


def _python(text: str, **options: bool | None) -> imports.Imported | str:
    """The Python importer's trace, or its message."""
    try:
        return imports.from_tracefs("cap", text.splitlines(), **options)  # type: ignore[arg-type]
    except (TraceError, UsageError) as error:
        return str(error)


def _bulk(text: str, **options: bool | None) -> imports.Imported | str:
    """The trace from the capture's bytes, whatever their size (the loops, or the fallback)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imports, "BULK_MIN_BYTES", 0)
        try:
            return imports.from_tracefs("cap", text.encode(), **options)  # type: ignore[arg-type]
        except (TraceError, UsageError) as error:
            return str(error)


def _same(text: str, zaps_enabled: bool = False, from_vm_start: bool | None = None) -> bool:
    """Assert both importers agree; True when the loops did the work themselves."""
    options = {"zaps_enabled": zaps_enabled, "from_vm_start": from_vm_start}
    expected = _python(text, **options)
    got = _bulk(text, **options)
    if isinstance(expected, str):
        assert got == expected
        return False
    assert not isinstance(got, str), got
    assert got.summary == expected.summary
    assert got.vm == expected.vm
    assert list(got.events) == list(expected.events)
    assert list(got.observations or []) == list(expected.observations or [])
    for fmt in FORMATS:
        assert got.text(fmt) == expected.text(fmt)
    done = bulk_trace.import_trace(
        "cap", text.encode(), zaps_enabled=zaps_enabled, from_vm_start=from_vm_start
    )
    return done is not None


# ---- generated captures ----------------------------------------------------------------

THREADS = [  # (comm, pid, tgid)
    ("CPU 0/KVM", 4245, 4242),
    ("CPU 1/KVM", 4246, 4242),
    ("qemu-system-x86", 4242, 4242),
    ("kvm-wrap-probe", 3892, 3892),
    ("CPU 9999/KVM", 5001, 5000),
    ("other vm", 5002, 5000),
]


def _head(
    draw: st.DrawFn, thread: tuple[str, int, int], t_us: int, tgid_column: bool, odd: bool
) -> str:
    comm, pid, tgid = thread
    flags = draw(st.sampled_from(["...1. ", "d..1 ", "", "d.h2. "]))
    tgid_text = f"({tgid:>5}) " if tgid_column and draw(st.booleans()) else ""
    if tgid_column and not tgid_text:
        tgid_text = "(-----) "
    frac = f"{t_us % 10**6:06d}"
    if odd and draw(st.integers(0, 40)) == 0:
        frac += "123"  # nanoseconds: the Python way
    cpu = draw(st.integers(0, 3))
    return f"{comm:>16}-{pid:<5} {tgid_text}[{cpu:03d}] {flags}{t_us // 10**6}.{frac}: "


@st.composite
def _payload(draw: st.DrawFn, ordinal: int, odd: bool) -> tuple[str, str]:
    """(event, payload) of one line; ``odd``: maybe one only the Python importer reads."""
    kind = draw(
        st.sampled_from(
            ["update"] * 6
            + ["zap", "zap_pages", "check", "mark", "handle", "mmio", "mmio", "other"]
            + ["capture", "marker", "syscall"]
            + (["odd"] if odd else [])
        )
    )
    slot, space = draw(st.sampled_from([0, 1, 2])), draw(st.sampled_from([0, 0, 0, 1]))
    gfn = draw(st.sampled_from([0xFEBF1, 0xFEBF2, 0x100, 0xFD000]))
    if kind == "update":
        op = draw(st.sampled_from(["create", "delete", "move", "flags", "flags", "flags"]))
        fields: dict[str, int] = {}
        if op in ("create", "move"):
            fields["gfn"] = gfn
        if op == "create":
            fields["pages"] = draw(st.sampled_from([1, 0x10, 0x1000]))
        if op in ("create", "flags") and draw(st.booleans()):
            fields["flags"] = draw(st.sampled_from([0, 1, 2, 3]))
        if draw(st.integers(0, 5)) == 0:
            fields["src"] = draw(st.integers(0, 99))
        text = update_marker(ordinal, op, space, slot, **fields)
        if odd and draw(st.integers(0, 30)) == 0:
            text = text.replace("slot=", "slot=0X")  # int(.., 0) reads it; the loops do not
        if odd and draw(st.integers(0, 40)) == 0:
            text += " bogus=1"  # Python's message
        return "tracing_mark_write", text
    number, other = draw(st.integers(0, 300)), draw(st.integers(0, 99))
    if kind == "zap":
        return "kvm_mmu_zap_all_fast", f"kvm-mmu-valid-gen {number} used_pages {other:x}"
    if kind == "zap_pages":
        return (
            "kvm_mmu_invalidate_zap_all_pages",
            f"kvm-mmu-valid-gen {number:x} used_pages {other:x}",
        )
    gen = draw(st.integers(0, 0x3FFFF))
    if kind == "check":
        spte_gen, valid = gen ^ draw(st.sampled_from([0, 1])), draw(st.sampled_from([0, 1]))
        return "check_mmio_spte", f"spte 7ff0 kvm_gen {gen:x} spte-gen {spte_gen:x} valid {valid}"
    if kind == "mark":
        return "mark_mmio_spte", f"sptep:00000000c5a1f2e0 gfn {gfn:x} access 6 gen {gen:x}"
    if kind == "handle":
        return "handle_mmio_page_fault", f"addr:{gfn << 12:x} gfn {gfn:x} access 6"
    if kind == "mmio":
        what = draw(st.sampled_from(["read", "write", "unsatisfied-read"]))
        return "kvm_mmio", f"mmio {what} len 4 gpa 0x{gfn << 12 | 0x10:x} val 0x1"
    if kind == "other":
        return draw(st.sampled_from(["kvm_exit", "kvm_entry", "sched_switch"])), "reason HLT"
    if kind == "capture":
        which = draw(st.sampled_from(["start", "end"]))
        caching = draw(st.sampled_from(["0", "1"]))
        return (
            "tracing_mark_write",
            f"kvmgen: capture {which} source=test kernel=6.18.44 nas=2 vm_start=1 "
            f"mmio_caching={caching} events=kvm_mmu_zap_all_fast",
        )
    if kind == "marker":
        return "tracing_mark_write", draw(
            st.sampled_from(["hello", "kvmgen: note x", "kvmgen: update"])
        )
    if kind == "syscall":
        return draw(
            st.sampled_from(
                [
                    ("sys_enter_ioctl", "fd: 0x0000000b, cmd: 0x4020ae46, arg: 0x7ffd"),
                    ("sys_exit_ioctl", "0x0"),
                    ("sys_ioctl(fd", " 0xb, cmd: 0x4020ae46, arg: 0x7ffd)"),
                    ("sys_ioctl ->", " 0x0"),
                    ("print", f"tracing_mark_write: {update_marker(ordinal, 'delete', 0, 0)}"),
                    ("print", "tracing_mark_write: hello"),
                ]
            )
        )
    return "kvm_mmio", draw(st.sampled_from(["mmio read len x", "nonsense"]))  # a message


@st.composite
def capture(draw: st.DrawFn) -> str:
    lines = []
    t = 1_588_000_000 + draw(st.integers(0, 10**6))
    tgid_column = draw(st.booleans())
    odd = draw(st.integers(0, 3)) == 0  # lines the loops leave to Python
    ordinal = 1
    for _ in range(draw(st.integers(0, 60))):
        t += draw(st.sampled_from([0, 1, 3, 250]))
        if draw(st.integers(0, 30)) == 0:
            t -= 500  # out of time order
        shape = draw(st.integers(0, 60))
        if shape == 0:
            lines.append("")
        elif shape == 1:
            lines.append("# tracer: nop")
        elif shape == 2:
            lines.append("CPU:1 [LOST 12 EVENTS]")
        else:
            thread = draw(st.sampled_from(THREADS))
            event, payload = draw(_payload(ordinal, odd))
            if event == "tracing_mark_write" and payload.startswith("kvmgen: update "):
                ordinal += draw(st.sampled_from([1, 1, 1, 1, 2]))
            lines.append(_head(draw, thread, t, tgid_column, odd) + f"{event}: {payload}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


_DONE: list[bool] = []


# Derandomized: the loop-share test below counts these examples, so they must not
# change from run to run (a fresh clone has no example database).
@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    text=capture(),
    zaps_enabled=st.booleans(),
    from_vm_start=st.sampled_from([None, True, False]),
)
def test_bulk_trace_import_matches_python(
    text: str, zaps_enabled: bool, from_vm_start: bool | None
) -> None:
    _DONE.append(_same(text, zaps_enabled, from_vm_start))


def test_generated_captures_mostly_stay_in_the_loops() -> None:
    """The property test above is not all fallbacks (it runs first, in file order)."""
    assert len(_DONE) >= 100
    assert sum(_DONE) >= len(_DONE) // 4, (sum(_DONE), len(_DONE))


def test_loops_do_the_work_on_real_captures_and_probe_output() -> None:
    """Not a test that always falls back: the shipped kernel traces stay in the loops."""
    captured = sorted((ROOT / "traces" / "captures").glob("*.kernel-trace.txt"))
    assert captured
    for path in captured:
        assert _same(path.read_text()), path
    # A probe-style capture: markers, zaps and MMU events of two vCPUs, repeats merged.
    head = "  CPU {}/KVM-{}  ( 4242) [001] ...1.  {}.{:06d}: "
    lines = [
        head.format(0, 4245, 100, 0)
        + "tracing_mark_write: kvmgen: capture start source=probe kernel=6.18.44 nas=1 "
        "vm_start=1 mmio_caching=1 events=kvm_mmu_zap_all_fast,check_mmio_spte",
        head.format(0, 4245, 100, 1)
        + "tracing_mark_write: "
        + update_marker(1, "create", 0, 0, gfn=0x100, pages=0x10),
    ]
    for k in range(2, 400):
        us = 10 * k
        vcpu = k % 2
        lines.append(
            head.format(vcpu, 4245 + vcpu, 100, us)
            + "tracing_mark_write: "
            + update_marker(k, "flags", 0, 0, flags=k % 2)
        )
        if k % 50 == 0:
            lines.append(
                head.format(vcpu, 4245 + vcpu, 100, us + 1)
                + "kvm_mmu_zap_all_fast: kvm-mmu-valid-gen 0 used_pages 3"
            )
        lines.append(
            head.format(vcpu, 4245 + vcpu, 100, us + 2)
            + f"check_mmio_spte: spte 7ff0 kvm_gen {k:x} spte-gen {k - 1:x} valid 0"
        )
        lines.append(
            head.format(vcpu, 4245 + vcpu, 100, us + 3)
            + f"mark_mmio_spte: sptep:ffff gfn febf{vcpu} access 6 gen {k:x}"
        )
        lines.append(
            head.format(vcpu, 4245 + vcpu, 100, us + 4)
            + f"kvm_mmio: mmio write len 4 gpa 0xfebf{vcpu}010 val 0x1"
        )
    assert _same("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("tracing_mark_write: kvmgen: update 1 op=create slot=0", "create without gfn"),
        ("kvm_mmu_zap_all_fast: kvm-mmu-valid-gen 1a used_pages 0", "hex in a decimal gen"),
        ("tracing_mark_write: kvmgen: update 1 op=flags slot=0 flags=0X1", "upper-case hex"),
        ("tracing_mark_write: kvm_set_user_memory Slot#0 flags=0x0 gpa=0x0 size=0x1000 "
         "ua=0x0 ret=0", "a QEMU line"),
        ("print: tracing_mark_write: kvmgen: update 1 op=delete slot=0", "trace-cmd marker"),
        ("kvm_mmio: mmio read len 4 gpa 0x1000 val 0x1\u00e9", "UTF-8"),
    ],
)  # fmt: skip
def test_what_the_loops_leave_to_python(line: str, why: str) -> None:
    """Lines only the Python importer reads or words: its result or its message, exactly."""
    text = f"  qemu-4242  [001] ...1.  5.000001: {line}\n"
    _same(text)
    assert (
        bulk_trace.import_trace("cap", text.encode(), zaps_enabled=False, from_vm_start=None)
        is None
    ), why
