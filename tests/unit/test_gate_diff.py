"""kvmgen diff on report sets: rows, notes and what counts as a change."""

from __future__ import annotations

from kvmgen.gate.baseline import TraceReport
from kvmgen.gate.diff import diff_reports
from kvmgen.gate.markdown import diff_markdown
from kvmgen.report.document import REPORT_VERSION
from tests.unit.gate_reports import SHA_A, SHA_B, make_report, make_run

HIST = {"bias": 150, "policies": ("historical",)}
NONE = {"bias": 0, "policies": ("none",)}


def _side(*entries):
    return [TraceReport(path, d["trace"]["sha256"], d["kvmgen_report"], d) for path, d in entries]


def test_identical_reports_have_no_change():
    doc = make_report([make_run(**HIST, wraps=2), make_run(**NONE)])
    result = diff_reports(_side(("a.yaml", doc)), _side(("a.yaml", doc)))
    assert not result.changed and not result.rows and not result.notes
    assert result.summary() == "no changes: 2 runs of 1 trace compared"
    shown = diff_reports(_side(("a.yaml", doc)), _side(("a.yaml", doc)), show_all=True)
    assert len(shown.rows) == 24 and not shown.changed


def test_metric_changes_per_run():
    old = make_report([make_run(**HIST, wraps=2, total_cycles=100), make_run(**NONE)])
    new = make_report([make_run(**HIST, wraps=1, total_cycles=150), make_run(**NONE)])
    result = diff_reports(_side(("a.yaml", old)), _side(("a.yaml", new)))
    assert result.changed
    assert [(r.metric, r.old, r.new, r.change, r.percent) for r in result.rows] == [
        ("wraps", 2, 1, -1, -50.0),
        ("total_cycles", 100, 150, 50, 50.0),
    ]
    only = diff_reports(_side(("a.yaml", old)), _side(("a.yaml", new)), metrics=["wrap_zaps"])
    assert not only.changed


def test_added_removed_traces_and_runs_are_changes():
    old = _side(("a.yaml", make_report([make_run(**HIST), make_run(**NONE)], sha=SHA_A)))
    new = _side(
        ("a.yaml", make_report([make_run(**HIST)], sha=SHA_A)),
        ("b.yaml", make_report([make_run(**HIST)], sha=SHA_B)),
    )
    result = diff_reports(old, new)
    texts = [(n.trace, n.text) for n in result.notes]
    assert ("b.yaml", "trace only in NEW") in texts
    assert ("a.yaml", "run E5 (4.19), none, bias 0 only in OLD") in texts
    assert result.changed and not result.rows
    reverse = diff_reports(new, old)
    assert ("b.yaml", "trace only in OLD") in [(n.trace, n.text) for n in reverse.notes]


def test_changed_content_is_flagged_and_compared():
    old = _side(("a.yaml", make_report([make_run(**HIST, wraps=1)], sha=SHA_A)))
    new = _side(("a.yaml", make_report([make_run(**HIST, wraps=1)], sha=SHA_B)))
    result = diff_reports(old, new)
    (note,) = result.notes
    assert "trace content changed" in note.text and result.changed
    assert result.runs_compared == 1


def test_moved_trace_matches_by_content_without_being_a_change():
    doc = make_report([make_run(**HIST)], sha=SHA_A)
    result = diff_reports(_side(("old/a.yaml", doc)), _side(("new/a.yaml", doc)))
    (note,) = result.notes
    assert not note.is_change and "old/a.yaml" in note.text
    assert not result.changed


def test_other_version_is_never_compared():
    old = make_report([make_run(**HIST, wraps=9)], version=REPORT_VERSION + 1)
    new = make_report([make_run(**HIST, wraps=1)])
    result = diff_reports(_side((None, old)), _side((None, new)))
    assert result.changed and not result.rows and result.runs_compared == 0
    assert "not compared" in result.notes[0].text


def test_markdown_table():
    old = make_report([make_run(**HIST, total_cycles=100)])
    new = make_report([make_run(**HIST, total_cycles=150)])
    text = diff_markdown(diff_reports(_side(("a|b.yaml", old)), _side(("a|b.yaml", new))), "o", "n")
    assert text.startswith("### kvmgen diff: `o` → `n`")
    assert "| `a\\|b.yaml` | E5 (4.19), historical, bias 150 | total_cycles | 100 | 150 |" in (text)
    assert "+50.00%" in text
