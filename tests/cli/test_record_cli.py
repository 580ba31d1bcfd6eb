"""kvmgen record: refusals in one line, and a real recording where the host allows one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

MINIVMM = ROOT / "tests" / "data" / "captures" / "minivmm.py"


def test_record_needs_a_command_or_a_pid(run_cli, tmp_path):
    result = run_cli("record", "-o", str(tmp_path / "t.yaml"))
    assert result.exit_code == 2
    assert "give a VMM command after -- or --pid PID" in result.stderr


def test_record_says_how_to_install_a_missing_strace(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_cli("record", "-o", str(tmp_path / "t.yaml"), "--", "qemu-system-x86_64")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "kvmgen: error: kvmgen record: strace not found: install it: apt-get install strace "
        "(Debian, Ubuntu) or dnf install strace (Fedora)"
    )


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_record_refuses_a_missing_vmm_and_a_gone_pid(run_cli, tmp_path):
    out = str(tmp_path / "t.yaml")
    missing = run_cli("record", "-o", out, "--", "no-such-vmm-here")
    assert missing.exit_code == 2 and "VMM 'no-such-vmm-here' not found" in missing.stderr
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    result = run_cli("record", "-o", out, "--pid", str(gone.pid))
    assert result.exit_code == 2 and f"no process {gone.pid}" in result.stderr
    assert not os.path.exists(out)


def _cannot_record() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed"
    if os.geteuid() != 0:
        return "needs root (KVM and tracefs)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "needs /dev/kvm"
    return None


@pytest.mark.skipif(_cannot_record() is not None, reason=str(_cannot_record()))
@pytest.mark.usefixtures("warm_engine")
def test_recording_a_vmm_gives_a_trace_the_model_agrees_with(tmp_path):
    trace, raw = tmp_path / "rec.yaml", tmp_path / "raw"
    kvmgen = [sys.executable, "-m", "kvmgen"]
    made = subprocess.run(
        [
            *kvmgen,
            "record",
            "-o",
            str(trace),
            "--raw",
            str(raw),
            "--",
            sys.executable,
            str(MINIVMM),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "calls matched to the trace's own ioctl events" in made.stderr
    assert (raw / "strace.log").exists() and (raw / "kernel-trace.txt").exists()
    replayed = subprocess.run(
        [*kvmgen, "replay", str(trace), "--fail-on", "disagree", "-q", "--json", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    (comparison,) = json.loads(replayed.stdout)["observed"]
    assert comparison["agree"] and comparison["window"] == [1, 48]
    # minivmm deletes and moves: 5 memslot-flush zaps in the VM it records, none from the other.
    assert sum(row["observed_zaps"] for row in comparison["classes"]) == 5
