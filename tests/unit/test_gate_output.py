"""JUnit XML and Markdown renderings of a check outcome."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kvmgen.gate.baseline import TraceReport
from kvmgen.gate.check import TraceRun, evaluate
from kvmgen.gate.junit import classname, junit_xml
from kvmgen.gate.limits import MAX, MAX_REGRESSION, Limit
from kvmgen.gate.markdown import check_markdown
from kvmgen.report.document import REPORT_VERSION
from tests.unit.gate_reports import SHA_A, SHA_B, make_report, make_run

HIST = {"bias": 150, "policies": ("historical",)}
NONE = {"bias": 0, "policies": ("none",)}


def _outcome():
    a_base = make_report([make_run(**HIST, wraps=1), make_run(**NONE)], sha=SHA_A)
    a_now = make_report([make_run(**HIST, wraps=2), make_run(**NONE)], sha=SHA_A)
    b_now = make_report(
        [make_run("E12", kernel="6.8", bias=0, policies=("historical", "none"), wraps=0)],
        sha=SHA_B,
        skipped=[{"era": "E0", "kernel": None, "reason": "one address space"}],
    )
    baseline = [TraceReport("traces/a.yaml", SHA_A, REPORT_VERSION, a_base)]
    limits = [Limit(MAX, "harmful_stale_hits", 0), Limit(MAX_REGRESSION, "wraps", 0)]
    runs = [TraceRun("traces/a.yaml", a_now, 0.25), TraceRun("traces/b|c.yaml", b_now, 0.5)]
    return evaluate(runs, limits, baseline=baseline, baseline_path="base.json")


def test_junit_one_case_per_trace_run_limit():
    root = ET.fromstring(junit_xml(_outcome()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["traces/a.yaml", "traces/b|c.yaml"]
    a, b = suites
    # a: 1 baseline case + 2 runs x 2 limits; b: 1 baseline + 1 run x 2 limits + 1 skipped era
    assert len(a.findall("testcase")) == 5 and len(b.findall("testcase")) == 4
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("9", "1", "3")
    assert a.get("failures") == "1" and a.get("time") == "0.250"
    (failed,) = [c for c in a.findall("testcase") if c.find("failure") is not None]
    assert failed.get("name") == "E5 (4.19), historical, bias 150: wraps <= baseline +0%"
    assert failed.get("classname") == "kvmgen.traces.a"
    message = failed.find("failure").get("message")
    assert "wraps = 2 vs baseline 1" in message
    skipped = [c for c in b.findall("testcase") if c.find("skipped") is not None]
    assert {c.get("name") for c in skipped} == {
        "baseline",
        "E12 (6.8), historical/none, bias 0: wraps <= baseline +0%",
        "E0 (up to 3.10): not run",
    }
    props = {p.get("name"): p.get("value") for p in b.iter("property")}
    assert props == {"sha256": SHA_B, "baseline": "missing"}


def test_classname():
    assert classname("traces/qemu-boot-smm.yaml") == "kvmgen.traces.qemu-boot-smm"
    assert classname("/abs/v1.2/x.json") == "kvmgen.abs.v1_2.x"
    assert classname("../up/t.yaml") == "kvmgen.up.t"


def test_markdown_lists_failures_first():
    text = check_markdown(_outcome())
    lines = text.splitlines()
    assert lines[0] == "## kvmgen check ❌ failed"
    failures = text.index("### Failures")
    details = text.index("<details>")
    assert failures < details
    failure_rows = text[failures:details].strip().splitlines()[4:]
    assert failure_rows == [
        "| `traces/a.yaml` | E5 (4.19), historical, bias 150 | wraps = 2 vs baseline 1 "
        "(+100.00%), above the max regression +0% |"
    ]
    assert "`traces/b\\|c.yaml`" in text
    assert (
        "- `traces/b|c.yaml`: E0 (up to 3.10): not run: E0 (up to 3.10) cannot run this trace"
        in text
    )
    assert "Baseline: `base.json`." in text


def test_markdown_passed():
    doc = make_report([make_run(**HIST)])
    outcome = evaluate([TraceRun("t.yaml", doc)], [Limit(MAX, "wraps", 0)])
    text = check_markdown(outcome)
    assert text.startswith("## kvmgen check ✅ passed\n")
    assert "### Failures" not in text
    row = "| `t.yaml` | E5 (4.19), historical, bias 150 | wraps | 0 | ≤ 0 | ✅ passed |"
    assert row in text.splitlines()
    assert "| baseline |" not in text
