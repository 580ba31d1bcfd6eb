"""``gen boot``: a QEMU PC (q35) boot's memslot layout, PAM/BAR churn and MMIO traffic.

What QEMU does, phase by phase (addresses are q35 defaults, gfn = gpa >> 12):

1. Machine init: RAM below 640 KiB, RAM from 1 MiB to the end of low memory (at most
   2 GiB), RAM above 4 GiB, the BIOS flash at 0xfffc0 (read-only), and the 13 PAM
   regions (0xc0000-0xfffff) mapped read-only to the ROMs. With ``--smm`` every slot
   is mirrored in address space 1, which also maps SMRAM at 0xa0000.
2. Firmware: PCI enumeration over MMCONFIG (0xb0000000), HPET calibration, LAPIC
   set-up; each device with RAM BARs gets them mapped once assigned; option ROM BARs
   are mapped, copied into the PAM shadow and unmapped.
3. PAM: the BIOS makes 0xc0000-0xfffff writable RAM (each region: delete the ROM
   slot, create a RAM slot), copies itself there, and makes it read-only again
   (delete + create with KVM_MEM_READONLY: KVM cannot flip that flag in place).
4. SMM (``--smm``): each vCPU runs the SMI handler in SMRAM (address space 1).
5. The OS: VGA chain-4 window on/off at 0xa0000, framebuffer dirty logging toggles,
   BAR re-enumeration (decode off: delete; on: create), then steady MMIO traffic
   (LAPIC timer, NIC doorbell, HPET) for ``--os-seconds``.
6. ``--reboots N``: each reset maps the PAM regions back to ROM and unmaps BARs,
   then phases 2-5 run again.

Access rates are kvmgen's choices, not measurements: 24 config-space accesses per
PCI function, 100 HPET reads for timer calibration, a 250 Hz LAPIC timer (tick
plus EOI) per vCPU, 1,000 NIC doorbells per second, 10 HPET reads per second.
Every count varies by +-20 % with the seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvmgen.workloads import Workload, access, make, update

READONLY = 2  # KVM_MEM_READONLY
LOW_RAM = (0x0, 0xA0)
SMRAM = (0xA0, 0x20)
CHAIN4 = (0xA0, 0x10)
PAM = [(0xC0 + 4 * i, 4) for i in range(12)] + [(0xF0, 0x10)]
LOWMEM_MAX = 0x80000  # q35 keeps at most 2 GiB below 4 GiB
HIGH_BASE = 0x100000  # 4 GiB
BIOS = (0xFFFC0, 0x40)
MMCONFIG = 0xB0000
HPET, LAPIC, IOAPIC = 0xFED00, 0xFEE00, 0xFEC00
VRAM = (0xFD000, 0x1000)  # 16 MiB framebuffer BAR
MMIO_BAR = 0xFEBF0  # device i's 4 KiB register BAR at 0xfebf0000 + i * 0x1000
ROM_BAR = 0xFEB80  # device i's 256 KiB option ROM BAR
DEVICE_NAMES = ("vga", "nic", "virtio-blk", "virtio-net", "xhci", "ahci", "virtio-rng", "ich9-hda")


class _Slots:
    """QEMU's per-address-space slot ids: the lowest free id is taken first."""

    def __init__(self) -> None:
        self.used: set[int] = set()
        self.by_name: dict[str, tuple[int, int, int]] = {}

    def take(self, name: str, gfn: int, pages: int) -> int:
        slot = next(i for i in range(len(self.used) + 1) if i not in self.used)
        self.used.add(slot)
        self.by_name[name] = (slot, gfn, pages)
        return slot

    def drop(self, name: str) -> int:
        slot, _gfn, _pages = self.by_name.pop(name)
        self.used.discard(slot)
        return slot


@dataclass
class BootOptions:
    """The knobs of ``gen boot``."""

    smm: bool = False
    vcpus: int = 2
    ram_mb: int = 2048
    devices: int = 4
    reboots: int = 0
    os_seconds: float = 1.0
    seed: int = 0


class _Boot:
    def __init__(self, opts: BootOptions) -> None:
        self.o = opts
        self.rng = random.Random(opts.seed)
        self.spaces = (0, 1) if opts.smm else (0,)
        self.slots = {a: _Slots() for a in self.spaces}
        self.devices = list(DEVICE_NAMES[: max(1, min(opts.devices, len(DEVICE_NAMES)))])

    def n(self, base: float) -> int:
        """A count near ``base`` (+-20 %), at least 1."""
        return max(1, round(base * self.rng.uniform(0.8, 1.2)))

    def vcpu(self) -> int:
        return self.rng.randrange(self.o.vcpus)

    # --- memslot transactions: address space 0 first, then 1 (listener order) ---------

    def create(
        self,
        name: str,
        gfn: int,
        pages: int,
        *,
        flags: int = 0,
        spaces: tuple[int, ...] | None = None,
    ) -> Iterator[dict[str, Any]]:
        for a in spaces if spaces is not None else self.spaces:
            slot = self.slots[a].take(name, gfn, pages)
            fields: dict[str, Any] = {"gfn": gfn, "pages": pages}
            if flags:
                fields["flags"] = flags
            yield update("create", slot, address_space=a, note=name, **fields)

    def delete(
        self, name: str, *, spaces: tuple[int, ...] | None = None
    ) -> Iterator[dict[str, Any]]:
        for a in spaces if spaces is not None else self.spaces:
            yield update("delete", self.slots[a].drop(name), address_space=a, note=name)

    def flags(self, name: str, value: int) -> Iterator[dict[str, Any]]:
        for a in self.spaces:
            slot = self.slots[a].by_name[name][0]
            yield update("flags", slot, address_space=a, flags=value, note=name)

    # --- phases -------------------------------------------------------------------------

    def machine_init(self) -> Iterator[dict[str, Any]]:
        ram_pages = max(0x200, self.o.ram_mb * 256)
        lowmem = min(ram_pages, LOWMEM_MAX)
        yield from self.create("pc.ram low", *LOW_RAM)
        yield from self.create("pc.ram", 0x100, lowmem - 0x100)
        if ram_pages > lowmem:
            yield from self.create("pc.ram high", HIGH_BASE, ram_pages - lowmem)
        yield from self.create("pc.bios", *BIOS, flags=READONLY)
        for i, (gfn, pages) in enumerate(PAM):
            yield from self.create(f"pam{i} rom", gfn, pages, flags=READONLY)
        if self.o.smm:
            yield from self.create("smram", *SMRAM, spaces=(1,))

    def firmware(self) -> Iterator[dict[str, Any]]:
        yield access(BIOS[0] + 0x3F, repeat=self.n(500), note="reset vector: BIOS flash")
        for v in range(self.o.vcpus):
            yield access(LAPIC, vcpu=v, repeat=self.n(20), note="LAPIC set-up")
        yield access(IOAPIC, repeat=self.n(30), note="IOAPIC set-up")
        yield access(HPET, kind="read", repeat=self.n(100), note="timer calibration")
        order = self.devices[:]
        self.rng.shuffle(order)
        for dev in order:
            i = DEVICE_NAMES.index(dev)
            yield access(MMCONFIG + (i + 1) * 8, repeat=self.n(24), note=f"{dev} config space")
            if dev == "vga":
                yield from self.create("vga.vram", *VRAM)
            if dev in ("vga", "nic"):
                rom = ROM_BAR + 0x40 * i
                yield from self.create(f"{dev}.rom", rom, 0x40, flags=READONLY)
                yield access(rom, repeat=self.n(64), note=f"{dev} option ROM read")
                yield from self.delete(f"{dev}.rom")
            yield access(MMIO_BAR + i, kind="write", repeat=self.n(8), note=f"{dev} registers")

    def pam_writable(self) -> Iterator[dict[str, Any]]:
        for i, (gfn, pages) in enumerate(PAM):
            yield from self.delete(f"pam{i} rom")
            yield from self.create(f"pam{i} ram", gfn, pages)
        for gfn, pages in PAM:
            yield access(gfn, kind="write", repeat=self.n(16 * pages), note="shadow copy")

    def pam_readonly(self) -> Iterator[dict[str, Any]]:
        for i, (gfn, pages) in enumerate(PAM):
            yield from self.delete(f"pam{i} ram")
            yield from self.create(f"pam{i} ram", gfn, pages, flags=READONLY)

    def smm(self) -> Iterator[dict[str, Any]]:
        for v in range(self.o.vcpus):
            yield access(SMRAM[0], address_space=1, vcpu=v, repeat=self.n(200), note="SMI handler")
            yield access(LAPIC, address_space=1, vcpu=v, repeat=self.n(2), note="LAPIC from SMM")

    def os_boot(self) -> Iterator[dict[str, Any]]:
        # VGA: chain-4 mode maps 64 KiB of VRAM at 0xa0000 (address space 0 only:
        # in SMM that range is SMRAM); the framebuffer gets dirty logging.
        yield access(CHAIN4[0], kind="write", repeat=self.n(50), note="VGA window (MMIO)")
        for _ in range(self.rng.randint(1, 2)):
            yield from self.create("vga.chain4", *CHAIN4, spaces=(0,))
            yield access(CHAIN4[0] + 1, kind="write", repeat=self.n(200), note="chain-4 RAM")
            yield from self.delete("vga.chain4", spaces=(0,))
        if "vga" in self.devices:
            for k in range(self.rng.randint(1, 4)):
                yield from self.flags("vga.vram", (k + 1) % 2)
        # BAR re-enumeration by the OS: memory decode off and on again.
        if "vga" in self.devices and self.rng.random() < 0.7:
            yield from self.delete("vga.vram")
            yield access(VRAM[0], note="framebuffer probed while unmapped")
            yield from self.create("vga.vram", *VRAM)
        yield access(VRAM[0] + 0x10, kind="write", repeat=self.n(5000), note="console output")

    def os_run(self) -> Iterator[dict[str, Any]]:
        seconds = self.o.os_seconds
        if seconds <= 0:
            return
        for v in range(self.o.vcpus):
            yield access(
                LAPIC, vcpu=v, kind="write", repeat=self.n(500 * seconds), note="LAPIC timer"
            )
        if "nic" in self.devices:
            i = DEVICE_NAMES.index("nic")
            yield access(
                MMIO_BAR + i,
                vcpu=self.vcpu(),
                kind="write",
                repeat=self.n(1000 * seconds),
                note="NIC doorbell",
            )
        yield access(HPET, vcpu=self.vcpu(), repeat=self.n(10 * seconds), note="HPET")
        yield access(
            0x100 + self.rng.randrange(0x1000),
            vcpu=self.vcpu(),
            kind="write",
            repeat=self.n(20000 * seconds),
            note="RAM",
        )

    def reset(self) -> Iterator[dict[str, Any]]:
        for i, (gfn, pages) in enumerate(PAM):
            yield from self.delete(f"pam{i} ram")
            yield from self.create(f"pam{i} rom", gfn, pages, flags=READONLY)
        if "vga" in self.devices:
            yield from self.delete("vga.vram")

    def events(self) -> Iterator[dict[str, Any]]:
        yield from self.machine_init()
        for boot in range(self.o.reboots + 1):
            if boot:
                yield from self.reset()
            yield from self.firmware()
            yield from self.pam_writable()
            yield from self.pam_readonly()
            if self.o.smm:
                yield from self.smm()
            yield from self.os_boot()
            yield from self.os_run()


def generate(opts: BootOptions, kernel: str | None = None) -> Workload:
    """The ``boot`` workload for ``opts``."""
    vm: dict[str, Any] = {}
    if kernel:
        vm["kernel"] = kernel
    if opts.smm:
        vm["address_spaces"] = 2
    vm["vcpus"] = opts.vcpus
    comments = [
        f"kvmgen gen boot (seed {opts.seed}): a q35 PC boot with {opts.ram_mb} MiB RAM, "
        f"{opts.vcpus} vCPUs, devices {', '.join(DEVICE_NAMES[: max(1, opts.devices)])}"
        + (", SMM (address space 1)" if opts.smm else "")
        + (f", {opts.reboots} reboots" if opts.reboots else ""),
        "Phases: machine init, firmware (PCI, option ROMs), PAM writable/read-only, "
        + ("SMM, " if opts.smm else "")
        + "OS boot (VGA chain-4, dirty logging, BAR re-enumeration), OS run.",
    ]
    return make("boot", vm, _Boot(opts).events(), comments)
