"""Bench rows for the importers: `kvmgen import qemu|tracefs` of 1M lines vs a regex loop.

The baseline is a bare Python loop that runs one compiled regex over every line of
the same file (what any line-by-line parser pays at least). Both run as child
processes; their CPU time (user + sys) is taken from the children's rusage,
interleaved, best of five (this machine's noise moves one run by a third).
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

QEMU_LINE = r"kvm_set_user_memory Slot#(\d+) flags=(\S+) gpa=(\S+) size=(\S+) ua=(\S+) ret=(-?\d+)"
TRACEFS_LINE = r"^\s*(.*?)-(\d+)\s+\[(\d+)\]\s+(\S+)\s+(\d+)\.(\d+): (\w+): (.*)"
_REGEX_LOOP = """
import re, sys
pattern = re.compile(sys.argv[2])
found = 0
with open(sys.argv[1]) as handle:
    for line in handle:
        if pattern.search(line):
            found += 1
print(found)
"""


def write_qemu_log(path: Path, lines: int) -> None:
    """A QEMU 7.2 log: one slot created, then dirty-log toggles (VGA-style) every 37 us."""
    t = 1_796_284_369_000_000
    flags = 0
    with path.open("w") as out:
        for _ in range(lines):
            out.write(
                f"7341@{t // 10**6}.{t % 10**6:06d}:kvm_set_user_memory Slot#3 flags={flags:#x} "
                "gpa=0xfd000000 size=0x1000000 ua=0x7f0a3e000000 ret=0\n"
            )
            t += 37
            flags ^= 1


def write_tracefs_capture(path: Path, lines: int) -> None:
    """A kvmgen-probe style capture: a start marker, then one update marker per line."""
    head = "          kvmgen-3892    [000] ...1.  "
    with path.open("w") as out:
        out.write(
            f"{head}1588.000000: tracing_mark_write: kvmgen: capture start source=bench "
            "kernel=6.18.44 nas=1 vm_start=1 mmio_caching=0 events=kvm_mmu_zap_all_fast\n"
        )
        out.write(
            f"{head}1588.000001: tracing_mark_write: kvmgen: update 1 op=create as=0 slot=0 "
            "gfn=0x100000 pages=0x10 flags=0x0\n"
        )
        flags = 0
        for ordinal in range(2, lines):
            flags ^= 1
            us = 2 + ordinal
            out.write(
                f"{head}{1588 + us // 10**6}.{us % 10**6:06d}: tracing_mark_write: kvmgen: "
                f"update {ordinal} op=flags as=0 slot=0 flags={flags:#x}\n"
            )


def _child_cpu(cmd: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_importers(lines: int, work: Path, repeat: int = 5) -> dict[str, float]:
    """CPU seconds of each import and of the regex loop on the same file, and the ratios."""
    kvmgen = [sys.executable, "-m", "kvmgen"]
    qemu_log, capture = work / "bench-qemu.log", work / "bench-trace.txt"
    write_qemu_log(qemu_log, lines)
    write_tracefs_capture(capture, lines)
    cases = {
        "qemu": (
            [*kvmgen, "import", "qemu", str(qemu_log), "-o", str(work / "q.yaml"), "-q"],
            [sys.executable, "-c", _REGEX_LOOP, str(qemu_log), QEMU_LINE],
        ),
        "tracefs": (
            [*kvmgen, "import", "tracefs", str(capture), "-o", str(work / "t.yaml"), "-q"],
            [sys.executable, "-c", _REGEX_LOOP, str(capture), TRACEFS_LINE],
        ),
    }
    out: dict[str, float] = {"lines": float(lines)}
    for name, (tool, baseline) in cases.items():
        best_tool = best_loop = float("inf")
        for _ in range(repeat):  # interleaved, so both see the same machine
            best_tool = min(best_tool, _child_cpu(tool))
            best_loop = min(best_loop, _child_cpu(baseline))
        out[f"import_{name}_cpu_s"] = best_tool
        out[f"regex_loop_{name}_cpu_s"] = best_loop
        out[f"import_{name}_vs_regex_loop"] = best_tool / best_loop
    return out
