"""Timelines, plots and the HTML report: positions are right and the files are real images."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kvmgen.analysis.html_report import render_html
from kvmgen.analysis.plot import plot_format, session_plot, sweep_plot
from kvmgen.analysis.sweep import run_sweep
from kvmgen.analysis.timeline import curves, walk_bumps
from kvmgen.errors import UsageError
from kvmgen.inputs import open_trace
from kvmgen.model.eras import ERAS
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import parse_policy
from kvmgen.session import resolve_target, run_session
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")
SAMPLES = sorted(p.name for p in TRACES.glob("*.yaml"))


def _session(name: str, kernel: str | None = None, policies=None):
    trace = open_trace(TRACES / name)
    return run_session(trace, [resolve_target(trace, kernel, None)], policies=policies)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 600 <= width <= 4000 and 200 <= height <= 6000
    assert 15_000 < len(data) < 5_000_000


def assert_svg(path: Path) -> None:
    data = path.read_bytes()
    root = ET.fromstring(data)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert 15_000 < len(data) < 10_000_000
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 20


def test_walk_places_every_bump():
    trace = open_trace(TRACES / "e5-undetected-wrap.yaml")
    walk = walk_bumps(trace)
    assert walk.bumps[:2] == [1 + 262_143 + 1, 1 + 40]
    assert walk.updates == 3
    assert walk.x_of_bump(1, 1) == 2  # AS 1's create is the second bump of the trace
    assert walk.x_of_bump(1, 41) == 42  # the 40 raw AS 1 bumps follow
    assert walk.x_of_event(len(trace.events) - 1) == walk.total


def test_walk_counts_zero_bump_updates():
    text = (
        b"kvmgen: 1\nevents:\n  - {op: create, slot: 0, gfn: 0, pages: 4}\n"
        b"  - {op: flags, slot: 0, flags: 0, repeat: 3}\n"
        b"  - {op: move, slot: 0, gfn: 0}\n  - {op: flags, slot: 0, repeat: 5}\n"
        b"  - {op: delete, slot: 0}\n"
    )
    walk = walk_bumps(open_trace(text, name="z.yaml"))
    assert (walk.updates, walk.bumps[0]) == (11, 1 + 0 + 0 + 5 + 2)


def test_curves_follow_the_generation_math():
    trace = open_trace(TRACES / "wrap-probe-6.18.yaml")
    session = _session("wrap-probe-6.18.yaml")
    spec = session.runs[0].spec
    (curve,) = curves(walk_bumps(trace), spec)
    finite = [(x, y) for x, y in zip(curve.xs, curve.ys, strict=True) if x == x]
    assert finite[-1] == (
        1_100_000,
        GenMath(spec).nominal(session.runs[0].result.final_generation[0]),
    )
    # Two wraps: two breaks in the sawtooth, each from the top to 0.
    assert sum(1 for x in curve.xs if x != x) == 2
    assert max(y for _, y in finite) == (1 << 19) - 1


def test_plot_suffix():
    assert plot_format("a.SVG") == "svg" and plot_format("b.png") == "png"
    with pytest.raises(UsageError, match=r"\.svg or \.png"):
        plot_format("c.pdf")


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_plots_to_png(tmp_path, name):
    out = tmp_path / "t.png"
    out.write_bytes(session_plot(_session(name), "png"))
    assert_png(out)


def test_svg_is_valid_and_deterministic(tmp_path):
    session = _session("e5-undetected-wrap.yaml")
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    a.write_bytes(session_plot(session, "svg"))
    b.write_bytes(session_plot(session, "svg"))
    assert_svg(a)
    assert a.read_bytes() == b.read_bytes()


def test_literal_plot_and_sweep_plot(tmp_path):
    policies = [parse_policy(p) for p in ("literal:150", "150", "none")]
    session = _session("qemu-boot-smm.yaml", "6.8", policies)
    (tmp_path / "l.svg").write_bytes(session_plot(session, "svg"))
    text = (tmp_path / "l.svg").read_text()
    assert "bit 63" in text  # the legend names the shaded windows
    trace = open_trace(TRACES / "seed-stale-gen0.yaml")
    sweep = run_sweep(trace, ERAS["E3"], 1, biases=[0, 2, 4, 6])
    (tmp_path / "s.png").write_bytes(sweep_plot(sweep, "png"))
    assert_png(tmp_path / "s.png")


def test_html_report_is_self_contained():
    policies = [parse_policy(p) for p in ("historical", "none", "literal:150")]
    session = _session("qemu-boot-smm.yaml", "6.8", policies)
    page = render_html(session, command="kvmgen report x")
    assert page.startswith("<!DOCTYPE html>")
    for part in ("<h2>Runs</h2>", "<svg", "Literal bias: bit 63 at rest", "Unit costs", "verdict"):
        assert part in page
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    assert page.count("<table>") >= 3
