"""Big kernel traces imported without a Python object per line.

:func:`import_trace` runs the loops of :mod:`kvmgen.importers.trace_kernels` over a
capture's bytes: lines to rows, MMU and MMIO rows to accesses, and the time-ordered
updates, zaps and accesses to event and observation rows, which
``line_kernels.write_events`` and ``write_observations`` write as trace text. The
result is the Python importer's (:func:`kvmgen.importers.tracefs.import_tracefs`),
byte for byte (a test holds them equal), for a capture without a log merged in.

Lines the loops do not read (another shape, syscall and trace-cmd marker events,
lost-event notices, a payload they cannot vouch for) go to the Python parser one by
one. Where that parser finds an event the trace needs (an update marker, a zap or an
MMU event the loops left), where a byte is not printable ASCII, or a time is finer
than a microsecond, :func:`import_trace` returns None and the caller imports the
capture the Python way, which also words any error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from kvmgen.importers import line_kernels as lk
from kvmgen.importers import trace_kernels as tk
from kvmgen.importers.bulk import EventRows, write_rows
from kvmgen.importers.emit import mapping_text
from kvmgen.importers.memslots import seconds
from kvmgen.importers.tracefs import (
    _ENTER,
    _EXIT,
    _LOST,
    MARKER_EVENTS,
    ImportResult,
    TracefsSummary,
    capture_observation,
    finish_import,
    header_of,
    marker_fields,
    marker_kind,
    parse_trace_line,
)
from kvmgen.trace.observed import ACCESS_OUTCOMES, ZAP_EVENTS

_WORDS = np.frombuffer("".join(tk.WORDS).encode(), dtype=np.uint8)
_SPANS = np.array(
    [(sum(len(w) for w in tk.WORDS[:k]), len(word)) for k, word in enumerate(tk.WORDS)],
    dtype=np.int64,
)
_TRACE_KINDS = np.array(
    [tk.K_SEEN, tk.K_UPDATE, tk.K_ZAP, tk.K_CHECK, tk.K_MARK, tk.K_HANDLE, tk.K_MMIO]
)
_LAST_SECOND = 1 << 32  # times below it write as their microseconds (line_kernels.put_time)
_SYSCALLS = ("sys_enter_ioctl", "sys_exit_ioctl")
# walk and write_observations code zap events and outcomes by these tuples' order.
assert tk.EVENTS[:2] == ZAP_EVENTS
assert tuple(p[8:] for p in lk.PIECES if p.startswith("outcome_")) == ACCESS_OUTCOMES


class _Fallback(Exception):
    """The capture holds something only the Python importer reads."""


def import_trace(
    path: str, data: bytes, *, zaps_enabled: bool, from_vm_start: bool | None
) -> ImportResult | None:
    """The import of a capture's bytes (no log merged in); None: import it the Python way."""
    buf = np.frombuffer(data, dtype=np.uint8)
    lines = data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)
    # Column-major: the numpy passes below read whole columns.
    rows = np.zeros((lines, tk.N_RCOLS), dtype=np.int64, order="F")
    counts = np.zeros(tk.N_COUNTS, dtype=np.int64)
    tk.trace_lines(buf, _WORDS, _SPANS, rows, counts)
    if counts[tk.C_ODD]:
        return None
    assert counts[tk.C_LINES] == lines
    summary = TracefsSummary(lines=len(rows))
    capture: dict[str, str] = {}
    ended = False
    try:
        for r in np.flatnonzero(rows[:, tk.R_KIND] == tk.K_SLOW).tolist():
            found = _python_line(path, data, rows, r, summary)
            if found is not None:
                kind, fields = found
                if kind == "capture start":
                    capture = fields
                else:
                    ended = True
    except _Fallback:
        return None
    for k, name in enumerate(tk.EVENTS):
        if counts[tk.C_PER_EVENT + k]:
            summary.per_event[name] += int(counts[tk.C_PER_EVENT + k])
    kinds = rows[:, tk.R_KIND]
    other = rows[(kinds == tk.K_SEEN) & (rows[:, tk.R_EVENT] == tk.N_EVENTS)]
    if len(other):
        spans = other[:, tk.R_F0 : tk.R_F0 + 2].tolist()
        for event, n in Counter(data[a:b] for a, b in spans).items():
            summary.per_event[event.decode("ascii")] += n
    if from_vm_start is not None:
        capture["vm_start"] = "1" if from_vm_start else "0"
    built = _build(rows, capture, summary)
    if built is None:
        return None
    events, observations, covered, marker_ordinals = built
    cap = capture_observation(
        capture,
        covered,
        total=summary.updates,
        ended=ended,
        exact=False,
        per_event=summary.per_event,
        lost=summary.lost,
    )
    result = ImportResult(
        header_of(capture, []), EventRows(events), Observations([cap], observations), summary
    )
    finish_import(result, zaps_enabled=zaps_enabled, marker_ordinals=marker_ordinals)
    return result


def _python_line(
    path: str, data: bytes, rows: NDArray[np.int64], r: int, summary: TracefsSummary
) -> tuple[str, dict[str, str]] | None:
    """Read a line the loops left, as ``_Importer.feed`` would, into its row.

    Returns ("capture start"|"capture end", fields) for a capture marker; raises _Fallback where the
    line is an event only the Python importer takes (or words the error of).
    """
    row = rows[r]
    text = data[row[tk.R_START] : row[tk.R_END]].decode("ascii")
    row[tk.R_KIND] = tk.K_NONE
    if "EVENTS" in text:
        lost = _LOST.search(text)
        if lost is not None:
            summary.lost += int(lost[1] or lost[2])
            return None
    tl = parse_trace_line(text, r + 1)
    if tl is None:
        if text.strip():
            summary.unrelated += 1
        return None
    row[tk.R_KIND] = tk.K_SEEN
    row[tk.R_EVENT] = -1  # counted here
    row[tk.R_T_NS] = tl.t_ns
    row[tk.R_PID] = tl.pid
    row[tk.R_TGID] = -1 if tl.tgid is None else tl.tgid
    summary.per_event[tl.event] += 1
    if tl.event in _SYSCALLS:
        pattern = _ENTER if tl.event == _SYSCALLS[0] else _EXIT
        if pattern.match(tl.payload) is None:
            raise _Fallback  # the Python importer words the error
        return None
    if tl.event not in MARKER_EVENTS:
        if tl.event in tk.EVENTS:
            raise _Fallback
        return None
    marker = tl.payload.strip()
    kind, _rest = marker_kind(marker)
    if kind in ("update", "qemu"):
        raise _Fallback
    if kind == "other":
        summary.other_markers += 1
        return None
    return kind, marker_fields(marker)


def _build(
    rows: NDArray[np.int64], capture: dict[str, str], summary: TracefsSummary
) -> tuple[NDArray[np.int64], NDArray[np.int64], tuple[int, int] | None, list[int]] | None:
    """Events, observations, the updates the capture covers and the marker ordinals
    (empty when they run without a gap), as ``_Importer.own`` and ``build`` make them."""
    kinds = rows[:, tk.R_KIND]
    traced = np.isin(kinds, _TRACE_KINDS)
    pids = rows[:, tk.R_PID]
    tids, n_tids = _dense(np.where(traced, pids, -1))
    mmu_rows = np.isin(kinds, (tk.K_CHECK, tk.K_MARK, tk.K_HANDLE, tk.K_MMIO))
    accesses = np.zeros((int(mmu_rows.sum()), tk.N_ACOLS), dtype=np.int64)
    count = np.zeros(1, dtype=np.int64)
    tk.group_accesses(rows, tids, np.full(n_tids, -1, dtype=np.int64), accesses, count)
    accesses = accesses[: count[0]]

    updates = np.flatnonzero(kinds == tk.K_UPDATE)
    zaps = np.flatnonzero(kinds == tk.K_ZAP)
    own_zaps, own_accesses = _own(rows, traced, updates, zaps, accesses, summary)

    # Each update's (address space, slot) as one dense index.
    keys = np.zeros(len(rows), dtype=np.int64)
    spaces, _ = _dense(rows[updates, tk.U_AS])
    slots, n_slots = _dense(rows[updates, tk.U_SLOT])
    keys[updates], n_keys = _dense(spaces * n_slots + slots)
    starts = accesses[own_accesses, tk.A_ROW]
    # Items in line order (each has a line of its own), then in time order: a stable
    # sort keeps the lines' order at equal times, as _Importer.build's (time, seq) does.
    item_rows = np.concatenate([updates, zaps[own_zaps], starts])
    item_kind = np.concatenate(
        [
            np.full(len(updates), tk.ITEM_UPDATE),
            np.full(int(own_zaps.sum()), tk.ITEM_ZAP),
            np.full(len(starts), tk.ITEM_ACCESS),
        ]
    ).astype(np.int64)
    item_ref = np.concatenate([updates, zaps[own_zaps], np.flatnonzero(own_accesses)])
    order = np.argsort(item_rows, kind="stable")
    times = rows[item_rows[order], tk.R_T_NS]
    if np.any(times[1:] < times[:-1]):  # tracefs prints in time order: seldom taken
        order = order[np.argsort(times, kind="stable")]
    items = np.stack([item_kind[order], item_ref[order]], axis=1).astype(np.int64)

    # As _Importer.emit_access: accesses are observed where an MMU tracepoint showed and
    # the capture does not say MMIO caching was off.
    observe = bool((mmu_rows & (kinds != tk.K_MMIO)).any())  # check, mark or handle
    observe = observe and capture.get("mmio_caching") != "0"
    events = np.zeros((len(updates) + len(starts), lk.N_ECOLS), dtype=np.int64)
    observations = np.zeros((len(items), lk.N_OCOLS), dtype=np.int64)
    ordinals = np.zeros(len(rows), dtype=np.int64)
    tally = np.zeros(tk.N_TALLY, dtype=np.int64)
    tk.walk(
        rows,
        items,
        tids,
        keys,
        accesses,
        np.full(n_keys, -1, dtype=np.int64),
        np.full(n_tids, -1, dtype=np.int64),
        np.full(n_tids, -1, dtype=np.int64),
        np.int64(observe),
        events,
        observations,
        ordinals,
        tally,
    )
    events = events[: tally[tk.Y_EVENTS]]
    observations = observations[: tally[tk.Y_OBSERVATIONS]]
    for times in (events[:, lk.E_T_NS], observations[:, lk.O_T_NS]):
        timed = times[times >= 0]
        if np.any((timed % 1000 != 0) | (timed >= _LAST_SECOND * 10**9)):
            return None  # a time only Python's float repr writes
    summary.updates = int(tally[tk.Y_UPDATES])
    summary.accesses = int(tally[tk.Y_ACCESSES])
    summary.zaps = int(tally[tk.Y_ZAPS])
    summary.no_gfn = int(tally[tk.Y_NO_GFN])

    covered = None
    trace_times = rows[traced, tk.R_T_NS]
    if len(updates) and len(trace_times):
        first_t, last_t = trace_times[0], trace_times[-1]
        times = rows[updates, tk.R_T_NS]
        inside = ordinals[updates][(first_t <= times) & (times < last_t)]
        if len(inside):
            covered = (int(inside.min()), int(inside.max()))
    marker_ordinals = rows[updates, tk.U_ORDINAL]
    steady = len(updates) == 0 or bool(np.all(np.diff(marker_ordinals) == 1))
    return events, observations, covered, [] if steady else marker_ordinals.tolist()


def _dense(values: NDArray[np.int64]) -> tuple[NDArray[np.int64], int]:
    """Each value as the index of its rank among the distinct values; their number (>= 1).

    A stable sort, which is close to linear on the runs of equal values a capture has.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    rank = np.zeros(len(values), dtype=np.int64)
    if len(values):
        rank[order] = np.concatenate(([0], np.cumsum(ordered[1:] != ordered[:-1])))
    return rank, int(rank.max()) + 1 if len(values) else 1


def _own(
    rows: NDArray[np.int64],
    traced: NDArray[np.bool_],
    updates: NDArray[np.int64],
    zaps: NDArray[np.int64],
    accesses: NDArray[np.int64],
    summary: TracefsSummary,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Which zaps and accesses are the VMM's, as ``_Importer.own`` decides (no ioctl windows
    without a log merged in); the others are counted in the summary."""
    pids, tgid_col = rows[:, tk.R_PID], rows[:, tk.R_TGID]
    threads = np.unique(pids[updates])
    # Each thread's latest tgid, over every trace line that shows one.
    shown = np.flatnonzero(traced & (tgid_col >= 0))[::-1]
    seen_pids, first = np.unique(pids[shown], return_index=True)
    latest = dict(zip(seen_pids.tolist(), tgid_col[shown[first]].tolist(), strict=True))
    processes = np.array(sorted({latest[t] for t in threads.tolist() if t in latest}))
    zap_tgids = tgid_col[zaps]
    mine = (
        np.isin(pids[zaps], threads)
        | ((zap_tgids >= 0) & np.isin(zap_tgids, processes))
        | (len(threads) == 0)
    )
    for pid, tgid in zip(pids[zaps[~mine]].tolist(), zap_tgids[~mine].tolist(), strict=True):
        summary.foreign_zaps[f"process {tgid}" if tgid >= 0 else f"thread {pid}"] += 1
    acc_tgids = tgid_col[accesses[:, tk.A_ROW]]
    foreign = (acc_tgids >= 0) & ~np.isin(acc_tgids, processes) & (len(processes) > 0)
    for tgid in acc_tgids[foreign].tolist():
        summary.foreign_accesses[f"process {tgid}"] += 1
    if not len(processes) and len(threads) and summary.foreign_zaps:
        summary.notes.append(
            "the capture has no tgid column: accesses of every process are kept "
            "(kvmgen record sets options/record-tgid)"
        )
    return mine, ~foreign


class Observations:
    """A bulk import's observations: the capture's, then rows (``line_kernels.O_*``).

    Indexing and iterating give the mappings the Python importer makes; :meth:`write_items`
    is how :func:`kvmgen.importers.emit.write_trace` writes them.
    """

    def __init__(self, head: list[dict[str, Any]], rows: NDArray[np.int64]) -> None:
        self.head = head
        self.rows = rows

    def __len__(self) -> int:
        return len(self.head) + int(self.rows.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        if 0 <= index < len(self.head):
            return self.head[index]
        return _observation(self.rows[index - len(self.head)].tolist())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.head
        for row in self.rows.tolist():
            yield _observation(row)

    def write_items(self, out: IO[str], fmt: str, lead: tuple[str, str, str]) -> int:
        """Write each observation led by ``lead[0]`` (the first) or ``lead[1]``, then ``lead[2]``.

        The capture's observation first, as emit.py spells a mapping; then the rows.
        """
        for k, item in enumerate(self.head):
            out.write(f"{lead[0] if k == 0 else lead[1]}{mapping_text(item, fmt)}{lead[2]}")
        rest = (lead[1], lead[1], lead[2]) if self.head else lead
        return len(self.head) + write_rows(self.rows, lk.write_observations, out, fmt, rest)


def _observation(row: list[int]) -> dict[str, Any]:
    kind, t_ns, a, b, c, d, e = row
    if kind == lk.OBS_ZAP:
        return {
            "kind": "zap",
            "update": a,
            "event": ZAP_EVENTS[b],
            "valid_gen": c,
            "used_pages": d,
            "t": seconds(t_ns),
        }
    obs: dict[str, Any] = {"kind": "access", "access": a, "outcome": ACCESS_OUTCOMES[b]}
    if c >= 0:
        obs["kvm_gen"], obs["spte_gen"] = c, d
    if e >= 0:
        obs["gen"] = e
    obs["t"] = seconds(t_ns)
    return obs
