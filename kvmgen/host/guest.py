"""A minimal guest that touches guest frames on request: the probe's vCPU path.

One small memslot (:data:`BLOCK_PAGES` pages, placed where the trace never maps
or touches anything) holds a 24-byte loop in flat 32-bit protected mode, without
paging, and a mailbox::

    loop:  mov eax, [mailbox]      ; the address to touch
           mov ecx, [mailbox + 4]  ; 0: read, 1: write
           test ecx, ecx
           jnz write
           mov edx, [eax]          ; read
           jmp done
    write: mov [eax], edx          ; write
    done:  hlt                     ; back to the host: one access done
           jmp loop

The host writes the mailbox and runs the vCPU until it halts: an MMIO access exits
to the host on the way (KVM_EXIT_MMIO; a read gets zeros), a RAM access does not.
The kernel's MMU tracepoints for that fault (check_mmio_spte, mark_mmio_spte,
handle_mmio_page_fault, kvm_mmio) are what the probe compares with the model. While
a vCPU runs, the thread is named ``CPU n/KVM`` as QEMU names its vCPU threads, so
the capture's importer attributes the access to vCPU n. Without paging the guest
reaches the first 4 GiB only; the probe counts accesses above it as not performed.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterable

from kvmgen.host.kvm import KVMIO, PAGE, HostMemory, Kvm, KvmError, Vm, _io

BLOCK_PAGES = 16
LIMIT_GFN = 1 << 20  # flat 32-bit addressing: the first 4 GiB
_MAILBOX = PAGE  # offset of the mailbox in the block (the code is at offset 0)
_SEGMENT = struct.Struct("<QIHBBBBBBBBBB")  # struct kvm_segment
_SREGS_SIZE = 312
_REGS_SIZE = 144
_CR0_OFFSET = 8 * _SEGMENT.size + 2 * 16  # after 8 segments and the gdt, idt tables
_RUN_EXIT_REASON = 8  # offset of exit_reason in struct kvm_run
_EXIT_IO, _EXIT_MMIO, _EXIT_HLT, _EXIT_SHUTDOWN, _EXIT_FAIL_ENTRY, _EXIT_INTERNAL = (
    2,
    6,
    5,
    8,
    9,
    17,
)
_RUNS_PER_ACCESS = 8  # an access takes one MMIO exit at most, then the halt


def _ior(nr: int, size: int) -> int:
    return (2 << 30) | (size << 16) | (KVMIO << 8) | nr


def _iow(nr: int, size: int) -> int:
    return (1 << 30) | (size << 16) | (KVMIO << 8) | nr


KVM_GET_VCPU_MMAP_SIZE = _io(0x04)
KVM_CREATE_VCPU = _io(0x41)
KVM_RUN = _io(0x80)
KVM_SET_REGS = _iow(0x82, _REGS_SIZE)
KVM_GET_SREGS = _ior(0x83, _SREGS_SIZE)
KVM_SET_SREGS = _iow(0x84, _SREGS_SIZE)
PR_SET_NAME = 15


def _code(mailbox: int) -> bytes:
    """The guest loop (module docstring) for a mailbox at guest address ``mailbox``."""
    return (
        b"\xa1" + struct.pack("<I", mailbox)  # mov eax, [mailbox]
        + b"\x8b\x0d" + struct.pack("<I", mailbox + 4)  # mov ecx, [mailbox + 4]
        + b"\x85\xc9"  # test ecx, ecx
        + b"\x75\x04"  # jnz write
        + b"\x8b\x10"  # mov edx, [eax]
        + b"\xeb\x02"  # jmp done
        + b"\x89\x10"  # write: mov [eax], edx
        + b"\xf4"  # done: hlt
        + b"\xeb\xe8"  # jmp loop
    )  # fmt: skip


def free_block(taken: Iterable[tuple[int, int]]) -> int | None:
    """The lowest gfn from 1 MiB up where :data:`BLOCK_PAGES` pages overlap nothing taken.

    ``taken`` is ``(gfn, pages)`` ranges the trace maps or touches at any time.
    """
    ranges = sorted((g, g + p) for g, p in taken)
    candidate = 0x100
    for start, end in ranges:
        if end <= candidate:
            continue
        if start >= candidate + BLOCK_PAGES:
            break
        candidate = (end + BLOCK_PAGES - 1) // BLOCK_PAGES * BLOCK_PAGES
    return candidate if candidate + BLOCK_PAGES <= LIMIT_GFN else None


def _set_name(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _thread_name() -> str:
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return "python"


class Guest:
    """The block, its loop and one vCPU per trace vCPU id; :meth:`touch` makes one access."""

    def __init__(self, kvm: Kvm, vm: Vm, block_gfn: int, vcpus: int) -> None:
        self.block_gfn = block_gfn
        self.memory = HostMemory.allocate(BLOCK_PAGES)
        code = _code(block_gfn * PAGE + _MAILBOX)
        ctypes.memmove(self.memory.address, code, len(code))
        self.vm = vm
        self.size = fcntl.ioctl(kvm.fd, KVM_GET_VCPU_MMAP_SIZE)
        self.fds: list[int] = []
        self.runs: list[mmap.mmap] = []
        self.vcpus = vcpus
        self.name = _thread_name()

    def map_block(self, slot: int) -> None:
        """Create the block's memslot (an update of its own: the probe numbers it)."""
        self.vm.set_region(
            slot, 0, 0, self.block_gfn * PAGE, BLOCK_PAGES * PAGE, self.memory.address
        )
        for index in range(self.vcpus):
            self._create_vcpu(index)

    def _create_vcpu(self, index: int) -> None:
        fd = fcntl.ioctl(self.vm.fd, KVM_CREATE_VCPU, index)
        self.fds.append(fd)
        self.runs.append(
            mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        )
        sregs = bytearray(_SREGS_SIZE)
        fcntl.ioctl(fd, KVM_GET_SREGS, sregs)
        # Flat segments (base 0, 4 GiB, 32-bit): cs a code segment, the others data.
        flat = [(11, 8)] + [(3, 16)] * 5  # cs, ds, es, fs, gs, ss
        for i, (kind, selector) in enumerate(flat):
            _SEGMENT.pack_into(
                sregs, i * _SEGMENT.size, 0, 0xFFFFFFFF, selector, kind, 1, 0, 1, 1, 0, 1, 0, 0, 0
            )
        cr0 = struct.unpack_from("<Q", sregs, _CR0_OFFSET)[0]
        struct.pack_into("<Q", sregs, _CR0_OFFSET, (cr0 | 1) & ~0x80000000)  # PE on, PG off
        fcntl.ioctl(fd, KVM_SET_SREGS, bytes(sregs))
        regs = bytearray(_REGS_SIZE)
        struct.pack_into("<QQ", regs, 16 * 8, self.block_gfn * PAGE, 2)  # rip, rflags
        fcntl.ioctl(fd, KVM_SET_REGS, bytes(regs))

    def touch(self, vcpu: int, gfn: int, write: bool) -> bool:
        """One access by ``vcpu`` to ``gfn``; True when it exited to the host as MMIO."""
        mailbox = struct.pack("<II", gfn * PAGE, 1 if write else 0)
        ctypes.memmove(self.memory.address + _MAILBOX, mailbox, len(mailbox))
        fd, run = self.fds[vcpu], self.runs[vcpu]
        mmio = False
        _set_name(f"CPU {vcpu}/KVM")
        try:
            for _ in range(_RUNS_PER_ACCESS):
                fcntl.ioctl(fd, KVM_RUN, 0)
                reason = struct.unpack_from("<I", run, _RUN_EXIT_REASON)[0]
                if reason == _EXIT_HLT:
                    return mmio
                if reason == _EXIT_MMIO:
                    mmio = True  # a read completes with the zeros already in kvm_run
                    continue
                raise KvmError(0, f"the probe's guest stopped with KVM exit reason {reason}")
            raise KvmError(0, "the probe's guest did not halt after its access")
        finally:
            _set_name(self.name)

    def close(self) -> None:
        """Unmap and close every vCPU."""
        for run in self.runs:
            run.close()
        for fd in self.fds:
            os.close(fd)
        self.runs, self.fds = [], []
