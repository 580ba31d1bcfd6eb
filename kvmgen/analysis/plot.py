"""Pictures: generation timelines (``replay``/``compare --plot``) and sweep curves.

matplotlib is imported lazily with the Agg backend, so nothing here needs a display
and ``kvmgen --help`` never loads it. Output format follows the file suffix
(``.svg`` or ``.png``).

A timeline has one panel per run (era x policy), all on the same axes: one x
(generation bumps since VM creation, all address spaces) and one y scale for the
whole figure, so panels compare at a glance. Each address space's truncated
("nominal") generation is a line (AS 1 dashed: it often runs on top of AS 0), wraps
are triangles (a red X when undetected), wrap zaps red dashed verticals,
memslot-flush zaps grey dotted ones, stale hits stars (harmful, red) and dots
(benign, orange), stretches where a literal bias leaves bit 63 set at rest purple
shading, and updates ticks along the bottom. One legend above the panels names each
kind of line once; the title sits above it. Numbers on axes and in titles are
written by :mod:`kvmgen.formatting`, runs named by their run label.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

from kvmgen.analysis.timeline import BumpWalk, curves, walk_bumps
from kvmgen.errors import UsageError
from kvmgen.formatting import count, cycles, plural
from kvmgen.model.genmath import GenMath
from kvmgen.report.labels import run_label
from kvmgen.trace.records import Trace

FORMATS = {".svg": "svg", ".png": "png"}
AS_COLOURS = ("#1f5fa8", "#2e8b57")
AS_STYLES = ("-", (0, (5, 2)))
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
    r = run.result
    return (
        f"{run_label(run.spec)}: {plural(r.wraps_total, 'wrap')} "
        f"({count(r.wraps_undetected)} undetected), {plural(r.wrap_zaps, 'wrap zap')}, "
        f"{plural(r.flush_zaps, 'flush zap')}, {count(r.stale_harmful)} harmful / "
        f"{count(r.stale_benign)} benign stale hits"
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
    """How the panels of one figure map generations to y, all on one scale.

    When every run moves its generation through a small part of the 2^W range (a
    short boot, a biased start just below the wrap), each is drawn as the signed
    W-bit value on a symmetric-log axis: -150 reads as "150 steps before the wrap",
    and the wrap is the crossing of 0. Otherwise every panel shows the truncated
    value, in hex, from 0 to the largest 2^W of the figure.
    """

    def __init__(self, runs: Sequence[Any], walk: BumpWalk) -> None:
        maths = [GenMath(run.spec) for run in runs]
        with_generation = [m for m in maths if m.has_generation]
        self.signed = bool(with_generation) and all(
            walk.total * m.step < m.modulus // 16 for m in with_generation
        )
        self.symlog_x = symlog_x(walk)
        self.top = max([m.modulus for m in with_generation] + [1])
        self.linthresh = max([max(8, 4 * m.step) for m in with_generation] + [8])
        reach = [16.0]
        for run, m in zip(runs, maths, strict=True):
            if m.has_generation:
                values = [*run.spec.init_generations, *run.result.final_generation]
                reach += [abs(self._signed(m, m.nominal(g))) for g in values]
        half = min([m.modulus // 2 for m in with_generation] + [self.top // 2])
        self.limit = float(min(max(reach) * 4, half)) if with_generation else 1.0

    @staticmethod
    def _signed(math: GenMath, nominal: float) -> float:
        return nominal - math.modulus if nominal >= math.modulus // 2 else nominal

    def y(self, math: GenMath, nominal: float) -> float:
        """The plotted y of a nominal value of a run with this arithmetic."""
        return self._signed(math, nominal) if self.signed else nominal

    def series(
        self, math: GenMath, xs: list[float], ys: list[float]
    ) -> tuple[list[float], list[float]]:
        """A curve's points in this view: breaks where a signed value passes half the
        range, and extra points along ramps so they stay straight on a log x axis."""
        nan = float("nan")
        half = math.modulus // 2
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
                if self.signed and y0 < half <= y:
                    xc = x0 + (half - y0) * (x - x0) / (y - y0)
                    out_x += [xc, nan, xc]
                    out_y += [self.y(math, half - 1), nan, self.y(math, half)]
                elif self.symlog_x and x - x0 > 2:
                    for i in range(1, 24):
                        xi = x0 + (x - x0) * (i / 24) ** 2
                        out_x.append(xi)
                        out_y.append(self.y(math, y0 + (y - y0) * (xi - x0) / (x - x0)))
            out_x.append(x)
            out_y.append(self.y(math, y))
            prev = (x, y)
        return out_x, out_y

    def axes(self, ax: Any, end: int, widths: str) -> None:
        """Scales, limits, ticks and the y label: the same on every panel."""
        from matplotlib.ticker import FuncFormatter

        if self.symlog_x:
            ax.set_xscale("symlog", linthresh=100, linscale=1.5)
            ax.set_xlim(0, end * 1.25)
        else:
            ax.set_xlim(0, end * 1.02)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: count(round(v))))
        if self.signed:
            ax.set_yscale("symlog", linthresh=self.linthresh)
            ax.set_ylim(-self.limit, self.limit)
            powers = [10**k for k in range(1, 19) if self.linthresh <= 10**k <= self.limit]
            ticks = [-p for p in reversed(powers)] + [0] + powers
            ax.set_yticks(ticks, [f"{t:,}" for t in ticks])
            ax.minorticks_off()
            ax.axhline(0, color="#444444", lw=0.6)
            ax.set_ylabel(f"generation as signed\n{widths} value (0 = wrap)")
        else:
            ax.set_ylim(-0.07 * self.top, self.top * 1.05)
            ax.set_yticks([self.top * i // 4 for i in range(5)])
            ax.yaxis.set_major_formatter(_hex)
            ax.set_ylabel(f"truncated generation\n({widths})")


def _draw_run(ax: Any, run: Any, walk: BumpWalk, view: _View) -> None:
    spec, result = run.spec, run.result
    math = GenMath(spec)
    end = max(walk.total, 1)
    top = math.modulus if spec.era.has_mmio_generation else 1
    width = f"{spec.era.nominal_width}-bit" if spec.era.has_mmio_generation else "no"
    view.axes(ax, end, width)
    ax.set_title(_label(run), loc="left", fontsize=8.5)
    ax.grid(True, alpha=0.25)
    if spec.era.has_mmio_generation:
        for curve in curves(walk, spec):
            a = curve.address_space
            xs, ys = view.series(math, curve.xs, curve.ys)
            ax.plot(
                xs,
                ys,
                color=AS_COLOURS[a % 2],
                ls=AS_STYLES[a % 2],
                lw=1.3,
                label=f"AS {a} generation",
            )
            for x0, x1 in curve.bands:
                ax.fill_between([x0, x1], 0, top, color=AS_COLOURS[a % 2], alpha=0.18, lw=0)
            for x0, x1 in curve.bit63:
                ax.axvspan(
                    x0,
                    max(x1, x0 + end * 0.002),
                    color="#8e44ad",
                    alpha=0.22,
                    lw=0,
                    label="bit 63 set at rest",
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
            [view.y(math, w.before) for w in detected],
            marker="^",
            s=42,
            color="#222222",
            zorder=5,
            label="wrap (detected)",
        )
    if missed:
        ax.scatter(
            [walk.x_of_bump(w.address_space, w.bump) for w in missed],
            [view.y(math, w.before) for w in missed],
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
                view.y(math, math.nominal(h.current_generation))
                if spec.era.has_mmio_generation
                else (view.limit if view.signed else view.top) / 2
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


def _legend(fig: Any, axes: Sequence[Any], top: float) -> None:
    """One legend for the figure, under its title: each kind of mark once."""
    unique: dict[str, Any] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            unique.setdefault(label, handle)
    # The lines first (AS 0, AS 1), then the marks, in the order they were drawn.
    order = sorted(unique, key=lambda label: not label.endswith(" generation"))
    unique = {label: unique[label] for label in order}
    if unique:
        fig.legend(
            unique.values(),
            unique.keys(),
            fontsize=7.5,
            loc="upper left",
            bbox_to_anchor=(0.01, top),
            ncol=min(len(unique), 8),
            frameon=False,
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


HEADER_INCHES = 0.6
"""Room above the panels for the figure's title and its legend."""


def timeline_figure(session: Any) -> Any:
    """The timeline figure of a replay or compare session."""
    plt = _pyplot()
    trace = _in_memory(session.trace)
    walk = walk_bumps(trace)
    runs = list(session.runs)
    if not runs:
        raise UsageError("nothing to plot: no run could replay this trace")
    height = 3.0 * len(runs) + 0.5 + HEADER_INCHES
    fig, axes = plt.subplots(len(runs), 1, figsize=(13, height), squeeze=False, sharex=True)
    view = _View(runs, walk)
    for i, run in enumerate(runs):
        _draw_run(axes[i][0], run, walk, view)
    scale = " (symmetric log scale)" if view.symlog_x else ""
    axes[-1][0].set_xlabel(f"generation bumps since VM creation, all address spaces{scale}")
    title_top = 1 - 0.1 / height
    fig.suptitle(f"kvmgen: {trace.path}", x=0.01, y=title_top, ha="left", va="top", fontsize=10)
    _legend(fig, [row[0] for row in axes], title_top - 0.3 / height)
    fig.tight_layout(rect=(0, 0, 1, 1 - HEADER_INCHES / height))
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


SWEEP_SERIES = (
    ("wraps", "wraps", "#1f5fa8", "o", "-", 9),
    ("undetected_wraps", "undetected wraps", "#e02020", "X", "-", 8),
    ("wrap_zaps", "wrap zaps", "#c0392b", "^", (0, (4, 2)), 6),
    ("memslot_flush_zaps", "memslot-flush zaps", "#7f8c8d", "v", "-", 6),
    ("harmful_stale_hits", "harmful stale hits", "#d62728", "*", "-", 10),
    ("benign_stale_hits", "benign stale hits", "#f39c12", "s", (0, (1, 1.5)), 5),
)
LINEAR_COUNTS = 12
"""Counts up to this draw on a linear axis; beyond it, symmetric-log with plain labels."""


def _count_axis(ax: Any, most: int) -> None:
    """A y axis for counts: linear with integer ticks when small, else symmetric-log
    ticked at 0, 1, 10, 100, ... (written as numbers, never as powers of ten)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if most <= LINEAR_COUNTS:
        ax.set_ylim(-0.05 * max(most, 1), max(most, 1) * 1.15)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("count")
    else:
        ax.set_yscale("symlog", linthresh=1, linscale=0.6)
        ax.set_ylim(0, most * 2.5)
        ticks = [0, 1] + [10**k for k in range(1, 19) if 10**k <= most * 2.5]
        ax.set_yticks(ticks)
        ax.minorticks_off()
        ax.set_ylabel("count (symmetric log scale)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: count(round(v))))


def sweep_figure(sweep: Any) -> Any:
    """Wraps, zaps, stale hits (top) and modelled cycles (bottom) against the swept value.

    Series that coincide (wraps and their zaps) are drawn with their own marker size
    and dash so each stays visible; the legend has one entry per series drawn.
    """
    from matplotlib.ticker import FuncFormatter

    plt = _pyplot()
    rows: Sequence[Any] = sweep.rows
    xs = [row.value for row in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7.4), sharex=True)
    drawn = []
    for z, (key, label, colour, marker, style, size) in enumerate(SWEEP_SERIES):
        ys = [row.metrics[key] for row in rows]
        if any(ys) or key in ("wraps", "wrap_zaps"):
            top.plot(
                xs,
                ys,
                marker=marker,
                color=colour,
                label=label,
                lw=1.3,
                ls=style,
                ms=size,
                zorder=3 + z,
            )
            drawn += ys
    _count_axis(top, max([*drawn, 1]))
    top.grid(True, alpha=0.3)
    top.legend(fontsize=8, ncol=3, loc="upper left")
    for key, label, colour in (
        ("total_cycles", "total cycles", "#34495e"),
        ("invalidation_cycles", "invalidation cycles", "#c0392b"),
    ):
        bottom.plot(
            xs, [row.metrics[key] for row in rows], marker="o", ms=4, label=label, color=colour
        )
    spent = [row.metrics[k] for row in rows for k in ("total_cycles", "invalidation_cycles")]
    if spent and min(spent) > 0:
        bottom.set_yscale("log")
        bottom.set_ylim(min(spent) / 3, max(spent) * 3)
        bottom.set_ylabel("modelled CPU cycles (log scale)")
    else:
        bottom.set_yscale("symlog", linthresh=1e3)
        bottom.set_ylim(bottom=0)
        bottom.set_ylabel("modelled CPU cycles (symmetric log scale)")
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: cycles(v)))
    bottom.set_xlabel(sweep.axis_label)
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8, loc="center right")
    fig.suptitle(sweep.title, x=0.01, ha="left", fontsize=10)
    fig.tight_layout()
    return fig


def sweep_plot(sweep: Any, fmt: str) -> bytes:
    """``sweep --plot FILE``, as ``fmt`` (``svg`` or ``png``) bytes."""
    return figure_bytes(sweep_figure(sweep), fmt)
