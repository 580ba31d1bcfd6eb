"""JUnit XML for ``kvmgen check --junit FILE``: one test case per trace x run x limit.

Layout (what Jenkins, GitLab and the GitHub test-report actions read): one
``<testsuite>`` per trace, named by its path; each limit on each run is a
``<testcase>`` whose ``classname`` is ``kvmgen.`` plus the trace path (dots for
slashes, no suffix) and whose ``name`` is the run and the condition. A failed
limit carries ``<failure>``; a limit that could not be evaluated (no baseline
run) carries ``<skipped>``. With a baseline, each trace also has a ``baseline``
case, and eras that could not run the trace are skipped cases.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

from kvmgen.gate.check import FAILED, SKIPPED, CheckOutcome, Result


def classname(trace: str) -> str:
    """``traces/qemu-boot-smm.yaml`` -> ``kvmgen.traces.qemu-boot-smm``."""
    path = PurePosixPath(trace.replace("\\", "/"))
    parts = [p for p in path.with_suffix("").parts if p not in ("/", ".", "..")]
    return ".".join(["kvmgen", *(p.replace(".", "_") for p in parts)])


def _case(suite: ET.Element, result: Result) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=classname(result.trace), name=result.name, time="0"
    )
    if result.status == FAILED:
        failure = ET.SubElement(case, "failure", message=result.message, type=result.check)
        failure.text = result.describe()
    elif result.status == SKIPPED:
        ET.SubElement(case, "skipped", message=result.message)
    else:
        out = ET.SubElement(case, "system-out")
        out.text = result.message


def junit_xml(outcome: CheckOutcome) -> bytes:
    """The whole JUnit document as UTF-8 bytes with an XML declaration."""
    root = ET.Element("testsuites", name="kvmgen check")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    elapsed = 0.0
    for trace in outcome.traces:
        results = [r for r in outcome.results if r.trace == trace.path]
        counts = {
            "tests": len(results),
            "failures": sum(1 for r in results if r.status == FAILED),
            "skipped": sum(1 for r in results if r.status == SKIPPED),
        }
        suite = ET.SubElement(
            root,
            "testsuite",
            name=trace.path,
            tests=str(counts["tests"]),
            failures=str(counts["failures"]),
            errors="0",
            skipped=str(counts["skipped"]),
            time=f"{trace.seconds:.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="sha256", value=trace.sha256)
        ET.SubElement(props, "property", name="baseline", value=trace.baseline)
        for result in results:
            _case(suite, result)
        for key in totals:
            totals[key] += counts[key]
        elapsed += trace.seconds
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    root.set("time", f"{elapsed:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
