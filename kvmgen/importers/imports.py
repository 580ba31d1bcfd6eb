"""One import, whatever the source: read it, turn it into events, write the trace.

:func:`from_qemu`, :func:`from_strace` and :func:`from_tracefs` (kernel trace text
with a QEMU log or a strace log merged in) each return an :class:`Imported`,
which :meth:`Imported.write` writes as trace format v1. ``kvmgen import`` and
``kvmgen record`` are thin layers over these.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from kvmgen.errors import UsageError
from kvmgen.importers.emit import Events, write_trace
from kvmgen.importers.memslots import MemslotTracker, RegionLog, header_for, import_calls
from kvmgen.importers.qemu import read_log
from kvmgen.importers.strace import choose_vm, read_strace, vm_log
from kvmgen.trace.records import Trace

if TYPE_CHECKING:
    from kvmgen.importers.tracefs import ImportResult, ObservationRows

BULK_MIN_BYTES = 4 << 20
"""From this size, a QEMU log given as bytes is read by the jitted loops of
:mod:`kvmgen.importers.bulk`. Loading numba and the loops costs about 0.5 s of CPU and
the Python importer some 16 us a line, so the loops pay from about 35,000 lines."""


@dataclass
class Imported:
    """A trace made from a source: header, events, observations (or None), summary lines."""

    vm: dict[str, Any]
    events: list[dict[str, Any]] | Events  # big QEMU logs: rows that write themselves
    observations: list[dict[str, Any]] | ObservationRows | None  # rows: big kernel traces
    summary: list[str]
    source: str  # how the header comment names where it came from
    comments: list[str] = field(default_factory=list)
    title: str | None = None  # the header comment's first line, if not "Imported by ..."

    def text(self, fmt: str = "yaml") -> str:
        """The trace as text in ``fmt`` (``yaml``, ``json`` or ``jsonl``)."""
        buffer = io.StringIO()
        self.write(buffer, fmt)
        return buffer.getvalue()

    def trace(self) -> Trace:
        """The trace, loaded and validated as :func:`kvmgen.open_trace` would load it."""
        from kvmgen.inputs import open_trace

        opened = open_trace(self.text("yaml").encode(), name=self.source, fmt="yaml")
        assert isinstance(opened, Trace)
        return opened

    def write(self, out: IO[str], fmt: str) -> int:
        """Write the trace to ``out`` as ``fmt``; return the number of events."""
        if fmt == "jsonl" and self.observations is not None:
            raise UsageError(f"{self.source} gives observations: choose --format yaml or json")
        return write_trace(
            out,
            fmt,
            self.events,
            vm=self.vm,
            observations=self.observations,
            comments=[
                self.title or f"Imported by kvmgen from {self.source}.",
                *self.comments,
                *self.summary,
            ],
        )


def _header(tracker: Any, kernel: str | None, address_spaces: int | None) -> dict[str, Any]:
    return header_for(tracker, kernel, address_spaces)


def lines_of(source: bytes | Sequence[str]) -> Sequence[str]:
    """A log's lines: bytes are decoded (undecodable bytes become U+FFFD) and split."""
    if isinstance(source, bytes):
        return source.decode("utf-8", errors="replace").splitlines()
    return source


def from_qemu(
    path: str,
    source: bytes | Sequence[str],
    *,
    kernel: str | None = None,
    first_sight: str = "auto",
    address_spaces: int | None = None,
) -> Imported:
    """QEMU ``-trace kvm_set_user_memory`` lines (or the log's bytes) as a trace of updates.

    A log of :data:`BULK_MIN_BYTES` or more, given as bytes,
    goes through the jitted loops of :mod:`kvmgen.importers.bulk` (same result).
    """
    bulk = None
    if isinstance(source, bytes) and len(source) >= BULK_MIN_BYTES:
        from kvmgen.importers.bulk import import_qemu

        bulk = import_qemu(path, source, first_sight)
    tracker: MemslotTracker
    events: list[dict[str, Any]] | Events
    if bulk is not None:
        tracker, events, tracker.summary.lines, tracker.summary.unrelated = bulk
    else:
        tracker, events = import_calls(read_log(path, lines_of(source)), first_sight)
    if tracker.summary.records == 0:
        raise UsageError(f"{path}: no kvm_set_user_memory lines (run QEMU with -trace ...)")
    vm = _header(tracker, kernel, address_spaces)
    summary = tracker.summary.describe()
    if "address_spaces" not in vm:
        summary.append(
            "the log does not say how many memslot address spaces the host has: the era's "
            "default applies (give --address-spaces N; strace logs and kvmgen record know it)"
        )
    return Imported(vm, events, None, summary, f"the QEMU log {path}")


def from_strace(
    path: str,
    source: bytes | Sequence[str],
    *,
    vm: str | None = None,
    kernel: str | None = None,
    first_sight: str = "auto",
    address_spaces: int | None = None,
    busiest_vm: bool = False,
) -> Imported:
    """One VM's KVM_SET_USER_MEMORY_REGION calls in a strace log as a trace of updates.

    ``vm`` picks one of several (``FD`` or ``PID:FD``); ``busiest_vm`` takes the one
    with the most calls instead of refusing (the summary names the others).
    """
    log = read_strace(path, lines_of(source))
    chosen = choose_vm(log, vm, busiest=busiest_vm)
    calls = vm_log(log, chosen)
    tracker, events = import_calls(calls, first_sight)
    return Imported(
        _header(tracker, kernel, address_spaces or calls.address_spaces),
        events,
        None,
        [*tracker.summary.describe(), *calls.notes],
        f"the strace log {path} (VM {chosen.label})",
    )


def from_tracefs(
    path: str,
    content: bytes | Sequence[str],
    *,
    qemu: tuple[str, bytes | Sequence[str]] | None = None,
    strace: tuple[str, bytes | Sequence[str]] | None = None,
    vm: str | None = None,
    offset_ns: int | None = None,
    kernel: str | None = None,
    address_spaces: int | None = None,
    zaps_enabled: bool = False,
    from_vm_start: bool | None = None,
    first_sight: str = "auto",
    zap_window_ns: int | None = None,
    source: str | None = None,
    busiest_vm: bool = False,
) -> Imported:
    """Kernel trace text (zaps, MMIO events, markers), with a log's memslot calls merged.

    ``qemu`` or ``strace`` is ``(name, lines)`` of the log that gives the updates.
    """
    if qemu is not None and strace is not None:
        raise UsageError("give --qemu LOG or --strace LOG, not both")
    calls = None
    created = False
    what = f"the kernel trace {path}"
    if qemu is not None:
        calls = read_log(qemu[0], lines_of(qemu[1]))
        what += f" and the QEMU log {qemu[0]}"
    elif strace is not None:
        log = read_strace(strace[0], lines_of(strace[1]))
        chosen = choose_vm(log, vm, busiest=busiest_vm)
        calls = vm_log(log, chosen)
        created = chosen.created_line is not None
        what += f" and the strace log {strace[0]} (VM {chosen.label})"
    result = import_capture(
        path,
        content,
        calls=calls,
        offset_ns=offset_ns,
        first_sight=first_sight,
        zap_window_ns=zap_window_ns,
        zaps_enabled=zaps_enabled,
        from_vm_start=from_vm_start,
        vm_created=created,
    )
    if not result.summary.per_event and calls is None:
        raise UsageError(
            f"{path}: no trace events found (expected tracefs trace/trace_pipe text, "
            "trace-cmd report or perf script output)"
        )
    if kernel:
        result.vm["kernel"] = kernel
    spaces = address_spaces or (calls.address_spaces if calls is not None else None)
    if spaces:
        result.vm["address_spaces"] = spaces
    summary = result.summary.describe()
    if "address_spaces" not in result.vm:
        summary.append(
            "nothing says how many memslot address spaces the host has: the era's default "
            "applies (give --address-spaces N; strace logs, kvmgen record and probe know it)"
        )
    return Imported(result.vm, result.events, result.observations, summary, source or what)


def import_capture(
    path: str,
    content: bytes | Sequence[str],
    *,
    calls: RegionLog | None = None,
    offset_ns: int | None = None,
    first_sight: str = "auto",
    zap_window_ns: int | None = None,
    zaps_enabled: bool = False,
    from_vm_start: bool | None = None,
    vm_created: bool = False,
) -> ImportResult:
    """Kernel trace text as events and observations (:func:`tracefs.import_tracefs`).

    A capture of :data:`BULK_MIN_BYTES` or more, given as bytes with no log merged in,
    goes through the jitted loops of :mod:`kvmgen.importers.bulk_trace` (same result).
    """
    from kvmgen.importers.tracefs import DEFAULT_ZAP_WINDOW_NS, import_tracefs

    if calls is None and isinstance(content, bytes) and len(content) >= BULK_MIN_BYTES:
        from kvmgen.importers.bulk_trace import import_trace

        result = import_trace(path, content, zaps_enabled=zaps_enabled, from_vm_start=from_vm_start)
        if result is not None:
            return result
    return import_tracefs(
        path,
        list(lines_of(content)),
        calls=calls,
        offset_ns=offset_ns,
        first_sight=first_sight,
        zap_window_ns=DEFAULT_ZAP_WINDOW_NS if zap_window_ns is None else zap_window_ns,
        zaps_enabled=zaps_enabled,
        from_vm_start=from_vm_start,
        vm_created=vm_created,
    )
