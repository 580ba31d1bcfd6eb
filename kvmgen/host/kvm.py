"""The few KVM ioctls the probe needs, from Python (fcntl + ctypes; no compiler).

``/dev/kvm`` -> ``KVM_CREATE_VM`` -> ``KVM_SET_USER_MEMORY_REGION`` on the VM fd.
The VM has no vCPUs: the probe only changes memslots, which is all that bumps
the memslot generation. Numbers are from ``include/uapi/linux/kvm.h``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import struct
from dataclasses import dataclass

KVMIO = 0xAE
_IOC_WRITE = 1


def _io(nr: int) -> int:
    return (KVMIO << 8) | nr


def _iow(nr: int, size: int) -> int:
    return (_IOC_WRITE << 30) | (size << 16) | (KVMIO << 8) | nr


# struct kvm_userspace_memory_region { u32 slot; u32 flags; u64 guest_phys_addr;
#                                      u64 memory_size; u64 userspace_addr; }
REGION = struct.Struct("=IIQQQ")
KVM_GET_API_VERSION = _io(0x00)
KVM_CREATE_VM = _io(0x01)
KVM_CHECK_EXTENSION = _io(0x03)
KVM_SET_USER_MEMORY_REGION = _iow(0x46, REGION.size)
KVM_CAP_MULTI_ADDRESS_SPACE = 118
KVM_MEM_LOG_DIRTY_PAGES = 1
KVM_API_VERSION = 12
PAGE = 4096
DEV_KVM = "/dev/kvm"
MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Python < 3.13 lacks the name


class KvmError(OSError):
    """An ioctl the probe relies on failed."""


def region_bytes(slot: int, address_space: int, flags: int, gpa: int, size: int, ua: int) -> bytes:
    """The ``kvm_userspace_memory_region`` for one call (``slot`` field = as << 16 | slot)."""
    return REGION.pack((address_space << 16) | slot, flags, gpa, size, ua)


@dataclass
class HostMemory:
    """Anonymous host memory backing the probe's slots (slots may alias it)."""

    size: int
    _map: mmap.mmap
    _anchor: ctypes.c_char

    @classmethod
    def allocate(cls, pages: int) -> HostMemory:
        """Reserve ``pages`` pages of anonymous memory, never touched (no RAM is committed).

        ``MAP_NORESERVE``: a slot as big as a large guest's RAM costs address space only.
        """
        size = pages * PAGE
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE
        area = mmap.mmap(-1, size, flags=flags)
        return cls(size, area, ctypes.c_char.from_buffer(area))

    @property
    def address(self) -> int:
        """The host virtual address of the first byte."""
        return ctypes.addressof(self._anchor)


class Vm:
    """A KVM virtual machine with no vCPUs: only its memslots change."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def address_spaces(self) -> int:
        """Memslot address spaces of this VM (KVM_CAP_MULTI_ADDRESS_SPACE; 0 means one)."""
        try:
            count = fcntl.ioctl(self.fd, KVM_CHECK_EXTENSION, KVM_CAP_MULTI_ADDRESS_SPACE)
        except OSError:
            return 1
        return max(1, count)

    def set_region(
        self, slot: int, address_space: int, flags: int, gpa: int, size: int, ua: int
    ) -> None:
        """KVM_SET_USER_MEMORY_REGION; size 0 deletes the slot."""
        arg = region_bytes(slot, address_space, flags, gpa, size, ua)
        fcntl.ioctl(self.fd, KVM_SET_USER_MEMORY_REGION, arg)

    def close(self) -> None:
        """Close the VM fd (the kernel destroys the VM)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Kvm:
    """An open ``/dev/kvm``."""

    def __init__(self, path: str = DEV_KVM) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            version = fcntl.ioctl(self.fd, KVM_GET_API_VERSION)
        except OSError:
            os.close(self.fd)
            raise
        if version != KVM_API_VERSION:
            os.close(self.fd)
            raise KvmError(errno.EINVAL, f"KVM API version {version}, expected {KVM_API_VERSION}")

    def create_vm(self, vm_type: int = 0) -> Vm:
        """KVM_CREATE_VM (type 0: the default VM, as QEMU creates it)."""
        return Vm(fcntl.ioctl(self.fd, KVM_CREATE_VM, vm_type))

    def close(self) -> None:
        """Close ``/dev/kvm``."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def module_parameters() -> dict[str, str]:
    """The kvm module parameters that change what the probe can see (tdp_mmu, mmio_caching)."""
    out = {}
    for name in ("tdp_mmu", "mmio_caching"):
        try:
            with open(f"/sys/module/kvm/parameters/{name}") as handle:
                out[name] = handle.read().strip()
        except OSError:
            continue
    return out


def host_address_spaces(path: str = DEV_KVM) -> int | None:
    """Memslot address spaces a default VM gets on this host; None without KVM access.

    Asked of a throwaway VM, as QEMU asks it: from 6.8 the count is per VM type.
    """
    try:
        kvm = Kvm(path)
    except OSError:
        return None
    try:
        vm = kvm.create_vm(0)
    except OSError:
        kvm.close()
        return None
    try:
        return vm.address_spaces()
    finally:
        vm.close()
        kvm.close()
