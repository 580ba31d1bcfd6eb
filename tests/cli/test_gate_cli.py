"""kvmgen check / diff / schema through click's runner and in real subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import yaml

from kvmgen.gate.baseline import baseline_schema
from kvmgen.gate.check import check_schema
from kvmgen.gate.config import load_config
from kvmgen.gate.metrics import METRICS
from kvmgen.report.document import REPORT_VERSION
from kvmgen.report.json_report import schema
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("warm_engine")

SMM = "traces/smm-cache-as0.yaml"  # E12 (6.8): 3 harmful stale hits, no zaps
QEMU = "traces/qemu-boot-smm.yaml"  # E5 (4.19): no harmful stale hits
SEEDED_HIT = """\
  - {op: access, gfn: 0x200000, as: 1, vcpu: 0, note: "seeded: MMIO probe in SMM"}
  - {op: create, slot: 30, as: 1, gfn: 0x200000, pages: 1, note: "seeded: RAM in SMM only"}
  - {op: access, gfn: 0x200000, as: 1, vcpu: 0, note: "seeded: stale vCPU cache hit"}
"""
SEEDED_ZAP = "  - {op: delete, slot: 9, as: 1, note: 'seeded: close SMRAM'}\n"

README = (ROOT / "README.md").read_text(encoding="utf-8")
GATE_SECTION = README[README.index("## CI regression gate") : README.index("## Development")]


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Run from a scratch directory holding a ``traces`` link, like the README tests."""
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _copy(workdir: Path, name: str, extra: str = "") -> str:
    target = workdir / Path(name).name
    shutil.copyfile(ROOT / name, target)
    if extra:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(extra)
    return target.name


def _kvmgen(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "kvmgen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )


# --- exit codes and messages -------------------------------------------------------------


def test_check_passes_and_fails(run_cli):
    ok = run_cli("check", QEMU, "--max", "harmful_stale_hits=0")
    assert ok.exit_code == 0, ok.stderr
    assert "kvmgen check PASSED" in ok.stdout
    assert ok.stderr == ""
    bad = run_cli("check", QEMU, SMM, "--max", "harmful_stale_hits=0", "-q")
    assert bad.exit_code == 1
    assert bad.stdout == ""
    (line,) = bad.stderr.strip().splitlines()
    assert line == (
        "kvmgen: check failed: traces/smm-cache-as0.yaml: E12 (6.8), historical/none, bias 0: "
        "harmful_stale_hits = 3, above the max 0"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([QEMU, "--max", "harmful=0"], "unknown metric 'harmful'; valid metrics: wrap_zaps"),
        ([QEMU, "--max-regression", "nope=5", "--baseline", "b.json"], "unknown metric 'nope'"),
        ([QEMU, "--max", "wraps"], "expected METRIC=VALUE"),
        ([QEMU, "--max", "wraps=-2"], "expected a number >= 0"),
        ([QEMU, "--max", "wraps=1%"], "expected a number >= 0"),
        ([QEMU], "nothing to check"),
        (["--max", "wraps=0"], "check needs TRACE"),
        ([QEMU, "--max-regression", "wraps=0"], "--max-regression needs --baseline"),
        ([QEMU, "--baseline", "b.json", "--max", "wraps=0"], "--baseline needs --max-regression"),
        ([QEMU, "--baseline", "missing.json", "--max-regression", "all=0"], "no such file"),
        (["missing.yaml", "--max", "wraps=0"], "missing.yaml: no such file"),
        ([QEMU, "--max", "wraps=0", "--kernel", "4.1"], "address spaces 2: kernel 4.1 has 1"),
        ([QEMU, "--max", "wraps=0", "--bias", "x"], "--bias 'x'"),
        ([QEMU, "--max", "wraps=0", "--config", "c.yaml", "--no-config"], "contradict"),
        ([QEMU, "--max", "wraps=0", "--config", "nope.yaml"], "--config nope.yaml: no such file"),
        ([QEMU, "--max", "wraps=0", "--json", "-", "--markdown", "-"], "both use standard output"),
        ([QEMU, "--max", "wraps=0", "--junit", "no/such/dir/j.xml"], "--junit no/such/dir/j.xml"),
        ([QEMU, "--era", "E0,E1", "--max", "wraps=0"], "no chosen era can run this trace"),
    ],
)
def test_check_usage_errors_are_one_line_exit_2(run_cli, args, needle):
    Path("b.json").write_text(json.dumps({"kvmgen_report": 1, "trace": {"sha256": "x"}}))
    result = run_cli("check", *args)
    assert result.exit_code == 2, result.stderr
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("kvmgen: error: ")


def test_bad_baseline_file_is_exit_2(run_cli):
    Path("b.json").write_text("{\n  oops")
    result = run_cli("check", QEMU, "--baseline", "b.json", "--max-regression", "all=0")
    assert result.exit_code == 2
    assert "b.json:2:3: not valid JSON" in result.stderr


def test_unknown_metric_lists_every_name(run_cli):
    result = run_cli("check", QEMU, "--max", "zaps=0")
    for metric in METRICS:
        assert metric in result.stderr


# --- the seeded regressions ---------------------------------------------------------------


def test_seeded_harmful_stale_hit_fails_and_the_original_passes(run_cli, workdir):
    assert run_cli("check", QEMU, "--max", "harmful_stale_hits=0", "-q").exit_code == 0
    seeded = _copy(workdir, QEMU, SEEDED_HIT)
    result = run_cli("check", seeded, "--max", "harmful_stale_hits=0", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2  # both bias runs hit the stale vCPU cache
    assert all("harmful_stale_hits = 1, above the max 0" in line for line in lines)
    assert "E5 (4.19), historical, bias 150" in lines[0] and "E5 (4.19), none, bias 0" in lines[1]


def test_seeded_zap_against_a_baseline(run_cli, workdir):
    trace = _copy(workdir, SMM)
    assert run_cli("check", trace, "--save-baseline", "base.json", "-q").exit_code == 0
    gate = ["--baseline", "base.json", "--max-regression", "all=0"]
    unchanged = run_cli("check", trace, *gate, "-q")
    assert unchanged.exit_code == 0, unchanged.stderr

    with open(trace, "a", encoding="utf-8") as handle:
        handle.write(SEEDED_ZAP)
    # the edited trace no longer matches the baseline's content: reported, not compared
    changed = run_cli("check", trace, *gate, "-q")
    assert changed.exit_code == 1
    (line,) = changed.stderr.strip().splitlines()
    assert "saved for other content of this trace" in line
    # compared anyway: the new memslot-flush zap is named
    compared = run_cli("check", trace, *gate, "--allow-changed-traces", "-q")
    assert compared.exit_code == 1
    failed = {re.search(r"bias \d+: (\w+) = ", line)[1] for line in compared.stderr.splitlines()}
    assert failed == {"memslot_flush_zaps", "sptes_dropped", "invalidation_cycles", "total_cycles"}
    assert "memslot_flush_zaps = 1 vs baseline 0 (up from 0)" in compared.stderr
    # and an absolute limit catches it without any baseline
    absolute = run_cli("check", trace, "--max", "memslot_flush_zaps=0", "-q")
    assert absolute.exit_code == 1 and "memslot_flush_zaps = 1, above the max 0" in absolute.stderr


def test_cost_model_change_is_a_regression(run_cli, workdir):
    assert run_cli("check", QEMU, SMM, "--save-baseline", "base.json", "-q").exit_code == 0
    Path("costs.yaml").write_text("memslot_bump_us: 34\n")
    gate = ["--baseline", "base.json", "--max-regression", "total_cycles=10"]
    small = run_cli("check", QEMU, SMM, *gate, "--costs", "costs.yaml", "-q")
    assert small.exit_code == 0, small.stderr  # 33 -> 34 us per bump: about +3 %
    Path("costs.yaml").write_text("memslot_bump_us: 400\n")
    big = run_cli("check", QEMU, SMM, *gate, "--costs", "costs.yaml", "-q", "--json", "-")
    assert big.exit_code == 1
    document = json.loads(big.stdout)
    jsonschema.validate(document, check_schema())
    failed = [r for r in document["results"] if r["status"] == "failed"]
    assert {r["metric"] for r in failed} == {"total_cycles"}
    assert all(r["value"] > r["baseline"] * 1.1 for r in failed)


# --- outputs ------------------------------------------------------------------------------


def test_baseline_is_the_replay_report(run_cli):
    assert run_cli("check", SMM, "--save-baseline", "base.json", "-q").exit_code == 0
    replay = run_cli("replay", SMM, "--json", "-")
    base = json.loads(Path("base.json").read_bytes())
    jsonschema.validate(base, baseline_schema())
    (entry,) = base["traces"]
    assert entry["path"] == SMM
    assert entry["report"] == json.loads(replay.stdout)
    jsonschema.validate(entry["report"], schema())
    # a replay --json report works as a baseline as it is
    Path("r.json").write_text(replay.stdout)
    ok = run_cli("check", SMM, "--baseline", "r.json", "--max-regression", "all=0", "-q")
    assert ok.exit_code == 0, ok.stderr


def test_other_report_version_fails_as_such(run_cli):
    replay = json.loads(run_cli("replay", SMM, "--json", "-").stdout)
    replay["kvmgen_report"] = 0
    Path("old.json").write_text(json.dumps(replay))
    result = run_cli("check", SMM, "--baseline", "old.json", "--max-regression", "all=0", "-q")
    assert result.exit_code == 1
    expected = f"holds kvmgen report version 0 and this kvmgen writes version {REPORT_VERSION}"
    assert expected in result.stderr


def test_junit_markdown_json_files(run_cli):
    result = run_cli(
        "check",
        QEMU,
        SMM,
        "--max",
        "harmful_stale_hits=0",
        "--max",
        "wrap_zaps=1",
        "--junit",
        "j.xml",
        "--markdown",
        "s.md",
        "--json",
        "c.json",
        "-q",
    )
    assert result.exit_code == 1
    root = ET.parse("j.xml").getroot()
    cases = root.findall("testsuite/testcase")
    assert len(cases) == (2 + 1) * 2  # (qemu 2 runs + smm 1 run) x 2 limits
    assert root.get("failures") == "1"
    (failed,) = [c for c in cases if c.find("failure") is not None]
    assert failed.get("classname") == "kvmgen.traces.smm-cache-as0"
    assert "harmful_stale_hits" in failed.get("name")
    markdown = Path("s.md").read_text(encoding="utf-8")
    assert markdown.startswith("## kvmgen check ❌ failed")
    assert "harmful_stale_hits = 3, above the max 0" in markdown
    document = json.loads(Path("c.json").read_bytes())
    jsonschema.validate(document, check_schema())
    assert document["summary"]["failed"] == 1 and document["passed"] is False


def test_markdown_to_stdout_moves_the_table_to_stderr(run_cli):
    result = run_cli("check", QEMU, "--max", "wraps=2", "--markdown", "-")
    assert result.exit_code == 0
    assert result.stdout.startswith("## kvmgen check ✅ passed")
    assert "kvmgen check PASSED" in result.stderr


def test_compare_style_targets_list_skipped_eras(run_cli):
    result = run_cli("check", SMM, "--era", "E0,E12", "--max", "wraps=0", "--junit", "j.xml")
    assert result.exit_code == 0, result.stderr
    skipped = [c for c in ET.parse("j.xml").iter("testcase") if c.find("skipped") is not None]
    assert [c.get("name") for c in skipped] == ["E0 (up to 3.10): not run"]


# --- config ---------------------------------------------------------------------------------


def test_pyproject_config_and_command_line_override(run_cli, workdir):
    Path("pyproject.toml").write_text(
        '[tool.kvmgen.check]\ntraces = ["traces/smm-cache-as0.yaml"]\n'
        "max = {harmful_stale_hits = 0, wraps = 0}\n"
    )
    from_config = run_cli("check", "-q")
    assert from_config.exit_code == 1 and "harmful_stale_hits = 3" in from_config.stderr
    overridden = run_cli("check", "-q", "--max", "harmful_stale_hits=3")
    assert overridden.exit_code == 0, overridden.stderr
    ignored = run_cli("check", QEMU, "--no-config", "--max", "mmio_slow_paths=100", "-q")
    assert ignored.exit_code == 0
    Path("gate.yaml").write_text("max: {harmful_stale_hits: 3}\n")
    yaml_config = run_cli("check", SMM, "--config", "gate.yaml", "-q")
    assert yaml_config.exit_code == 0, yaml_config.stderr
    Path("bad.yaml").write_text("max: {harmful: 3}\n")
    bad = run_cli("check", SMM, "--config", "bad.yaml")
    assert bad.exit_code == 2 and "bad.yaml: max: unknown metric 'harmful'" in bad.stderr


# --- diff and schema -----------------------------------------------------------------------


def test_diff(run_cli):
    assert run_cli("check", QEMU, SMM, "--save-baseline", "old.json", "-q").exit_code == 0
    Path("costs.yaml").write_text("mmio_exit_cycles: 9000\n")
    args = ["check", QEMU, SMM, "--costs", "costs.yaml", "--save-baseline", "new.json", "-q"]
    assert run_cli(*args).exit_code == 0
    same = run_cli("diff", "old.json", "old.json", "--fail-on-change")
    assert same.exit_code == 0 and "no changes: 3 runs of 2 traces compared" in same.stdout
    table = run_cli("diff", "old.json", "new.json")
    assert table.exit_code == 0
    assert "total_cycles" in table.stdout and "25,223,495" in table.stdout
    failing = run_cli("diff", "old.json", "new.json", "--fail-on-change", "--markdown")
    assert failing.exit_code == 1
    rows = [line for line in failing.stdout.splitlines() if line.startswith("| `traces/")]
    assert {line.split(" | ")[2] for line in rows} == {"total_cycles", "invalidation_cycles"}
    only = run_cli("diff", "old.json", "new.json", "--metric", "wraps", "--fail-on-change")
    assert only.exit_code == 0
    bad = run_cli("diff", "old.json", "new.json", "--metric", "zaps")
    assert bad.exit_code == 2 and "unknown metric 'zaps'" in bad.stderr
    missing = run_cli("diff", "old.json", "nope.json")
    assert missing.exit_code == 2 and "NEW nope.json: no such file" in missing.stderr


def test_schema_command(run_cli):
    result = run_cli("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema()
    assert json.loads(run_cli("schema", "check").stdout) == check_schema()
    assert json.loads(run_cli("schema", "baseline").stdout) == baseline_schema()
    bad = run_cli("schema", "nope")
    assert bad.exit_code == 2 and "expected one of report, check, baseline" in bad.stderr


# --- real subprocesses ------------------------------------------------------------------------


def test_subprocess_exit_codes(workdir):
    # --reference keeps numba out of these processes; the README tests run the engine
    gate = ["--max", "harmful_stale_hits=0", "-q", "--reference"]
    ok = _kvmgen("check", QEMU, *gate, cwd=workdir)
    assert ok.returncode == 0, ok.stderr
    seeded = _copy(workdir, QEMU, SEEDED_HIT)
    fail = _kvmgen("check", seeded, *gate, "--save-baseline", "b.json", cwd=workdir)
    assert fail.returncode == 1 and "harmful_stale_hits = 1, above the max 0" in fail.stderr
    usage = _kvmgen("check", QEMU, "--max", "bogus=1", cwd=workdir)
    assert usage.returncode == 2 and "unknown metric 'bogus'" in usage.stderr
    assert "Traceback" not in ok.stderr + fail.stderr + usage.stderr
    diff = _kvmgen("diff", "b.json", "b.json", "--fail-on-change", cwd=workdir)
    assert diff.returncode == 0, diff.stderr
    schema_out = _kvmgen("schema", cwd=workdir)
    assert schema_out.returncode == 0 and json.loads(schema_out.stdout) == schema()


def test_gate_help_does_not_import_numba():
    code = (
        "import sys; from kvmgen.cli import main; "
        "[main([c, '--help']) for c in ('check', 'diff', 'schema')]; "
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")
    assert "--max-regression" in out.stdout and "--fail-on-change" in out.stdout


# --- the README section runs as printed ----------------------------------------------------------


def _block(kind: str) -> str:
    (block,) = re.findall(rf"```{kind}\n(.*?)```", GATE_SECTION, flags=re.S)
    return block


def _shell_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["GITHUB_STEP_SUMMARY"] = str(workdir / "step-summary.md")
    return env


def test_readme_shell_lines_run_as_printed(workdir):
    done = subprocess.run(
        ["bash", "-e", "-c", _block("sh")],
        cwd=workdir,
        env=_shell_env(workdir),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "no changes" in done.stdout
    jsonschema.validate(json.loads(Path("kvmgen-baseline.json").read_bytes()), baseline_schema())


def test_readme_github_actions_job_runs_as_printed(workdir):
    workflow = yaml.safe_load(_block("yaml"))
    (job,) = workflow["jobs"].values()
    steps = [s["run"] for s in job["steps"] if s.get("run", "").startswith("kvmgen ")]
    assert steps
    for command in steps:
        done = subprocess.run(
            ["bash", "-e", "-c", command],
            cwd=workdir,
            env=_shell_env(workdir),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    uploaded = next(s for s in job["steps"] if "upload-artifact" in s.get("uses", ""))
    root = ET.parse(workdir / uploaded["with"]["path"]).getroot()
    assert int(root.get("tests")) > 0 and root.get("failures") == "0"
    summary = (workdir / "step-summary.md").read_text(encoding="utf-8")
    assert summary.startswith("## kvmgen check ✅ passed")


def test_readme_config_example_is_valid(workdir):
    table = tomllib.loads(_block("toml"))
    assert "check" in table["tool"]["kvmgen"]
    Path("pyproject.toml").write_text(_block("toml"))
    config = load_config(None, cwd=workdir)
    assert len(config.traces) >= 7
    assert config.baseline == "ci/kvmgen-baseline.json"
    assert config.max_regression["total_cycles"] == 2.5 and config.max_regression["wraps"] == 0


def test_baseline_for_other_runs_is_exit_2_not_a_pass(run_cli):
    saved = run_cli("check", SMM, "--max", "wraps=9", "--save-baseline", "b.json", "-q")
    assert saved.exit_code == 0
    other = run_cli(
        "check", SMM, "--kernel", "5.4", "--baseline", "b.json", "--max-regression", "all=0", "-q"
    )
    assert other.exit_code == 2
    assert "none of the runs checked now is in it" in other.stderr
    same = run_cli("check", SMM, "--baseline", "b.json", "--max-regression", "all=0", "-q")
    assert same.exit_code == 0
