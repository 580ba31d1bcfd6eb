"""``kvmgen probe``: make memslot updates on the real kernel and check the model against it.

The plan (all in one VM with no vCPUs, slots of 16 pages backed by one host buffer):

1. create slot 0 (update 1);
2. with ``full``: dirty-log toggles of slot 0 until update 2^19 + 16, past the
   first wrap (E12 with one address space wraps at update 524,288);
3. the short mix: dirty-log toggles, flags updates that change nothing,
   create/delete cycles of slot 1, moves of slot 2, the same in address space 1
   when the VM has it, and a final delete of slot 0.

Before each update a ``kvmgen: update N op=...`` marker goes into the probe's tracefs
instance; the capture is then imported like any tracefs text
(:mod:`kvmgen.importers.tracefs`), written as a trace with observations, loaded
back and replayed for the host's era and address-space count.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kvmgen.errors import KvmgenError, UsageError
from kvmgen.host.kvm import DEV_KVM, PAGE, HostMemory, Kvm, Vm, module_parameters
from kvmgen.host.tracefs import ZAP_EVENT_PATHS, Capture, find_tracefs
from kvmgen.importers.emit import write_trace
from kvmgen.importers.tracefs import ImportResult, import_tracefs, update_marker
from kvmgen.probe.compare import RunComparison

WRAP_UPDATES = 1 << 19
SLOT_PAGES = 16
BASE_GPA = {0: 0x1_0000_0000, 1: 0x2_0000_0000, 2: 0x3_0000_0000}


class ProbeError(KvmgenError):
    """The kernel refused an update the probe expected it to accept."""


@dataclass
class ProbeOptions:
    """What the probe does."""

    full: bool = False
    flags: int = 64
    noops: int = 4
    cycles: int = 16
    moves: int = 8
    wrap_margin: int = 16
    tracefs: str | None = None


@dataclass(frozen=True)
class Step:
    """One planned KVM_SET_USER_MEMORY_REGION."""

    op: str
    address_space: int
    slot: int
    gpa: int
    pages: int
    flags: int


def plan(opts: ProbeOptions, address_spaces: int) -> Iterator[Step]:
    """The probe's updates, in order (a generator: a full run is 524,000+ steps)."""
    size = SLOT_PAGES
    base0, base1, base2 = BASE_GPA[0], BASE_GPA[1], BASE_GPA[2]
    yield Step("create", 0, 0, base0, size, 0)
    flags = 0
    if opts.full:
        for _ in range(WRAP_UPDATES + opts.wrap_margin - 1):
            flags ^= 1
            yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.flags):
        flags ^= 1
        yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.noops):
        yield Step("flags", 0, 0, base0, size, flags)
    for _ in range(opts.cycles):
        yield Step("create", 0, 1, base1, size, 0)
        yield Step("delete", 0, 1, base1, 0, 0)
    if opts.moves:
        yield Step("create", 0, 2, base2, size, 0)
        gpa = base2
        for _ in range(opts.moves):
            gpa = base2 + 0x100000 if gpa == base2 else base2
            yield Step("move", 0, 2, gpa, size, 0)
        yield Step("delete", 0, 2, gpa, 0, 0)
    if address_spaces > 1:
        yield Step("create", 1, 0, base0, size, 0)
        as1_flags = 0
        for _ in range(max(1, opts.flags // 8)):
            as1_flags ^= 1
            yield Step("flags", 1, 0, base0, size, as1_flags)
        for _ in range(max(1, opts.cycles // 4)):
            yield Step("create", 1, 1, base1, size, 0)
            yield Step("delete", 1, 1, base1, 0, 0)
        yield Step("delete", 1, 0, base0, 0, 0)
    yield Step("delete", 0, 0, base0, 0, 0)


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
        where = tracefs or "/sys/kernel/tracing"
        missing.append(
            f"tracefs at {where} (mount it: mount -t tracefs nodev /sys/kernel/tracing, "
            "or pass --tracefs DIR)"
        )
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
            "updates": self.updates,
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


def capture_run(opts: ProbeOptions) -> tuple[ProbeRun, list[str]]:
    """Run the plan on the real kernel; return the run (not yet compared) and the raw lines."""
    missing = missing_prerequisites(opts.tracefs)
    if missing:
        raise UsageError("kvmgen probe cannot run here: missing " + "; ".join(missing))
    root = find_tracefs(opts.tracefs)
    assert root is not None
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
    try:
        nas = vm.address_spaces()
        memory = HostMemory.allocate(SLOT_PAGES)
        as1_note = _as1_check(vm, memory) if nas == 1 else None
        with _tracefs_errors(root), Capture(root, pids=[os.getpid()]) as capture:
            capture.mark(
                f"kvmgen: capture start source=kvmgen-probe kernel={kernel} nas={nas} vm_start=1 "
                f"mmio_caching={'0' if params.get('mmio_caching') == 'N' else '1'} "
                f"events={','.join(capture.enabled)}"
            )
            count = 0
            start = time.perf_counter()
            for step in plan(opts, nas):
                count += 1
                fields: dict[str, int] = {}
                if step.op in ("create", "move"):
                    fields["gfn"] = step.gpa >> 12
                if step.op == "create":
                    fields["pages"] = step.pages
                if step.op in ("create", "flags"):
                    fields["flags"] = step.flags
                capture.mark(update_marker(count, step.op, step.address_space, step.slot, **fields))
                try:
                    vm.set_region(
                        step.slot,
                        step.address_space,
                        step.flags,
                        step.gpa,
                        step.pages * PAGE,
                        memory.address,
                    )
                except OSError as error:
                    raise ProbeError(
                        f"KVM_SET_USER_MEMORY_REGION failed at update {count} ({step.op} of slot "
                        f"{step.slot} in address space {step.address_space}): "
                        f"{error.strerror or error}"
                    ) from None
            seconds = time.perf_counter() - start
            lines = capture.finish(f"updates={count}")
            lost = capture.lost_events()
            enabled, clock = list(capture.enabled), capture.clock
    finally:
        vm.close()
        kvm.close()
    imported = import_tracefs("<probe capture>", lines)
    if lost:
        imported.observations[0]["lost"] = max(lost, imported.observations[0].get("lost", 0))
    buffer = io.StringIO()
    comments = [
        f"Captured by kvmgen probe on {kernel} ({nas} memslot address space"
        f"{'s' if nas > 1 else ''}; kvm {', '.join(f'{k}={v}' for k, v in params.items())}):",
        f"{count:,} updates in {seconds:.1f} s; zap tracepoints are the observations below.",
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
    )
    return run, lines


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
    run, _lines = capture_run(opts)
    return compare_probe(run)
