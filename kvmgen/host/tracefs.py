"""A private tracefs instance: its own buffer, events, filters, markers and reader.

kvmgen never touches the global trace buffer or another tool's instance: a
:class:`Capture` creates ``instances/kvmgen-<purpose>-<pid>``, enables the events
it is given there for the threads it is given (``set_event_pid``; with
``follow_forks`` also every thread or process they start), uses a monotonic
clock, and drains ``trace_pipe`` from a thread while the work runs (a
524,288-update probe writes ~40 MB of markers). The instance is removed on exit.

:func:`tracefs_mount` finds a mounted tracefs, or mounts one privately for the
duration of a capture when none is mounted (root only).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType

ZAP_EVENT_PATHS = (
    "kvmmmu/kvm_mmu_zap_all_fast",
    "kvmmmu/kvm_mmu_invalidate_zap_all_pages",
)
MMIO_EVENT_PATHS = (
    "kvmmmu/mark_mmio_spte",
    "kvmmmu/check_mmio_spte",
    "kvmmmu/handle_mmio_page_fault",
    "kvm/kvm_mmio",
)
IOCTL_ENTER = "syscalls/sys_enter_ioctl"
IOCTL_EXIT = "syscalls/sys_exit_ioctl"
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


def tracefs_supported() -> bool:
    """Whether this kernel has tracefs at all (``/proc/filesystems`` lists it)."""
    try:
        with open("/proc/filesystems") as handle:
            return any(line.split()[-1:] == ["tracefs"] for line in handle)
    except OSError:
        return False


@contextlib.contextmanager
def tracefs_mount(explicit: str | None = None) -> Iterator[tuple[str | None, str]]:
    """Yield ``(root, how)``: a mounted tracefs, one mounted here for the duration, or None.

    ``how`` says in a phrase where the root came from, or why there is none. A
    tracefs this function mounted (root only, when none was mounted) is a private
    mount in a temporary directory, unmounted when the block ends.
    """
    found = find_tracefs(explicit)
    if found is not None:
        yield found, f"tracefs at {found}"
        return
    if explicit:
        yield None, f"no tracefs at {explicit}"
        return
    if os.geteuid() != 0:
        yield None, "no tracefs mounted, and mounting one needs root"
        return
    if not tracefs_supported() or shutil.which("mount") is None:
        yield None, "this kernel has no tracefs (or no mount command)"
        return
    where = tempfile.mkdtemp(prefix="kvmgen-tracefs-")
    mounted = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", where], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        os.rmdir(where)
        reason = mounted.stderr.strip().splitlines()[-1:] or ["failed"]
        yield None, f"mounting tracefs failed: {reason[0]}"
        return
    try:
        yield where, f"tracefs mounted at {where} for this capture"
    finally:
        subprocess.run(["umount", where], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            os.rmdir(where)


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


class Capture:
    """A tracefs instance with chosen events enabled; use as a context manager.

    ``events`` are ``system/event`` paths; those this kernel lacks are left out
    (:attr:`enabled` says which were on). ``pids`` restricts every event to those
    threads (empty: every thread on the host); ``follow_forks`` adds the threads
    and processes they start. ``filters`` maps an event path to a tracefs filter
    expression. ``record_tgid`` adds the process id to every line.
    """

    def __init__(
        self,
        root: str,
        *,
        purpose: str = "probe",
        events: Sequence[str] = (*ZAP_EVENT_PATHS, *MMIO_EVENT_PATHS),
        pids: Iterable[int] = (),
        follow_forks: bool = False,
        filters: Mapping[str, str] | None = None,
        record_tgid: bool = False,
        buffer_kb: int = 8192,
    ) -> None:
        self.root = root
        self.dir = os.path.join(root, "instances", f"kvmgen-{purpose}-{os.getpid()}")
        self.events = tuple(events)
        self.pids = tuple(pids)
        self.follow_forks = follow_forks
        self.filters = dict(filters or {})
        self.record_tgid = record_tgid
        self.buffer_kb = buffer_kb
        self.enabled: list[str] = []
        self.clock = "local"
        self._marker = -1
        # One growing buffer: a bytes object per read would each keep an mmap of its own
        # (glibc shrinks a big read's buffer in place), and a --full probe reads some
        # 65,000 times, which reaches vm.max_map_count.
        self._text = bytearray()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def available(self) -> list[str]:
        """The requested events this kernel has (system/event)."""
        return [e for e in self.events if os.path.isdir(os.path.join(self.root, "events", e))]

    def _option(self, name: str, value: str) -> None:
        path = os.path.join(self.dir, "options", name)
        if os.path.exists(path):
            _write(path, value)

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
            if self.record_tgid:
                self._option("record-tgid", "1")
            if self.follow_forks:
                self._option("event-fork", "1")
            if self.pids:
                _write(os.path.join(self.dir, "set_event_pid"), " ".join(map(str, self.pids)))
            for event in self.available():
                if event in self.filters:
                    _write(os.path.join(self.dir, "events", event, "filter"), self.filters[event])
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
                        chunk = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        chunk = b""
                    if chunk:
                        self._text += chunk
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

    def finish(self, end_text: str, timeout: float = 30.0) -> bytes:
        """Write the end marker, wait until the reader has seen it, return the text read."""
        self.mark(f"{END_MARKER} {end_text}".rstrip())
        deadline = time.monotonic() + timeout
        while not self._done.wait(0.1):
            if time.monotonic() > deadline:
                self._stop.set()
                self._done.wait(1.0)
                break
        if self._error is not None:
            raise self._error
        return bytes(self._text)

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
