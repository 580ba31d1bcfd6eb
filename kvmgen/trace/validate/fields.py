"""Field-level checks shared by every part of the trace validator.

A :class:`Where` knows the file, the event and the field prefix, so each check can
raise a complete :class:`TraceError` (file, line, column, event, op, field) in one call.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from kvmgen.errors import TraceError
from kvmgen.trace.tree import (
    Pos,
    describe,
    dup_pos,
    format_int,
    is_map,
    is_seq,
    key_pos,
    node_pos,
    raw_text,
    value_pos,
)

# Integers in strings (needed in JSON): decimal or 0x-hex, as the format says. A minus
# sign is read so that the range check can say "got -16"; a plus sign is no part of it.
_INT_TEXT = re.compile(r"(-?)(?:0[xX]([0-9a-fA-F]+)|(0|[1-9][0-9]*))")
# Far beyond every range below; keeps int() clear of its 4300-digit limit.
_MAX_DIGITS = 200


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive integer range and how to name it in messages."""

    lo: int
    hi: int
    text: str
    # How to say the lower bound alone, for ranges whose top no one reaches by accident.
    low_text: str | None = None


SLOT = Range(0, 32767, "0..32767")
AS = Range(0, 1, "0..1")
GFN = Range(0, (1 << 40) - 1, "0..2^40-1")
PAGES = Range(1, 1 << 40, "1..2^40", ">= 1")
GPA = Range(0, (1 << 52) - 1, "0..2^52-1")
VCPU = Range(0, 4095, "0..4095")
VCPUS = Range(1, 4096, "1..4096")
FLAGS = Range(0, (1 << 32) - 1, "0..2^32-1")
REPEAT = Range(1, 1 << 62, "1..2^62", ">= 1")
ADDRESS_SPACES = Range(1, 2, "1..2")


class Problem(ValueError):
    """A value is wrong; the caller adds where."""


def parse_int(value: Any) -> int:
    """An integer, or a string holding a decimal or ``0x`` hex integer; nothing else."""
    if isinstance(value, bool):
        raise Problem(f"expected an integer, got {describe(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _INT_TEXT.fullmatch(value)
        if match is None:
            raise Problem(
                f"expected an integer (decimal without leading zeros, or 0x-hex), "
                f"got {describe(value)}"
            )
        if match[2] is not None:
            number = int(match[2], 16)
        else:
            digits = match[3]
            if len(digits) > _MAX_DIGITS:
                raise Problem(f"expected an integer, got a number with {len(digits)} digits")
            number = int(digits)
        return -number if match[1] else number
    raise Problem(f"expected an integer, got {describe(value)}")


def check_range(number: int, rng: Range) -> int:
    """``number`` if it lies in ``rng``, else a Problem naming the allowed range."""
    if number < rng.lo:
        raise Problem(f"expected an integer {rng.low_text or rng.text}, got {format_int(number)}")
    if number > rng.hi:
        raise Problem(f"expected an integer {rng.text}, got {format_int(number)}")
    return number


class Where:
    """Error context: the file, the event (index and op) and the field path prefix."""

    __slots__ = ("event", "op", "path", "prefix")

    def __init__(
        self, path: str, *, event: int | None = None, op: str | None = None, prefix: str = ""
    ) -> None:
        self.path = path
        self.event = event
        self.op = op
        self.prefix = prefix

    def sub(self, prefix: str) -> Where:
        """The same context one level down (``prefix`` ends in a dot)."""
        return Where(self.path, event=self.event, op=self.op, prefix=self.prefix + prefix)

    def field(self, key: str | None) -> str | None:
        """The dotted field path of ``key`` (or of this level when ``key`` is None)."""
        if key is None:
            return self.prefix.rstrip(".") or None
        return self.prefix + key

    def fail(self, message: str, pos: Pos, key: str | None = None) -> NoReturn:
        """Raise the TraceError for ``key`` (or this level) at ``pos``."""
        raise TraceError(
            self.path,
            message,
            line=pos[0],
            column=pos[1] if pos[0] is not None else None,
            event=self.event,
            op=self.op,
            field=self.field(key),
        )

    # --- mapping-level checks -------------------------------------------------

    def check_dup(self, m: Any) -> None:
        """Reject a mapping in which a key appears twice."""
        dup = dup_pos(m)
        if dup is not None:
            self.fail(f"duplicate key {dup[0]!r}", dup[1], dup[0])

    def check_keys(
        self, m: Any, allowed: tuple[str, ...], hints: dict[str, str] | None = None
    ) -> None:
        """Reject a duplicate key, then the first key not in ``allowed``."""
        self.check_dup(m)
        for key in m:
            if key not in allowed:
                if hints and key in hints:
                    self.fail(hints[key], key_pos(m, key), key)
                self.fail(
                    f"unknown key {key!r}: expected one of {', '.join(allowed)}",
                    key_pos(m, key),
                    key,
                )

    def require(self, m: Any, key: str, what: str = "") -> Any:
        """The value of a required key."""
        if key not in m:
            self.fail(f"missing required key {key!r}{what}", node_pos(m), key)
        return m[key]

    # --- typed values ---------------------------------------------------------

    def int_value(self, m: Any, key: str, rng: Range) -> int:
        """The integer at ``key`` (present), checked against ``rng``."""
        try:
            return check_range(parse_int(m[key]), rng)
        except Problem as problem:
            self.fail(str(problem), value_pos(m, key), key)

    def opt_int(self, m: Any, key: str, rng: Range, default: Any) -> Any:
        """The integer at ``key``, or ``default`` when absent."""
        return self.int_value(m, key, rng) if key in m else default

    def req_int(self, m: Any, key: str, rng: Range) -> int:
        """The integer at a required ``key``."""
        self.require(m, key)
        return self.int_value(m, key, rng)

    def text(self, m: Any, key: str, *, yaml_raw: bool = False, expected: str = "a string") -> str:
        """The string at ``key`` (present).

        With ``yaml_raw``, an unquoted YAML scalar that loaded as a number or a
        boolean counts as its source text: YAML users do not quote free text.
        """
        value = m[key]
        if isinstance(value, str):
            return value
        if yaml_raw and value is not None and not is_map(value) and not is_seq(value):
            raw = raw_text(m, key)
            if raw is not None:
                return raw
        self.fail(f"expected {expected}, got {describe(value)}", value_pos(m, key), key)

    def choice(self, m: Any, key: str, options: dict[str, Any], default: Any) -> Any:
        """One of the names in ``options`` at ``key`` (its mapped value), or ``default``."""
        if key not in m:
            return default
        value = m[key]
        if isinstance(value, str) and value in options:
            return options[value]
        self.fail(
            f"expected one of {', '.join(options)}, got {describe(value)}", value_pos(m, key), key
        )

    def number(self, m: Any, key: str) -> float:
        """A finite int or float at ``key`` (present), as a float."""
        value = m[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                result = float(value)
            except OverflowError:
                result = math.inf
            if math.isfinite(result):
                return result
            self.fail(f"expected a finite number, got {describe(value)}", value_pos(m, key), key)
        self.fail(f"expected a number, got {describe(value)}", value_pos(m, key), key)
