"""``kvmgen probe``: make memslot updates on the real kernel and check the model against it.

What it performs is a plan (:mod:`kvmgen.probe.plan`): the built-in workload, or
the updates of a trace. Before each update a ``kvmgen: update N op=...`` marker
goes into the probe's private tracefs instance; the capture is then imported like
any tracefs text (:mod:`kvmgen.importers.tracefs`), written as a trace with
observations, loaded back and replayed for the host's era and address-space
count. Ctrl-C (or SIGTERM) stops between two updates: what was performed is
still imported and compared, and the run says it was cut short.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kvmgen.errors import KvmgenError, UsageError
from kvmgen.formatting import plural
from kvmgen.formatting import seconds as seconds_text
from kvmgen.host.guest import Guest
from kvmgen.host.kvm import DEV_KVM, PAGE, HostMemory, Kvm, Vm, module_parameters
from kvmgen.host.tracefs import (
    ZAP_EVENT_PATHS,
    Capture,
    find_tracefs,
    tracefs_mount,
    tracefs_supported,
)
from kvmgen.importers.emit import write_trace
from kvmgen.importers.imports import import_capture
from kvmgen.importers.tracefs import ImportResult, update_marker
from kvmgen.probe.compare import RunComparison
from kvmgen.probe.plan import (
    BASE_GPA,
    SLOT_PAGES,
    WRAP_UPDATES,
    ProbeOptions,
    Step,
    TracePlan,
    plan,
)
from kvmgen.signals import deferred_interrupts
from kvmgen.trace.records import UPDATE_OPS, Op


class ProbeError(KvmgenError):
    """The kernel refused an update the probe expected it to accept."""


def missing_prerequisites(tracefs: str | None = None) -> list[str]:
    """Everything that stops the probe on this host, each as a short phrase."""
    missing = []
    if not sys.platform.startswith("linux"):
        return [f"a Linux host with KVM (this is {sys.platform})"]
    if os.geteuid() != 0:
        missing.append(f"root (running as uid {os.geteuid()}): KVM and tracefs need it")
    if not os.path.exists(DEV_KVM):
        missing.append(f"{DEV_KVM} (no KVM: load kvm_intel or kvm_amd)")
    elif not os.access(DEV_KVM, os.R_OK | os.W_OK):
        missing.append(f"read/write access to {DEV_KVM}")
    root = find_tracefs(tracefs)
    if root is None:
        if tracefs or os.geteuid() != 0 or not tracefs_supported():
            where = tracefs or "/sys/kernel/tracing"
            missing.append(
                f"tracefs at {where} (mount it: mount -t tracefs nodev /sys/kernel/tracing, "
                "or pass --tracefs DIR)"
            )
        # else: none is mounted, but root mounts one privately for the run.
    else:
        if not os.path.isdir(os.path.join(root, "instances")):
            missing.append(f"tracefs instances ({root}/instances)")
        if not any(os.path.isdir(os.path.join(root, "events", e)) for e in ZAP_EVENT_PATHS):
            missing.append(
                f"a KVM zap tracepoint ({root}/events/kvmmmu/kvm_mmu_zap_all_fast): "
                "is the kvm module loaded?"
            )
    return missing


@dataclass
class ProbeRun:
    """Everything one probe run produced."""

    kernel: str
    address_spaces: int
    params: dict[str, str]
    events_enabled: list[str]
    clock: str
    updates: int
    seconds: float
    lost: int
    as1_note: str | None
    imported: ImportResult
    text: str
    comparisons: list[RunComparison] = field(default_factory=list)
    era: str = ""
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped it between two updates
    planned: int = 0  # the steps the plan had: updates and accesses, repeats expanded
    steps: int = 0  # the steps made
    account: list[str] = field(default_factory=list)  # a trace's: what was checked live
    source: str | None = None  # the trace performed, if not the built-in workload
    raw: bytes = field(default=b"", repr=False)  # the tracefs capture's text

    @property
    def failed(self) -> bool:
        """Whether the kernel and the model disagree anywhere that counts."""
        return any(c.failed for c in self.comparisons)

    def as_dict(self) -> dict[str, Any]:
        """JSON form of the run and its comparison."""
        return {
            "kvmgen_probe": 1,
            "host": {
                "kernel": self.kernel,
                "era": self.era,
                "address_spaces": self.address_spaces,
                "kvm_parameters": self.params,
                "events": self.events_enabled,
                "trace_clock": self.clock,
                "address_space_1": self.as1_note,
            },
            "workload": self.source or "built-in",
            "updates": self.updates,
            "planned_steps": self.planned,
            "steps": self.steps,
            "interrupted": self.interrupted,
            "checked_live": self.account,
            "seconds": round(self.seconds, 3),
            "updates_per_second": round(self.updates / self.seconds) if self.seconds else None,
            "lost_events": self.lost,
            "comparisons": [c.as_dict() for c in self.comparisons],
            "agree": not self.failed,
        }


def _as1_check(vm: Vm, memory: HostMemory) -> str:
    """Try one address-space-1 create on a one-address-space VM (it changes nothing)."""
    try:
        vm.set_region(0, 1, 0, BASE_GPA[0], SLOT_PAGES * PAGE, memory.address)
    except OSError as error:
        name = errno.errorcode.get(error.errno or 0, str(error.errno))
        return f"rejected with {name}: this VM has one memslot address space"
    vm.set_region(0, 1, 0, BASE_GPA[0], 0, memory.address)  # undo (not numbered)
    return "accepted although KVM_CAP_MULTI_ADDRESS_SPACE said 1 (not used)"


@contextlib.contextmanager
def _tracefs_errors(root: str) -> Iterator[None]:
    """Turn a tracefs failure (a write refused, a file missing) into one-line exit 2."""
    try:
        yield
    except OSError as error:
        where = error.filename or root
        raise UsageError(f"kvmgen probe: tracefs {where}: {error.strerror or error}") from None


Progress = Callable[[int, int], None]
"""Called with (updates done, updates planned) while the probe runs."""


def _steps(
    opts: ProbeOptions, nas: int, mmio_caching: bool = False
) -> tuple[Iterator[Step], TracePlan | None, int, int]:
    """The steps to perform, the trace plan (if any), the slot size to back, the total.

    A trace's accesses are performed with ``--accesses on``, or ``auto`` on a host
    with MMIO caching (where the kernel's tracepoints show what each one did).
    """
    if opts.trace is None:
        total = (WRAP_UPDATES + opts.wrap_margin - 1 if opts.full else 0) + opts.flags
        total += opts.noops + 2 * opts.cycles + (opts.moves + 2 if opts.moves else 0) + 2
        return plan(opts, nas), None, SLOT_PAGES, total
    trace_plan = TracePlan(opts.trace, nas)
    if opts.accesses == "on" or (opts.accesses == "auto" and mmio_caching):
        trace_plan.perform_accesses = True
        trace_plan.prepare_guest()
    elif not mmio_caching:
        trace_plan.why_no_accesses = (
            "this host has kvm.mmio_caching=N: no tracepoint would show their outcome; "
            "--accesses on performs them anyway"
        )
    else:
        trace_plan.why_no_accesses = "--accesses off"
    updates = [e for e in opts.trace.events if e.op in UPDATE_OPS]
    reachable = [e for e in updates if e.address_space < nas]
    reachable_slots = [d for d in opts.trace.vm.slots if d.address_space < nas]
    if not reachable and not reachable_slots:
        where = "no memslot updates" if not updates else f"updates only in address spaces >= {nas}"
        raise UsageError(
            f"kvmgen probe: {opts.trace.path} has {where}: nothing this host can perform "
            f"(this VM has {plural(nas, 'memslot address space')})"
        )
    total = len(opts.trace.vm.slots) + sum(e.repeat for e in updates)
    if trace_plan.perform_accesses:
        total += sum(e.repeat for e in opts.trace.events if e.op == Op.ACCESS) + 1
    return trace_plan.steps(), trace_plan, trace_plan.largest_slot_pages, total


def _backing(pages: int) -> HostMemory:
    try:
        return HostMemory.allocate(pages)
    except (OSError, OverflowError, ValueError) as error:
        raise UsageError(
            f"kvmgen probe: cannot reserve host address space for a slot of {pages:#x} pages: "
            f"{getattr(error, 'strerror', None) or error}"
        ) from None


def capture_run(opts: ProbeOptions, progress: Progress | None = None) -> ProbeRun:
    """Run the plan on the real kernel; return the run (not yet compared), raw capture in it.

    Ctrl-C or SIGTERM stops between two updates; the run then holds what was
    performed and ``interrupted`` says so.
    """
    missing = missing_prerequisites(opts.tracefs)
    if missing:
        raise UsageError("kvmgen probe cannot run here: missing " + "; ".join(missing))
    with tracefs_mount(opts.tracefs) as (root, how):
        if root is None:
            raise UsageError(f"kvmgen probe cannot run here: {how}")
        return _capture(opts, root, progress)


def _capture(opts: ProbeOptions, root: str, progress: Progress | None) -> ProbeRun:
    kernel = platform.release()
    params = module_parameters()
    try:
        kvm = Kvm()
    except OSError as error:
        raise UsageError(
            f"kvmgen probe: cannot open {DEV_KVM}: {error.strerror or error}"
        ) from None
    try:
        vm = kvm.create_vm(0)
    except OSError as error:
        kvm.close()
        raise UsageError(f"kvmgen probe: KVM_CREATE_VM failed: {error.strerror or error}") from None
    interrupted = False
    guest: Guest | None = None
    mmio_caching = params.get("mmio_caching", "Y") != "N"
    try:
        nas = vm.address_spaces()
        steps, trace_plan, backed_pages, total = _steps(opts, nas, mmio_caching)
        memory = _backing(backed_pages)
        if trace_plan is not None and trace_plan.guest_block is not None:
            guest = Guest(kvm, vm, trace_plan.guest_block[0], trace_plan.guest_vcpus)
        as1_note = _as1_check(vm, memory) if nas == 1 else None
        source = "kvmgen-probe" if opts.trace is None else "kvmgen-probe-trace"
        with _tracefs_errors(root), Capture(root, pids=[os.getpid()]) as capture:
            capture.mark(
                f"kvmgen: capture start source={source} kernel={kernel} nas={nas} vm_start=1 "
                f"mmio_caching={'0' if params.get('mmio_caching') == 'N' else '1'} "
                f"events={','.join(capture.enabled)}"
            )
            count = done = 0
            start = time.perf_counter()
            # A marker and the ioctl it announces are never split: Ctrl-C (or SIGTERM)
            # only stops the loop between two steps.
            with deferred_interrupts() as stop:
                for step in steps:
                    if stop:
                        interrupted = True
                        break
                    done += 1
                    if step.op == "access":
                        assert guest is not None
                        guest.touch(step.vcpu, step.gpa >> 12, write=bool(step.flags))
                    else:
                        count += 1
                        _perform(vm, capture, memory, step, count, guest)
                    if progress is not None and done % 1024 == 0:
                        progress(done, total)
            seconds = time.perf_counter() - start
            if progress is not None:
                progress(total, total)  # done (or stopped): the bar goes
            text = capture.finish(f"updates={count}" + (" interrupted=1" if interrupted else ""))
            lost = capture.lost_events()
            enabled, clock = list(capture.enabled), capture.clock
    finally:
        if guest is not None:
            guest.close()
        vm.close()
        kvm.close()
    imported = import_capture("<probe capture>", text)
    if lost:
        imported.observations[0]["lost"] = max(lost, imported.observations[0].get("lost", 0))
    buffer = io.StringIO()
    what = "the built-in workload" if opts.trace is None else f"the updates of {opts.trace.path}"
    comments = [
        f"Captured by kvmgen probe on {kernel} ({plural(nas, 'memslot address space')}; "
        f"kvm {', '.join(f'{k}={v}' for k, v in params.items())}):",
        f"{what}, {plural(count, 'update')} in {seconds_text(seconds)}"
        + (" (interrupted)" if interrupted else "")
        + "; zap tracepoints are the observations below.",
        *(trace_plan.account() if trace_plan is not None else []),
    ]
    write_trace(
        buffer,
        "yaml",
        imported.events,
        vm=imported.vm,
        observations=imported.observations,
        comments=comments,
    )
    run = ProbeRun(
        kernel=kernel,
        address_spaces=nas,
        params=params,
        events_enabled=enabled,
        clock=clock,
        updates=count,
        seconds=seconds,
        lost=lost,
        as1_note=as1_note,
        imported=imported,
        text=buffer.getvalue(),
        interrupted=interrupted,
        planned=total,
        steps=done,
        account=trace_plan.account() if trace_plan is not None else [],
        source=opts.trace.path if opts.trace is not None else None,
        raw=text,
    )
    return run


def _perform(
    vm: Vm, capture: Capture, memory: HostMemory, step: Step, count: int, guest: Guest | None
) -> None:
    """Mark, then make, one update; a refusal is a :class:`ProbeError` naming it."""
    fields: dict[str, int] = {}
    if step.op in ("create", "move"):
        fields["gfn"] = step.gpa >> 12
    if step.op == "create":
        fields["pages"] = step.pages
    if step.op in ("create", "flags"):
        fields["flags"] = step.flags
    if step.source is not None:
        fields["src"] = step.source
    capture.mark(update_marker(count, step.op, step.address_space, step.slot, **fields))
    try:
        if step.guest_block:
            assert guest is not None
            guest.map_block(step.slot)
        else:
            vm.set_region(
                step.slot,
                step.address_space,
                step.flags,
                step.gpa,
                step.pages * PAGE,
                memory.address,
            )
    except OSError as error:
        what = f"event {step.source} of the trace, " if step.source is not None else ""
        raise ProbeError(
            f"KVM_SET_USER_MEMORY_REGION failed at update {count} ({what}{step.op} of slot "
            f"{step.slot} in address space {step.address_space}, gpa {step.gpa:#x}, "
            f"{step.pages:#x} pages): {error.strerror or error}"
        ) from None


def compare_probe(run: ProbeRun) -> ProbeRun:
    """Load the captured trace back and compare it with the model for this host."""
    from kvmgen.model.policy import parse_policy
    from kvmgen.model.versions import era_for_version
    from kvmgen.probe.report import compare_session
    from kvmgen.session import Target, run_session
    from kvmgen.trace.formats import load_document

    trace = load_document("<probe capture>", run.text.encode(), "yaml")
    choice = era_for_version(run.kernel)
    session = run_session(
        trace,
        [Target(choice.era, choice)],
        address_spaces=run.address_spaces,
        policies=[parse_policy("historical")],
    )
    run.era = choice.era.name
    run.comparisons = compare_session(session)
    return run


def run_probe(opts: ProbeOptions) -> ProbeRun:
    """Capture on the real kernel, then compare with the model."""
    run = capture_run(opts)
    return compare_probe(run)
