"""The located tree both loaders produce: plain Python values plus source positions.

Scalars are plain ``str``/``int``/``float``/``bool``/``None``. Mappings and lists are
:class:`Map` and :class:`Seq`, which remember where they start and where each key and
value starts, so the validator can name a line and column for any problem without
knowing which format the trace came from. Plain ``dict``/``list`` are accepted too
(positions then unknown), so a future fast path can hand over an unlocated parse.
"""

from __future__ import annotations

from typing import Any

# Where a value is in the source: 1-based line and column, or None when unknown.
Pos = tuple[int | None, int | None]
NOWHERE: Pos = (None, None)


class Map(dict[str, Any]):
    """A mapping with the position of itself, of each key and of each value.

    ``locs[key]`` is ``(key_line, key_col, value_line, value_col, raw)`` where ``raw``
    is the source text of a YAML scalar value that did not load as a string (so an
    unquoted ``kernel: 4.10`` can still be read as the text ``4.10``). ``dup`` keeps
    the first repeated key and its position: the loader records it, the validator
    reports it with the event and field it belongs to.
    """

    __slots__ = ("column", "dup", "line", "locs")

    def __init__(self, line: int | None = None, column: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.locs: dict[str, tuple[int, int, int, int, str | None]] = {}
        self.dup: tuple[str, int, int] | None = None

    def put(
        self,
        key: str,
        value: Any,
        key_pos: tuple[int, int],
        value_pos: tuple[int, int],
        raw: str | None = None,
    ) -> None:
        """Add ``key: value`` with positions; a repeated key is recorded in ``dup``."""
        if key in self:
            if self.dup is None:
                self.dup = (key, key_pos[0], key_pos[1])
            return
        self[key] = value
        self.locs[key] = (key_pos[0], key_pos[1], value_pos[0], value_pos[1], raw)


class Seq(list[Any]):
    """A list with the position of itself and of each item."""

    __slots__ = ("column", "line", "locs")

    def __init__(self, line: int | None = None, column: int | None = None) -> None:
        super().__init__()
        self.line = line
        self.column = column
        self.locs: list[tuple[int, int]] = []

    def add(self, value: Any, pos: tuple[int, int]) -> None:
        """Append ``value`` found at ``pos``."""
        self.append(value)
        self.locs.append(pos)


def node_pos(node: Any) -> Pos:
    """Where a mapping or list starts."""
    return getattr(node, "line", None), getattr(node, "column", None)


def value_pos(m: Any, key: str) -> Pos:
    """Where the value of ``key`` starts (the mapping's start if the key is absent)."""
    loc = getattr(m, "locs", {}).get(key)
    return (loc[2], loc[3]) if loc else node_pos(m)


def key_pos(m: Any, key: str) -> Pos:
    """Where ``key`` itself starts."""
    loc = getattr(m, "locs", {}).get(key)
    return (loc[0], loc[1]) if loc else node_pos(m)


def raw_text(m: Any, key: str) -> str | None:
    """The source text of a YAML scalar value that did not load as a string."""
    loc = getattr(m, "locs", {}).get(key)
    return loc[4] if loc else None


def item_pos(seq: Any, index: int) -> Pos:
    """Where item ``index`` of a list starts."""
    locs = getattr(seq, "locs", None)
    if locs is not None and index < len(locs):
        return locs[index]
    return node_pos(seq)


def is_map(value: Any) -> bool:
    """True for a mapping node."""
    return isinstance(value, dict)


def is_seq(value: Any) -> bool:
    """True for a list node."""
    return isinstance(value, list)


def describe(value: Any) -> str:
    """Name a found value for an error message, short and on one line."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return format_int(value)
    if isinstance(value, float):
        return f"{value!r} (a float)"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def format_int(value: int) -> str:
    """An integer for a message: hex added when large, bit count when absurd."""
    bits = value.bit_length()
    if bits > 96:
        # int -> str is limited to 4300 digits, and such a number is unreadable anyway.
        return f"{'-' if value < 0 else ''}a {bits}-bit number"
    if abs(value) >= 1 << 16:
        return f"{value} ({value:#x})"
    return str(value)
