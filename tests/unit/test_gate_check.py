"""Evaluating limits and baselines on report documents (no replay)."""

from __future__ import annotations

import jsonschema
import pytest

from kvmgen.errors import UsageError
from kvmgen.gate.baseline import TraceReport
from kvmgen.gate.check import (
    CHANGED,
    FAILED,
    MATCHED,
    MISSING,
    NO_BASELINE,
    OTHER_VERSION,
    PASSED,
    SKIPPED,
    TraceRun,
    check_schema,
    evaluate,
)
from kvmgen.gate.limits import MAX, MAX_REGRESSION, Limit
from kvmgen.report.document import REPORT_VERSION
from tests.unit.gate_reports import SHA_A, SHA_B, make_report, make_run

HIST = {"bias": 150, "policies": ("historical",)}
NONE = {"bias": 0, "policies": ("none",)}


def _baseline(path, doc):
    return [TraceReport(path, doc["trace"]["sha256"], doc["kvmgen_report"], doc)]


def _by(outcome, check, status=None):
    return [r for r in outcome.results if r.check == check and status in (None, r.status)]


def test_max_limits_one_result_per_run_and_limit():
    doc = make_report([make_run(**HIST, harmful_stale_hits=1), make_run(**NONE)])
    limits = [Limit(MAX, "harmful_stale_hits", 0), Limit(MAX, "wrap_zaps", 3)]
    outcome = evaluate([TraceRun("t.yaml", doc)], limits)
    assert len(outcome.results) == 4
    (failure,) = outcome.failures
    assert not outcome.passed
    assert failure.metric == "harmful_stale_hits" and failure.value == 1 and failure.limit == 0
    line = failure.describe()
    for part in ("t.yaml", "E5 (4.19)", "historical", "harmful_stale_hits = 1", "max 0"):
        assert part in line
    assert outcome.traces[0].baseline == NO_BASELINE


def test_passes_at_the_limit():
    doc = make_report([make_run(**HIST, wrap_zaps=3)])
    outcome = evaluate([TraceRun("t.yaml", doc)], [Limit(MAX, "wrap_zaps", 3)])
    assert outcome.passed and outcome.count(PASSED) == 1


def test_regression_against_the_same_run():
    base = make_report([make_run(**HIST, total_cycles=1000), make_run(**NONE, total_cycles=1000)])
    now = make_report([make_run(**HIST, total_cycles=1100), make_run(**NONE, total_cycles=1101)])
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        [Limit(MAX_REGRESSION, "total_cycles", 10)],
        baseline=_baseline("t.yaml", base),
        baseline_path="base.json",
    )
    (base_check,) = _by(outcome, "baseline")
    assert base_check.status == PASSED and outcome.traces[0].baseline == MATCHED
    hist, none = _by(outcome, MAX_REGRESSION)
    assert hist.status == PASSED and hist.baseline == 1000
    assert none.status == FAILED
    assert "total_cycles = 1,101 vs baseline 1,000 (+10.10%)" in none.message
    assert "+10%" in none.message


def test_runs_match_on_bias_not_policy_name():
    base = make_report([make_run(bias=150, policies=("150",), wraps=1)])
    now = make_report([make_run(**HIST, wraps=2)])
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        [Limit(MAX_REGRESSION, "wraps", 50)],
        baseline=_baseline("t.yaml", base),
    )
    (result,) = _by(outcome, MAX_REGRESSION)
    assert result.status == FAILED and result.baseline == 1


def test_run_missing_from_baseline_is_skipped_and_extra_runs_noted():
    base = make_report([make_run(**NONE), make_run("E5", kernel="4.19", bias=64, policies=("64",))])
    now = make_report([make_run(**HIST), make_run(**NONE)])
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        [Limit(MAX_REGRESSION, "wraps", 0)],
        baseline=_baseline("t.yaml", base),
    )
    hist, none = _by(outcome, MAX_REGRESSION)
    assert hist.status == SKIPPED and "no such run in the baseline" in hist.message
    assert none.status == PASSED
    assert (
        "baseline runs not replayed now: E5 (4.19), 64, bias 64" in outcome.traces[0].baseline_note
    )
    assert outcome.passed


def test_changed_trace_fails_unless_allowed():
    base = make_report([make_run(**HIST, wraps=1)], sha=SHA_A)
    now = make_report([make_run(**HIST, wraps=5)], sha=SHA_B)
    limits = [Limit(MAX_REGRESSION, "wraps", 0)]
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        limits,
        baseline=_baseline("t.yaml", base),
        baseline_path="b.json",
    )
    (base_check,) = _by(outcome, "baseline")
    assert base_check.status == FAILED and outcome.traces[0].baseline == CHANGED
    assert "other content of this trace (sha256 aaaaaaaaaaaa..., now bbbbbbbbbbbb...)" in (
        base_check.message
    )
    assert "--allow-changed-traces" in base_check.message
    (limit,) = _by(outcome, MAX_REGRESSION)
    assert limit.status == SKIPPED and limit.baseline is None
    assert len(outcome.failures) == 1

    allowed = evaluate(
        [TraceRun("t.yaml", now)],
        limits,
        baseline=_baseline("t.yaml", base),
        allow_changed_traces=True,
    )
    (base_check,) = _by(allowed, "baseline")
    assert base_check.status == PASSED and "compared anyway" in base_check.message
    (limit,) = _by(allowed, MAX_REGRESSION)
    assert limit.status == FAILED and limit.metric == "wraps" and limit.baseline == 1


def test_other_report_version_is_reported_not_compared():
    old = make_report([make_run(**HIST)], version=REPORT_VERSION + 1)
    now = make_report([make_run(**HIST)])
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        [Limit(MAX_REGRESSION, "wraps", 0)],
        baseline=_baseline("t.yaml", old),
    )
    (base_check,) = _by(outcome, "baseline")
    assert base_check.status == FAILED and outcome.traces[0].baseline == OTHER_VERSION
    assert f"report version {REPORT_VERSION + 1}" in base_check.message
    assert _by(outcome, MAX_REGRESSION)[0].status == SKIPPED


def test_trace_not_in_baseline_is_skipped_but_some_must_match():
    base = make_report([make_run(**HIST)], sha=SHA_A)
    other = make_report([make_run(**HIST)], sha=SHA_B)
    limits = [Limit(MAX_REGRESSION, "wraps", 0)]
    outcome = evaluate(
        [TraceRun("a.yaml", base), TraceRun("new.yaml", other)],
        limits,
        baseline=_baseline("a.yaml", base),
    )
    assert [t.baseline for t in outcome.traces] == [MATCHED, MISSING]
    assert outcome.passed
    missing = [r for r in outcome.results if r.trace == "new.yaml"]
    assert {r.status for r in missing} == {SKIPPED}
    with pytest.raises(UsageError, match="none of the traces is in it"):
        evaluate([TraceRun("new.yaml", other)], limits, baseline=_baseline("a.yaml", base))


def test_skipped_eras_are_skipped_results():
    doc = make_report(
        [make_run(**HIST)], skipped=[{"era": "E0", "kernel": None, "reason": "needs 2 AS"}]
    )
    outcome = evaluate([TraceRun("t.yaml", doc)], [Limit(MAX, "wraps", 0)])
    (run,) = _by(outcome, "run")
    assert (
        run.status == SKIPPED
        and run.name == "E0 (up to 3.10): not run"
        and "needs 2 AS" in run.message
    )


def test_check_document_matches_its_schema():
    base = make_report([make_run(**HIST, wraps=1)])
    now = make_report([make_run(**HIST, wraps=2)], skipped=[{"era": "E1", "kernel": None}])
    outcome = evaluate(
        [TraceRun("t.yaml", now)],
        [Limit(MAX, "wraps", 1), Limit(MAX_REGRESSION, "wraps", 0)],
        baseline=_baseline("t.yaml", base),
        baseline_path="b.json",
    )
    document = outcome.as_dict()
    jsonschema.validate(document, check_schema())
    assert document["passed"] is False
    assert document["summary"] == {
        "traces": 1,
        "runs": 1,
        "checks": 4,
        "passed": 1,
        "failed": 2,
        "skipped": 1,
    }
    document["results"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, check_schema())
