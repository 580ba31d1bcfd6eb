"""Real-VMM conformance: real QEMU boots recorded by ``kvmgen record`` (``make conformance-vmm``).

Each configuration is booted under ``kvmgen record`` with QEMU's own memslot log on,
then: QEMU's log and strace's give the same updates call for call; the recording
agrees with the model on this host's era on every update, from VM creation on, with
at least one zap compared; a wrong era (5.1, which flushes only the slot) disagrees;
and the kernel trace stripped of its syscall events, merged with QEMU's log by clock
alignment alone, agrees too. Needs root, /dev/kvm, strace and qemu-system-x86_64;
skipped without them. Not part of ``make test`` (marker ``realvm``): a boot takes
seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.realvm

QEMU = "qemu-system-x86_64"
OVMF = "/usr/share/OVMF/OVMF_CODE.fd"
BOOT_SECONDS = 4.0
BASE = [QEMU, "-enable-kvm", "-display", "none", "-monitor", "none", "-serial", "none"]
CONFIGS = {
    "pc-1cpu-novga": ["-machine", "pc", "-m", "256", "-nodefaults", "-vga", "none"],
    "pc-4cpu-std": ["-machine", "pc", "-m", "512", "-smp", "4", "-vga", "std"],
    "q35-1cpu-novga": ["-machine", "q35", "-m", "256", "-vga", "none"],
    "q35-4cpu-std": ["-machine", "q35", "-m", "1024", "-smp", "4", "-vga", "std"],
    "pc-dimm-hotplug": ["-machine", "pc", "-m", "512,slots=2,maxmem=2G", "-vga", "none"],
    "q35-ovmf": ["-machine", "q35", "-m", "512", "-vga", "none", "-bios", OVMF],
}


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "needs /dev/kvm"
    for tool in (QEMU, "strace"):
        if shutil.which(tool) is None:
            return f"needs {tool} (make conformance-vmm installs it)"
    return None


if _missing() is not None:
    pytestmark = [pytest.mark.realvm, pytest.mark.skip(reason=str(_missing()))]


def kvmgen(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "kvmgen", *args], capture_output=True, text=True, check=False
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def hot_plug(qmp: Path) -> None:
    """Add a 256 MiB pc-dimm through QMP once the guest has booted a little."""
    deadline = time.monotonic() + 10
    while not qmp.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(qmp))
        stream = sock.makefile("rw")
        stream.readline()  # greeting
        for command in (
            {"execute": "qmp_capabilities"},
            {
                "execute": "object-add",
                "arguments": {"qom-type": "memory-backend-ram", "id": "m1", "size": 256 << 20},
            },
            {
                "execute": "device_add",
                "arguments": {"driver": "pc-dimm", "id": "d1", "memdev": "m1"},
            },
        ):
            stream.write(json.dumps(command) + "\n")
            stream.flush()
            reply = json.loads(stream.readline())
            while "event" in reply:
                reply = json.loads(stream.readline())
            assert "return" in reply, reply


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def boot(request, tmp_path_factory):
    name = request.param
    if name == "q35-ovmf" and not os.path.exists(OVMF):
        pytest.skip(f"needs {OVMF} (Debian package ovmf)")
    work = tmp_path_factory.mktemp(name)
    qemu_log = work / "qemu.log"
    command = [*BASE, *CONFIGS[name], "-trace", "kvm_set_user_memory", "-D", str(qemu_log)]
    command += ["-msg", "timestamp=on"]
    qmp = work / "qmp.sock"
    if name == "pc-dimm-hotplug":
        command += ["-qmp", f"unix:{qmp},server,nowait"]
    trace, raw = work / "boot.yaml", work / "raw"
    record = ["record", "-o", str(trace), "--raw", str(raw), "--duration", str(BOOT_SECONDS)]
    recorder = subprocess.Popen(
        [sys.executable, "-m", "kvmgen", *record, "--", *command],
        stderr=subprocess.PIPE,
        text=True,
    )
    if name == "pc-dimm-hotplug":
        hot_plug(qmp)
    _out, err = recorder.communicate(timeout=120)
    assert recorder.returncode == 0, err
    return name, work, trace, raw, qemu_log


def updates(path: Path, kind: str) -> list[dict]:
    text = kvmgen("import", kind, str(path), "--format", "json", "-q").stdout
    body = json.loads("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    return [{k: v for k, v in ev.items() if k != "t"} for ev in body["events"]]


def comparison(trace: Path, *extra: str) -> tuple[int, dict]:
    done = kvmgen(
        "replay", str(trace), "--fail-on", "disagree", "-q", "--json", "-", *extra, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    (first, *_) = json.loads(done.stdout)["observed"]
    return done.returncode, first


def test_qemu_log_and_strace_agree_call_for_call(boot):
    _name, _work, _trace, raw, qemu_log = boot
    from_qemu = updates(qemu_log, "qemu")
    assert from_qemu == updates(raw / "strace.log", "strace")
    assert len(from_qemu) >= 5


def test_the_recording_agrees_with_the_hosts_era_on_every_update(boot):
    name, _work, trace, _raw, _qemu_log = boot
    code, first = comparison(trace)
    assert code == 0, first["disagreements"]
    document = json.loads(kvmgen("replay", str(trace), "-q", "--json", "-").stdout)
    assert first["window"] == [1, document["runs"][0]["updates"]]
    assert first["zaps_compared"]
    seen = sum(row["observed_zaps"] for row in first["classes"])
    assert seen > 0, f"{name}: no zap seen, so agreement would say nothing"
    if name == "pc-dimm-hotplug":
        sizes = [int(ev.get("pages", "0"), 0) for ev in updates(boot[3] / "strace.log", "strace")]
        assert 0x10000 in sizes  # the 256 MiB DIMM became a slot


def test_a_wrong_era_disagrees(boot):
    _name, _work, trace, _raw, _qemu_log = boot
    code, first = comparison(trace, "--kernel", "5.1", "--address-spaces", "2")
    assert code == 1 and first["disagreements"]


def test_clock_alignment_alone_agrees_too(boot):
    _name, work, _trace, raw, qemu_log = boot
    plain = work / "plain-trace.txt"
    lines = (raw / "kernel-trace.txt").read_text().splitlines()
    plain.write_text("".join(line + "\n" for line in lines if "sys_ioctl" not in line))
    merged = work / "merged.yaml"
    made = kvmgen("import", "tracefs", str(plain), "--qemu", str(qemu_log), "-o", str(merged))
    assert "delete/zap pair" in made.stderr and "fit no delete" not in made.stderr
    code, first = comparison(merged)
    assert code == 0, first["disagreements"]
