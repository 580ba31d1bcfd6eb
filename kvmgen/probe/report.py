"""Observed vs modelled, for people (rich tables) and for ``--fail-on disagree``.

``replay`` renders :func:`compare_session` after its own report when the trace carries
observations; ``probe`` compares the run it just captured the same way.
Only runs that stand for the kernel as shipped are compared (the ``historical``
policy): a real kernel has its own bias. With no such run, every run is compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kvmgen.formatting import count, plural
from kvmgen.probe.compare import RunComparison, compare_run
from kvmgen.trace.records import Trace

if TYPE_CHECKING:
    from rich.console import Console

    from kvmgen.session import RunOutcome, Session

SHOWN = 20


def _complete(trace: Trace, run: RunOutcome) -> Any:
    """The run's result with every zap record (replayed again if the limit cut them)."""
    result = run.result
    if len(result.zap_events) >= result.wrap_zaps + result.flush_zaps:
        return result
    from kvmgen.session import REPLAYERS

    needed = result.wrap_zaps + result.flush_zaps + 1
    return REPLAYERS["engine"]()(trace, run.spec, record_limit=max(needed, result.record_limit))


def compared_runs(session: Session) -> Sequence[RunOutcome]:
    """The runs observations are checked against: historical ones, else all."""
    shipped = [run for run in session.runs if "historical" in run.spec.policies]
    return shipped or list(session.runs)


def compare_session(session: Session) -> list[RunComparison]:
    """Observed vs modelled for each compared run; empty when the trace has no observations."""
    trace = session.trace
    if not getattr(trace, "observations", ()):
        return []
    assert isinstance(trace, Trace)
    out = []
    for run in compared_runs(session):
        label = run.spec.label
        out.append(compare_run(trace, run.spec, _complete(trace, run), label))
    return out


def _ordinals(values: list[int]) -> str:
    if not values:
        return "none"
    text = ", ".join(f"{v:,}" for v in values[:SHOWN])
    return text + (f" ... ({len(values)} in all)" if len(values) > SHOWN else "")


def render(comparisons: Sequence[RunComparison], console: Console) -> None:
    """Print one agreement table per compared run, then disagreements and notes."""
    from kvmgen.report.layout import Column, Grid, print_grid, print_prose

    for comp in comparisons:
        window = f"updates {comp.window[0]:,}-{comp.window[1]:,}" if comp.window else "no updates"
        print_prose(console, f"observed vs modelled: {comp.label}, {window}")
        grid = Grid(
            "",
            [
                Column("update class", key=True),
                *(
                    Column(name, right=True)
                    for name in ("updates", "agree", "disagree", "zaps seen", "zaps modelled")
                ),
            ],
        )
        for row in comp.classes:
            if row.updates or row.observed_zaps or row.modelled_zaps:
                grid.add_row(
                    row.name,
                    count(row.updates),
                    count(row.agree),
                    count(row.disagree),
                    count(row.observed_zaps),
                    count(row.modelled_zaps),
                )
        if comp.access_compared:
            grid.add_row(
                "accesses",
                count(comp.access_compared),
                count(comp.access_agree),
                count(comp.access_compared - comp.access_agree),
                "",
                "",
            )
        print_grid(console, grid)
        if comp.zaps_compared:
            seen, modelled = comp.observed_zap_updates, comp.modelled_zap_updates
            print_prose(console, f"zaps seen at updates: {_ordinals(seen)}", indent=2)
            print_prose(console, f"zaps modelled at updates: {_ordinals(modelled)}", indent=2)
        for d in comp.disagreements[:SHOWN]:
            flag = "" if d.gated else " (not gated)"
            print_prose(
                console,
                f"DISAGREE{flag}: {d.what}: kernel {d.observed}, model {d.modelled}"
                + (f"; {d.note}" if d.note else ""),
                indent=2,
            )
        if len(comp.disagreements) > SHOWN:
            more = len(comp.disagreements) - SHOWN
            console.print(f"  ... {plural(more, 'more disagreement')}")
        for note in comp.notes[:SHOWN]:
            print_prose(console, f"note: {note}", indent=2)
        print_prose(console, f"verdict observed vs modelled {comp.label}: {verdict(comp)}")


def verdict(comp: RunComparison) -> str:
    """One line: agreement, or how many places disagree."""
    updates = sum(r.updates for r in comp.classes)
    gated = sum(d.gated for d in comp.disagreements)
    if not comp.disagreements:
        what = plural(updates, "update") + (
            f" and {plural(comp.access_compared, 'access')}" if comp.access_compared else ""
        )
        return f"agree on {'all ' if updates + comp.access_compared > 1 else ''}{what}"
    return (
        f"DISAGREE at {plural(len(comp.disagreements), 'place')} ({count(gated)} gated) "
        f"over {plural(updates, 'update')} and {plural(comp.access_compared, 'access')}"
    )
