"""Real captures shipped in traces/captures (remade by tests/data/captures/make_captures.sh).

One QEMU 7.2 SeaBIOS boot on this project's 6.18 host, recorded by ``kvmgen record``
(the trace, and its raw strace log and kernel trace) with QEMU's own log beside it;
and a capture taken while a second VMM used KVM. Each source must give the same
updates, every import must agree with the model on the host's era on every update it
covers, and a wrong era must disagree, so the agreement is not vacuous.
"""

from __future__ import annotations

import json

import pytest

from kvmgen.importers.imports import from_qemu, from_strace
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")

CAPTURES = TRACES / "captures"
BOOT = CAPTURES / "qemu-boot"


def lines(path) -> list[str]:
    return path.read_text().splitlines()


def updates(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in ev.items() if k != "t"} for ev in events]


def observed(run_cli, trace, *extra: str) -> tuple[int, dict]:
    result = run_cli("replay", str(trace), "--fail-on", "disagree", "-q", "--json", "-", *extra)
    document = json.loads(result.stdout)
    return result.exit_code, document


def compared_updates(document: dict) -> tuple[int, int, int]:
    """(first, last, zaps seen) of the first run's observed-vs-modelled comparison."""
    (first, *_rest) = document["observed"]
    assert first["agree"] and first["zaps_compared"]
    low, high = first["window"]
    return low, high, sum(row["observed_zaps"] for row in first["classes"])


def test_qemu_log_and_strace_log_give_the_same_updates_call_for_call():
    qemu = from_qemu("qemu.log", lines(CAPTURES / "qemu-boot.qemu.log"))
    strace = from_strace("strace.log", lines(CAPTURES / "qemu-boot.strace.log"))
    assert updates(qemu.events) == updates(strace.events)
    assert len(qemu.events) >= 15
    assert strace.vm["address_spaces"] == 1  # QEMU asked KVM_CAP_MULTI_ADDRESS_SPACE


def test_the_recorded_boot_agrees_on_every_update_and_a_wrong_era_does_not(run_cli):
    trace = CAPTURES / "qemu-boot.yaml"
    code, document = observed(run_cli, trace)
    assert code == 0
    n = document["runs"][0]["updates"]
    first, last, zaps = compared_updates(document)
    assert (first, last) == (1, n)  # compared from VM creation to the end
    assert zaps > 0
    wrong, _ = observed(run_cli, trace, "--kernel", "5.1", "--address-spaces", "2")
    assert wrong == 1


@pytest.mark.parametrize("log", ["--qemu", "--strace"])
def test_a_kernel_trace_without_syscall_events_is_aligned_on_its_deletes(run_cli, tmp_path, log):
    # The same capture as a plain tracefs user would have it: zaps, no ioctl events.
    plain = tmp_path / "kernel-trace.txt"
    kept = [
        line for line in lines(CAPTURES / "qemu-boot.kernel-trace.txt") if "sys_ioctl" not in line
    ]
    plain.write_text("\n".join(kept) + "\n")
    source = CAPTURES / ("qemu-boot.qemu.log" if log == "--qemu" else "qemu-boot.strace.log")
    out = tmp_path / "t.yaml"
    result = run_cli("import", "tracefs", str(plain), log, str(source), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "delete/zap pairs" in result.stderr and "fit no delete" not in result.stderr
    code, document = observed(run_cli, out)
    assert code == 0
    assert compared_updates(document)[2] > 0


def test_another_vmms_zaps_are_left_out_and_named(run_cli, tmp_path):
    out = tmp_path / "t.yaml"
    result = run_cli(
        "import",
        "tracefs",
        str(CAPTURES / "two-vmms.kernel-trace.txt"),
        "--qemu",
        str(CAPTURES / "two-vmms.qemu.log"),
        "--kernel",
        "6.18",
        "--address-spaces",
        "1",
        "--from-vm-start",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert "zaps of other VMs, not this VMM's (process " in result.stderr
    code, document = observed(run_cli, out)
    assert code == 0
    first, _last, zaps = compared_updates(document)
    assert first == 1 and zaps > 0
