"""How kvmgen writes numbers, counted nouns and run labels, for every output.

One place, imported by every renderer (terminal, Markdown, JUnit, HTML, plots,
the ``why`` texts of ``--events``) and by anything below them that words a
message (model warnings, importers, the probe), so the same quantity reads the
same everywhere. A leaf: it imports nothing from kvmgen.

The rules:

- counts (events, updates, bumps, zaps, hits, candidates) are exact, with
  thousands separators: ``262,145``; a difference carries its sign: ``+1``,
  ``-3,124``, and no change is ``0``;
- modelled CPU cycles in a report are estimates, shown to three significant
  digits with k, M or G: ``812``, ``3.12 k``, ``15.0 k``, ``25.4 M``; where a
  value is held to a limit or a baseline (``check``, ``diff``) it is exact, like
  a count;
- durations have three significant digits and the largest readable unit:
  ``9.98 s``, ``2.43 h``, ``12.1 d``, ``3.1 y``; rates likewise: ``30/s``;
- percentages have two decimals and a sign: ``+0.89%``;
- generations are hexadecimal: ``0xfff6e``;
- a counted noun agrees with its count: ``1 candidate``, ``2 candidates``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_SUFFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def count(value: int) -> str:
    """An exact count: ``262,145``."""
    return f"{value:,}"


def signed(value: int) -> str:
    """An exact difference: ``+1``, ``-3,124``, ``0``."""
    return f"{value:+,}" if value else "0"


def _three_digits(value: float) -> str:
    """``value`` (>= 0) with three significant digits, fixed-point: 3.12, 15.0, 812."""
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(value)))
    text = f"{value:.{digits}f}"
    # Rounding may add a digit (99.95 -> 100.0): redo with one decimal fewer.
    if digits and len(text.split(".")[0]) + digits > 3:
        text = f"{value:.{digits - 1}f}"
    return text


def cycles(value: float, *, sign: bool = False) -> str:
    """Modelled cycles: ``812``, ``3.12 k``, ``15.0 k``, ``1.23 G`` (``+15.0 k`` with ``sign``)."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    prefix = ("+" if value > 0 else "-") if sign else ("-" if value < 0 else "")
    if magnitude < 999.5:
        return prefix + f"{round(magnitude):,}"
    # 999,960 is 1.00 M, not 1000 k: a unit is used from where its value rounds to 1.00.
    scale, unit = next((s, u) for s, u in _SUFFIXES if magnitude >= s * 0.9995 or u == "k")
    return f"{prefix}{_three_digits(magnitude / scale)} {unit}"


def number(value: float) -> str:
    """A limit or setting: integers exact (``2,000,000,000``), others shortest (``2.5``)."""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def percent(value: float) -> str:
    """A change in percent: ``+0.89%``, ``-12.50%``."""
    return f"{value:+.2f}%"


_UNITS = (("s", 1.0, 60.0), ("min", 60.0, 3600.0), ("h", 3600.0, 86400.0), ("d", 86400.0, 3.65e7))
_YEAR = 86400 * 365.25


def seconds(value: float | None) -> str:
    """A duration: ``17.0 s``, ``9.98 s``, ``2.43 h``, ``12.1 d``, ``3.1 y``; ``-`` for none."""
    if value is None:
        return "-"
    if value < 0.001:
        return "0 s" if value == 0 else f"{_three_digits(value * 1e6)} us"
    if value < 1:
        return f"{_three_digits(value * 1000)} ms"
    for unit, scale, limit in _UNITS:
        if value < limit * 0.9995:
            return f"{_three_digits(value / scale)} {unit}"
    return f"{_three_digits(value / _YEAR)} y" if value < 1000 * _YEAR else f"{value / _YEAR:.3g} y"


def rate(per_second: float) -> str:
    """A rate: ``30/s``, ``0.5/s``, ``1.23 k/s``."""
    if per_second >= 1000:
        return f"{cycles(per_second)}/s"
    return f"{float(_three_digits(per_second)):g}/s"


def plural(value: int, noun: str, nouns: str | None = None) -> str:
    """``1 candidate``, ``2 candidates``; ``nouns`` for an irregular plural."""
    word = noun if value == 1 else (nouns or _plural_of(noun))
    return f"{count(value)} {word}"


def plural_signed(value: int, noun: str, nouns: str | None = None) -> str:
    """A difference with its noun: ``+1 wrap zap``, ``-2 wrap zaps``, ``0 wrap zaps``."""
    word = noun if abs(value) == 1 else (nouns or _plural_of(noun))
    return f"{signed(value)} {word}"


def _plural_of(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "o", "u"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def hexadecimal(value: int) -> str:
    """A generation: ``0xfff6e``."""
    return f"{value:#x}"


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# -- run labels ------------------------------------------------------------------------


def era_text(era: str, *, kernel: str | None, versions: str, variant: str | None = None) -> str:
    """An era with its kernels: ``E5 (4.19)`` for a kernel asked for, else the era's
    range, ``E7 (5.4-5.7)``; a variant follows in brackets: ``E6 (5.2) [5.1-5.2]``."""
    text = f"{era} ({kernel or versions})"
    return text + (f" [{variant}]" if variant else "")


def bias_text(bias: int | None, *, literal: bool = False) -> str:
    """``bias 150``, ``bias -150 mod 2^64`` (a literal bias), or ``no MMIO generation`` (E0)."""
    if bias is None:
        return "no MMIO generation"
    if literal:
        return f"bias -{bias} mod 2^64"
    return f"bias {bias}"


def bias_value(bias: int | None, *, literal: bool = False) -> str:
    """A bias in a table's bias column: ``150``, ``-150 mod 2^64`` (literal), ``-`` (E0)."""
    if bias is None:
        return "-"
    return f"-{bias} mod 2^64" if literal else str(bias)


def policy_text(policies: Sequence[str], bias: int | None, *, literal: bool = False) -> str:
    """The policies that gave a run and the bias they mean: ``historical/none, bias 0``."""
    return f"{'/'.join(policies)}, {bias_text(bias, literal=literal)}"


def run_label(
    era: str,
    *,
    kernel: str | None,
    versions: str,
    variant: str | None,
    policies: Sequence[str],
    bias: int | None,
    literal: bool = False,
    address_spaces: int,
    default_address_spaces: int,
    separator: str = ", ",
) -> str:
    """The one name of a run, in every output: ``E5 (4.19), historical, bias 150``.

    The address-space count is named when it is not the era's default
    (``E12 (6.18), historical/none, bias 0, 1 AS``). ``separator`` goes between the
    era and the policy (a line break in a table header).
    """
    label = era_text(era, kernel=kernel, versions=versions, variant=variant)
    label += separator + policy_text(policies, bias, literal=literal)
    if address_spaces != default_address_spaces:
        label += f", {address_spaces} AS"
    return label
