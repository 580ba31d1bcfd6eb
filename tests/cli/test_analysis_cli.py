"""forecast, search, sweep, report, --plot and --bias literal:B through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")


def test_help_lists_the_analysis_commands_without_heavy_imports(run_cli):
    result = run_cli("--help")
    for name in ("forecast", "search", "sweep", "report"):
        assert name in result.output
    code = (
        "import sys; from kvmgen.cli import main; main(['--help']); main(['search', '--help']);"
        "print('numba' in sys.modules or 'matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_forecast_rate_json(run_cli):
    result = run_cli("forecast", "--rate", "30/s", "--kernel", "4.19", "--json", "-")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    runs = {tuple(r["policies"]): r for r in doc["runs"]}
    hist = runs[("historical",)]["spaces"]
    assert hist[0]["first_wrap"] == {
        "bump": 38,
        "update": 38,
        "seconds": pytest.approx(38 / 30),
        "detected": False,
        "zap_bumps": [],
    }
    assert hist[1]["first_wrap"]["detected"] is True
    assert runs[("none",)]["spaces"][1]["period"]["later_wraps_detected"] is False


def test_forecast_table_and_literal_notes(run_cli):
    result = run_cli(
        "forecast",
        "--rate",
        "2000/min",
        "--era",
        "E12",
        "--address-spaces",
        "1",
        "--bias",
        "none,literal:150",
    )
    assert result.exit_code == 0
    assert "524,288" in result.output and "4.37 h" in result.output
    assert "bit 63 set from VM creation" in result.output


def test_forecast_from_timestamped_trace(run_cli, tmp_path):
    trace = tmp_path / "t.yaml"
    trace.write_text(
        "kvmgen: 1\nvm: {kernel: '6.18', address_spaces: 1}\nevents:\n"
        "  - {op: create, slot: 0, gfn: 0, pages: 1, t: 0}\n"
        "  - {op: flags, slot: 0, repeat: 999, t: 10.0}\n"
    )
    result = run_cli("forecast", str(trace), "--json", "-")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["source"] == "trace" and doc["updates_per_second"] == 100.0
    space = doc["runs"][0]["spaces"][0]
    assert space["first_wrap"]["seconds"] == pytest.approx(5242.88)


@pytest.mark.parametrize(
    "args",
    [
        ("forecast", "--kernel", "6.8"),
        ("forecast", "--rate", "fast", "--kernel", "6.8"),
        ("forecast", "--rate", "3/s"),
        ("search", "--goal", "harmful"),
        ("search", "--kernel", "6.8", "--era", "E12", "--goal", "harmful"),
        ("search", "--kernel", "4.1", "--address-spaces", "2", "--goal", "harmful"),
        ("sweep", str(TRACES / "seed-stale-gen0.yaml")),
        ("sweep", str(TRACES / "seed-stale-gen0.yaml"), "--bias", "9:1"),
        ("sweep", str(TRACES / "seed-stale-gen0.yaml"), "--width", "1:3"),
        ("replay", str(TRACES / "seed-stale-gen0.yaml"), "--plot", "x.pdf"),
        ("replay", str(TRACES / "seed-stale-gen0.yaml"), "--bias", "literal:x"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(run_cli, args):
    result = run_cli(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kvmgen: error:")


def test_search_found_replays_through_kvmgen_replay(run_cli, tmp_path):
    out = tmp_path / "found.yaml"
    result = run_cli(
        "search",
        "--kernel",
        "6.8",
        "--address-spaces",
        "1",
        "--bias",
        "none",
        "--goal",
        "harmful",
        "-o",
        str(out),
    )
    assert result.exit_code == 0
    assert "# found: 4 events (2 updates), the shortest within the bound" in result.output
    # the replay command names the file written, and every count agrees in number
    assert f"# replay: kvmgen replay {out} --kernel 6.8 --bias none" in result.output
    assert "(s)" not in result.output and "1 candidates" not in result.output
    replay = run_cli(
        "replay",
        str(out),
        "--kernel",
        "6.8",
        "--bias",
        "none",
        "--address-spaces",
        "1",
        "--fail-on",
        "harmful",
        "--json",
        "-",
    )
    assert replay.exit_code == 1
    (run,) = json.loads(replay.stdout)["runs"]
    assert run["stale_hits"]["harmful"] >= 1


def test_search_stdout_is_a_trace(run_cli, tmp_path):
    result = run_cli("search", "--era", "E2", "--bias", "none", "--goal", "harmful", "--no-race")
    assert result.exit_code == 0
    path = tmp_path / "t.yaml"
    path.write_text(result.stdout)
    replay = run_cli("replay", str(path), "--bias", "none", "--fail-on", "harmful", "--json", "-")
    assert replay.exit_code == 1  # the header names E2; the hit is there


def test_search_none_says_so_and_exits_1(run_cli):
    result = run_cli(
        "search",
        "--kernel",
        "6.8",
        "--address-spaces",
        "1",
        "--bias",
        "none",
        "--goal",
        "harmful",
        "--no-race",
        "--json",
        "-",
    )
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["found"] is False and doc["exhaustive_through"] == 4
    assert doc["summary"][1].startswith("NONE: no trace of at most 4 events reaches")
    assert doc["candidates_per_second"] > 0


def test_sweep_json_and_plot(run_cli, tmp_path):
    plot = tmp_path / "s.svg"
    result = run_cli(
        "sweep",
        str(TRACES / "seed-stale-gen0.yaml"),
        "--era",
        "E3",
        "--bias",
        "0:300:150",
        "--plot",
        str(plot),
        "--json",
        "-",
    )
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [r["value"] for r in doc["rows"]] == [0, 150, 300]
    assert doc["rows"][0]["metrics"]["harmful_stale_hits"] == 1
    assert plot.stat().st_size > 15_000
    width = run_cli(
        "sweep", str(TRACES / "wrap-probe-6.18.yaml"), "--width", "17:19", "--bias", "none"
    )
    assert width.exit_code == 0 and "generation width" in width.output


def test_replay_and_compare_plot(run_cli, tmp_path):
    png = tmp_path / "r.png"
    result = run_cli("replay", str(TRACES / "e5-undetected-wrap.yaml"), "-q", "--plot", str(png))
    assert result.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    svg = tmp_path / "c.svg"
    result = run_cli(
        "compare", str(TRACES / "qemu-boot-smm.yaml"), "--era", "all", "-q", "--plot", str(svg)
    )
    assert result.exit_code == 0 and b"<svg" in svg.read_bytes()


def test_replay_literal_bias_side_by_side(run_cli):
    result = run_cli(
        "replay", str(TRACES / "qemu-boot-smm.yaml"), "--kernel", "6.8", "--bias", "literal:150"
    )
    assert result.exit_code == 0
    out = result.output
    assert "literal:150" in out and "none, bias 0" in out and "150, bias 150" in out
    assert "bit 63 (update in progress) at rest" in out
    assert "every MMIO check fails" in out


def test_replay_literal_json_keeps_the_schema(run_cli):
    import jsonschema

    from kvmgen.report.json_report import schema

    result = run_cli(
        "replay",
        str(TRACES / "qemu-boot-smm.yaml"),
        "--kernel",
        "6.8",
        "--bias",
        "literal:150",
        "--json",
        "-",
    )
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, schema())
    assert [r["policies"] for r in doc["runs"]] == [["literal:150"], ["none"], ["150"]]


def test_report_writes_html(run_cli, tmp_path):
    out = tmp_path / "r.html"
    result = run_cli("report", str(TRACES / "seed-stale-gen0.yaml"), "-o", str(out))
    assert result.exit_code == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "harmful" in page
