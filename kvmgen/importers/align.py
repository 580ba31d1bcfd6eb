"""Putting memslot calls from a log (QEMU's, strace's) on a kernel trace's clock.

Two ways, best first:

- **Syscall events.** A capture with ``syscalls:sys_enter_ioctl`` (filtered to the
  memslot ioctls) and ``sys_exit_ioctl`` shows each call's entry and exit on the
  trace clock. The k-th memslot call of a thread in the log is the k-th memslot
  ioctl of that thread in the trace: no clock is compared at all, and a zap
  between entry and exit happened inside that call. ``kvmgen record`` captures so.
- **Deletes and zaps.** From 5.3 on every delete and move zaps the whole MMU
  inside its ioctl. QEMU prints a call once it returned, strace stamps it when it
  was entered (with -T also how long it took, which gives its return). For a
  candidate offset every zap falls between two consecutive calls: with times at
  return, the zap belongs to the call whose interval ends after it; with times at
  entry, to the call whose interval starts before it. The right offset puts every
  zap in a delete or a move, one zap in each. Each pairing of a delete with a
  nearby zap gives a candidate; the one that places the most zaps inside deletes
  and moves wins, then the one that puts them in the most distinct calls, then the
  tightest (the time from a zap to the call's return varies, 0.01 to 4 ms on a
  real boot, so only the tightest offset keeps every zap before its own line).
  The summary says which offset, from how many pairs, and warns when some zaps
  fit no delete or move.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kvmgen.errors import UsageError
from kvmgen.formatting import count, plural
from kvmgen.importers.memslots import RegionCall

NEAR = 4  # a delete is paired with the zaps this many ranks around its own


@dataclass(frozen=True)
class IoctlWindow:
    """One memslot ioctl a thread made, as the trace's syscall events show it."""

    tid: int
    enter_ns: int
    exit_ns: int | None
    command: int
    fd: int = -1


@dataclass(frozen=True)
class Alignment:
    """Where each call lands on the trace clock, and how that was decided."""

    times: list[int]  # per call, in the log's order
    how: str
    exact: bool  # from syscall events: every call's window is known
    misfit: int = 0  # zaps that fit no delete or move (delete/zap alignment)
    windows: tuple[IoctlWindow, ...] = ()  # exact: each call's own ioctl, in the log's order


def by_syscalls(
    calls: Sequence[RegionCall], windows: dict[int, list[IoctlWindow]]
) -> Alignment | None:
    """Each call at its ioctl's exit, matching calls and ioctls per thread (and fd) in order.

    A thread's memslot calls on one VM fd are its ioctls on that fd, one for one; other
    VMs' calls on other fds are left to them. None unless every group pairs up (events
    lost, or a log that began earlier than the capture, make that impossible).
    """
    groups: dict[tuple[int, int | None], list[int]] = defaultdict(list)
    for i, call in enumerate(calls):
        if call.tid is None:
            return None
        groups[(call.tid, call.fd)].append(i)
    times = [0] * len(calls)
    matched: list[IoctlWindow | None] = [None] * len(calls)
    for (tid, fd), indexes in groups.items():
        seen = [w for w in windows.get(tid, []) if fd is None or w.fd == fd]
        if len(seen) != len(indexes) or any(w.exit_ns is None for w in seen):
            return None
        for i, window in zip(indexes, seen, strict=True):
            assert window.exit_ns is not None
            times[i] = window.exit_ns
            matched[i] = window
    threads = len({tid for tid, _fd in groups})
    how = (
        f"calls matched to the trace's own ioctl events ({plural(len(calls), 'call')}, "
        f"{plural(threads, 'thread')}): no clock alignment needed"
    )
    return Alignment(times, how, exact=True, windows=tuple(w for w in matched if w is not None))


def _flushing(calls: Sequence[RegionCall]) -> np.ndarray:
    """Which calls delete or move a slot (those zap inside the ioctl from 5.3 on)."""
    where: dict[tuple[int, int], tuple[int, int]] = {}
    seen: set[tuple[int, int]] = set()
    out = np.zeros(len(calls), dtype=bool)
    for i, call in enumerate(calls):
        if call.ret != 0:
            continue
        key = (call.address_space, call.slot)
        old = where.get(key)
        first = key not in seen
        seen.add(key)
        if call.size == 0:
            # A slot the log never showed existed before it: deleting it flushes too.
            out[i] = old is not None or first
            where.pop(key, None)
            continue
        out[i] = old is not None and old[1] == call.size and old[0] != call.gpa
        where[key] = (call.gpa, call.size)
    return out


def by_deletes(
    calls: Sequence[RegionCall], zaps: Sequence[int], *, source: str, at_exit: bool = True
) -> Alignment:
    """The offset that puts the most zaps inside deletes and moves (module docstring).

    ``at_exit``: the calls' times are when they returned (QEMU), else when they
    were entered (strace without -T).
    """
    stamped = [c.t_ns for c in calls if c.t_ns is not None]
    if len(stamped) != len(calls):
        bad = next(c for c in calls if c.t_ns is None)
        raise UsageError(
            f"{source}:{bad.line}: the log has no timestamps, so it cannot be merged by time "
            "(QEMU: -msg timestamp=on; strace: -ttt)"
        )
    if not calls:
        return Alignment([], "no memslot calls to align", exact=False)
    times = np.array(stamped, dtype=np.int64)
    order = np.argsort(times, kind="stable")
    sorted_times = times[order]
    flushing = _flushing(calls)[order]
    zap_times = np.sort(np.array(list(zaps), dtype=np.int64))
    flush_at = sorted_times[flushing]
    if not len(flush_at) or not len(zap_times):
        raise UsageError(
            f"{source}: the log and the trace use different clocks and there is no delete "
            "and zap pair to line them up: give --offset SECONDS (or record with kvmgen record)"
        )
    # A candidate puts one zap 1 us inside one flushing call: just before its return,
    # or just after its entry.
    nudge = 1_000 if at_exit else -1_000
    candidates = []
    for rank, line in enumerate(flush_at):
        for j in range(max(0, rank - NEAR), min(len(zap_times), rank + NEAR + 1)):
            candidates.append(int(zap_times[j]) - int(line) + nudge)
    best: tuple[int, int, int, int] | None = None  # (good, calls hit, -total gap, offset)
    for offset in candidates:
        lines = sorted_times + offset
        if at_exit:  # the first call returning at or after the zap
            owner = np.searchsorted(lines, zap_times, side="left")
            inside = owner < len(lines)
        else:  # the last call entered at or before the zap
            owner = np.searchsorted(lines, zap_times, side="right") - 1
            inside = owner >= 0
        good_mask = np.zeros(len(zap_times), dtype=bool)
        good_mask[inside] = flushing[owner[inside]]
        good = int(good_mask.sum())
        # From 5.3 each delete or move zaps once: an offset that puts two zaps in one
        # call and none in its neighbour is off by a call, however many zaps it places.
        calls_hit = len(np.unique(owner[good_mask]))
        gap = int(np.abs(lines[owner[good_mask]] - zap_times[good_mask]).sum()) if good else 0
        key = (good, calls_hit, -gap, offset)
        if best is None or key > best:
            best = key
    assert best is not None
    good, _, _, offset = best
    misfit = len(zap_times) - good
    how = (
        f"clocks aligned on {plural(good, 'delete/zap pair')}: "
        f"{source} times shifted by {offset / 1e9:+.6f} s"
    )
    if misfit:
        how += (
            f"; {count(misfit)} of {plural(len(zap_times), 'zap')} fit no delete or move at "
            "that offset "
            "(the pairs do not fit one offset: check them, or give --offset SECONDS)"
        )
    return Alignment([int(t) + offset for t in stamped], how, exact=False, misfit=misfit)


def shifted(calls: Sequence[RegionCall], offset_ns: int, *, source: str) -> Alignment:
    """Every call's time moved by a given offset (``--offset``)."""
    if any(c.t_ns is None for c in calls):
        bad = next(c for c in calls if c.t_ns is None)
        raise UsageError(
            f"{source}:{bad.line}: the log has no timestamps, so it cannot be merged by time "
            "(QEMU: -msg timestamp=on; strace: -ttt)"
        )
    times = [int(c.t_ns) + offset_ns for c in calls if c.t_ns is not None]
    return Alignment(times, f"{source} times shifted by {offset_ns / 1e9:+.6f} s", exact=False)
