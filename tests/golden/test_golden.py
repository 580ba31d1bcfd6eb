"""Golden reports: every sample trace in traces/ replays to its committed JSON report.

Regenerate after an intended change with ``KVMGEN_REGEN_GOLDEN=1 make test`` and
review the diff. Every report also validates against the shipped JSON Schema, and
the reference model must agree with the engine on every sample.
"""

from __future__ import annotations

import difflib
import os

import jsonschema
import pytest

from kvmgen.inputs import open_trace
from kvmgen.reference.replay import replay_reference
from kvmgen.report.document import build_document
from kvmgen.report.json_report import dumps, schema
from kvmgen.session import resolve_target, run_session
from tests.conftest import ROOT, TRACES

EXPECTED = ROOT / "tests" / "golden" / "expected"
SAMPLES = sorted(p for p in TRACES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))

pytestmark = pytest.mark.usefixtures("warm_engine")


def _report(path):
    trace = open_trace(path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path)
    session = run_session(trace, [resolve_target(trace, None, None)])
    return trace, session, dumps(build_document(session))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_golden_report(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, _, got = _report(path)
    expected_path = EXPECTED / (path.stem + ".json")
    if os.environ.get("KVMGEN_REGEN_GOLDEN"):
        expected_path.write_bytes(got)
    expected = expected_path.read_bytes()
    if got != expected:
        diff = difflib.unified_diff(
            expected.decode().splitlines(),
            got.decode().splitlines(),
            "expected",
            "got",
            lineterm="",
            n=2,
        )
        pytest.fail("report differs from the golden file:\n" + "\n".join(list(diff)[:80]))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_golden_report_matches_schema(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _, _, got = _report(path)
    import json

    jsonschema.validate(json.loads(got), schema())


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_reference_agrees_on_sample(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    trace, session, _ = _report(path)
    for run in session.runs:
        assert replay_reference(trace, run.spec) == run.result, run.spec.label
