"""kvmgen import qemu|tracefs, gen and probe on the command line: outputs, exit codes, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kvmgen.inputs import open_trace
from kvmgen.probe.run import missing_prerequisites
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")

QEMU_LOG = """\
qemu-system-x86_64: warning: host doesn't support requested feature: CPUID.80000001H:ECX.svm
21530@1712345678.000100:kvm_set_user_memory AddrSpace#0 Slot#0 flags=0x0 gpa=0x0 size=0xa0000 ua=0x7f3c5a000000 ret=0
21530@1712345678.000130:kvm_set_user_memory AddrSpace#1 Slot#0 flags=0x0 gpa=0x0 size=0xa0000 ua=0x7f3c5a000000 ret=0
21530@1712345678.000160:kvm_set_user_memory AddrSpace#0 Slot#1 flags=0x2 gpa=0xc0000 size=0x4000 ua=0x7f3c5b000000 ret=0
21530@1712345678.000190:kvm_set_user_memory AddrSpace#0 Slot#1 flags=0x2 gpa=0xc0000 size=0x0 ua=0x7f3c5b000000 ret=0
21530@1712345678.000220:kvm_set_user_memory AddrSpace#0 Slot#1 flags=0x0 gpa=0xc0000 size=0x4000 ua=0x7f3c5a0c0000 ret=0
21530@1712345678.000250:kvm_set_user_memory AddrSpace#0 Slot#2 flags=0x0 gpa=0xfe000000 size=0x1000 ua=0x7f3c5c000000 ret=-17
21530@1712345678.000280:kvm_set_ioeventfd_mmio fd: 21 @0xfebf1000 val=0x0 assign: 1 size: 4 match: 0
"""  # noqa: E501

TRACEFS = """\
# tracer: nop
#
          kvmgen-3892    [000] ...1.  1588.500000: tracing_mark_write: kvmgen: capture start source=test kernel=6.18.44 nas=1 vm_start=1 mmio_caching=0 events=kvm_mmu_zap_all_fast
          kvmgen-3892    [000] ...1.  1588.500100: tracing_mark_write: kvmgen: update 1 op=create as=0 slot=0 gfn=0x100000 pages=0x10 flags=0x0
          kvmgen-3892    [000] ...1.  1588.500200: tracing_mark_write: kvmgen: update 2 op=flags as=0 slot=0 flags=0x1
          kvmgen-3892    [000] ...1.  1588.500300: tracing_mark_write: kvmgen: update 3 op=delete as=0 slot=0
          kvmgen-3892    [000] ...1.  1588.500350: kvm_mmu_zap_all_fast: kvm-mmu-valid-gen 0 used_pages 0
          kvmgen-3892    [000] ...1.  1588.500400: tracing_mark_write: kvmgen: capture end updates=3
"""  # noqa: E501


@pytest.fixture
def qemu_log(tmp_path):
    path = tmp_path / "qemu.log"
    path.write_text(QEMU_LOG)
    return path


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "trace.txt"
    path.write_text(TRACEFS)
    return path


def test_help_lists_the_new_commands(run_cli):
    result = run_cli("--help")
    for name in ("import", "gen", "probe"):
        assert name in result.stdout
    assert "qemu" in run_cli("import", "--help").stdout
    assert "seed-case" in run_cli("gen", "--help").stdout


def test_new_commands_help_does_not_import_numba():
    code = (
        "import sys; from kvmgen.cli import main\n"
        "for args in (['import', 'qemu', '--help'], ['gen', 'boot', '--help'],\n"
        "             ['probe', '--help']):\n"
        "    main(args)\n"
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_import_qemu_to_stdout(run_cli, qemu_log):
    result = run_cli("import", "qemu", str(qemu_log), "--kernel", "4.19")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"# Imported by kvmgen from the QEMU log {qemu_log}.")
    trace = open_trace(result.stdout.encode(), name="out.yaml")
    assert [e.op.name for e in trace.events] == ["CREATE", "CREATE", "CREATE", "DELETE", "CREATE"]
    assert trace.vm.address_spaces == 2 and trace.vm.kernel == "4.19"
    assert "5 updates" in result.stderr and "1 call with ret != 0" in result.stderr
    assert "2 unrelated" in result.stderr


@pytest.mark.parametrize("suffix", ["json", "jsonl", "yaml"])
def test_import_qemu_to_a_file_replays(run_cli, qemu_log, tmp_path, suffix):
    out = tmp_path / f"boot.{suffix}"
    assert run_cli("import", "qemu", str(qemu_log), "-o", str(out), "-q").exit_code == 0
    result = run_cli("replay", str(out), "--kernel", "4.19", "--json", "-", "-q")
    assert result.exit_code == 0
    (run, *_) = json.loads(result.stdout)["runs"]
    assert run["updates"] == 5


def test_import_qemu_bad_line_is_one_line_exit_2(run_cli, tmp_path):
    log = tmp_path / "bad.log"
    log.write_text(QEMU_LOG + "21530@1.2:kvm_set_user_memory AddrSpace#0 Slot#zero flags=0x0\n")
    result = run_cli("import", "qemu", str(log))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"kvmgen: error: {log}:9: kvm_set_user_memory: payload")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "bad.yaml.partial").exists()


def test_import_qemu_without_events_or_file_is_exit_2(run_cli, tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert run_cli("import", "qemu", str(empty)).exit_code == 2
    result = run_cli("import", "qemu", str(tmp_path / "missing.log"))
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_failed_import_leaves_no_output_file(run_cli, tmp_path):
    log = tmp_path / "bad.log"
    log.write_text(
        "kvm_set_user_memory AddrSpace#0 Slot#0 flags=0x0 gpa=0x800 size=0x1000 ua=0x1 ret=0\n"
    )
    out = tmp_path / "out.yaml"
    assert run_cli("import", "qemu", str(log), "-o", str(out)).exit_code == 2
    assert not out.exists() and not (tmp_path / "out.yaml.partial").exists()


def test_import_tracefs_then_replay_agrees(run_cli, capture, tmp_path):
    out = tmp_path / "cap.yaml"
    result = run_cli("import", "tracefs", str(capture), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "3 updates, 0 accesses and 1 zap" in result.stderr
    result = run_cli("replay", str(out), "--fail-on", "disagree")
    assert result.exit_code == 0
    assert "observed vs modelled" in result.stdout
    assert "agree on all 3 updates" in result.stdout


def test_replay_json_carries_observed_vs_modelled(run_cli, capture, tmp_path):
    import jsonschema

    from kvmgen.report.json_report import schema

    out = tmp_path / "cap.yaml"
    assert run_cli("import", "tracefs", str(capture), "-o", str(out), "-q").exit_code == 0
    doc = json.loads(run_cli("replay", str(out), "--json", "-").stdout)
    jsonschema.Draft202012Validator(schema()).validate(doc)
    (observed,) = doc["observed"]
    assert observed["agree"] is True and observed["disagreements"] == []
    assert observed["observed_zap_updates"] == observed["modelled_zap_updates"] == [3]
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(TRACEFS.replace("update 3 op=delete", "update 3 op=flags"))
    wrong_trace = tmp_path / "wrong.yaml"
    assert run_cli("import", "tracefs", str(wrong), "-o", str(wrong_trace), "-q").exit_code == 0
    doc = json.loads(run_cli("replay", str(wrong_trace), "--json", "-").stdout)
    jsonschema.Draft202012Validator(schema()).validate(doc)
    assert doc["observed"][0]["agree"] is False
    assert doc["observed"][0]["disagreements"][0]["update"] == 3
    # A trace without observations has no such key.
    sample = str(TRACES / "smm-cache-as0.yaml")
    assert "observed" not in json.loads(run_cli("replay", sample, "--json", "-").stdout)


def test_replay_fails_on_disagreement(run_cli, capture, tmp_path):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(
        TRACEFS.replace("update 3 op=delete", "update 3 op=flags").replace(
            "as=0 slot=0\n", "as=0 slot=0 flags=0x0\n"
        )
    )
    out = tmp_path / "wrong.yaml"
    assert run_cli("import", "tracefs", str(wrong), "-o", str(out), "-q").exit_code == 0
    result = run_cli("replay", str(out), "--fail-on", "disagree", "-q")
    assert result.exit_code == 1
    assert "gate failed" in result.stderr and "DISAGREE" in result.stderr
    # Without the gate the disagreement is reported, not fatal.
    assert run_cli("replay", str(out)).exit_code == 0


def test_fail_on_disagree_needs_observations(run_cli, qemu_log, tmp_path):
    out = tmp_path / "q.yaml"
    run_cli("import", "qemu", str(qemu_log), "-o", str(out), "-q")
    result = run_cli("replay", str(out), "--kernel", "4.19", "--fail-on", "disagree", "-q")
    assert result.exit_code == 2
    assert "needs a trace with observations" in result.stderr


def test_import_tracefs_merges_a_qemu_log(run_cli, qemu_log, tmp_path):
    # The zap fires inside the delete's ioctl, in the thread that made it, before QEMU
    # traces the call; a zap of a thread that made no memslot call is another VM's.
    lines = [
        "       CPU 0/KVM-4245    [001] ...1.  1712345678.000150: kvm_mmu_zap_all_fast: "
        "kvm-mmu-valid-gen 1 used_pages 0",
        " qemu-system-x86-21530   [001] ...1.  1712345678.000180: kvm_mmu_zap_all_fast: "
        "kvm-mmu-valid-gen 0 used_pages 0",
    ]
    trace_file = tmp_path / "t.txt"
    trace_file.write_text("\n".join(lines) + "\n")
    out = tmp_path / "merged.json"
    result = run_cli("import", "tracefs", str(trace_file), "--qemu", str(qemu_log), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    trace = open_trace(out)
    assert [o.update for o in trace.observations if type(o).__name__ == "ZapSeen"] == [4]
    assert "left out 1 zap of other VMs, not this VMM's (thread 4245: 1)" in result.stderr


def test_import_tracefs_without_trace_events_is_exit_2(run_cli, qemu_log):
    result = run_cli("import", "tracefs", str(qemu_log))
    assert result.exit_code == 2
    assert "no trace events found" in result.stderr and result.stderr.count("\n") == 1


def test_import_tracefs_cannot_write_jsonl(run_cli, capture):
    result = run_cli("import", "tracefs", str(capture), "--format", "jsonl")
    assert result.exit_code == 2 and "observations" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["gen", "boot", "--smm", "--reboots", "1"],
        ["gen", "vga", "--duration", "3"],
        ["gen", "churn", "--updates", "300", "--smm"],
        ["gen", "seed-case", "--era", "E5"],
        ["gen", "seed-case", "--kernel", "3.18", "--window", "in_progress"],
    ],
)
def test_gen_writes_traces_that_replay(run_cli, tmp_path, args):
    out = tmp_path / "w.jsonl"
    result = run_cli(*args, "--seed", "4", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert f"kvmgen {' '.join(args[:2])}:" in result.stderr
    first = json.loads(out.read_text().splitlines()[0])
    assert first["kvmgen"] == 1
    result = run_cli("replay", str(out), "--era", "E5", "--address-spaces", "2", "-q")
    assert result.exit_code == 0, result.stderr


def test_gen_is_deterministic_on_stdout(run_cli):
    a = run_cli("gen", "churn", "--updates", "200", "--seed", "7").stdout
    b = run_cli("gen", "churn", "--updates", "200", "--seed", "7").stdout
    assert a == b and a.startswith("# kvmgen gen churn (seed 7)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gen", "churn", "--mix", "explode=1"], "unknown op 'explode'"),
        (["gen", "seed-case", "--era", "E0"], "no MMIO generation"),
        (["gen", "seed-case", "--kernel", "4.19", "--era", "E3"], "kernel 4.19 is era E5"),
        (["gen", "seed-case", "--era", "E4", "--address-spaces", "1"], "address spaces 1"),
    ],
)
def test_gen_bad_options_are_exit_2(run_cli, args, message):
    result = run_cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_probe_without_tracefs_says_what_is_missing(run_cli, tmp_path):
    result = run_cli(
        "probe", "--tracefs", str(tmp_path / "nowhere"), "-o", str(tmp_path / "p.yaml")
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("kvmgen: error: kvmgen probe cannot run here: missing ")
    assert "tracefs at" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "p.yaml").exists()


@pytest.mark.skipif(bool(missing_prerequisites()), reason="needs root, /dev/kvm and tracefs")
def test_probe_short_run_writes_trace_and_json(run_cli, tmp_path):
    out, report = tmp_path / "probe.yaml", tmp_path / "probe.json"
    result = run_cli("probe", "-o", str(out), "--json", str(report))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "agree on all" in result.stdout
    doc = json.loads(report.read_text())
    assert doc["agree"] is True and doc["updates"] == sum(
        c["updates"] for c in doc["comparisons"][0]["classes"]
    )
    assert run_cli("replay", str(out), "--fail-on", "disagree", "-q").exit_code == 0
