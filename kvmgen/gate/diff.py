"""``kvmgen diff OLD NEW``: what changed between two sets of reports, per run and metric.

Traces are matched by path (as saved in a baseline file), else by content
(sha256), and a lone report on each side is paired; runs by era, variant,
kernel, address spaces and bias. A changed trace (other sha256) is compared and
flagged; reports of a version this kvmgen does not write are never compared,
only named. Traces or runs present on one side only are listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvmgen.formatting import plural
from kvmgen.gate.baseline import TraceReport, find_report
from kvmgen.gate.limits import regression_percent
from kvmgen.gate.metrics import METRICS, RunId, index_runs, report_runs
from kvmgen.report.document import REPORT_VERSION


@dataclass(frozen=True)
class DiffRow:
    """One metric of one run, old and new."""

    trace: str
    run: RunId
    metric: str
    old: int
    new: int

    @property
    def change(self) -> int:
        """New minus old."""
        return self.new - self.old

    @property
    def percent(self) -> float | None:
        """The change in percent of the old value; None from 0."""
        return regression_percent(self.new, self.old)


@dataclass(frozen=True)
class DiffNote:
    """Something about a trace or run that is not a metric: added, removed, changed."""

    trace: str
    text: str
    is_change: bool = True


@dataclass(frozen=True)
class DiffResult:
    """Rows (changed metrics, or all with ``show_all``) and notes."""

    rows: tuple[DiffRow, ...]
    notes: tuple[DiffNote, ...]
    traces_compared: int
    runs_compared: int

    @property
    def changed(self) -> bool:
        """True when any metric changed or any trace or run was added, removed or changed."""
        return any(r.change for r in self.rows) or any(n.is_change for n in self.notes)

    def summary(self) -> str:
        """One line: how much was compared and how much changed."""
        changed = sum(1 for r in self.rows if r.change)
        notes = sum(1 for n in self.notes if n.is_change)
        scope = (
            f"{plural(self.runs_compared, 'run')} of {plural(self.traces_compared, 'trace')} "
            "compared"
        )
        if not self.changed:
            return f"no changes: {scope}"
        other = f" and {plural(notes, 'other change')}" if notes else ""
        return f"{plural(changed, 'metric change')}{other} in {scope}"


def diff_reports(
    old: Sequence[TraceReport],
    new: Sequence[TraceReport],
    *,
    metrics: Sequence[str] = METRICS,
    show_all: bool = False,
) -> DiffResult:
    """Compare every trace and run of ``new`` with ``old``."""
    rows: list[DiffRow] = []
    notes: list[DiffNote] = []
    used: set[int] = set()
    traces = runs_compared = 0
    alone = len(new) == 1
    for report in new:
        name = report.name
        match = find_report(old, report.path, report.sha256, alone=alone)
        if match is None:
            notes.append(DiffNote(name, "trace only in NEW"))
            continue
        before = match.report
        used.add(id(before))
        if match.by == "sha256" and before.path != report.path and before.path:
            notes.append(DiffNote(name, f"same content as {before.path!r} in OLD", False))
        if not (before.comparable and report.comparable):
            notes.append(
                DiffNote(
                    name,
                    f"report versions {before.version!r} (OLD) and {report.version!r} (NEW): "
                    f"this kvmgen reads version {REPORT_VERSION} only, not compared",
                )
            )
            continue
        if before.sha256 != report.sha256:
            notes.append(
                DiffNote(
                    name,
                    f"trace content changed (sha256 {str(before.sha256)[:12]}... -> "
                    f"{str(report.sha256)[:12]}...); runs compared anyway",
                )
            )
        traces += 1
        old_runs = index_runs(report_runs(before.document))
        new_runs = index_runs(report_runs(report.document))
        for key, run in new_runs.items():
            previous = old_runs.get(key)
            if previous is None:
                notes.append(DiffNote(name, f"run {run.id.label} only in NEW"))
                continue
            runs_compared += 1
            for metric in metrics:
                a, b = previous.values[metric], run.values[metric]
                if show_all or a != b:
                    rows.append(DiffRow(name, run.id, metric, a, b))
        for key, run in old_runs.items():
            if key not in new_runs:
                notes.append(DiffNote(name, f"run {run.id.label} only in OLD"))
    for report in old:
        if id(report) not in used:
            notes.append(DiffNote(report.name, "trace only in OLD"))
    return DiffResult(tuple(rows), tuple(notes), traces, runs_compared)
