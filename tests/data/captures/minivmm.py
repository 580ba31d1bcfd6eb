"""A tiny "VMM" for the strace captures beside this file: memslot calls, nothing else.

It creates two VMs (the second makes two calls, so a log holds more than one VM),
creates, toggles, moves and deletes slots in the first from two threads (so strace
splits calls over ``<unfinished ...>`` / ``<... resumed>``), and makes one call the
kernel refuses (an overlapping slot: EEXIST). Run as root, under strace; see
make_captures.sh.
"""

from __future__ import annotations

import contextlib
import threading

from kvmgen.host.kvm import PAGE, HostMemory, Kvm

GPA = 0x1_0000_0000


def churn(vm, memory, slot: int, base: int, rounds: int) -> None:
    size = 16 * PAGE
    vm.set_region(slot, 0, 0, base, size, memory.address)
    for i in range(rounds):
        vm.set_region(slot, 0, (i + 1) & 1, base, size, memory.address)  # dirty log on/off
    vm.set_region(slot, 0, 0, base + 0x100000, size, memory.address)  # move
    vm.set_region(slot, 0, 0, base + 0x100000, 0, memory.address)  # delete


def main() -> None:
    kvm = Kvm()
    vm = kvm.create_vm(0)
    other = kvm.create_vm(0)
    memory = HostMemory.allocate(64)
    vm.address_spaces()
    vm.set_region(0, 0, 0, GPA, 16 * PAGE, memory.address)
    with contextlib.suppress(OSError):
        vm.set_region(5, 0, 0, GPA, 16 * PAGE, memory.address)  # overlaps slot 0: EEXIST
    workers = [
        threading.Thread(target=churn, args=(vm, memory, 1 + n, GPA * (2 + n), 20))
        for n in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    other.set_region(0, 0, 0, GPA, 16 * PAGE, memory.address)
    other.set_region(0, 0, 0, GPA, 0, memory.address)
    vm.set_region(0, 0, 0, GPA, 0, memory.address)
    other.close()
    vm.close()
    kvm.close()


if __name__ == "__main__":
    main()
