"""Markdown for pull-request comments and ``$GITHUB_STEP_SUMMARY``.

GitHub-flavoured: a heading with the verdict, the failures first, every result
in a collapsed ``<details>`` table, then notes (baseline state, skipped eras).
"""

from __future__ import annotations

from kvmgen.formatting import count, number, percent, plural, signed
from kvmgen.gate.check import FAILED, PASSED, CheckOutcome, Result
from kvmgen.gate.diff import DiffResult
from kvmgen.gate.limits import MAX

STATUS_MARK = {PASSED: "✅ passed", FAILED: "❌ failed", "skipped": "⏭️ skipped"}


def cell(text: object) -> str:
    """A table cell: pipes escaped, line breaks flattened."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _row(*cells: object) -> str:
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def _limit(result: Result) -> str:
    if result.limit is None:
        return ""
    if result.check == MAX:
        return f"≤ {number(result.limit)}"
    return f"≤ +{number(result.limit)}%"


def _number(value: int | None) -> str:
    return "" if value is None else count(value)


def check_markdown(outcome: CheckOutcome) -> str:
    """The check verdict as Markdown."""
    verdict = "✅ passed" if outcome.passed else "❌ failed"
    lines = [f"## kvmgen check {verdict}", "", outcome.counts_text() + "."]
    if outcome.limits:
        lines.append("Limits: " + ", ".join(f"`{lim.text}`" for lim in outcome.limits) + ".")
    if outcome.baseline_path:
        lines.append(f"Baseline: `{outcome.baseline_path}`.")
    failures = outcome.failures
    if failures:
        lines += ["", "### Failures", "", _row("trace", "run", "what failed"), "|---|---|---|"]
        lines += [_row(f"`{r.trace}`", r.run.label if r.run else "", r.message) for r in failures]
    checks = [r for r in outcome.results if r.metric is not None]
    if checks:
        with_baseline = outcome.baseline_path is not None
        summary = f"All {plural(len(checks), 'limit')} on runs"
        if len(checks) == len(outcome.results):
            summary = f"All {plural(len(checks), 'check')}"
        lines += ["", f"<details><summary>{summary}</summary>", ""]
        head = ["trace", "run", "metric", "value", "limit"] + (
            ["baseline"] if with_baseline else []
        )
        lines.append(_row(*head, "result"))
        lines.append("|---|---|---|--:|--:|" + ("--:|" if with_baseline else "") + "---|")
        for r in checks:
            cells = [f"`{r.trace}`", r.run.label if r.run else "", r.metric, _number(r.value)]
            cells.append(_limit(r))
            if with_baseline:
                cells.append(_number(r.baseline))
            lines.append(_row(*cells, STATUS_MARK[r.status]))
        lines += ["", "</details>"]
    notes = [r for r in outcome.results if r.metric is None and r.status != FAILED]
    if notes:
        lines += ["", "### Notes", ""]
        lines += [f"- `{r.trace}`: {r.name}: {r.message}" for r in notes]
    return "\n".join(lines) + "\n"


def diff_markdown(result: DiffResult, old: str, new: str) -> str:
    """A ``kvmgen diff`` as Markdown."""
    lines = [f"### kvmgen diff: `{old}` → `{new}`", "", result.summary() + "."]
    if result.rows:
        lines += ["", _row("trace", "run", "metric", "old", "new", "change", "%")]
        lines.append("|---|---|---|--:|--:|--:|--:|")
        for row in result.rows:
            pct = row.percent
            lines.append(
                _row(
                    f"`{row.trace}`",
                    row.run.label,
                    row.metric,
                    count(row.old),
                    count(row.new),
                    signed(row.change),
                    "" if pct is None else percent(pct),
                )
            )
    if result.notes:
        lines.append("")
        lines += [f"- `{note.trace}`: {note.text}" for note in result.notes]
    return "\n".join(lines) + "\n"
