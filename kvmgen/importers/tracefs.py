"""Kernel trace text (tracefs ``trace``/``trace_pipe``, ``trace-cmd report``, ``perf script``)
-> trace format v1 with observations.

Line shapes (comm may contain spaces and dashes; the flags column has 4 or 5
characters or is absent; timestamps have 6 or 9 decimals)::

    tracefs     <comm>-<pid> [(<tgid>)] [<cpu>] [<flags>] <secs>: <event>: <payload>
    trace-cmd   <comm>-<pid> [<cpu>] [<flags>] <secs>: <event>:<padding> <payload>
                (markers: "print: tracing_mark_write: <text>")
    perf script <comm> [<pid>[/<tid>]] [[<cpu>]] <secs>: <system>:<event>: <payload>

What becomes what:

- ``kvm_mmu_zap_all_fast`` / ``kvm_mmu_invalidate_zap_all_pages``: a ``zap``
  observation at the update it happened in.
- ``mark_mmio_spte``, ``check_mmio_spte``, ``handle_mmio_page_fault``, ``kvm:kvm_mmio``:
  grouped per thread into guest accesses (one fault = check, then mark or
  handle_mmio_page_fault, then kvm_mmio); each becomes an ``access`` event and,
  when MMU tracepoints were on, an ``access`` observation of what the kernel did.
- ``tracing_mark_write`` text: ``kvmgen: ...`` markers (written by ``kvmgen probe``
  before each update) and QEMU's ftrace-backend ``kvm_set_user_memory`` lines become
  updates; other markers are counted and skipped.
- ``--qemu LOG``: the log's updates are merged in by timestamp.

The attribution rules (which update a zap belongs to, clock alignment) are in
``docs/importers.md``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from kvmgen.errors import TraceError
from kvmgen.formatting import count, plural
from kvmgen.importers import align
from kvmgen.importers.emit import WritesItself
from kvmgen.importers.memslots import (
    MemslotTracker,
    RegionCall,
    RegionLog,
    parse_time,
    seconds,
)
from kvmgen.importers.qemu import NAME as QEMU_EVENT
from kvmgen.importers.qemu import parse_payload
from kvmgen.importers.strace import SET_REGION, SET_REGION2
from kvmgen.trace.observed import ZAP_EVENTS

_TRACEFS = re.compile(
    r"\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>\d+|-+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\]]{4,5})\s+)?(?P<sec>\d+)\.(?P<frac>\d+):\s+"
    r"(?P<event>\w+)(?::\s*|(?=\(|\s->))(?P<payload>.*)"
)
# Syscall events as tracefs prints them ("sys_ioctl(fd: 8, cmd: 0x4020ae46, arg: ...)",
# "sys_ioctl -> 0x0") and as trace-cmd does ("sys_enter_ioctl: fd: 0x8, cmd: ...").
_ENTER = re.compile(r"\(?fd: (?P<fd>0x[0-9a-f]+|\d+), cmd: (?P<cmd>0x[0-9a-f]+|\d+)")
_EXIT = re.compile(r"\s*(?:->\s*)?(?P<ret>-?0x[0-9a-f]+|-?\d+)\s*$")
_PERF = re.compile(
    r"\s*(?P<comm>.*?)\s+(?:(?P<pid>\d+)(?:/(?P<tid>\d+))?\s+)?(?:\[(?P<cpu>\d+)\]\s+)?"
    r"(?P<sec>\d+)\.(?P<frac>\d+):\s+(?:\d+\s+)?(?P<system>\w+):(?P<event>\w+):\s*"
    r"(?P<payload>.*)"
)
_LOST = re.compile(r"\[LOST (\d+) EVENTS\]|\b(\d+) EVENTS DROPPED\b")
_PRINT_PREFIX = re.compile(r"(?:tracing_mark_write|0x[0-9a-f]+|\w+\+0x[0-9a-f]+/0x[0-9a-f]+):\s*")

_MARK = re.compile(r"sptep:\S+ gfn ([0-9a-f]+) access ([0-9a-f]+) gen ([0-9a-f]+)")
_HANDLE = re.compile(r"addr:([0-9a-f]+) gfn ([0-9a-f]+) access ([0-9a-f]+)")
_CHECK = re.compile(r"spte ([0-9a-f]+) kvm_gen ([0-9a-f]+) spte-gen ([0-9a-f]+) valid ([01])")
_ZAP = re.compile(r"kvm-mmu-valid-gen ([0-9a-f]+) used_pages ([0-9a-f]+)")
_MMIO = re.compile(
    r"mmio (unsatisfied-read|read|write) len (\d+) gpa 0x([0-9a-f]+) val 0x([0-9a-f]+)"
)
_VCPU_COMM = re.compile(r"CPU (\d+)/KVM")

MMU_EVENTS = frozenset({"mark_mmio_spte", "check_mmio_spte", "handle_mmio_page_fault"})
MARKER_EVENTS = frozenset({"tracing_mark_write", "print"})
KVMGEN_MARKER = "kvmgen:"
# src: the index of the trace event a ``kvmgen probe TRACE`` update performs (a note).
_UPDATE_KEYS = {"op", "as", "slot", "gfn", "pages", "flags", "src"}
_OPS = ("create", "delete", "move", "flags")
_NEEDS = {"create": {"gfn", "pages"}, "delete": set(), "move": {"gfn"}, "flags": set()}
DEFAULT_ZAP_WINDOW_NS = 100_000_000
PROBED = "event {} of the probed trace"  # the note of an update kvmgen probe made for an event


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One parsed line of kernel trace text."""

    line: int
    comm: str
    pid: int
    cpu: int
    t_ns: int
    event: str
    payload: str
    tgid: int | None = None  # the process, where the capture recorded it (options/record-tgid)


def parse_trace_line(text: str, line: int = 0) -> TraceLine | None:
    """Parse one tracefs, trace-cmd or perf script line; None for anything else."""
    match = _TRACEFS.fullmatch(text)
    system = None
    if match is None:
        match = _PERF.fullmatch(text)
        if match is None:
            return None
        system = match["system"]
    event = match["event"]
    payload = match["payload"]
    if event == "print" and system in (None, "ftrace"):
        # trace-cmd prints a marker as "print: tracing_mark_write: text".
        payload = _PRINT_PREFIX.sub("", payload, count=1)
        event = "tracing_mark_write"
    if event == "sys_ioctl":  # tracefs names both syscall events by the call
        event = "sys_exit_ioctl" if payload.lstrip().startswith("->") else "sys_enter_ioctl"
    pid = match["tid"] if system is not None and match["tid"] else match["pid"]
    # tracefs prints the tgid in parentheses (record-tgid); perf script prints pid/tid.
    tgid = match["tgid"] if system is None else (match["pid"] if match["tid"] else None)
    return TraceLine(
        line=line,
        comm=match["comm"].strip(),
        pid=int(pid) if pid else -1,
        cpu=int(match["cpu"]) if match["cpu"] else -1,
        t_ns=parse_time(match["sec"], match["frac"]),
        event=event,
        payload=payload.rstrip(),
        tgid=int(tgid) if tgid and tgid.isdigit() else None,
    )


# --- kvmgen markers -----------------------------------------------------------------------


def marker_fields(text: str) -> dict[str, str]:
    """``key=value`` words of a kvmgen marker (words without ``=`` are ignored)."""
    out = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out


def marker_kind(text: str) -> tuple[str, list[str]]:
    """What a trace marker's (stripped) text is, and what follows its head.

    ``update`` (then the ordinal and the ``key=value`` words), ``capture start``,
    ``capture end`` (kvmgen markers), ``qemu`` (then the payload after QEMU's event
    name, from its ftrace backend) or ``other``.
    """
    if text.startswith(KVMGEN_MARKER):
        words = text[len(KVMGEN_MARKER) :].split()
        if words[:1] == ["update"] and len(words) > 1:
            return "update", words[1:]
        if words[:2] in (["capture", "start"], ["capture", "end"]):
            return " ".join(words[:2]), words[2:]
        return "other", []
    at = text.find(QEMU_EVENT)
    if at >= 0:
        return "qemu", [text[at + len(QEMU_EVENT) :]]
    return "other", []


def update_marker(ordinal: int, op: str, a: int, slot: int, **fields: int) -> str:
    """The marker ``kvmgen probe`` writes before an update (read back by the importer)."""
    words = [f"kvmgen: update {ordinal} op={op} as={a} slot={slot}"]
    words += [f"{k}={v:#x}" for k, v in fields.items()]
    return " ".join(words)


@dataclass(slots=True)
class _Update:
    """A memslot update seen in the capture (a kvmgen marker or a QEMU line)."""

    t_ns: int
    seq: int
    post: bool  # traced after its ioctl returned (QEMU, strace) rather than before (kvmgen)
    line: int
    call: RegionCall | None = None
    fields: dict[str, Any] | None = None
    ordinal: int | None = None
    tid: int | None = None  # the thread that made the call, where the source says


@dataclass(slots=True)
class _Zap:
    t_ns: int
    seq: int
    line: int
    event: str
    valid_gen: int
    used_pages: int
    pid: int = -1
    tgid: int | None = None


@dataclass
class _Access:
    """One guest MMIO access: the MMU and MMIO tracepoints of one fault on one thread."""

    t_ns: int
    seq: int
    line: int
    pid: int
    comm: str
    tgid: int | None = None
    gfn: int | None = None
    kind: str = "read"
    check: tuple[int, int, int] | None = None  # kvm_gen, spte_gen, valid
    mark_gen: int | None = None
    handled: bool = False
    mmio: str | None = None

    def outcome(self) -> str:
        if self.check is not None:
            return "fast_path" if self.check[2] else "refault"
        if self.mark_gen is not None:
            return "slow_path"
        if self.handled:
            return "fast_path"
        return "cache_hit"


@dataclass
class TracefsSummary:
    """What an import found, for the summary and the header comment."""

    lines: int = 0
    unrelated: int = 0
    per_event: Counter[str] = field(default_factory=Counter)
    other_markers: int = 0
    lost: int = 0
    updates: int = 0
    accesses: int = 0
    zaps: int = 0
    no_gfn: int = 0
    # Left out as not the VMM's, by process where the capture names it ("process N"),
    # else by thread ("thread N").
    foreign_zaps: Counter[str] = field(default_factory=Counter)
    foreign_accesses: Counter[str] = field(default_factory=Counter)
    qemu: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """Human sentences; the first is the headline."""
        events = ", ".join(f"{count(n)} {name}" for name, n in sorted(self.per_event.items()))
        out = [
            f"{plural(self.updates, 'update')}, {plural(self.accesses, 'access')} and "
            f"{plural(self.zaps, 'zap')} from {plural(self.lines, 'line')} "
            f"({events or 'no trace events'})"
        ]
        if self.unrelated:
            out.append(f"skipped {plural(self.unrelated, 'line')} that are not trace events")
        if self.other_markers:
            out.append(
                f"skipped {plural(self.other_markers, 'trace marker')} not from kvmgen or QEMU"
            )
        if self.lost:
            out.append(
                f"the ring buffer lost {plural(self.lost, 'event')}: observations are incomplete"
            )
        if self.no_gfn:
            out.append(
                f"skipped {plural(self.no_gfn, 'check_mmio_spte fault')} whose gfn never showed"
            )
        for what, counts in (("zap", self.foreign_zaps), ("access", self.foreign_accesses)):
            if counts:
                named = ", ".join(f"{who}: {count(n)}" for who, n in sorted(counts.items()))
                out.append(
                    f"left out {plural(sum(counts.values()), what)} of other VMs, not this "
                    f"VMM's ({named}); they made none of the log's memslot calls"
                )
        out.extend(self.qemu)
        out.extend(self.notes)
        return out


class ObservationRows(Protocol):
    """Observations kept as rows (:class:`kvmgen.importers.bulk_trace.Observations`)."""

    def __getitem__(self, index: int) -> dict[str, Any]: ...
    def __iter__(self) -> Iterator[dict[str, Any]]: ...
    def __len__(self) -> int: ...
    def write_items(self, out: IO[str], fmt: str, lead: tuple[str, str, str]) -> int:
        """Write each observation as emit.write_trace asks (emit.WritesItself)."""


@dataclass
class ImportResult:
    """The trace an import produced: header, events, observations, summary.

    A big capture's events and observations (the bulk import) are rows that iterate
    as mappings and write their own text.
    """

    vm: dict[str, Any]
    events: list[dict[str, Any]] | WritesItself
    observations: list[dict[str, Any]] | ObservationRows
    summary: TracefsSummary


class _Importer:
    def __init__(self, path: str, *, first_sight: str, zap_window_ns: int) -> None:
        self.path = path
        self.summary = TracefsSummary()
        self.tracker = MemslotTracker(path, first_sight)
        self.zap_window_ns = zap_window_ns
        self.seq = 0
        self.updates: list[_Update] = []
        self.zaps: list[_Zap] = []
        self.accesses: list[_Access] = []
        self.open: dict[int, _Access] = {}
        self.capture: dict[str, str] = {}
        self.capture_end: dict[str, str] | None = None
        self.first_t: int | None = None
        self.last_t: int | None = None
        self.mmu_seen = False
        self.marker_ordinals: list[int] = []
        # Memslot ioctls per thread, from syscall events; an exit closes the thread's last.
        self.windows: dict[int, list[align.IoctlWindow]] = {}
        self.in_ioctl: dict[int, align.IoctlWindow] = {}
        self.tgids: dict[int, int] = {}  # tid -> tgid, where lines carry it
        self.exact = False  # every log call has its ioctl window
        self.matched: set[align.IoctlWindow] = set()  # those windows (exact only)
        self.entries: dict[int, list[int]] = {}  # per thread, its windows' entry times

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    # --- pass 1: classify lines ------------------------------------------------------------

    def feed(self, number: int, text: str) -> None:
        self.summary.lines = number
        if "EVENTS" in text:  # cheap test first: this runs on every line
            lost = _LOST.search(text)
            if lost is not None:
                self.summary.lost += int(lost[1] or lost[2])
                return
        tl = parse_trace_line(text, number)
        if tl is None:
            if text.strip():
                self.summary.unrelated += 1
            return
        self.first_t = tl.t_ns if self.first_t is None else self.first_t
        self.last_t = tl.t_ns
        self.summary.per_event[tl.event] += 1
        if tl.tgid is not None:
            self.tgids[tl.pid] = tl.tgid
        if tl.event in ("sys_enter_ioctl", "sys_exit_ioctl"):
            self.syscall(tl)
        elif tl.event in MARKER_EVENTS:
            self.marker(tl)
        elif tl.event in ZAP_EVENTS:
            match = _ZAP.match(tl.payload)
            if match is None:
                raise self.bad(tl, "kvm-mmu-valid-gen N used_pages N")
            base = 10 if tl.event == "kvm_mmu_zap_all_fast" else 16
            if base == 10 and not match[1].isdigit():
                raise self.bad(tl, "kvm-mmu-valid-gen N (decimal) used_pages N")
            self.zaps.append(
                _Zap(
                    tl.t_ns,
                    self.next_seq(),
                    number,
                    tl.event,
                    int(match[1], base),
                    int(match[2], 16),
                    tl.pid,
                    tl.tgid,
                )
            )
        elif tl.event in MMU_EVENTS or tl.event == "kvm_mmio":
            self.mmu(tl)

    def syscall(self, tl: TraceLine) -> None:
        """A memslot ioctl's entry (filtered by cmd in the capture) or any ioctl's exit."""
        if tl.event == "sys_enter_ioctl":
            match = _ENTER.match(tl.payload)
            if match is None:
                raise self.bad(tl, "fd: N, cmd: 0xN, arg: 0xN")
            command = int(match["cmd"], 0)
            if command in (SET_REGION, SET_REGION2):
                window = align.IoctlWindow(tl.pid, tl.t_ns, None, command, int(match["fd"], 0))
                self.in_ioctl[tl.pid] = window
            return
        match = _EXIT.match(tl.payload)
        if match is None:
            raise self.bad(tl, "-> 0xN")
        # A thread is in one syscall at a time: its next exit ends the memslot ioctl.
        opened = self.in_ioctl.pop(tl.pid, None) if tl.pid in self.in_ioctl else None
        if opened is not None:
            closed = align.IoctlWindow(
                opened.tid, opened.enter_ns, tl.t_ns, opened.command, opened.fd
            )
            self.windows.setdefault(tl.pid, []).append(closed)

    def bad(self, tl: TraceLine, expected: str) -> TraceError:
        return TraceError(
            self.path,
            f"{tl.event}: payload {tl.payload[:60]!r} does not match '{expected}'",
            line=tl.line,
        )

    def marker(self, tl: TraceLine) -> None:
        text = tl.payload.strip()
        kind, rest = marker_kind(text)
        if kind == "update":
            self.kvmgen_update(tl, rest[0], rest[1:])
        elif kind == "capture start":
            self.capture = marker_fields(text)
        elif kind == "capture end":
            self.capture_end = marker_fields(text)
        elif kind == "qemu":
            rec = parse_payload(rest[0], path=self.path, line=tl.line, tid=tl.pid)
            self.updates.append(
                _Update(tl.t_ns, self.next_seq(), True, tl.line, call=rec, tid=tl.pid)
            )
        else:
            self.summary.other_markers += 1

    def kvmgen_update(self, tl: TraceLine, ordinal: str, words: list[str]) -> None:
        try:
            parsed: dict[str, Any] = {}
            for word in words:
                key, _, value = word.partition("=")
                if key == "op":
                    if value not in _OPS:
                        raise ValueError
                    parsed[key] = value
                elif key in _UPDATE_KEYS:
                    parsed[key] = int(value, 0)
                else:
                    raise ValueError
            if "op" not in parsed or not _NEEDS[parsed["op"]] <= parsed.keys():
                raise ValueError
            self.marker_ordinals.append(int(ordinal))
        except ValueError:
            raise TraceError(
                self.path,
                f"kvmgen marker {tl.payload[:80]!r}: expected 'kvmgen: update N op=create|delete|"
                "move|flags as=N slot=N [gfn=0x..] [pages=0x..] [flags=0x..]'",
                line=tl.line,
            ) from None
        self.updates.append(
            _Update(tl.t_ns, self.next_seq(), False, tl.line, fields=parsed, tid=tl.pid)
        )

    def mmu(self, tl: TraceLine) -> None:
        pid, cur = tl.pid, self.open.get(tl.pid)
        if tl.event == "check_mmio_spte":
            match = _CHECK.match(tl.payload)
            if match is None:
                raise self.bad(tl, "spte X kvm_gen X spte-gen X valid 0|1")
            self.mmu_seen = True
            acc = self.start(tl)
            acc.check = (int(match[2], 16), int(match[3], 16), int(match[4]))
            return
        if tl.event == "mark_mmio_spte":
            match = _MARK.match(tl.payload)
            if match is None:
                raise self.bad(tl, "sptep:P gfn X access X gen X")
            self.mmu_seen = True
            gfn = int(match[1], 16)
            if not (
                cur is not None
                and cur.check is not None
                and cur.mark_gen is None
                and cur.mmio is None
                and cur.gfn in (None, gfn)
            ):
                cur = self.start(tl)
            cur.gfn, cur.mark_gen = gfn, int(match[3], 16)
            return
        if tl.event == "handle_mmio_page_fault":
            match = _HANDLE.match(tl.payload)
            if match is None:
                raise self.bad(tl, "addr:X gfn X access X")
            self.mmu_seen = True
            gfn = int(match[2], 16)
            if not (
                cur is not None
                and cur.check is not None
                and cur.check[2]
                and not cur.handled
                and cur.mmio is None
                and cur.gfn in (None, gfn)
            ):
                cur = self.start(tl)
            cur.gfn, cur.handled = gfn, True
            return
        match = _MMIO.match(tl.payload)
        if match is None:
            raise self.bad(tl, "mmio read|write|unsatisfied-read len N gpa 0xX val 0xX")
        kind, gfn = match[1], int(match[3], 16) >> 12
        if cur is not None and cur.gfn in (None, gfn) and cur.mmio is None:
            cur.gfn, cur.mmio = gfn, kind
        elif (
            cur is not None and cur.gfn == gfn and cur.mmio == "unsatisfied-read" and kind == "read"
        ):
            cur.mmio = kind  # the read completed by userspace: same access
        else:
            cur = self.start(tl)
            cur.gfn, cur.mmio = gfn, kind
        if kind == "write":
            cur.kind = "write"
        if kind != "unsatisfied-read":
            # kvm_mmio ends the fault (a read waits for userspace to complete it first).
            self.open.pop(pid, None)

    def start(self, tl: TraceLine) -> _Access:
        acc = _Access(tl.t_ns, self.next_seq(), tl.line, tl.pid, tl.comm, tl.tgid)
        self.accesses.append(acc)
        self.open[tl.pid] = acc
        return acc

    # --- pass 2: timeline ---------------------------------------------------------------------

    def add_calls(self, log: RegionLog, offset_ns: int | None) -> str:
        """Merge a log's memslot calls onto the trace clock; return how they were placed."""
        self.tracker.follow(log)
        placed = align.by_syscalls(log.calls, self.windows) if offset_ns is None else None
        if placed is None and offset_ns is not None:
            placed = align.shifted(log.calls, offset_ns, source=log.path)
        if placed is None:
            zap_tids = {c.tid for c in log.calls if c.tid is not None}
            own = [z.t_ns for z in self.zaps if not zap_tids or z.pid in zap_tids]
            placed = align.by_deletes(log.calls, own, source=log.path, at_exit=log.at_exit)
            if self.windows:
                placed = align.Alignment(
                    placed.times,
                    "the trace's ioctl events do not pair up with the log's calls (events "
                    f"lost, or the log began before the capture); {placed.how}",
                    exact=False,
                    misfit=placed.misfit,
                )
        self.exact = placed.exact
        self.matched = set(placed.windows)
        # Matched to its ioctl events, a call stands at the ioctl's return.
        at_exit = placed.exact or log.at_exit
        for rec, t_ns in zip(log.calls, placed.times, strict=True):
            self.updates.append(_Update(t_ns, 0, at_exit, rec.line, call=rec, tid=rec.tid))
        return placed.how

    def ioctl_at(self, z: _Zap) -> align.IoctlWindow | None:
        """The memslot ioctl of the zap's thread that was running when it fired, if any."""
        windows = self.windows.get(z.pid)
        if not windows:
            return None
        if z.pid not in self.entries:  # a thread's windows come in time order
            self.entries[z.pid] = [w.enter_ns for w in windows]
        at = bisect.bisect_right(self.entries[z.pid], z.t_ns) - 1
        if at < 0:
            return None
        window = windows[at]
        return window if window.exit_ns is None or z.t_ns <= window.exit_ns else None

    def own(self) -> tuple[list[_Zap], list[_Access]]:
        """The zaps and accesses of the VMM: its threads, or its process where lines say so.

        A zap fires in the thread whose ioctl caused it, so a zap of a thread that made
        no memslot call (and of another process, where the capture records tgids) is
        another VM's; an access is left out only when its process is known to differ.
        """
        tids = {u.tid for u in self.updates if u.tid is not None}
        processes = {self.tgids[t] for t in tids if t in self.tgids}
        zaps, accesses = [], []
        for z in self.zaps:
            inside = self.ioctl_at(z)
            if inside is not None and self.exact:
                # Inside a memslot ioctl: the VM's own call, or another VM's (another fd).
                mine = inside in self.matched
            else:
                mine = not tids or z.pid in tids or (z.tgid is not None and z.tgid in processes)
            if mine:
                zaps.append(z)
            else:
                who = f"process {z.tgid}" if z.tgid is not None else f"thread {z.pid}"
                self.summary.foreign_zaps[who] += 1
        for acc in self.accesses:
            if processes and acc.tgid is not None and acc.tgid not in processes:
                self.summary.foreign_accesses[f"process {acc.tgid}"] += 1
            else:
                accesses.append(acc)
        if not processes and tids and self.summary.foreign_zaps:
            self.summary.notes.append(
                "the capture has no tgid column: accesses of every process are kept "
                "(kvmgen record sets options/record-tgid)"
            )
        return zaps, accesses

    def build(self) -> ImportResult:
        zaps, accesses = self.own()
        # (time, after, seq, index, item): a call stamped at its return comes after the
        # zaps and accesses of the same instant, which happened inside it.
        timeline: list[tuple[int, int, int, int, Any]] = []
        for i, u in enumerate(self.updates):
            timeline.append((u.t_ns, int(u.post), u.seq, i, u))
        for z in zaps:
            timeline.append((z.t_ns, 0, z.seq, 0, z))
        for a in accesses:
            timeline.append((a.t_ns, 0, a.seq, 0, a))
        timeline.sort(key=lambda item: item[:4])
        # For each position, the next update (for zaps traced before a post-ioctl line),
        # and for each thread how many post-ioctl updates are still to come.
        next_update: list[_Update | None] = [None] * (len(timeline) + 1)
        for i in range(len(timeline) - 1, -1, -1):
            item = timeline[i][4]
            next_update[i] = item if isinstance(item, _Update) else next_update[i + 1]
        to_come: Counter[int] = Counter(u.tid for u in self.updates if u.post and u.tid is not None)

        events: list[dict[str, Any]] = []
        observations: list[dict[str, Any]] = []
        ordinal = 0
        pending: list[_Zap] = []
        pending_of: dict[int, list[_Zap]] = {}
        # Threads whose calls are stamped at entry (kvmgen markers, strace without -T):
        # the ordinal of each one's latest update, which its later zaps belong to.
        entered: dict[int, int] = {}
        vcpus: dict[int, int] = {}
        flags_now: dict[tuple[int, int], int] = {}
        for i, (_t, _after, _seq, _k, item) in enumerate(timeline):
            if isinstance(item, _Update):
                produced = self.emit_update(item, events, flags_now)
                ordinal += produced
                item.ordinal = ordinal
                mine = pending_of.pop(item.tid, []) if item.post and item.tid is not None else []
                for z in pending + mine:
                    observations.append(self.zap_obs(z, ordinal))
                pending = []
                if item.post and item.tid is not None:
                    to_come[item.tid] -= 1
                elif item.tid is not None:
                    entered[item.tid] = ordinal
            elif isinstance(item, _Zap):
                nxt = next_update[i + 1]
                if to_come.get(item.pid, 0) > 0:
                    # Inside one of this thread's calls, which the log prints once it returns.
                    pending_of.setdefault(item.pid, []).append(item)
                elif item.pid in entered:
                    observations.append(self.zap_obs(item, entered[item.pid]))
                elif nxt is not None and nxt.post and nxt.t_ns - item.t_ns <= self.zap_window_ns:
                    pending.append(item)
                else:
                    observations.append(self.zap_obs(item, ordinal))
            else:
                self.emit_access(item, events, observations, vcpus)
        for z in pending + [z for left in pending_of.values() for z in left]:
            observations.append(self.zap_obs(z, ordinal))
        self.summary.updates = ordinal
        vm = self.header()
        observations.insert(0, self.capture_obs(ordinal))
        if self.tracker.summary.records:
            self.summary.qemu.extend(self.tracker.summary.describe()[1:])
        return ImportResult(vm, events, observations, self.summary)

    def emit_update(
        self, u: _Update, events: list[dict[str, Any]], flags_now: dict[tuple[int, int], int]
    ) -> int:
        if u.call is not None:
            produced = self.tracker.apply(u.call)
            for made in produced:
                made["t"] = seconds(u.t_ns)
                events.append(made)
            return len(produced)
        assert u.fields is not None
        f = u.fields
        op, a, slot = f["op"], f.get("as", 0), f.get("slot", 0)
        ev: dict[str, Any] = {"op": op, "slot": slot}
        if a:
            ev["as"] = a
        if "src" in f:
            ev["note"] = PROBED.format(f["src"])
        key = (a, slot)
        if op == "create":
            ev["gfn"], ev["pages"] = f["gfn"], f["pages"]
            if f.get("flags"):
                ev["flags"] = f["flags"]
            flags_now[key] = f.get("flags", 0)
        elif op == "move":
            ev["gfn"] = f["gfn"]
        elif op == "delete":
            flags_now.pop(key, None)
        else:
            new = f.get("flags", 0)
            old = flags_now.get(key)
            flags_now[key] = new
            if old is not None and new == old ^ 1:
                last = events[-1] if events else None
                if (
                    last is not None
                    and "src" not in f  # a new event of a probed trace starts a new line
                    and last["op"] == "flags"
                    and "flags" not in last
                    and last["slot"] == slot
                    and last.get("as", 0) == a
                ):
                    last["repeat"] = last.get("repeat", 1) + 1
                    return 1
            else:
                ev["flags"] = new
        events.append(ev)
        return 1

    def emit_access(
        self,
        acc: _Access,
        events: list[dict[str, Any]],
        observations: list[dict[str, Any]],
        vcpus: dict[int, int],
    ) -> None:
        if acc.gfn is None:
            self.summary.no_gfn += 1
            return
        named = _VCPU_COMM.search(acc.comm)
        if named is not None and int(named[1]) < 4096:
            vcpu = int(named[1])
        else:
            vcpu = vcpus.setdefault(acc.pid, min(len(vcpus), 4095))
        ev: dict[str, Any] = {"op": "access", "gfn": acc.gfn}
        if vcpu:
            ev["vcpu"] = vcpu
        if acc.kind == "write":
            ev["kind"] = "write"
        ev["t"] = seconds(acc.t_ns)
        index = len(events)
        events.append(ev)
        self.summary.accesses += 1
        if not self.mmu_seen or self.capture.get("mmio_caching") == "0":
            return
        obs: dict[str, Any] = {"kind": "access", "access": index, "outcome": acc.outcome()}
        if acc.check is not None:
            obs["kvm_gen"], obs["spte_gen"] = acc.check[0], acc.check[1]
        if acc.mark_gen is not None:
            obs["gen"] = acc.mark_gen
        obs["t"] = seconds(acc.t_ns)
        observations.append(obs)

    def zap_obs(self, z: _Zap, ordinal: int) -> dict[str, Any]:
        self.summary.zaps += 1
        return {
            "kind": "zap",
            "update": ordinal,
            "event": z.event,
            "valid_gen": z.valid_gen,
            "used_pages": z.used_pages,
            "t": seconds(z.t_ns),
        }

    def capture_obs(self, total: int) -> dict[str, Any]:
        """What the capture covers: the updates traced completely, zap tracepoints on."""
        covered = None
        if self.updates and self.first_t is not None and self.last_t is not None:
            ordinals = [
                u.ordinal
                for u in self.updates
                if u.ordinal is not None
                and self.first_t <= u.t_ns
                and (u.t_ns <= self.last_t if u.post else u.t_ns < self.last_t)
            ]
            if ordinals:
                covered = (min(ordinals), max(ordinals))
        return capture_observation(
            self.capture,
            covered,
            total=total,
            ended=self.capture_end is not None,
            exact=self.exact,
            per_event=self.summary.per_event,
            lost=self.summary.lost,
        )

    def header(self) -> dict[str, Any]:
        """The trace's ``vm`` header."""
        return header_of(self.capture, self.tracker.decls)


def capture_observation(
    capture: dict[str, str],
    covered: tuple[int, int] | None,
    *,
    total: int,
    ended: bool,
    exact: bool,
    per_event: Counter[str],
    lost: int,
) -> dict[str, Any]:
    """The capture observation: what the capture covers, which zap tracepoints were on.

    ``capture``: the start marker's fields; ``covered``: the first and last ordinal of
    the updates traced within the capture's time span; ``ended``: an end marker was seen;
    ``exact``: every call's ioctl is in the trace.
    """
    cap: dict[str, Any] = {"kind": "capture"}
    cap["source"] = capture.get("source", "tracefs import")
    if "kernel" in capture:
        cap["kernel"] = capture["kernel"]
    first, last = covered if covered is not None else (None, None)
    if ended and total:
        last = total  # the end marker follows the last update: nothing after it is missing
    if exact and total:
        first, last = 1, total  # every call's ioctl is in the trace
    elif capture.get("vm_start") == "1" and total and last is not None:
        first = 1  # the capture began at VM creation, before the first update
    if first is not None and last is not None and first <= last:
        cap["first_update"], cap["last_update"] = first, last
    enabled = capture.get("events", "")
    zap_events = [e for e in ZAP_EVENTS if e in enabled.split(",") or per_event[e]]
    if zap_events:
        cap["zap_events"] = zap_events
    cap["from_vm_start"] = capture.get("vm_start") == "1"
    cap["lost"] = lost
    return cap


def header_of(capture: dict[str, str], decls: list[dict[str, int]]) -> dict[str, Any]:
    """The trace's ``vm`` header: the capture's kernel and address spaces, declared slots."""
    vm: dict[str, Any] = {}
    if "kernel" in capture:
        vm["kernel"] = capture["kernel"]
    if "nas" in capture:
        vm["address_spaces"] = int(capture["nas"])
    if decls:
        vm["slots"] = decls
    return vm


def import_tracefs(
    path: str,
    lines: list[str],
    *,
    calls: RegionLog | None = None,
    offset_ns: int | None = None,
    first_sight: str = "auto",
    zap_window_ns: int = DEFAULT_ZAP_WINDOW_NS,
    zaps_enabled: bool = False,
    from_vm_start: bool | None = None,
    vm_created: bool = False,
) -> ImportResult:
    """Import kernel trace text, with the memslot calls of a log (QEMU's, strace's) merged.

    ``offset_ns`` is added to the log's times instead of finding the offset
    (:mod:`kvmgen.importers.align`). ``vm_created``: the log shows the VM's creation,
    so a capture that saw every one of its calls covered it from VM start.
    """
    imp = _Importer(path, first_sight=first_sight, zap_window_ns=zap_window_ns)
    for number, text in enumerate(lines, start=1):
        imp.feed(number, text.rstrip("\r\n"))
    if calls is not None:
        imp.summary.notes.append(imp.add_calls(calls, offset_ns))
        imp.summary.notes.extend(calls.notes)
        imp.tracker.summary.lines = calls.lines
        imp.tracker.summary.unrelated = calls.unrelated
        imp.tracker.summary.what = calls.what
    if from_vm_start is None and imp.exact and vm_created:
        from_vm_start = True
    if from_vm_start is not None:
        imp.capture["vm_start"] = "1" if from_vm_start else "0"
    result = imp.build()
    finish_import(result, zaps_enabled=zaps_enabled, marker_ordinals=imp.marker_ordinals)
    return result


def finish_import(
    result: ImportResult, *, zaps_enabled: bool, marker_ordinals: Sequence[int]
) -> None:
    """What every import adds last: zap events the caller knows were on, and missing markers.

    ``marker_ordinals``: the ordinals of the kvmgen update markers, in line order.
    """
    cap = result.observations[0]
    if zaps_enabled and "zap_events" not in cap:
        cap["zap_events"] = list(ZAP_EVENTS)
    gaps = _marker_gaps(marker_ordinals)
    if gaps:
        result.summary.notes.append(
            f"kvmgen update markers are missing ({gaps}): updates were lost from the capture"
        )


def _marker_gaps(ordinals: Sequence[int]) -> str:
    """A description of missing kvmgen update ordinals ('' when the run is complete)."""
    if not len(ordinals):
        return ""
    first, last = int(ordinals[0]), int(ordinals[-1])
    if last - first + 1 == len(ordinals) and all(
        int(b) - int(a) == 1 for a, b in itertools.pairwise(ordinals)
    ):
        return ""
    missing = (last - first + 1) - len(ordinals)
    return f"{missing} of {last - first + 1} between {first} and {last}"
