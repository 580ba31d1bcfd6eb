"""``kvmgen record``: watch a real VMM's memslot calls and the kernel's zaps; make a trace.

Two sources at once, for any VMM (QEMU, Firecracker, cloud-hypervisor, crosvm, kvmtool):

- **strace** (``-f -ttt -T -e trace=ioctl``) on the VMM, started here or attached
  by pid, decodes every KVM_SET_USER_MEMORY_REGION(2) with its fields;
- **a private tracefs instance** (root, a tracefs mount; one is mounted for the
  capture when none is) records the kernel's zap tracepoints, its MMIO tracepoints
  where it has them, and the entry and exit of every memslot ioctl, only for the
  VMM's threads (``set_event_pid`` with ``event-fork``).

The syscall events pair every call strace saw with its ioctl in the kernel trace,
thread by thread, so a zap lands in the call it happened in without comparing two
clocks. The result is one trace: ``vm.kernel`` and the address-space count of this
host, the updates, the accesses the MMIO tracepoints showed, and observations whose
window starts at the VM's creation (when recording started the VMM).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from kvmgen.errors import UsageError
from kvmgen.formatting import seconds as seconds_text
from kvmgen.host.kvm import host_address_spaces, module_parameters
from kvmgen.host.tracefs import (
    IOCTL_ENTER,
    IOCTL_EXIT,
    MMIO_EVENT_PATHS,
    ZAP_EVENT_PATHS,
    Capture,
    tracefs_mount,
)
from kvmgen.importers.imports import Imported, from_strace, from_tracefs, lines_of
from kvmgen.importers.strace import SET_REGION, SET_REGION2
from kvmgen.output import write_output
from kvmgen.signals import interruption

STRACE_INSTALL = (
    "install it: apt-get install strace (Debian, Ubuntu) or dnf install strace (Fedora)"
)
STOP_GRACE_S = 10.0
_MEMSLOT_FILTER = f"cmd == {SET_REGION:#x} || cmd == {SET_REGION2:#x}"


@dataclass
class RecordOptions:
    """What to record: a command to start, or a running VMM's pid; for how long."""

    command: Sequence[str] = ()
    pid: int | None = None
    duration: float | None = None
    tracefs: str | None = None
    strace: str = "strace"
    raw_dir: str | None = None  # keep strace.log and kernel-trace.txt here
    vm: str | None = None  # which VM (FD or PID:FD) if the VMM makes several
    first_sight: str = "auto"  # attached mid-run: how to read a slot's first call
    vmm_stdout: int | None = None  # where the VMM's standard output goes (None: ours)
    echo_stderr: bool = True  # pass the VMM's and strace's messages through to our stderr


@dataclass
class Recording:
    """What a recording produced: the trace to write and what to tell the user."""

    imported: Imported
    kernel: str
    address_spaces: int | None
    observed: bool  # the kernel's side was captured (tracefs)
    stopped_by: str
    vmm_status: int | None
    notes: list[str] = field(default_factory=list)


def _strace_path(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise UsageError(f"kvmgen record: {name} not found: {STRACE_INSTALL}")
    return found


def _check_target(opts: RecordOptions) -> None:
    if bool(opts.command) == (opts.pid is not None):
        raise UsageError("kvmgen record: give a VMM command after -- or --pid PID (one of them)")
    if opts.command and shutil.which(opts.command[0]) is None:
        raise UsageError(f"kvmgen record: VMM {opts.command[0]!r} not found")
    if opts.pid is not None and not os.path.isdir(f"/proc/{opts.pid}"):
        raise UsageError(f"kvmgen record: no process {opts.pid} (is the VMM still running?)")
    if opts.duration is not None and opts.duration <= 0:
        raise UsageError("kvmgen record: --duration must be more than 0 seconds")


def _threads(pid: int) -> list[int]:
    try:
        return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return [pid]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (the VMM strace started)."""
    found: list[int] = []
    for tid in _threads(pid):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as handle:
            found.extend(int(word) for word in handle.read().split())
    return found


def _strace_command(opts: RecordOptions, strace: str, log: str) -> list[str]:
    # -ttt: absolute times; -T: each call's duration (its return); -qq: no attach notes.
    base = [strace, "-f", "-ttt", "-T", "-qq", "-e", "trace=ioctl", "-o", log]
    if opts.pid is not None:
        return [*base, "-p", str(opts.pid)]
    # Only ioctl stops the VMM (strace 5.3+); attaching cannot install the filter.
    return [*base, "--seccomp-bpf", "--", *opts.command]


def _stop(proc: subprocess.Popen[bytes], attached: bool) -> None:
    """End the recording: detach strace (attached) or stop the VMM it started."""
    if proc.poll() is not None:
        return
    if attached:
        proc.send_signal(signal.SIGINT)  # strace detaches; the VMM runs on
    else:
        for child in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        for child in [] if attached else _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        proc.kill()
        proc.wait()


def _relay(stream: IO[bytes], last: deque[str], echo: bool) -> None:
    """Copy strace's (and the VMM's) stderr through as it comes, keeping the last lines."""
    for raw in iter(stream.readline, b""):
        text = raw.decode(errors="replace")
        last.append(text.rstrip("\n"))
        if echo:
            sys.stderr.write(text)
            sys.stderr.flush()
    stream.close()


def _run_strace(
    opts: RecordOptions, strace: str, log: str, vmm_stdout: int | None
) -> tuple[str, int | None, str]:
    """Run strace until the VMM exits, the duration ends or Ctrl-C; say which, and how."""
    proc = subprocess.Popen(
        _strace_command(opts, strace, log),
        stdin=subprocess.DEVNULL if opts.pid is not None else None,
        stdout=vmm_stdout,
        stderr=subprocess.PIPE,
    )
    last: deque[str] = deque(maxlen=5)
    assert proc.stderr is not None
    relay = threading.Thread(target=_relay, args=(proc.stderr, last, opts.echo_stderr), daemon=True)
    relay.start()
    stopped_by = "the VMM exited"
    try:
        proc.wait(opts.duration)
    except subprocess.TimeoutExpired:
        stopped_by = f"--duration {seconds_text(opts.duration)} ended"
        _stop(proc, opts.pid is not None)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM under signals.sigterm_as_interrupt
        stopped_by = interruption()
        _stop(proc, opts.pid is not None)
    relay.join(STOP_GRACE_S)
    return stopped_by, proc.returncode, "\n".join(last)


def _strace_failure(stderr: str, status: int | None, log: str) -> str | None:
    """Why strace recorded nothing, if it did not (attach refused, exec failed)."""
    if os.path.exists(log) and os.path.getsize(log) > 0:
        return None
    lines = [line for line in stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else f"exit status {status}"
    return f"kvmgen record: strace recorded nothing: {reason}"


@contextlib.contextmanager
def _kernel_capture(
    root: str | None, opts: RecordOptions, kernel: str, nas: int | None, mmio_caching: bool
) -> Iterator[Capture | None]:
    if root is None:
        yield None
        return
    events = [*ZAP_EVENT_PATHS, *MMIO_EVENT_PATHS, IOCTL_ENTER, IOCTL_EXIT]
    pids = _threads(opts.pid) if opts.pid is not None else [os.getpid()]
    capture = Capture(
        root,
        purpose="record",
        events=events,
        pids=pids,
        follow_forks=True,
        filters={IOCTL_ENTER: _MEMSLOT_FILTER},
        record_tgid=True,
        buffer_kb=16384,
    )
    with capture:
        fields = [
            "kvmgen: capture start source=kvmgen-record",
            f"kernel={kernel}",
            *([f"nas={nas}"] if nas else []),
            f"vm_start={0 if opts.pid is not None else 1}",
            f"mmio_caching={1 if mmio_caching else 0}",
            f"events={','.join(capture.enabled)}",
        ]
        capture.mark(" ".join(fields))
        yield capture


def record(opts: RecordOptions) -> Recording:
    """Record a VMM (started from ``opts.command`` or attached by ``opts.pid``).

    Raises :class:`~kvmgen.errors.UsageError` (one line) when strace, the VMM or
    the process is missing, or strace could not record.
    """
    strace = _strace_path(opts.strace)
    _check_target(opts)
    kernel = platform.release()
    params = module_parameters()
    nas = host_address_spaces()
    mmio_caching = params.get("mmio_caching", "Y") != "N"
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        work = stack.enter_context(tempfile.TemporaryDirectory(prefix="kvmgen-record-"))
        log = os.path.join(work, "strace.log")
        if os.geteuid() == 0:
            root, how = stack.enter_context(tracefs_mount(opts.tracefs))
        else:
            root, how = None, f"not root (uid {os.geteuid()}): tracefs needs root"
        if root is None:
            notes.append(
                f"no kernel observations ({how}): the trace holds the VMM's updates only, "
                "so replay cannot compare it with the kernel"
            )
        capture = stack.enter_context(_kernel_capture(root, opts, kernel, nas, mmio_caching))
        started = time.monotonic()
        stopped_by, status, stderr = _run_strace(opts, strace, log, opts.vmm_stdout)
        seconds = time.monotonic() - started
        failure = _strace_failure(stderr, status, log)
        if failure is not None:
            raise UsageError(failure)
        lost = 0
        lines: list[str] = []
        if capture is not None:
            lines = list(lines_of(capture.finish(f"seconds={seconds:.3f}")))
            lost = capture.lost_events()
        with open(log, encoding="utf-8", errors="replace") as handle:
            strace_lines = handle.read().splitlines()
        if opts.raw_dir:
            _keep_raw(opts.raw_dir, strace_lines, lines)
    if capture is not None:
        imported = from_tracefs(
            "<kernel trace>",
            lines,
            strace=("<strace log>", strace_lines),
            vm=opts.vm,
            kernel=kernel,
            address_spaces=nas,
            first_sight=opts.first_sight,
            busiest_vm=True,
        )
        if lost and imported.observations:
            imported.observations[0]["lost"] = max(lost, imported.observations[0].get("lost", 0))
        if not mmio_caching:
            notes.append(
                "this host has kvm.mmio_caching=N: no MMIO SPTEs, so the MMIO generation "
                "checks cannot be observed (accesses are kept, their outcomes are not compared)"
            )
    else:
        imported = from_strace(
            "<strace log>",
            strace_lines,
            vm=opts.vm,
            kernel=kernel,
            address_spaces=nas,
            first_sight=opts.first_sight,
            busiest_vm=True,
        )
    imported.title = f"Recorded by kvmgen record on {kernel}."
    imported.summary.extend(notes)
    imported.summary.append(f"recording stopped: {stopped_by} after {seconds_text(seconds)}")
    return Recording(
        imported=imported,
        kernel=kernel,
        address_spaces=nas,
        observed=capture is not None,
        stopped_by=stopped_by,
        vmm_status=status,
        notes=notes,
    )


def _keep_raw(where: str, strace_lines: list[str], trace_lines: list[str]) -> None:
    """``--raw DIR``: the strace log and kernel trace, written as every output is."""
    try:
        os.makedirs(where, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--raw {where}: cannot create: {error.strerror or error}") from None
    write_output(
        os.path.join(where, "strace.log"),
        "".join(f"{line}\n" for line in strace_lines),
        what="--raw",
    )
    if trace_lines:
        write_output(
            os.path.join(where, "kernel-trace.txt"),
            "".join(f"{line}\n" for line in trace_lines),
            what="--raw",
        )
