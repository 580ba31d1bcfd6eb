"""Pictures: generation timelines (``replay``/``compare --plot``) and sweep curves.

matplotlib is imported lazily with the Agg backend, so nothing here needs a display
and ``kvmgen --help`` never loads it. Output format follows the file suffix
(``.svg`` or ``.png``).

A timeline has one panel per run (era x policy). The x axis counts generation bumps
since VM creation (all address spaces); each address space's truncated ("nominal")
generation is drawn as a line, wraps as triangles (a red X when undetected), wrap
zaps as red dashed verticals, memslot-flush zaps as grey dotted ones, stale hits as
stars (harmful, red) and dots (benign, orange), stretches where a literal bias
leaves bit 63 set at rest as purple shading, and updates as ticks along the bottom.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

from kvmgen.analysis.timeline import BumpWalk, curves, walk_bumps
from kvmgen.errors import UsageError
from kvmgen.model.genmath import GenMath
from kvmgen.report.labels import bias_text, era_text
from kvmgen.trace.records import Trace

FORMATS = {".svg": "svg", ".png": "png"}
AS_COLOURS = ("#1f5fa8", "#2e8b57")
MAX_ZAP_LINES = 300
MAX_UPDATE_TICKS = 600


def plot_format(path: str) -> str:
    """``svg`` or ``png`` from the file name; anything else is a usage error."""
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise UsageError(f"--plot {path!r}: the file name must end in .svg or .png")
    return fmt


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "kvmgen", "font.size": 9})
    return plt


def _in_memory(trace: Any) -> Trace:
    if isinstance(trace, Trace):
        return trace
    materialize = getattr(trace, "materialize", None)
    if materialize is None:
        raise UsageError("--plot needs a trace kvmgen can hold in memory")
    result: Trace = materialize()
    return result


def _hex(value: float, _pos: int | None = None) -> str:
    return f"{int(value):#x}" if value >= 0 else ""


def _label(run: Any) -> str:
    spec, r = run.spec, run.result
    return (
        f"{era_text(spec)}, {'/'.join(spec.policies)} ({bias_text(spec)}): {r.wraps_total:,} wraps "
        f"({r.wraps_undetected:,} undetected), {r.wrap_zaps:,} wrap zaps, "
        f"{r.flush_zaps:,} flush zaps, {r.stale_harmful:,} harmful / "
        f"{r.stale_benign:,} benign stale hits"
    )


SYMLOG_X_FROM = 4000


def symlog_x(walk: BumpWalk) -> bool:
    """Whether to draw x on a symmetric-log scale: a long trace (more than 4,000 bumps)
    with at least three events crowded into its first 1% (a boot, then long churn)."""
    if walk.total <= SYMLOG_X_FROM:
        return False
    early = sum(1 for x in walk.event_x if x <= walk.total / 100)
    return early >= 3


class _View:
    """How one panel maps generations to y: plain, or signed around the wrap (symlog).

    A run that moves its generation through a small part of the 2^W range (a short
    boot, a biased start just below the wrap) is drawn as the signed W-bit value:
    -150 reads as "150 steps before the wrap", and the wrap is the crossing of 0.
    """

    def __init__(self, math: GenMath, walk: BumpWalk) -> None:
        self.math = math
        self.half = math.modulus // 2
        self.signed = math.has_generation and walk.total * math.step < math.modulus // 16
        self.symlog_x = symlog_x(walk)

    def y(self, nominal: float) -> float:
        """The plotted y of a nominal value."""
        if not self.signed:
            return nominal
        return nominal - self.math.modulus if nominal >= self.half else nominal

    def series(self, xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
        """A curve's points in this view: breaks where a signed value passes half the
        range, and extra points along ramps so they stay straight on a log x axis."""
        nan = float("nan")
        out_x: list[float] = []
        out_y: list[float] = []
        prev: tuple[float, float] | None = None
        for x, y in zip(xs, ys, strict=True):
            if x != x or y != y:  # NaN: a wrap break
                out_x.append(nan)
                out_y.append(nan)
                prev = None
                continue
            if prev is not None and y != prev[1] and x > prev[0]:
                x0, y0 = prev
                if self.signed and y0 < self.half <= y:
                    xc = x0 + (self.half - y0) * (x - x0) / (y - y0)
                    out_x += [xc, nan, xc]
                    out_y += [self.y(self.half - 1), nan, self.y(self.half)]
                elif self.symlog_x and x - x0 > 2:
                    for i in range(1, 24):
                        xi = x0 + (x - x0) * (i / 24) ** 2
                        out_x.append(xi)
                        out_y.append(self.y(y0 + (y - y0) * (xi - x0) / (x - x0)))
            out_x.append(x)
            out_y.append(self.y(y))
            prev = (x, y)
        return out_x, out_y


def _draw_run(ax: Any, run: Any, walk: BumpWalk) -> None:
    spec, result = run.spec, run.result
    math = GenMath(spec)
    view = _View(math, walk)
    end = max(walk.total, 1)
    top = math.modulus if spec.era.has_mmio_generation else 1
    if view.symlog_x:
        ax.set_xscale("symlog", linthresh=100, linscale=1.5)
        ax.set_xlim(0, end * 1.25)
    else:
        ax.set_xlim(0, end * 1.02)
    if view.signed:
        reach = max(
            [abs(view.y(math.nominal(g))) for g in spec.init_generations]
            + [abs(view.y(math.nominal(g))) for g in result.final_generation]
            + [16.0]
        )
        limit = min(reach * 4, top / 2)
        ax.set_yscale("symlog", linthresh=max(8, 4 * math.step))
        ax.set_ylim(-limit, limit)
        powers = [10**k for k in range(1, 8) if max(8, 4 * math.step) <= 10**k <= limit]
        ticks = [-p for p in reversed(powers)] + [0] + powers
        ax.set_yticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        ax.axhline(0, color="#444444", lw=0.6)
        ax.set_ylabel(f"generation as signed\n{spec.era.nominal_width}-bit value (0 = wrap)")
    else:
        ax.set_ylim(-0.07 * top, top * 1.05)
        ax.set_ylabel("truncated generation")
    ax.set_title(_label(run), loc="left", fontsize=8.5)
    ax.grid(True, alpha=0.25)
    if spec.era.has_mmio_generation:
        if not view.signed:
            ax.yaxis.set_major_formatter(_hex)
        for curve in curves(walk, spec):
            colour = AS_COLOURS[curve.address_space % 2]
            xs, ys = view.series(curve.xs, curve.ys)
            ax.plot(
                xs,
                ys,
                color=colour,
                lw=1.3,
                label=f"AS {curve.address_space} generation (mod 2^{spec.era.nominal_width})",
            )
            for x0, x1 in curve.bands:
                ax.fill_between([x0, x1], 0, top, color=colour, alpha=0.18, lw=0)
            for x0, x1 in curve.bit63:
                ax.axvspan(
                    x0,
                    max(x1, x0 + end * 0.002),
                    color="#8e44ad",
                    alpha=0.22,
                    lw=0,
                    label=f"AS {curve.address_space} at rest with bit 63 set",
                )
    else:
        ax.text(0.5, 0.5, "E0: no MMIO generation", transform=ax.transAxes, ha="center")
    wrap_zaps = [z for z in result.zap_events if z.kind == "wrap"][:MAX_ZAP_LINES]
    flush_zaps = [z for z in result.zap_events if z.kind != "wrap"][:MAX_ZAP_LINES]
    for i, z in enumerate(wrap_zaps):
        ax.axvline(
            walk.x_of_bump(z.address_space, z.bump),
            color="#c0392b",
            ls="--",
            lw=0.9,
            alpha=0.7,
            label="wrap zap" if i == 0 else None,
        )
    for i, z in enumerate(flush_zaps):
        ax.axvline(
            walk.x_of_bump(z.address_space, z.bump),
            color="#7f8c8d",
            ls=":",
            lw=0.8,
            alpha=0.7,
            label="memslot-flush zap" if i == 0 else None,
        )
    detected = [w for w in result.wraps if w.detected]
    missed = [w for w in result.wraps if not w.detected]
    if detected:
        ax.scatter(
            [walk.x_of_bump(w.address_space, w.bump) for w in detected],
            [view.y(w.before) for w in detected],
            marker="^",
            s=42,
            color="#222222",
            zorder=5,
            label="wrap (detected)",
        )
    if missed:
        ax.scatter(
            [walk.x_of_bump(w.address_space, w.bump) for w in missed],
            [view.y(w.before) for w in missed],
            marker="X",
            s=90,
            color="#e02020",
            zorder=6,
            label="wrap (UNDETECTED)",
        )
    for kind, marker, colour, size in (
        ("harmful", "*", "#d62728", 260),
        ("benign", "o", "#f39c12", 50),
    ):
        hits = [h for h in result.stale_hits if h.kind == kind]
        if hits:
            ys = [
                view.y(math.nominal(h.current_generation))
                if spec.era.has_mmio_generation
                else top / 2
                for h in hits
            ]
            ax.scatter(
                [walk.x_of_event(h.event) for h in hits],
                ys,
                marker=marker,
                s=size,
                color=colour,
                edgecolors="black",
                linewidths=0.5,
                zorder=7,
                label=f"{kind} stale hit",
            )
    _update_ticks(ax, walk)


def _legend(axes: Sequence[Any]) -> None:
    """One legend, right of the first panel, naming what any panel shows."""
    unique: dict[str, Any] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            unique.setdefault(label, handle)
    axes[0].legend(
        unique.values(),
        unique.keys(),
        fontsize=7.5,
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        borderaxespad=0.0,
    )


def _update_ticks(ax: Any, walk: BumpWalk) -> None:
    """Updates along the bottom edge: a tick per update, a bar over a run of repeats."""
    where = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ticks: list[float] = []
    label = "updates (repeat)"
    for x0, x1, n in walk.update_x:
        if n == 1 or (x1 - x0 <= 1 and n <= 3):
            ticks.append(max(x1, x0))
        else:
            ax.plot(
                [x0, max(x1, x0)],
                [0.025, 0.025],
                transform=where,
                color="#555555",
                lw=4,
                alpha=0.55,
                label=label,
                solid_capstyle="butt",
            )
    if len(ticks) > MAX_UPDATE_TICKS:
        step = len(ticks) / MAX_UPDATE_TICKS
        ticks = [ticks[int(i * step)] for i in range(MAX_UPDATE_TICKS)]
    if ticks:
        ax.plot(
            ticks,
            [0.025] * len(ticks),
            "|",
            transform=where,
            color="#333333",
            ms=8,
            label="update",
        )


def timeline_figure(session: Any) -> Any:
    """The timeline figure of a replay or compare session."""
    plt = _pyplot()
    trace = _in_memory(session.trace)
    walk = walk_bumps(trace)
    runs = list(session.runs)
    if not runs:
        raise UsageError("nothing to plot: no run could replay this trace")
    fig, axes = plt.subplots(
        len(runs), 1, figsize=(13, 3.0 * len(runs) + 0.7), squeeze=False, sharex=True
    )
    for i, run in enumerate(runs):
        _draw_run(axes[i][0], run, walk)
    _legend([row[0] for row in axes])
    scale = " (symmetric log scale)" if symlog_x(walk) else ""
    axes[-1][0].set_xlabel(f"generation bumps since VM creation, all address spaces{scale}")
    fig.suptitle(f"kvmgen: {trace.path}", x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    return fig


def figure_bytes(fig: Any, fmt: str) -> bytes:
    """``fig`` drawn as ``svg`` or ``png`` bytes (closes it)."""
    plt = _pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, dpi=110, metadata=_metadata(fmt))
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _metadata(fmt: str) -> dict[str, Any]:
    # No timestamps: the same input draws the same bytes.
    return {"Date": None} if fmt == "svg" else {"Software": "kvmgen"}


def svg_text(fig: Any) -> str:
    """``fig`` as inline SVG text (closes it)."""
    plt = _pyplot()
    buffer = io.StringIO()
    try:
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def session_plot(session: Any, fmt: str) -> bytes:
    """``--plot FILE`` of ``replay`` and ``compare``: every run's timeline, as ``fmt`` bytes."""
    return figure_bytes(timeline_figure(session), fmt)


def sweep_figure(sweep: Any) -> Any:
    """Wraps, zaps, stale hits (top) and modelled cycles (bottom) against the swept value."""
    plt = _pyplot()
    rows: Sequence[Any] = sweep.rows
    xs = [row.value for row in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    series = (
        ("wraps", "wraps", "#1f5fa8", "o"),
        ("undetected_wraps", "undetected wraps", "#e02020", "X"),
        ("wrap_zaps", "wrap zaps", "#c0392b", "^"),
        ("memslot_flush_zaps", "memslot-flush zaps", "#7f8c8d", "v"),
        ("harmful_stale_hits", "harmful stale hits", "#d62728", "*"),
        ("benign_stale_hits", "benign stale hits", "#f39c12", "s"),
    )
    for z, (key, label, colour, marker) in enumerate(series):
        ys = [row.metrics[key] for row in rows]
        if any(ys) or key in ("wraps", "wrap_zaps"):
            top.plot(xs, ys, marker=marker, color=colour, label=label, lw=1.2, ms=6, zorder=3 + z)
    # Counts from 0 to hundreds of thousands: a single stale hit must still show.
    top.set_yscale("symlog", linthresh=1)
    most = max([row.metrics[key] for row in rows for key, *_ in series] + [1])
    top.set_ylim(0, most * 2.5)
    top.set_ylabel("count (symmetric log)")
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, ncol=3)
    top.set_title(sweep.title, loc="left", fontsize=9.5)
    for key, label, colour in (
        ("total_cycles", "total cycles", "#34495e"),
        ("invalidation_cycles", "invalidation cycles", "#c0392b"),
    ):
        bottom.plot(
            xs, [row.metrics[key] for row in rows], marker="o", ms=4, label=label, color=colour
        )
    cycles = [row.metrics[k] for row in rows for k in ("total_cycles", "invalidation_cycles")]
    if cycles and min(cycles) > 0:
        bottom.set_yscale("log")
        bottom.set_ylim(min(cycles) / 3, max(cycles) * 3)
    else:
        bottom.set_yscale("symlog", linthresh=1e3)
        bottom.set_ylim(bottom=0)
    bottom.set_ylabel("modelled CPU cycles (log)")
    bottom.set_xlabel(sweep.axis_label)
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sweep_plot(sweep: Any, fmt: str) -> bytes:
    """``sweep --plot FILE``, as ``fmt`` (``svg`` or ``png``) bytes."""
    return figure_bytes(sweep_figure(sweep), fmt)
