"""Baseline files: write, read back, validate, and match traces."""

from __future__ import annotations

import json

import jsonschema
import pytest

from kvmgen.errors import UsageError
from kvmgen.gate.baseline import (
    baseline_bytes,
    baseline_schema,
    find_report,
    read_reports,
)
from kvmgen.inputs import open_trace
from kvmgen.report.document import REPORT_VERSION, build_document
from kvmgen.report.json_report import dumps, schema
from kvmgen.session import resolve_target, run_session
from tests.conftest import TRACES
from tests.unit.gate_reports import SHA_A, SHA_B, make_report, make_run

pytestmark = pytest.mark.usefixtures("warm_engine")


@pytest.fixture(scope="module")
def real_reports():
    out = []
    for name in ("smm-cache-as0.yaml", "qemu-boot-smm.yaml"):
        trace = open_trace(TRACES / name)
        session = run_session(trace, [resolve_target(trace, None, None)])
        out.append((f"traces/{name}", build_document(session)))
    return out


def test_baseline_round_trip_and_schema(tmp_path, real_reports):
    path = tmp_path / "base.json"
    path.write_bytes(baseline_bytes(real_reports))
    data = json.loads(path.read_bytes())
    jsonschema.validate(data, baseline_schema())
    for entry in data["traces"]:
        jsonschema.validate(entry["report"], schema())
    reports = read_reports(str(path))
    assert [r.path for r in reports] == ["traces/smm-cache-as0.yaml", "traces/qemu-boot-smm.yaml"]
    assert all(r.comparable for r in reports)
    assert reports[0].document == real_reports[0][1]


def test_schema_rejects_a_broken_baseline(real_reports):
    data = json.loads(baseline_bytes(real_reports))
    del data["traces"][0]["report"]["runs"][0]["stale_hits"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, baseline_schema())


def test_bare_report_and_array_read_as_baselines(tmp_path, real_reports):
    single = tmp_path / "one.json"
    single.write_bytes(dumps(real_reports[0][1]))
    (report,) = read_reports(str(single))
    assert report.path is None and report.sha256 == real_reports[0][1]["trace"]["sha256"]
    many = tmp_path / "many.json"
    many.write_text(json.dumps([doc for _, doc in real_reports]))
    assert len(read_reports(str(many))) == 2


def test_other_report_version_is_kept_but_not_comparable(tmp_path):
    doc = make_report([make_run()], version=99)
    doc["runs"] = "whatever a future version holds"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    (report,) = read_reports(str(path))
    assert report.version == 99 and not report.comparable


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "base.json:1:2: not valid JSON"),
        ("[]", "an empty list"),
        ('{"a": 1}', "not a kvmgen report"),
        ('{"kvmgen_check": 1, "passed": true}', "not a report"),
        ('{"kvmgen_baseline": 2, "traces": []}', "baseline file version 2"),
        ('{"kvmgen_baseline": 1, "traces": [{"report": {}}]}', r"traces\[0\]"),
        (
            json.dumps({"kvmgen_report": REPORT_VERSION, "trace": {"sha256": "x"}}),
            "missing key 'runs'",
        ),
    ],
)
def test_bad_baselines_are_usage_errors(tmp_path, content, needle):
    path = tmp_path / "base.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=needle) as info:
        read_reports(str(path))
    assert "\n" not in str(info.value)


def test_missing_baseline_file(tmp_path):
    with pytest.raises(UsageError, match=r"baseline .*nope\.json: no such file"):
        read_reports(str(tmp_path / "nope.json"))


def test_find_report_by_path_then_content_then_alone(tmp_path):
    base = tmp_path / "base.json"
    base.write_bytes(baseline_bytes([("t/a.yaml", make_report([make_run()], sha=SHA_A))]))
    reports = read_reports(str(base))
    assert find_report(reports, "t/a.yaml", SHA_B).by == "path"
    assert find_report(reports, "moved/a.yaml", SHA_A).by == "sha256"
    assert find_report(reports, "t/other.yaml", SHA_B) is None
    # a named report is never paired by position
    assert find_report(reports, "t/other.yaml", SHA_B, alone=True) is None
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(make_report([make_run()], sha=SHA_A)))
    assert find_report(read_reports(str(bare)), "x.yaml", SHA_B, alone=True).by == "only"
    assert find_report(read_reports(str(bare)), "x.yaml", SHA_B) is None
