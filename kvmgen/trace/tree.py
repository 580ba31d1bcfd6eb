"""The located tree both loaders produce: plain Python values plus source positions.

Scalars are plain ``str``/``int``/``float``/``bool``/``None``. Mappings and lists are
:class:`Map` and :class:`Seq`, which remember where they start and where each key and
value starts, so the validator can name a line and column for any problem without
knowing which format the trace came from. Plain ``dict``/``list`` are accepted too
(positions then unknown), so a future fast path can hand over an unlocated parse.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import Any

from kvmgen.errors import TraceError

# Where a value is in the source: 1-based line and column, or None when unknown.
Pos = tuple[int | None, int | None]
NOWHERE: Pos = (None, None)


Anchor = tuple[int, int, int]
"""Character offset ``at`` of a text is at (line, column) of the file it was cut from."""


class Source:
    """Turns a loader's compact position (a character offset) into line and column.

    Loaders that know line and column up front (YAML marks) store ``(line, column)``
    and no source; the JSON parser stores offsets and converts only the positions
    that are asked for, which is most of its cost saved on a valid trace.

    A text cut out of a file, or pieced together from parts of one (a header
    without its events list), gives ``anchors``: sorted (offset, line, column)
    triples; a position counts lines from the last anchor at or before it.
    """

    __slots__ = ("_anchors", "_starts")

    def __init__(self, text: str, anchors: tuple[Anchor, ...] = ()) -> None:
        self._starts = [0]
        self._starts.extend(m.end() for m in re.finditer("\n", text))
        self._anchors = anchors

    def pos(self, offset: int) -> tuple[int, int]:
        """1-based line and column of character ``offset``."""
        line = bisect_right(self._starts, offset)
        column = offset - self._starts[line - 1] + 1
        if not self._anchors:
            return line, column
        at, at_line, at_column = self._anchors[bisect_right(self._anchors, (offset, 1 << 62)) - 1]
        lines_between = line - bisect_right(self._starts, at)
        if lines_between == 0:
            return at_line, at_column + offset - at
        return at_line + lines_between, column


class Map(dict[str, Any]):
    """A mapping with the position of itself, of each key and of each value.

    ``locs[key]`` is ``(key_at, value_at, raw)``: positions in the loader's form (see
    :class:`Source`), and ``raw``, the source text of a YAML scalar value that did not
    load as a string (so an unquoted ``kernel: 4.10`` can still be read as the text
    ``4.10``). ``dup`` keeps the first repeated key and its position: the loader
    records it, the validator reports it with the event and field it belongs to.
    """

    __slots__ = ("at", "dup", "locs", "src")

    def __init__(self, at: Any, src: Source | None = None) -> None:
        super().__init__()
        self.at = at
        self.src = src
        self.locs: dict[str, tuple[Any, Any, str | None]] = {}
        self.dup: tuple[str, Any] | None = None

    def put(self, key: str, value: Any, key_at: Any, value_at: Any, raw: str | None = None) -> None:
        """Add ``key: value`` with positions; a repeated key is recorded in ``dup``."""
        if key in self:
            if self.dup is None:
                self.dup = (key, key_at)
            return
        self[key] = value
        self.locs[key] = (key_at, value_at, raw)


class Seq(list[Any]):
    """A list with the position of itself and of each item."""

    __slots__ = ("at", "locs", "src")

    def __init__(self, at: Any, src: Source | None = None) -> None:
        super().__init__()
        self.at = at
        self.src = src
        self.locs: list[Any] = []

    def add(self, value: Any, at: Any) -> None:
        """Append ``value`` found at ``at``."""
        self.append(value)
        self.locs.append(at)


def _resolve(node: Any, at: Any) -> Pos:
    src = node.src
    return src.pos(at) if src is not None else at


def node_pos(node: Any) -> Pos:
    """Where a mapping or list starts."""
    at = getattr(node, "at", None)
    return NOWHERE if at is None else _resolve(node, at)


def value_pos(m: Any, key: str) -> Pos:
    """Where the value of ``key`` starts (the mapping's start if the key is absent)."""
    loc = getattr(m, "locs", {}).get(key)
    return _resolve(m, loc[1]) if loc else node_pos(m)


def key_pos(m: Any, key: str) -> Pos:
    """Where ``key`` itself starts."""
    loc = getattr(m, "locs", {}).get(key)
    return _resolve(m, loc[0]) if loc else node_pos(m)


def dup_pos(m: Any) -> tuple[str, Pos] | None:
    """The first repeated key of a mapping and where it is repeated, if any."""
    dup = getattr(m, "dup", None)
    return None if dup is None else (dup[0], _resolve(m, dup[1]))


def raw_text(m: Any, key: str) -> str | None:
    """The source text of a YAML scalar value that did not load as a string."""
    loc = getattr(m, "locs", {}).get(key)
    return loc[2] if loc else None


def item_pos(seq: Any, index: int) -> Pos:
    """Where item ``index`` of a list starts."""
    locs = getattr(seq, "locs", None)
    if locs is not None and index < len(locs):
        return _resolve(seq, locs[index])
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
        return f"a {'negative ' if value < 0 else ''}{bits}-bit number"
    if abs(value) >= 1 << 16:
        return f"{value} ({value:#x})"
    return str(value)


def decode(path: str, data: bytes) -> str:
    """UTF-8 text of ``data`` (a leading byte-order mark is dropped)."""
    skip = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as error:
        start = error.start + skip
        text = data[:start].decode("utf-8-sig", "replace")
        line, column = offset_pos(text, len(text))
        raise TraceError(
            path,
            f"invalid UTF-8 (byte {data[start]:#04x} at offset {start}): "
            "a trace must be UTF-8 text",
            line=line,
            column=column,
        ) from None


def offset_pos(text: str, offset: int) -> Pos:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1
