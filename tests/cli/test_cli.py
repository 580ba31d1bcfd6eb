"""The CLI through click's runner: exit codes, outputs, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")


def test_help_lists_commands(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for name in ("replay", "compare", "eras", "costs"):
        assert name in result.output


def test_help_does_not_import_numba():
    code = (
        "import sys; from kvmgen.cli import main; main(['--help']); print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "kvmgen", "--version"], capture_output=True, text=True, check=True
    )
    assert "kvmgen" in out.stdout


def test_replay_side_by_side(run_cli):
    result = run_cli("replay", str(TRACES / "e5-undetected-wrap.yaml"))
    assert result.exit_code == 0
    assert "historical, bias 150" in result.output
    assert "none, bias 0" in result.output
    assert "UNDETECTED" in result.output
    assert "verdict" in result.output


def test_replay_json_to_stdout_is_the_only_stdout(run_cli):
    result = run_cli("replay", str(TRACES / "wrap-probe-6.18.yaml"), "--json", "-")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["kvmgen_report"] == 3
    (run,) = doc["runs"]
    assert run["policies"] == ["historical", "none"]
    assert [w["update"] for w in run["wraps"]] == [524288, 1048576]


def test_replay_json_is_byte_identical(run_cli, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    trace = str(TRACES / "qemu-boot-smm.yaml")
    assert run_cli("replay", trace, "-q", "--json", str(a)).exit_code == 0
    assert run_cli("replay", trace, "-q", "--json", str(b)).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


def test_events_jsonl_has_reasons(run_cli):
    result = run_cli("replay", str(TRACES / "seed-stale-gen0.yaml"), "--events", "-")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    types = {r["type"] for r in records}
    assert {"zap", "wrap", "stale_hit"} <= types
    stale = [r for r in records if r["type"] == "stale_hit"]
    assert stale[0]["bias"] == 0 and stale[0]["race"] == "before_zap"
    assert all(r["why"] for r in records)


@pytest.mark.parametrize(
    ("gate", "trace", "code"),
    [
        ("harmful", "seed-stale-gen0.yaml", 1),
        ("undetected-wrap", "e5-undetected-wrap.yaml", 1),
        ("undetected-wrap", "wrap-probe-6.18.yaml", 0),
        ("stale", "vga-dirty-log.yaml", 0),
    ],
)
def test_fail_on_gates(run_cli, gate, trace, code):
    result = run_cli("replay", str(TRACES / trace), "-q", "--fail-on", gate)
    assert result.exit_code == code
    if code:
        assert "gate failed" in result.stderr


def test_single_policy_and_kernel_override(run_cli):
    result = run_cli(
        "replay",
        str(TRACES / "vga-dirty-log.yaml"),
        "--kernel",
        "3.11",
        "--bias",
        "none",
        "--json",
        "-",
    )
    (run,) = json.loads(result.stdout)["runs"]
    assert run["era"] == "E1" and run["bias"] == 0 and run["kernel"] == "3.11"


def test_compare_all_eras_skips_what_cannot_run(run_cli):
    result = run_cli("compare", str(TRACES / "qemu-boot-smm.yaml"), "--era", "all", "--json", "-")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert {s["era"] for s in doc["skipped"]} == {"E0", "E1", "E2", "E3"}
    assert {r["era"] for r in doc["runs"]} == {f"E{i}" for i in range(4, 13)}


def test_compare_kernel_list(run_cli):
    result = run_cli("compare", str(TRACES / "vga-dirty-log.yaml"), "--kernel", "3.11,5.2,6.18")
    assert result.exit_code == 0
    assert "E6 (5.2) [5.1-5.2]" in result.output


def test_eras_and_costs_tables(run_cli):
    eras = run_cli("eras")
    assert eras.exit_code == 0 and "E12" in eras.output and "6.8+" in eras.output
    costs = run_cli("costs")
    assert costs.exit_code == 0 and "8,796" in costs.output and "mmio-no-eventfd" in costs.output


def test_costs_override_changes_cycles(run_cli, tmp_path):
    costs = tmp_path / "costs.yaml"
    costs.write_text("mmio_exit_cycles: 1000\nclock_ghz: 2.0\n")
    base = json.loads(run_cli("replay", str(TRACES / "smm-cache-as0.yaml"), "--json", "-").stdout)
    over = json.loads(
        run_cli(
            "replay", str(TRACES / "smm-cache-as0.yaml"), "--costs", str(costs), "--json", "-"
        ).stdout
    )
    assert over["cost_model"]["mmio_exit_cycles"]["value"] == 1000
    assert over["runs"][0]["costs"]["mmio_exits"] < base["runs"][0]["costs"]["mmio_exits"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["replay", "missing.yaml", "--era", "E5"], "missing.yaml: no such file"),
        (["replay", "TRACE", "--era", "E99"], "unknown era 'E99'"),
        (["replay", "TRACE", "--kernel", "banana"], "kernel version 'banana'"),
        (["replay", "TRACE", "--kernel", "4.19", "--era", "E3"], "kernel 4.19 is era E5"),
        (["replay", "TRACE", "--kernel", "4.19", "--address-spaces", "1"], "address spaces 1"),
        (["replay", "TRACE", "--bias", "-3"], "--bias '-3'"),
        (["compare", "TRACE"], "compare needs"),
    ],
)
def test_usage_errors_are_one_line_exit_2(run_cli, args, needle):
    args = [str(TRACES / "vga-dirty-log.yaml") if a == "TRACE" else a for a in args]
    result = run_cli(*args)
    assert result.exit_code == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output + result.stderr


def test_bad_costs_file_is_exit_2(run_cli, tmp_path):
    costs = tmp_path / "costs.yaml"
    costs.write_text("mmio_exit: 5\n")
    result = run_cli("replay", str(TRACES / "smm-cache-as0.yaml"), "--costs", str(costs))
    assert result.exit_code == 2 and "unknown cost 'mmio_exit'" in result.stderr


def test_trace_error_names_file_line_event_field(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "kvmgen: 1\nvm: {era: E5}\nevents:\n  - {op: create, slot: 0, gfn: 0, pages: -1}\n"
    )
    result = run_cli("replay", str(bad))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"kvmgen: error: {bad}:4:")
    assert "event 0 (create)" in line and "pages" in line


def test_address_space_missing_from_run(run_cli):
    result = run_cli("replay", str(TRACES / "qemu-boot-smm.yaml"), "--kernel", "4.1")
    assert result.exit_code == 2
    assert "address spaces 2: kernel 4.1 has 1" in result.stderr


def test_stdin_trace(run_cli):
    text = (TRACES / "smm-cache-as0.yaml").read_text()
    result = run_cli("replay", "-", "--json", "-", input=text)
    assert result.exit_code == 0
    from_file = run_cli("replay", str(TRACES / "smm-cache-as0.yaml"), "--json", "-").stdout
    assert result.stdout == from_file


def test_no_era_anywhere_is_usage_error(run_cli, tmp_path):
    trace = tmp_path / "t.yaml"
    trace.write_text("kvmgen: 1\nevents: []\n")
    result = run_cli("replay", str(trace))
    assert result.exit_code == 2 and "no kernel era" in result.stderr


def test_reference_flag_gives_same_report(run_cli):
    trace = str(TRACES / "churn-delete-move.yaml")
    engine = run_cli("replay", trace, "--json", "-").stdout
    reference = run_cli("replay", trace, "--reference", "--json", "-").stdout
    assert engine == reference


def test_real_subprocess_exit_codes(tmp_path):
    kvmgen = [sys.executable, "-m", "kvmgen"]
    ok = subprocess.run(
        [*kvmgen, "replay", str(TRACES / "smm-cache-as0.yaml"), "-q"], capture_output=True, cwd=ROOT
    )
    assert ok.returncode == 0
    gate = subprocess.run(
        [*kvmgen, "replay", str(TRACES / "smm-cache-as0.yaml"), "-q", "--fail-on", "harmful"],
        capture_output=True,
        cwd=ROOT,
    )
    assert gate.returncode == 1
    bad = subprocess.run(
        [*kvmgen, "replay", str(Path(tmp_path) / "nope.yaml"), "--era", "E1"],
        capture_output=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and b"Traceback" not in bad.stderr


@pytest.mark.parametrize(
    "name", ["seed-stale-gen0.yaml", "churn-delete-move.yaml", "qemu-boot-smm.yaml"]
)
def test_same_report_bytes_from_yaml_json_jsonl_and_stdin(run_cli, tmp_path, name, monkeypatch):
    import yaml

    import kvmgen.trace
    from tests.unit.test_trace_jsonl import yaml_to_jsonl

    source = TRACES / name
    jsonl = yaml_to_jsonl(source, tmp_path / "t.jsonl")
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps(yaml.safe_load(source.read_text())))
    reports = [
        run_cli("replay", str(source), "--json", "-").stdout,
        run_cli("replay", str(as_json), "--json", "-").stdout,
        run_cli("replay", str(jsonl), "--json", "-").stdout,
        run_cli("replay", "-", "--json", "-", input=jsonl.read_text()).stdout,
        run_cli("replay", "-", "--json", "-", input=source.read_text()).stdout,
    ]
    # Big JSON and YAML files are read by jitted scans into columns: the same report.
    monkeypatch.setattr(kvmgen.trace.formats.scan, "SCAN_MIN_BYTES", 0)
    reports.append(run_cli("replay", str(as_json), "--json", "-").stdout)
    reports.append(run_cli("replay", str(source), "--json", "-").stdout)
    compiled = tmp_path / "t.kvmc"
    assert run_cli("compile", str(as_json), "-o", str(compiled)).exit_code == 0
    reports.append(run_cli("replay", str(compiled), "--json", "-").stdout)
    assert len(set(reports)) == 1
    assert json.loads(reports[0])["runs"]


def _ctrl_c_at_progress(monkeypatch, *, while_reading: bool) -> None:
    """Make the progress bar raise KeyboardInterrupt, as Ctrl-C would, at its first update."""
    import kvmgen.cli.common as app

    def interrupting(quiet):
        def tick(label, done, total):
            if while_reading or not label.startswith("reading"):
                raise KeyboardInterrupt

        return tick

    monkeypatch.setattr(app, "progress_callback", interrupting)


def test_ctrl_c_writes_a_partial_report_and_exits_130(run_cli, tmp_path, monkeypatch):
    _ctrl_c_at_progress(monkeypatch, while_reading=False)
    out = tmp_path / "partial.json"
    result = run_cli(
        "replay", str(TRACES / "vga-dirty-log.yaml"), "--json", str(out), "-q", "--engine"
    )
    assert result.exit_code == 130
    assert "interrupted after" in result.stderr and "partial" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and doc["runs"][0]["partial"] is True
    assert len(doc["runs"]) == 1


def test_sigterm_writes_a_partial_report_and_exits_143(run_cli, tmp_path, monkeypatch):
    """SIGTERM (a CI runner's cancel) is honoured like Ctrl-C, between two blocks."""
    import os
    import signal

    import kvmgen.cli.common as common

    def terminating(quiet):
        def tick(label, done, total):
            if not label.startswith("reading"):
                os.kill(os.getpid(), signal.SIGTERM)

        return tick

    monkeypatch.setattr(common, "progress_callback", terminating)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "partial.json"
    result = run_cli(
        "replay", str(TRACES / "vga-dirty-log.yaml"), "--json", str(out), "-q", "--engine"
    )
    assert result.exit_code == 143, result.stderr
    assert "terminated (SIGTERM) after" in result.stderr and "partial" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["partial"] is True and doc["runs"][0]["partial"] is True
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI put the old handler back


def test_sigterm_in_a_subprocess_exits_143(tmp_path):
    """A real process and a real signal: the partial report is written, exit 143."""
    import subprocess
    import sys

    out = tmp_path / "r.json"
    code = (
        "import os, signal, sys\n"
        "import kvmgen.cli.common as common\n"
        "def tick(label, done, total):\n"
        "    if not label.startswith('reading'):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "common.progress_callback = lambda quiet: tick\n"
        "from kvmgen.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [
        sys.executable,
        "-c",
        code,
        "replay",
        str(TRACES / "vga-dirty-log.yaml"),
        "--json",
        str(out),
        "-q",
        "--engine",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr and json.loads(out.read_text())["partial"] is True


def test_ctrl_c_while_reading_exits_130_without_a_report(run_cli, tmp_path, monkeypatch):
    _ctrl_c_at_progress(monkeypatch, while_reading=True)
    out = tmp_path / "none.json"
    result = run_cli(
        "replay", str(TRACES / "vga-dirty-log.yaml"), "--json", str(out), "-q", "--engine"
    )
    assert result.exit_code == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_no_progress_bar_without_a_terminal(monkeypatch):
    from kvmgen.report.console import progress_callback

    monkeypatch.delenv("CI", raising=False)
    assert progress_callback(quiet=False) is None  # pytest's stderr is not a terminal
    assert progress_callback(quiet=True) is None


def test_compile_notice_says_so_once_and_only_when_enabled(capsys):
    from numba import njit

    from kvmgen.report.console import compile_notice

    def fresh():
        return njit(lambda x: x + 1)  # a new function: numba compiles it on first call

    with compile_notice(True):
        fresh()(1)
        fresh()(2)
    assert capsys.readouterr().err.count("compiling the numba kernels") == 1
    with compile_notice(False):
        fresh()(1)
    assert capsys.readouterr().err == ""
