"""Putting a log's memslot calls on a kernel trace's clock (kvmgen.importers.align)."""

from __future__ import annotations

import pytest

from kvmgen.errors import UsageError
from kvmgen.importers.align import IoctlWindow, by_deletes, by_syscalls, shifted
from kvmgen.importers.memslots import RegionCall

MS = 1_000_000
CLOCKS_APART = 1_796_283_778 * 10**9  # a real boot: realtime log vs monotonic trace


def call(line: int, slot: int, size: int, t_ns: int, tid: int = 7, gpa: int = 0x100000):
    return RegionCall(line, 0, slot, 0, gpa * slot, size, 0, t_ns=t_ns, tid=tid)


def boot(gaps_ms: list[float]) -> tuple[list[RegionCall], list[int], list[int]]:
    """Create slots 1..n, then delete them one by one, 5 ms apart, each delete's zap ``gap``
    before its return; the log is stamped at return on another clock. Returns calls, zaps and
    the deletes' indexes."""
    calls, zaps, deletes = [], [], []
    t = 10 * MS
    for slot in range(1, len(gaps_ms) + 1):
        calls.append(call(len(calls) + 1, slot, 0x1000, t + CLOCKS_APART))
        t += MS // 2
    for slot, gap in enumerate(gaps_ms, start=1):
        t += 5 * MS
        calls.append(call(len(calls) + 1, slot, 0, t + CLOCKS_APART))
        zaps.append(t - round(gap * MS))
        deletes.append(len(calls) - 1)
    return calls, zaps, deletes


def owner_of(times: list[int], zap: int) -> int:
    """The call a zap lands in when the times are return times."""
    return next(i for i, t in enumerate(times) if t >= zap)


@pytest.mark.parametrize(
    "gaps_ms",
    [
        [0.2] * 6,
        # As seen on a real boot: the first delete's zap 4.1 ms before its return, the rest
        # 0.01-0.29 ms (the first-delete-only alignment charged every later zap to the next call).
        [4.1, 0.01, 0.29, 0.05, 0.2, 0.12],
        [0.03, 0.18, 0.07, 0.07, 0.29, 0.01],
    ],
)
def test_every_zap_lands_in_its_own_delete(gaps_ms):
    calls, zaps, deletes = boot(gaps_ms)
    placed = by_deletes(calls, zaps, source="qemu.log")
    assert [owner_of(placed.times, z) for z in zaps] == deletes
    assert placed.misfit == 0
    assert "clocks aligned on 6 delete/zap pairs: qemu.log times shifted by" in placed.how


def test_entry_stamped_logs_put_the_zap_after_the_call_started():
    calls, zaps, deletes = boot([0.2, 0.1, 0.3])
    # strace without -T stamps the call where it started: 0.5 ms before its zap here.
    entered = [
        RegionCall(c.line, 0, c.slot, 0, c.gpa, c.size, 0, t_ns=c.t_ns - 700_000, tid=7)
        for c in calls
    ]
    placed = by_deletes(entered, zaps, source="strace.log", at_exit=False)
    owners = [max(i for i, t in enumerate(placed.times) if t <= z) for z in zaps]
    assert owners == deletes


def test_zaps_that_fit_no_delete_are_counted_and_said():
    calls, zaps, _ = boot([0.2, 0.2, 0.2])
    placed = by_deletes(calls, [*zaps, zaps[0] - 8 * MS], source="q.log")  # amid the creates
    assert placed.misfit == 1
    assert "1 of 4 zaps fit no delete or move at that offset" in placed.how


def test_no_pair_to_line_up_is_a_usage_error():
    calls, _, _ = boot([0.2])
    with pytest.raises(UsageError, match="give --offset SECONDS"):
        by_deletes(calls[:1], [5], source="q.log")


def test_a_log_without_timestamps_cannot_be_merged():
    calls = [RegionCall(3, 0, 1, 0, 0, 0x1000, 0)]
    with pytest.raises(UsageError, match=r"q.log:3: the log has no timestamps"):
        by_deletes(calls, [1], source="q.log")
    with pytest.raises(UsageError, match=r"q.log:3: the log has no timestamps"):
        shifted(calls, 0, source="q.log")


def test_syscall_events_pair_calls_per_thread_without_clocks():
    calls = [call(1, 1, 0x1000, 50, tid=7), call(2, 2, 0x1000, 10, tid=8), call(3, 1, 0, 60, tid=7)]
    windows = {
        7: [IoctlWindow(7, 100, 110, 0), IoctlWindow(7, 300, 320, 0)],
        8: [IoctlWindow(8, 200, 205, 0)],
    }
    placed = by_syscalls(calls, windows)
    assert placed is not None and placed.exact
    assert placed.times == [110, 205, 320]
    windows[8].append(IoctlWindow(8, 400, 405, 0))  # one more ioctl than calls: no pairing
    assert by_syscalls(calls, windows) is None
