"""Gate limits: ``--max METRIC=VALUE`` and ``--max-regression METRIC=PCT``.

A ``max`` limit fails when a run's metric is above VALUE. A ``max_regression``
limit fails when the metric grew by more than PCT percent over the same run in
the baseline; from a baseline of 0, any increase is a regression (PCT of
nothing is nothing). ``all=PCT`` sets every metric's regression limit at once;
a metric named on its own beats ``all`` from the same source.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kvmgen.errors import UsageError
from kvmgen.formatting import number
from kvmgen.gate.metrics import METRICS

MAX = "max"
MAX_REGRESSION = "max_regression"
ALL = "all"

Number = int | float


@dataclass(frozen=True)
class Limit:
    """One limit on one metric, applied to every run of every trace."""

    kind: str  # MAX or MAX_REGRESSION
    metric: str
    value: Number

    @property
    def text(self) -> str:
        """The limit as a condition that must hold, e.g. ``harmful_stale_hits <= 0``."""
        if self.kind == MAX:
            return f"{self.metric} <= {number(self.value)}"
        return f"{self.metric} <= baseline +{number(self.value)}%"

    @property
    def option(self) -> str:
        """The command-line spelling, e.g. ``--max-regression total_cycles=5``."""
        flag = "--max" if self.kind == MAX else "--max-regression"
        return f"{flag} {self.metric}={number(self.value)}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"kind": self.kind, "metric": self.metric, "value": self.value}


def check_metric(name: str, where: str, *, allow_all: bool = False) -> str:
    """``name`` if it is a metric (or ``all`` when allowed), else a one-line usage error."""
    if name in METRICS or (allow_all and name == ALL):
        return name
    valid = ", ".join(METRICS) + (", or all" if allow_all else "")
    raise UsageError(f"{where}: unknown metric {name!r}; valid metrics: {valid}")


def parse_number(text: object, where: str, *, percent: bool = False) -> Number:
    """A finite number >= 0 from a string or a YAML/TOML number (``10%`` when ``percent``)."""
    if isinstance(text, bool):
        raise UsageError(f"{where}: expected a number >= 0, got {text!r}")
    if isinstance(text, int | float):
        value: Number = text
    else:
        raw = str(text).strip()
        if percent:
            raw = raw.removesuffix("%").strip()
        try:
            value = int(raw)
        except ValueError:
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"{where}: expected a number >= 0, got {text!r}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
        raise UsageError(f"{where}: expected a number >= 0, got {text!r}")
    return value


def _split(text: str, flag: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise UsageError(f"{flag} {text!r}: expected METRIC=VALUE")
    return name.strip(), value.strip()


def limits_from_mapping(mapping: Mapping[str, object], kind: str, where: str) -> dict[str, Number]:
    """Per-metric values from one source (a config table or the options of one flag).

    ``all`` (regression only) is expanded first, so a metric named on its own wins.
    """
    regression = kind == MAX_REGRESSION
    out: dict[str, Number] = {}
    items = sorted(mapping.items(), key=lambda item: item[0] != ALL)
    for name, raw in items:
        check_metric(str(name), where, allow_all=regression)
        value = parse_number(raw, f"{where} {name}", percent=regression)
        if name == ALL:
            out.update(dict.fromkeys(METRICS, value))
        else:
            out[str(name)] = value
    return out


def parse_options(texts: Iterable[str], kind: str) -> dict[str, Number]:
    """``--max`` or ``--max-regression`` values; the last one given for a metric wins."""
    flag = "--max" if kind == MAX else "--max-regression"
    pairs: dict[str, str] = {}
    for text in texts:
        name, value = _split(text, flag)
        check_metric(name, f"{flag} {text}", allow_all=kind == MAX_REGRESSION)
        pairs.pop(name, None)
        pairs[name] = value
    return limits_from_mapping(pairs, kind, flag)


def merge_limits(*layers: tuple[Mapping[str, Number], Mapping[str, Number]]) -> tuple[Limit, ...]:
    """Limits from (max, max_regression) layers, later layers winning, in metric order."""
    maxes: dict[str, Number] = {}
    regressions: dict[str, Number] = {}
    for layer_max, layer_regression in layers:
        maxes.update(layer_max)
        regressions.update(layer_regression)
    out = [Limit(MAX, m, maxes[m]) for m in METRICS if m in maxes]
    out += [Limit(MAX_REGRESSION, m, regressions[m]) for m in METRICS if m in regressions]
    return tuple(out)


def exceeds_max(value: int, limit: Number) -> bool:
    """True when ``value`` breaks a ``max`` limit."""
    return value > limit


def regression_percent(value: int, baseline: int) -> float | None:
    """How much ``value`` grew over ``baseline`` in percent; None from a baseline of 0."""
    if baseline == 0:
        return None
    return (value - baseline) * 100.0 / baseline


def exceeds_regression(value: int, baseline: int, percent: Number) -> bool:
    """True when ``value`` is more than ``percent`` % above ``baseline`` (any rise from 0)."""
    if baseline <= 0:
        return value > baseline
    return value * 100 > baseline * (100 + percent)
