"""Gate metrics read from report JSON agree with the report's own ``metrics()``."""

from __future__ import annotations

import pytest

from kvmgen.gate.metrics import (
    _PATHS,
    METRICS,
    ReportFormatError,
    RunId,
    index_runs,
    report_runs,
    run_metrics,
)
from kvmgen.inputs import open_trace
from kvmgen.report.document import DELTA_METRICS, metrics, run_dict
from kvmgen.session import resolve_target, run_session
from tests.conftest import TRACES
from tests.unit.gate_reports import make_report, make_run

pytestmark = pytest.mark.usefixtures("warm_engine")


def test_metric_names_are_the_report_delta_metrics():
    assert METRICS == DELTA_METRICS
    assert set(_PATHS) == set(DELTA_METRICS)


@pytest.mark.parametrize(
    "name", ["qemu-boot-smm.yaml", "seed-stale-gen0.yaml", "churn-delete-move.yaml"]
)
def test_json_metrics_equal_live_metrics(name):
    trace = open_trace(TRACES / name)
    session = run_session(trace, [resolve_target(trace, None, None)])
    assert session.runs
    for run in session.runs:
        assert run_metrics(run_dict(run)) == metrics(run), run.spec.label


def test_each_metric_reads_its_own_field():
    for metric in METRICS:
        values = run_metrics(make_run(**{metric: 7}))
        assert values[metric] == 7
        assert sum(values.values()) == 7, metric


def test_run_identity_ignores_policy_names():
    a = RunId.from_run(make_run(bias=150, policies=("historical",)))
    b = RunId.from_run(make_run(bias=150, policies=("150",)))
    c = RunId.from_run(make_run(bias=0, policies=("none",)))
    assert a.key == b.key != c.key
    assert a.label == "E5 (4.19), historical, bias 150"
    e0 = RunId.from_run(make_run("E0", kernel=None, bias=None, address_spaces=1))
    assert e0.label == "E0 (up to 3.10), historical, no MMIO generation"


def test_repeated_runs_keep_distinct_keys():
    runs = report_runs(make_report([make_run(), make_run(total_cycles=5)]))
    indexed = index_runs(runs)
    assert len(indexed) == 2
    assert [r.values["total_cycles"] for r in indexed.values()] == [0, 5]


def test_malformed_run_names_the_key():
    run = make_run()
    del run["stale_hits"]["harmful"]
    with pytest.raises(ReportFormatError, match=r"runs\[1\]: missing key 'stale_hits.harmful'"):
        report_runs(make_report([make_run(), run]))
    run = make_run()
    run["costs"]["total"] = "12"
    with pytest.raises(ReportFormatError, match=r"costs\.total: expected an integer"):
        run_metrics(run)
