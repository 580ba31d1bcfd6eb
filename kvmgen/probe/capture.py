"""A private tracefs instance for the probe: its own buffer, events, markers and reader.

The probe never touches the global trace buffer: it creates
``instances/kvmgen-probe-<pid>``, enables the KVM MMU events there for its own pid
only (``set_event_pid``), uses a monotonic clock, and drains ``trace_pipe`` from a
thread while the updates run (a 524,288-update run writes ~40 MB of markers).
The instance is removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from types import TracebackType

PROBE_EVENTS = (
    "kvmmmu/kvm_mmu_zap_all_fast",
    "kvmmmu/kvm_mmu_invalidate_zap_all_pages",
    "kvmmmu/mark_mmio_spte",
    "kvmmmu/check_mmio_spte",
    "kvmmmu/handle_mmio_page_fault",
    "kvm/kvm_mmio",
)
ZAP_EVENT_PATHS = PROBE_EVENTS[:2]
END_MARKER = "kvmgen: capture end"
KNOWN_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def find_tracefs(explicit: str | None = None) -> str | None:
    """The tracefs mount to use: ``explicit``, else the first mounted one found."""
    candidates = [explicit] if explicit else []
    if not explicit:
        with contextlib.suppress(OSError), open("/proc/mounts") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "tracefs":
                    candidates.append(parts[1])
        candidates.extend(KNOWN_MOUNTS)
    for root in candidates:
        if root and os.path.exists(os.path.join(root, "trace_marker")):
            return root
    return None


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


class Capture:
    """A tracefs instance with the probe's events enabled; use as a context manager."""

    def __init__(self, root: str, *, buffer_kb: int = 8192) -> None:
        self.root = root
        self.dir = os.path.join(root, "instances", f"kvmgen-probe-{os.getpid()}")
        self.buffer_kb = buffer_kb
        self.enabled: list[str] = []
        self.clock = "local"
        self._marker = -1
        self._chunks: list[bytes] = []
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def available(self) -> list[str]:
        """The probe events this kernel has (system/event)."""
        return [e for e in PROBE_EVENTS if os.path.isdir(os.path.join(self.root, "events", e))]

    def __enter__(self) -> Capture:
        try:
            os.mkdir(self.dir)
        except FileExistsError:
            # Left by an earlier run of a process with the same pid that was killed.
            os.rmdir(self.dir)
            os.mkdir(self.dir)
        try:
            with open(os.path.join(self.dir, "trace_clock")) as handle:
                clocks = handle.read()
            for clock in ("mono", "global"):
                if clock in clocks.replace("[", " ").replace("]", " ").split():
                    _write(os.path.join(self.dir, "trace_clock"), clock)
                    self.clock = clock
                    break
            _write(os.path.join(self.dir, "buffer_size_kb"), str(self.buffer_kb))
            _write(os.path.join(self.dir, "set_event_pid"), str(os.getpid()))
            for event in self.available():
                _write(os.path.join(self.dir, "events", event, "enable"), "1")
                self.enabled.append(event.split("/")[1])
            _write(os.path.join(self.dir, "tracing_on"), "1")
            self._marker = os.open(os.path.join(self.dir, "trace_marker"), os.O_WRONLY)
            self._thread = threading.Thread(
                target=self._drain, name="kvmgen-trace-pipe", daemon=True
            )
            self._thread.start()
        except BaseException:
            self._teardown()
            raise
        return self

    def mark(self, text: str) -> None:
        """Write one marker line (appears as ``tracing_mark_write: text``)."""
        os.write(self._marker, text.encode())

    def _drain(self) -> None:
        fd = os.open(os.path.join(self.dir, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK)
        tail = b""
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    try:
                        chunk = os.read(fd, 1 << 20)
                    except BlockingIOError:
                        chunk = b""
                    if chunk:
                        self._chunks.append(chunk)
                        tail = (tail + chunk)[-256:]
                        if END_MARKER.encode() in tail:
                            return
                        continue
                if self._stop.is_set():
                    return
        except BaseException as error:  # surfaced by finish()
            self._error = error
        finally:
            os.close(fd)
            self._done.set()

    def finish(self, end_text: str, timeout: float = 30.0) -> list[str]:
        """Write the end marker, wait until the reader has seen it, return every line."""
        self.mark(f"{END_MARKER} {end_text}".rstrip())
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.1):
            if time.monotonic() > deadline:
                self._stop.set()
                self._done.wait(1.0)
                break
        if self._error is not None:
            raise self._error
        return b"".join(self._chunks).decode("utf-8", errors="replace").splitlines()

    def lost_events(self) -> int:
        """Events the instance's ring buffer overwrote or dropped, over all CPUs."""
        lost = 0
        per_cpu = os.path.join(self.dir, "per_cpu")
        for cpu in sorted(os.listdir(per_cpu)) if os.path.isdir(per_cpu) else ():
            with contextlib.suppress(OSError), open(os.path.join(per_cpu, cpu, "stats")) as stats:
                for line in stats:
                    key, _, value = line.partition(":")
                    if key.strip() in ("overrun", "dropped events"):
                        with contextlib.suppress(ValueError):
                            lost += int(value.strip())
        return lost

    def _teardown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._marker >= 0:
            os.close(self._marker)
            self._marker = -1
        with contextlib.suppress(OSError):
            _write(os.path.join(self.dir, "tracing_on"), "0")
        for event in self.available():
            with contextlib.suppress(OSError):
                _write(os.path.join(self.dir, "events", event, "enable"), "0")
        with contextlib.suppress(OSError):
            os.rmdir(self.dir)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._teardown()
