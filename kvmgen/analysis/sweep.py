"""``kvmgen sweep``: one trace replayed across a range of biases or generation widths.

A bias sweep (``--bias 0:1000:50``, or ``literal:0:1000:50``) runs the era with each
integer bias as kvmgen models it (docs/model.md section 1). A width sweep
(``--width 12:20``) asks "what if this era's generation were W bits wide": each W
gives a derived era record (``dataclasses.replace``) whose nominal width, check mask
and stamp mask follow the era's own pattern, and the engine replays it unchanged
(it takes every mask as a parameter):

- the check mask is ``2^W - 1``;
- the stamp mask keeps what the era keeps: everything (E1/E2, E9+), all but bit 0
  (E3-E5), or the same low bits as the era's encoding bug (E6-E8: 10 or 9 bits);
- an "at least" wrap threshold (E1/E2) keeps its distance from the maximum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.formatting import count, cycles, era_text
from kvmgen.model.eras import Era, WrapTest
from kvmgen.model.policy import LITERAL_PREFIX, Policy, RunSpec, parse_policy, resolve_runs

_RANGE = re.compile(r"^\s*(\w+)\s*(?::\s*(\w+)\s*(?::\s*(\w+)\s*)?)?$")
MAX_POINTS = 2000
WIDTHS = (4, 48)


def parse_range(text: str, option: str) -> list[int]:
    """``START:STOP[:STEP]`` (STOP included when the steps land on it), ``a,b,c`` or ``N``."""
    values: list[int] = []
    for part in text.split(","):
        match = _RANGE.match(part)
        try:
            if not match:
                raise ValueError
            start = int(match.group(1), 0)
            stop = int(match.group(2), 0) if match.group(2) else start
            step = int(match.group(3), 0) if match.group(3) else 1
        except ValueError:
            raise UsageError(
                f"{option} {text!r}: expected START:STOP[:STEP], a comma list or an integer"
            ) from None
        if step <= 0 or stop < start or start < 0:
            raise UsageError(f"{option} {text!r}: need 0 <= START <= STOP and STEP > 0")
        count = (stop - start) // step + 1
        if len(values) + count > MAX_POINTS:
            raise UsageError(f"{option} {text!r}: more than {MAX_POINTS} points")
        values.extend(range(start, stop + 1, step))
    return list(dict.fromkeys(values))


def with_width(era: Era, width: int) -> Era:
    """``era`` as if its generation were ``width`` bits wide (see the module docstring)."""
    if not era.has_mmio_generation:
        raise UsageError(f"{era.name} has no MMIO generation: there is no width to sweep")
    lo, hi = WIDTHS
    if not lo <= width <= hi:
        raise UsageError(f"--width {width}: expected {lo} to {hi} bits")
    check = (1 << width) - 1
    if era.stamp_mask == era.check_mask:
        stamp = check
    elif era.stamp_mask == era.check_mask & ~1:
        stamp = check & ~1
    else:
        stamp = era.stamp_mask & check
    threshold = era.wrap_threshold
    if era.wrap_test == WrapTest.AT_LEAST:
        threshold = check - (era.check_mask - era.wrap_threshold)
    variant = f"{era.variant}, " if era.variant else ""
    return replace(
        era,
        nominal_width=width,
        check_mask=check,
        stamp_mask=stamp,
        wrap_threshold=threshold,
        variant=f"{variant}width {width}",
    )


@dataclass(frozen=True)
class SweepRow:
    """One point of a sweep: the swept value and the run's headline numbers."""

    value: int
    spec: RunSpec
    metrics: dict[str, int]
    run: Any  # kvmgen.session.RunOutcome


@dataclass(frozen=True)
class Sweep:
    """A finished sweep."""

    kind: str  # "bias" | "width"
    title: str
    axis_label: str
    rows: tuple[SweepRow, ...]


def _replay(trace: Any, spec: RunSpec, cost_model: Any) -> tuple[dict[str, int], Any]:
    from kvmgen.engine.replay import replay_engine
    from kvmgen.model.costs import run_costs
    from kvmgen.report.document import metrics
    from kvmgen.session import RunOutcome

    result = replay_engine(trace, spec, record_limit=100)
    run = RunOutcome(spec, result, run_costs(cost_model, spec.era, result))
    return metrics(run), run


def run_sweep(
    trace: Any,
    era: Era,
    nas: int,
    *,
    choice: Any = None,
    biases: list[int] | None = None,
    literal: bool = False,
    widths: list[int] | None = None,
    policy: Policy | None = None,
    cost_model: Any = None,
) -> Sweep:
    """Replay ``trace`` once per bias (``biases``) or per width (``widths``)."""
    from kvmgen.model.costs import CostModel
    from kvmgen.trace.checks import check_trace_spaces

    model = cost_model or CostModel()
    check_trace_spaces(trace, nas)
    rows = []
    where = era_text(era.name, kernel=choice.kernel if choice else None, versions=era.versions)
    if nas != era.default_address_spaces:
        where += f", {nas} AS"
    if widths is not None:
        chosen = policy or parse_policy("historical")
        for width in widths:
            (spec,) = resolve_runs(with_width(era, width), nas, [chosen], choice)
            found, run = _replay(trace, spec, model)
            rows.append(SweepRow(width, spec, found, run))
        title = f"kvmgen sweep {trace.path}: {where}, {chosen.name}, generation width W"
        return Sweep("width", title, "generation width W (bits)", tuple(rows))
    if not era.has_mmio_generation:
        raise UsageError(f"{era.name} has no MMIO generation: a bias does not apply")
    for bias in biases or []:
        name = f"{LITERAL_PREFIX}{bias}" if literal else str(bias)
        (spec,) = resolve_runs(era, nas, [Policy(name, bias, literal=literal)], choice)
        found, run = _replay(trace, spec, model)
        rows.append(SweepRow(bias, spec, found, run))
    kind = "literal bias" if literal else "bias"
    title = f"kvmgen sweep {trace.path}: {where}, {kind} B"
    return Sweep("bias", title, f"{kind} B", tuple(rows))


def sweep_trace(
    trace: Any,
    target: Any,
    nas: int,
    *,
    bias: str | None = None,
    width: str | None = None,
    cost_model: Any = None,
) -> Sweep:
    """The sweep ``kvmgen sweep`` runs: ``width`` (with ``bias`` as the one policy) or ``bias``.

    ``bias`` is a range ``START:STOP[:STEP]`` (``literal:`` in front for the literal
    hack) when no ``width`` is given; ``target`` is a :class:`kvmgen.session.Target`.
    """
    if width is not None:
        policy = parse_policy(bias) if bias else None
        return run_sweep(
            trace,
            target.era,
            nas,
            choice=target.choice,
            widths=parse_range(width, "--width"),
            policy=policy,
            cost_model=cost_model,
        )
    if bias is None:
        raise UsageError("sweep needs --bias START:STOP[:STEP] or --width START:STOP")
    literal = bias.strip().lower().startswith(LITERAL_PREFIX)
    text = bias.strip()[len(LITERAL_PREFIX) :] if literal else bias
    return run_sweep(
        trace,
        target.era,
        nas,
        choice=target.choice,
        biases=parse_range(text, "--bias"),
        literal=literal,
        cost_model=cost_model,
    )


COLUMNS: tuple[tuple[str, str], ...] = (
    ("wraps", "wraps"),
    ("undetected_wraps", "undet."),
    ("wrap_zaps", "wrap\nzaps"),
    ("memslot_flush_zaps", "flush\nzaps"),
    ("sptes_dropped", "dropped"),
    ("ram_refaults", "RAM\nrefaults"),
    ("mmio_refaults", "MMIO\nrefaults"),
    ("harmful_stale_hits", "harmful"),
    ("benign_stale_hits", "benign"),
    ("invalidation_cycles", "inval.\ncycles"),
    ("total_cycles", "total\ncycles"),
)


def sweep_grid(sweep: Sweep) -> Any:
    """The sweep as a :class:`kvmgen.report.layout.Grid`, one row per value."""
    from rich.markup import escape

    from kvmgen.report.layout import Column, Grid

    columns = [Column("W" if sweep.kind == "width" else "B", right=True, key=True)]
    columns += [Column(header, right=True) for _, header in COLUMNS]
    grid = Grid(escape(sweep.title), columns)
    for row in sweep.rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.metrics[key]
            cells.append(cycles(value) if key.endswith("cycles") else count(value))
        grid.add_row(str(row.value), *cells)
    return grid


def render_sweep(sweep: Sweep, console: Any) -> None:
    """The sweep table (split into parts that repeat the value on a narrow console), notes."""
    from rich.markup import escape

    from kvmgen.report.layout import print_grid, print_prose

    print_grid(console, sweep_grid(sweep))
    notes = {w for row in sweep.rows for w in row.spec.warnings}
    for note in sorted(notes)[:6]:
        print_prose(console, f"[yellow]note[/] {escape(note)}")


def sweep_dict(sweep: Sweep) -> dict[str, Any]:
    """The sweep as JSON-ready data."""
    return {
        "kvmgen_sweep": 1,
        "kind": sweep.kind,
        "title": sweep.title,
        "rows": [
            {
                "value": row.value,
                "era": row.spec.era.name,
                "era_variant": row.spec.era.variant,
                "bias": row.spec.bias,
                "literal": row.spec.literal,
                "nominal_width": row.spec.era.nominal_width,
                "metrics": row.metrics,
            }
            for row in sweep.rows
        ],
    }
