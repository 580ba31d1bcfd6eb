"""``kvmgen forecast``: when each address space's truncated generation wraps, and whether
the kernel notices, from an update rate or a timestamped trace.

Closed form (see :mod:`kvmgen.model.genmath`): with one address space receiving
a steady stream of updates of ``b`` bumps each, its nominal value after ``k`` bumps
is ``(n0 + k*step) mod 2^W``. It first wraps at bump ``k1 = (2^W - 1 - n0) // step
+ 1`` and then every ``P = 2^W / step`` bumps. A wrap is detected when the era's
wrap test fired on a bump of that address space since its previous wrap; the test
can only fire within a few bumps of a wrap, so each wrap is decided by looking at
those bumps. Wraps after the first repeat the same pattern (``P`` is a power of two
and a multiple of ``b``), so the first wrap and "every later wrap" say everything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.formatting import count, plural, seconds
from kvmgen.formatting import rate as rate_text
from kvmgen.model.genmath import GenMath
from kvmgen.model.policy import RunSpec

_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(?:/\s*([a-z]+))?\s*$", re.I)
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "m": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}

HORIZON_BUMPS = 1 << 48
"""Bit-63 windows further away than this many bumps are not reported (centuries away)."""

BUMPS_PER_OP = {"flags": 1, "create": 1, "delete": 2, "move": 2}
"""Generation bumps per update, by the kind of update a steady workload repeats."""


def parse_rate(text: str) -> float:
    """Updates per second from ``30/s``, ``2000/min``, ``5/h``, ``1/d`` or a bare number (/s)."""
    match = _RATE.match(text)
    unit = (match.group(2) or "s").lower() if match else ""
    scale = _UNITS.get(unit) or _UNITS.get(unit.removesuffix("s"))
    if not match or scale is None:
        raise UsageError(f"--rate {text!r}: expected N/s, N/min, N/h or N/d with N > 0")
    value = float(match.group(1))
    if value <= 0 or not math.isfinite(value):
        raise UsageError(f"--rate {text!r}: the rate must be > 0")
    return value / scale


@dataclass(frozen=True)
class Bit63Window:
    """Bumps of one address space after which its generation rests with bit 63 set."""

    after_bump: int  # 0 = from VM creation
    update: int  # the update that leaves it set (0 = creation)
    seconds: float | None  # when it starts, at the forecast's rate


@dataclass(frozen=True)
class AsForecast:
    """The wrap forecast of one address space under one run."""

    address_space: int
    start_generation: int
    start_nominal: int
    bumps_per_update: int
    first_wrap_bump: int | None
    first_wrap_update: int | None
    first_wrap_seconds: float | None
    first_detected: bool | None
    first_zap_bumps: tuple[int, ...]
    period_bumps: int | None
    period_updates: float | None
    period_seconds: float | None
    later_detected: bool | None
    bumps_per_second: float | None
    bit63: tuple[Bit63Window, ...]

    def wraps_until(self, bumps: int) -> list[tuple[int, bool]]:
        """(bump, detected) of every wrap within the first ``bumps`` bumps."""
        if self.first_wrap_bump is None or self.period_bumps is None:
            return []
        out = []
        k, detected = self.first_wrap_bump, bool(self.first_detected)
        while k <= bumps:
            out.append((k, detected))
            k += self.period_bumps
            detected = bool(self.later_detected)
        return out


@dataclass(frozen=True)
class RunForecast:
    """The forecast of every address space of one run."""

    spec: RunSpec
    spaces: tuple[AsForecast, ...]
    updates_per_second: float | None


def forecast_space(
    spec: RunSpec,
    a: int,
    *,
    bumps_per_update: int = 1,
    bumps_per_second: float | None = None,
) -> AsForecast:
    """Forecast address space ``a`` of ``spec`` receiving a steady stream of updates."""
    math_ = GenMath(spec)
    g0 = spec.init_generations[a]
    b = bumps_per_update
    per_bump = None if not bumps_per_second else 1.0 / bumps_per_second

    def update_of(k: int) -> int:
        return -(-k // b)

    def seconds(k: int) -> float | None:
        return None if per_bump is None else update_of(k) * b * per_bump

    bit63 = tuple(
        Bit63Window(k, update_of(k), seconds(k) if k else 0.0 if per_bump else None)
        for k in math_.bit63_rest_bumps(g0)
        if k <= HORIZON_BUMPS
    )
    if not math_.has_generation:
        return AsForecast(
            a, g0, 0, b, None, None, None, None, (), None, None, None, None, bumps_per_second, ()
        )
    k1 = math_.bumps_to_wrap(g0)
    p = math_.period
    first_zaps = math_.zaps_between(g0, 0, k1, b)
    later_zaps = math_.zaps_between(g0, k1, k1 + p, b)
    return AsForecast(
        address_space=a,
        start_generation=g0,
        start_nominal=math_.nominal(g0),
        bumps_per_update=b,
        first_wrap_bump=k1,
        first_wrap_update=update_of(k1),
        first_wrap_seconds=seconds(k1),
        first_detected=bool(first_zaps),
        first_zap_bumps=tuple(first_zaps),
        period_bumps=p,
        period_updates=p / b,
        period_seconds=None if per_bump is None else p * per_bump,
        later_detected=bool(later_zaps),
        bumps_per_second=bumps_per_second,
        bit63=bit63,
    )


def forecast_run(
    spec: RunSpec,
    *,
    updates_per_second: float | None,
    bumps_per_update: int = 1,
    bumps_per_second: Sequence[float] | None = None,
) -> RunForecast:
    """Forecast every address space of ``spec``.

    With ``updates_per_second`` each address space is assumed to receive that many
    updates per second; ``bumps_per_second`` (one rate per address space, from a
    trace) overrides it per address space.
    """
    spaces = []
    for a in range(spec.address_spaces):
        if bumps_per_second is not None:
            rate = bumps_per_second[a]
        elif updates_per_second is not None:
            rate = updates_per_second * bumps_per_update
        else:
            rate = None
        spaces.append(
            forecast_space(spec, a, bumps_per_update=bumps_per_update, bumps_per_second=rate)
        )
    return RunForecast(spec, tuple(spaces), updates_per_second)


@dataclass(frozen=True)
class TraceRates:
    """Rates measured on a timestamped trace."""

    span_seconds: float
    updates: int
    bumps: tuple[int, ...]

    @property
    def updates_per_second(self) -> float:
        """Updates per second over the trace's timestamped span."""
        return self.updates / self.span_seconds

    def bumps_per_second(self, nas: int) -> list[float]:
        """Bumps per second of each of ``nas`` address spaces."""
        return [
            (self.bumps[a] if a < len(self.bumps) else 0) / self.span_seconds for a in range(nas)
        ]


def trace_rates(trace: object) -> TraceRates:
    """Measure the update and per-address-space bump rates of a timestamped trace."""
    from kvmgen.analysis.timeline import walk_bumps

    events = getattr(trace, "events", ())
    stamps = [e.t for e in events if e.t is not None]
    if len(stamps) < 2 or max(stamps) <= min(stamps):
        raise UsageError(
            f"{getattr(trace, 'path', 'trace')}: forecast needs --rate, or a trace with at "
            "least two events carrying increasing 't' timestamps"
        )
    walk = walk_bumps(trace)  # type: ignore[arg-type]
    return TraceRates(max(stamps) - min(stamps), walk.updates, tuple(walk.bumps))


def forecast_dict(run: RunForecast) -> dict[str, object]:
    """One run's forecast as JSON-ready data."""
    spec = run.spec
    return {
        "era": spec.era.name,
        "era_variant": spec.era.variant,
        "kernel": spec.kernel,
        "address_spaces": spec.address_spaces,
        "policies": list(spec.policies),
        "bias": spec.bias,
        "literal": spec.literal,
        "warnings": list(spec.warnings),
        "updates_per_second": run.updates_per_second,
        "spaces": [
            {
                "as": f.address_space,
                "start_generation": f.start_generation,
                "start_nominal": f.start_nominal,
                "bumps_per_update": f.bumps_per_update,
                "bumps_per_second": f.bumps_per_second,
                "first_wrap": None
                if f.first_wrap_bump is None
                else {
                    "bump": f.first_wrap_bump,
                    "update": f.first_wrap_update,
                    "seconds": f.first_wrap_seconds,
                    "detected": f.first_detected,
                    "zap_bumps": list(f.first_zap_bumps),
                },
                "period": None
                if f.period_bumps is None
                else {
                    "bumps": f.period_bumps,
                    "updates": f.period_updates,
                    "seconds": f.period_seconds,
                    "later_wraps_detected": f.later_detected,
                },
                "bit63_at_rest": [
                    {"after_bump": w.after_bump, "update": w.update, "seconds": w.seconds}
                    for w in f.bit63
                ],
            }
            for f in run.spaces
        ],
    }


def _detected(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "[red]NO (undetected)[/]")


FORECAST_COLUMNS = (
    ("era", False, True),
    ("policy", False, True),
    ("bias", True, True),
    ("AS", True, True),
    ("first wrap\nbump", True, False),
    ("first wrap\nupdate", True, False),
    ("first wrap\nafter", True, False),
    ("first wrap\ndetected", True, False),
    ("then every\n(updates)", True, False),
    ("then every\n(time)", True, False),
    ("later wraps\ndetected", True, False),
)


def forecast_grid(runs: Sequence[RunForecast], title: str) -> Any:
    """The forecast as a :class:`kvmgen.report.layout.Grid`: a row per run and address space."""
    from rich.markup import escape

    from kvmgen.report.labels import era_text
    from kvmgen.report.layout import Column, Grid

    columns = [Column(h, right=r, key=k) for h, r, k in FORECAST_COLUMNS]
    grid = Grid(escape(title), columns)
    for run in runs:
        spec = run.spec
        bias = (
            "-"
            if spec.bias is None
            else (f"-{spec.bias} mod 2^64" if spec.literal else str(spec.bias))
        )
        head = [escape(era_text(spec)), "/".join(spec.policies), bias]
        for f in run.spaces:
            name = escape(spec.describe("\n")) + f"\nAS {f.address_space}"
            if f.first_wrap_bump is None:
                cells = ["never", "-", "-", "-", "-", "-", "no MMIO generation"]
            elif f.bumps_per_second == 0:
                cells = ["never", "-", "no bumps", "-", "-", "-", "-"]
            else:
                cells = [
                    count(f.first_wrap_bump),
                    count(f.first_wrap_update or 0),
                    seconds(f.first_wrap_seconds),
                    _detected(f.first_detected),
                    count(round(f.period_updates)) if f.period_updates is not None else "-",
                    seconds(f.period_seconds),
                    _detected(f.later_detected),
                ]
            grid.add_row(*head, str(f.address_space), *cells, name=name)
    return grid


def forecast_notes(runs: Sequence[RunForecast]) -> list[str]:
    """What the table leaves unsaid, a line each: why a wrap goes undetected, where a
    literal bias leaves bit 63 set at rest, the policies' warnings."""
    from kvmgen.report.explain import never_zapped, wrap_test_text

    notes: list[str] = []
    for run in runs:
        spec = run.spec
        label = spec.label
        for f in run.spaces:
            if f.bumps_per_second == 0:
                notes.append(
                    f"{label}: AS {f.address_space} has no bumps in the trace, so it never wraps"
                )
                continue
            if f.first_wrap_bump is not None and not (f.first_detected and f.later_detected):
                which = (
                    "every wrap"
                    if not f.first_detected and not f.later_detected
                    else "the first wrap"
                    if not f.first_detected
                    else "every wrap after the first"
                )
                why = never_zapped(spec, f.address_space) or (
                    f"{wrap_test_text(spec.era, spec.address_spaces)}, which no bump of "
                    f"AS {f.address_space} before {which} leaves"
                )
                notes.append(f"{label}: {which} of AS {f.address_space} goes undetected: {why}")
            for w in f.bit63:
                when = (
                    "from VM creation"
                    if w.after_bump == 0
                    else (
                        f"after its bump {count(w.after_bump)} (update {count(w.update)}"
                        + (f", {seconds(w.seconds)}" if w.seconds is not None else "")
                        + ")"
                    )
                )
                notes.append(
                    f"{label}: AS {f.address_space} rests with bit 63 set {when} until its "
                    "next bump: every MMIO check fails, nothing is cached"
                )
        notes.extend(f"{label}: {w}" for w in spec.warnings)
    return list(dict.fromkeys(notes))


def render_forecasts(runs: Sequence[RunForecast], console: Any, *, title: str) -> None:
    """The forecast table (runs across on a narrow console), then a note per line."""
    from rich.markup import escape

    from kvmgen.report.layout import TRANSPOSE, print_grid, print_prose

    print_grid(console, forecast_grid(runs, title), narrow=TRANSPOSE)
    for note in forecast_notes(runs):
        print_prose(console, f"[yellow]note[/] {escape(note)}")


@dataclass(frozen=True)
class Forecast:
    """A whole forecast: the runs, where their rates come from, and how to say it."""

    runs: tuple[RunForecast, ...]
    source: str  # "rate" or "trace"
    description: str  # one line naming the rate or the trace's measured rates
    trace: str | None = None
    updates_per_second: float | None = None
    op: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` document (``kvmgen_forecast`` version 1)."""
        return {
            "kvmgen_forecast": 1,
            "source": self.source,
            "trace": self.trace,
            "updates_per_second": self.updates_per_second,
            "op": self.op,
            "runs": [forecast_dict(run) for run in self.runs],
        }


def rate_forecast(rate: str, per_second: float, op: str, specs: Sequence[RunSpec]) -> Forecast:
    """Each address space of each run receives ``per_second`` updates of ``op``.

    ``rate`` is how the user wrote it (``30/s``), ``per_second`` its :func:`parse_rate`.
    """
    if op not in BUMPS_PER_OP:
        raise UsageError(f"--op {op!r}: expected one of {', '.join(BUMPS_PER_OP)}")
    runs = tuple(
        forecast_run(spec, updates_per_second=per_second, bumps_per_update=BUMPS_PER_OP[op])
        for spec in specs
    )
    shown = rate_text(per_second)
    given = rate.strip()
    text = f"{shown} {op} updates per address space" + (
        f" (--rate {given})" if given.replace(" ", "") != shown else ""
    )
    return Forecast(runs, "rate", text, updates_per_second=per_second, op=op)


def trace_forecast(measured: TraceRates, path: str, specs: Sequence[RunSpec]) -> Forecast:
    """The bump rates a timestamped trace showed (:func:`trace_rates`), from VM creation on."""
    runs = tuple(
        forecast_run(
            spec,
            updates_per_second=measured.updates_per_second,
            bumps_per_second=measured.bumps_per_second(spec.address_spaces),
        )
        for spec in specs
    )
    text = (
        f"{path}: {plural(measured.updates, 'update')} in {seconds(measured.span_seconds)} "
        f"({rate_text(measured.updates_per_second)}), bumps per AS "
        + " / ".join(count(b) for b in measured.bumps)
    )
    return Forecast(runs, "trace", text, trace=path, updates_per_second=measured.updates_per_second)
