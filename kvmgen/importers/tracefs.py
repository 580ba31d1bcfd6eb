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

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kvmgen.errors import TraceError, UsageError
from kvmgen.importers.qemu import (
    NAME as QEMU_EVENT,
)
from kvmgen.importers.qemu import (
    MemslotTracker,
    QemuLog,
    QemuRecord,
    parse_payload,
    parse_time,
    seconds,
)
from kvmgen.trace.observed import ZAP_EVENTS

_TRACEFS = re.compile(
    r"\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\]]{4,5})\s+)?(?P<sec>\d+)\.(?P<frac>\d+):\s+(?P<event>\w+):\s*"
    r"(?P<payload>.*)"
)
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
_UPDATE_KEYS = {"op", "as", "slot", "gfn", "pages", "flags"}
_OPS = ("create", "delete", "move", "flags")
DEFAULT_ZAP_WINDOW_NS = 100_000_000


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
    pid = match["tid"] if system is not None and match["tid"] else match["pid"]
    return TraceLine(
        line=line,
        comm=match["comm"].strip(),
        pid=int(pid) if pid else -1,
        cpu=int(match["cpu"]) if match["cpu"] else -1,
        t_ns=parse_time(match["sec"], match["frac"]),
        event=event,
        payload=payload.rstrip(),
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


def update_marker(ordinal: int, op: str, a: int, slot: int, **fields: int) -> str:
    """The marker ``kvmgen probe`` writes before an update (parsed by :func:`read_marker`)."""
    words = [f"kvmgen: update {ordinal} op={op} as={a} slot={slot}"]
    words += [f"{k}={v:#x}" for k, v in fields.items()]
    return " ".join(words)


@dataclass(slots=True)
class _Update:
    """A memslot update seen in the capture (a kvmgen marker or a QEMU line)."""

    t_ns: int
    seq: int
    post: bool  # traced after its ioctl returned (QEMU) rather than before (kvmgen)
    line: int
    qemu: QemuRecord | None = None
    fields: dict[str, Any] | None = None
    ordinal: int | None = None


@dataclass(slots=True)
class _Zap:
    t_ns: int
    seq: int
    line: int
    event: str
    valid_gen: int
    used_pages: int


@dataclass
class _Access:
    """One guest MMIO access: the MMU and MMIO tracepoints of one fault on one thread."""

    t_ns: int
    seq: int
    line: int
    pid: int
    comm: str
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
    qemu: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """Human sentences; the first is the headline."""
        events = ", ".join(f"{n} {name}" for name, n in sorted(self.per_event.items()))
        out = [
            f"{self.updates} updates, {self.accesses} accesses and {self.zaps} zaps from "
            f"{self.lines} lines ({events or 'no trace events'})"
        ]
        if self.unrelated:
            out.append(f"skipped {self.unrelated} lines that are not trace events")
        if self.other_markers:
            out.append(f"skipped {self.other_markers} trace markers not from kvmgen or QEMU")
        if self.lost:
            out.append(f"the ring buffer lost {self.lost} events: observations are incomplete")
        if self.no_gfn:
            out.append(f"skipped {self.no_gfn} check_mmio_spte faults whose gfn never showed")
        out.extend(self.qemu)
        out.extend(self.notes)
        return out


@dataclass
class ImportResult:
    """The trace an import produced: header, events, observations, summary."""

    vm: dict[str, Any]
    events: list[dict[str, Any]]
    observations: list[dict[str, Any]]
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
        if tl.event in MARKER_EVENTS:
            self.marker(tl)
        elif tl.event in ZAP_EVENTS:
            match = _ZAP.match(tl.payload)
            if match is None:
                raise self.bad(tl, "kvm-mmu-valid-gen N used_pages N")
            base = 10 if tl.event == "kvm_mmu_zap_all_fast" else 16
            self.zaps.append(
                _Zap(
                    tl.t_ns,
                    self.next_seq(),
                    number,
                    tl.event,
                    int(match[1], base),
                    int(match[2], 16),
                )
            )
        elif tl.event in MMU_EVENTS or tl.event == "kvm_mmio":
            self.mmu(tl)

    def bad(self, tl: TraceLine, expected: str) -> TraceError:
        return TraceError(
            self.path,
            f"{tl.event}: payload {tl.payload[:60]!r} does not match '{expected}'",
            line=tl.line,
        )

    def marker(self, tl: TraceLine) -> None:
        text = tl.payload.strip()
        if text.startswith(KVMGEN_MARKER):
            words = text[len(KVMGEN_MARKER) :].split()
            head = words[:2]
            if head and head[0] == "update" and len(words) > 1:
                self.kvmgen_update(tl, words[1], words[2:])
            elif head == ["capture", "start"]:
                self.capture = marker_fields(text)
            elif head == ["capture", "end"]:
                self.capture_end = marker_fields(text)
            else:
                self.summary.other_markers += 1
            return
        at = text.find(QEMU_EVENT)
        if at >= 0:
            rec = parse_payload(text[at + len(QEMU_EVENT) :], path=self.path, line=tl.line)
            self.updates.append(_Update(tl.t_ns, self.next_seq(), True, tl.line, qemu=rec))
            return
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
            if "op" not in parsed:
                raise ValueError
            self.marker_ordinals.append(int(ordinal))
        except ValueError:
            raise TraceError(
                self.path,
                f"kvmgen marker {tl.payload[:80]!r}: expected 'kvmgen: update N op=create|delete|"
                "move|flags as=N slot=N [gfn=0x..] [pages=0x..] [flags=0x..]'",
                line=tl.line,
            ) from None
        self.updates.append(_Update(tl.t_ns, self.next_seq(), False, tl.line, fields=parsed))

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
        acc = _Access(tl.t_ns, self.next_seq(), tl.line, tl.pid, tl.comm)
        self.accesses.append(acc)
        self.open[tl.pid] = acc
        return acc

    # --- pass 2: timeline ---------------------------------------------------------------------

    def add_qemu(self, log: QemuLog, offset_ns: int) -> None:
        for rec in log.records:
            if rec.t_ns is None:
                raise UsageError(
                    f"{log.path}:{rec.line}: the QEMU log has no timestamps, so it cannot be "
                    "merged by time (run QEMU with -msg timestamp=on)"
                )
            self.updates.append(_Update(rec.t_ns + offset_ns, 0, True, rec.line, qemu=rec))

    def build(self) -> ImportResult:
        timeline: list[tuple[int, int, int, Any]] = []
        for i, u in enumerate(self.updates):
            timeline.append((u.t_ns, u.seq, i, u))
        for z in self.zaps:
            timeline.append((z.t_ns, z.seq, 0, z))
        for a in self.accesses:
            timeline.append((a.t_ns, a.seq, 0, a))
        timeline.sort(key=lambda item: (item[0], item[1], item[2]))
        # For each position, the next update (for zaps traced before a post-ioctl line).
        next_update: list[_Update | None] = [None] * (len(timeline) + 1)
        for i in range(len(timeline) - 1, -1, -1):
            item = timeline[i][3]
            next_update[i] = item if isinstance(item, _Update) else next_update[i + 1]

        events: list[dict[str, Any]] = []
        observations: list[dict[str, Any]] = []
        ordinal = 0
        pending: list[_Zap] = []
        vcpus: dict[int, int] = {}
        flags_now: dict[tuple[int, int], int] = {}
        for i, (_t, _seq, _k, item) in enumerate(timeline):
            if isinstance(item, _Update):
                produced = self.emit_update(item, events, flags_now)
                ordinal += produced
                item.ordinal = ordinal
                for z in pending:
                    observations.append(self.zap_obs(z, ordinal))
                pending = []
            elif isinstance(item, _Zap):
                nxt = next_update[i + 1]
                if nxt is not None and nxt.post and nxt.t_ns - item.t_ns <= self.zap_window_ns:
                    pending.append(item)
                else:
                    observations.append(self.zap_obs(item, ordinal))
            else:
                self.emit_access(item, events, observations, vcpus)
        for z in pending:
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
        if u.qemu is not None:
            produced = self.tracker.apply(u.qemu)
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
        cap: dict[str, Any] = {"kind": "capture"}
        if self.capture:
            cap["source"] = self.capture.get("source", "kvmgen probe")
            if "kernel" in self.capture:
                cap["kernel"] = self.capture["kernel"]
        else:
            cap["source"] = "tracefs import"
        first = last = None
        if self.updates and self.first_t is not None and self.last_t is not None:
            covered = [
                u.ordinal
                for u in self.updates
                if u.ordinal is not None
                and self.first_t <= u.t_ns
                and (u.t_ns <= self.last_t if u.post else u.t_ns < self.last_t)
            ]
            if covered:
                first, last = min(covered), max(covered)
        if self.capture_end is not None and total:
            last = total  # the end marker follows the last update: nothing after it is missing
        if first is not None and last is not None and first <= last:
            cap["first_update"], cap["last_update"] = first, last
        enabled = self.capture.get("events", "")
        zap_events = [e for e in ZAP_EVENTS if e in enabled.split(",") or self.summary.per_event[e]]
        if zap_events:
            cap["zap_events"] = zap_events
        cap["from_vm_start"] = self.capture.get("vm_start") == "1"
        cap["lost"] = self.summary.lost
        return cap

    def header(self) -> dict[str, Any]:
        vm: dict[str, Any] = {}
        if "kernel" in self.capture:
            vm["kernel"] = self.capture["kernel"]
        if "nas" in self.capture:
            vm["address_spaces"] = int(self.capture["nas"])
        if self.tracker.decls:
            vm["slots"] = self.tracker.decls
        return vm


def align_qemu(log: QemuLog, lines: list[TraceLine | None], zaps_t: list[int]) -> tuple[int, str]:
    """The offset (ns) to add to QEMU times to get trace times, and how it was found.

    Same clock when the two time ranges overlap; otherwise the first delete or move
    in the log is lined up just after the first zap (from 5.3 on, every delete and
    move zaps the whole MMU inside its ioctl, and QEMU traces the call after it).
    """
    times = [rec.t_ns for rec in log.records if rec.t_ns is not None]
    trace_times = [tl.t_ns for tl in lines if tl is not None]
    if not times or not trace_times:
        return 0, "no timestamps to align: QEMU times used as they are"
    day = 86_400 * 1_000_000_000
    if abs(times[0] - trace_times[0]) < day:
        return 0, "QEMU and trace timestamps share a clock (their ranges overlap)"
    flushing = [rec for rec in log.records if rec.t_ns is not None and rec.ret == 0]
    first_flush = next((rec for rec in flushing if rec.size == 0), None)
    if first_flush is None or not zaps_t:
        raise UsageError(
            f"{log.path}: the QEMU log and the trace use different clocks and there is no "
            "delete and zap pair to line them up: give --qemu-offset SECONDS"
        )
    assert first_flush.t_ns is not None
    offset = zaps_t[0] + 1_000 - first_flush.t_ns
    return offset, (
        f"clocks aligned on the first delete (QEMU line {first_flush.line}) and the first zap: "
        f"offset {offset / 1e9:+.6f} s"
    )


def import_tracefs(
    path: str,
    lines: list[str],
    *,
    qemu: QemuLog | None = None,
    qemu_offset_ns: int | None = None,
    first_sight: str = "auto",
    zap_window_ns: int = DEFAULT_ZAP_WINDOW_NS,
    zaps_enabled: bool = False,
    from_vm_start: bool | None = None,
) -> ImportResult:
    """Import kernel trace text (and optionally a QEMU log merged by time)."""
    imp = _Importer(path, first_sight=first_sight, zap_window_ns=zap_window_ns)
    for number, text in enumerate(lines, start=1):
        imp.feed(number, text.rstrip("\r\n"))
    if qemu is not None:
        if qemu_offset_ns is None:
            parsed = [parse_trace_line(text) for text in lines[:1000]]
            offset, how = align_qemu(qemu, parsed, [z.t_ns for z in imp.zaps])
        else:
            offset, how = qemu_offset_ns, f"QEMU times shifted by {qemu_offset_ns / 1e9:+.6f} s"
        imp.add_qemu(qemu, offset)
        imp.summary.notes.append(how)
        imp.tracker.summary.lines = qemu.lines
        imp.tracker.summary.unrelated = qemu.unrelated
    result = imp.build()
    cap = result.observations[0]
    if zaps_enabled and "zap_events" not in cap:
        cap["zap_events"] = list(ZAP_EVENTS)
    if from_vm_start is not None:
        cap["from_vm_start"] = from_vm_start
    gaps = _marker_gaps(imp.marker_ordinals)
    if gaps:
        result.summary.notes.append(
            f"kvmgen update markers are missing ({gaps}): updates were lost from the capture"
        )
    return result


def _marker_gaps(ordinals: list[int]) -> str:
    """A description of missing kvmgen update ordinals ('' when the run is complete)."""
    if not ordinals:
        return ""
    expected = range(ordinals[0], ordinals[0] + len(ordinals))
    if ordinals == list(expected):
        return ""
    missing = (ordinals[-1] - ordinals[0] + 1) - len(ordinals)
    return f"{missing} of {ordinals[-1] - ordinals[0] + 1} between {ordinals[0]} and {ordinals[-1]}"
