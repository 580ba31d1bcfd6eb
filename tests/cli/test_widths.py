"""Human output at the width it gets: 80 columns, the file width, a wide terminal.

Every table fits (no line longer than the width), no cell is cut to ``…``, no number
is parted from its unit, and prose wraps with its continuation lines indented.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kvmgen.report.console import FILE_WIDTH
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")

VGA = str(TRACES / "vga-dirty-log.yaml")
SMM = str(TRACES / "qemu-boot-smm.yaml")
E5 = str(TRACES / "e5-undetected-wrap.yaml")
CACHE = str(TRACES / "smm-cache-as0.yaml")

COMMANDS = {
    "compare": ["compare", VGA, "--kernel", "3.11,4.19,5.2,6.18"],
    "compare-all": ["compare", SMM, "--era", "all"],
    "forecast": ["forecast", "--rate", "30/s", "--kernel", "4.19,6.18"],
    "sweep": ["sweep", VGA, "--bias", "0:300:50"],
    "replay": ["replay", E5],
    "replay-literal": ["replay", SMM, "--kernel", "6.8", "--bias", "literal:150"],
    "check": ["check", SMM, CACHE, "--max", "harmful_stale_hits=5", "--max", "wraps=1"],
    "costs": ["costs"],
    "eras": ["eras"],
}
# A number and its unit on different lines, inside a table cell or in prose.
PARTED = re.compile(r"\d\s*[│┃]?\s*\n\s*[│┃]?\s*(?:k|M|G|s|h|ms)\b")


def _run(run_cli, monkeypatch, columns: int | None, args: list[str]) -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(columns))
    result = run_cli(*args)
    assert result.exit_code in (0, 1), result.stderr
    return result.stdout


def _check_fits(text: str, width: int) -> None:
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, f"{len(too_long)} lines wider than {width}: {too_long[0]!r}"
    assert "…" not in text
    assert not PARTED.search(text), PARTED.search(text)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_80_columns_fit_without_cutting(run_cli, monkeypatch, name):
    _check_fits(_run(run_cli, monkeypatch, 80, COMMANDS[name]), 80)


@pytest.mark.parametrize("name", ["compare", "forecast", "check"])
def test_files_and_pipes_get_the_documented_width(run_cli, monkeypatch, name):
    _check_fits(_run(run_cli, monkeypatch, None, COMMANDS[name]), FILE_WIDTH)


def test_compare_is_one_table_when_wide_and_runs_across_when_narrow(run_cli, monkeypatch):
    wide = _run(run_cli, monkeypatch, 200, COMMANDS["compare"])
    header = next(line for line in wide.splitlines() if "era" in line and "kernels" in line)
    assert "wraps" in header and "cycles" in header  # runs down, every metric across
    narrow = _run(run_cli, monkeypatch, 80, COMMANDS["compare"])
    # Runs go across, several tables of them, named by the run label.
    headers = [line for line in narrow.splitlines() if line.startswith("┃")]
    assert sum(line.count("historical, bias 150") for line in headers) == 2
    assert "│ wrap zaps " in narrow
    assert narrow.count("┏") >= 2


def test_compare_all_names_each_eras_kernels(run_cli, monkeypatch):
    wide = _run(run_cli, monkeypatch, 250, COMMANDS["compare-all"])
    rows = {cells[0]: cells[1] for cells in _table_rows(wide) if cells[0].startswith("E")}
    assert rows["E7"] == "5.4-5.5" and rows["E12"] == "6.8+" and rows["E4"] == "4.2-4.10"
    assert "skipped E0 (up to 3.10):" in wide and "skipped E3 (3.18-4.1):" in wide


def test_prose_wraps_with_a_hanging_indent(run_cli, monkeypatch):
    text = _run(run_cli, monkeypatch, 80, COMMANDS["replay"])
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  update 3, AS 0:"))
    assert lines[start + 1].startswith("    ") and not lines[start + 1].startswith("     ")


def test_check_stacks_under_the_run_label_when_narrow(run_cli, monkeypatch):
    text = _run(run_cli, monkeypatch, 60, COMMANDS["check"])
    _check_fits(text, 60)
    assert "E5 (4.19), historical, bias 150" in text.splitlines()


def test_diff_at_80_columns(run_cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    base = ["check", SMM, CACHE, "-q", "--save-baseline"]
    assert run_cli(*base, "old.json").exit_code == 0
    Path("costs.yaml").write_text("mmio_exit_cycles: 9000\n")
    assert run_cli(*base, "new.json", "--costs", "costs.yaml").exit_code == 0
    text = _run(run_cli, monkeypatch, 80, ["diff", "old.json", "new.json"])
    _check_fits(text, 80)
    assert "25,223,495" in text  # values held to a baseline stay exact


def _table_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        for line in text.splitlines()
        if line.startswith("│")
    ]
