"""Tables and prose that fit the width they are given.

Every human table of kvmgen is a :class:`Grid` (a title, columns, rows of cells)
printed by :func:`print_grid`, and every explanation line goes through
:func:`print_prose`. A cell is never cut to ``…`` and a number never breaks over
two lines: when the whole table does not fit the console's width, it is

- **split** into parts that repeat the columns naming the row (``key`` columns)
  and carry as many other columns as fit, one part under the other;
- or **transposed** first (rows become columns: ``compare``'s runs side by side,
  like ``replay``), then split the same way;
- or **stacked**: each row (or each group of rows sharing their key cells) under
  a heading of its key cells, its other cells as ``name: value`` items or a
  small table, long text (``prose`` columns) wrapped on lines of its own.

Prose wraps at word boundaries to the width, continuation lines indented under
the first. The width is the terminal's; ``COLUMNS`` overrides it; files and
pipes get :data:`kvmgen.report.console.FILE_WIDTH` (120) columns (README, "Output width").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PROSE_MIN = 36
"""A prose column narrower than this is stacked instead (a word or two per line reads badly)."""


@dataclass(frozen=True)
class Column:
    """One column: its header (``\\n`` breaks it), alignment and role.

    ``key`` columns name the row: they are repeated in every part of a split
    table and become the heading of a stacked row. ``prose`` columns hold
    sentences that may wrap inside their cell (at least :data:`PROSE_MIN` wide).
    """

    header: str
    right: bool = False
    key: bool = False
    prose: bool = False


@dataclass
class Grid:
    """A table to print: cells are rich markup (``[red]NO[/]``)."""

    title: str
    columns: Sequence[Column]
    rows: list[Sequence[str]] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    """Per row, what names it when transposed or stacked [default: its key cells]."""

    def add_row(self, *cells: str, name: str | None = None) -> None:
        """Append a row (one cell per column); ``name`` heads it when transposed or stacked."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)
        self.names.append(name)

    def name_of(self, index: int, separator: str) -> str:
        """Row ``index``'s name, or its non-empty key cells joined by ``separator``."""
        name = self.names[index] if index < len(self.names) else None
        if name is not None:
            return name if separator == "\n" else name.replace("\n", separator)
        keys = [i for i, c in enumerate(self.columns) if c.key]
        return separator.join(self.rows[index][i] for i in keys if self.rows[index][i])


SPLIT = "split"
TRANSPOSE = "transpose"
STACK = "stack"


def _text(markup: str) -> Text:
    from rich.text import Text

    return Text.from_markup(markup)


def cell_width(markup: str) -> int:
    """Terminal cells the widest line of ``markup`` takes (markup tags excluded)."""
    return max((_text(line).cell_len for line in markup.split("\n")), default=0)


def _longest_word(markup: str) -> int:
    return max((len(word) for word in _text(markup).plain.split()), default=0)


def _natural(grid: Grid, index: int) -> int:
    cells = [grid.columns[index].header] + [row[index] for row in grid.rows]
    return max(cell_width(cell) for cell in cells)


def _least(grid: Grid, index: int) -> int:
    """The narrowest a column may be: its natural width, or for prose what reads well."""
    natural = _natural(grid, index)
    if not grid.columns[index].prose:
        return natural
    words = max(_longest_word(row[index]) for row in grid.rows) if grid.rows else 0
    return min(natural, max(PROSE_MIN, words, cell_width(grid.columns[index].header)))


def table_width(widths: Sequence[int]) -> int:
    """Terminal cells a boxed rich table with these column widths takes (padding 1, rules)."""
    return sum(widths) + 3 * len(widths) + 1


def fits(grid: Grid, width: int, indices: Sequence[int] | None = None) -> bool:
    """Whether ``grid`` (or these columns of it) fits ``width`` without cutting a cell."""
    chosen = range(len(grid.columns)) if indices is None else indices
    return table_width([_least(grid, i) for i in chosen]) <= width


def _rich_table(grid: Grid, indices: Sequence[int], title: str | None) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i in indices:
        column = grid.columns[i]
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            no_wrap=not column.prose,
            min_width=_least(grid, i),
            overflow="fold",
        )
    for row in grid.rows:
        table.add_row(*(row[i] for i in indices))
    return table


def _parts(grid: Grid, width: int) -> list[list[int]] | None:
    """Column groups that each fit ``width``, every one with the key columns; None if
    the key columns and any one other column cannot share a line."""
    keys = [i for i, c in enumerate(grid.columns) if c.key]
    others = [i for i, c in enumerate(grid.columns) if not c.key]
    parts: list[list[int]] = []
    current: list[int] = []
    for i in others:
        if fits(grid, width, keys + current + [i]):
            current.append(i)
            continue
        if not current:
            return None
        parts.append(keys + current)
        current = [i]
        if not fits(grid, width, keys + current):
            return None
    if current or not parts:
        parts.append(keys + current)
    return parts


def transposed(grid: Grid) -> Grid:
    """Rows become columns: headed by their key cells, one row per other column."""
    others = [i for i, c in enumerate(grid.columns) if not c.key]
    columns = [Column("", key=True)]
    for index in range(len(grid.rows)):
        columns.append(Column(grid.name_of(index, "\n"), right=True))
    out = Grid(grid.title, columns)
    for i in others:
        header = " ".join(grid.columns[i].header.split())
        out.rows.append([header, *(row[i] for row in grid.rows)])
    return out


def print_grid(console: Console, grid: Grid, *, narrow: str = SPLIT) -> None:
    """Print ``grid`` whole when it fits the console, else as ``narrow`` says (see module)."""
    width = console.width
    everything = list(range(len(grid.columns)))
    if fits(grid, width):
        console.print(_rich_table(grid, everything, grid.title))
        return
    source = transposed(grid) if narrow == TRANSPOSE and grid.rows else grid
    parts = None if narrow == STACK else _parts(source, width)
    if parts is None:
        _print_stacked(console, grid)
        return
    for n, indices in enumerate(parts):
        console.print(_rich_table(source, indices, source.title if n == 0 else None))


def _print_stacked(console: Console, grid: Grid) -> None:
    """Each group of rows with the same key cells under one heading (module docstring)."""
    from rich.markup import escape

    keys = [i for i, c in enumerate(grid.columns) if c.key]
    short = [i for i, c in enumerate(grid.columns) if not c.key and not c.prose]
    prose = [i for i, c in enumerate(grid.columns) if c.prose and not c.key]
    if grid.title:
        print_prose(console, f"[i]{escape(grid.title)}[/]")
    groups: list[tuple[list[str], str, list[Sequence[str]]]] = []
    for index, row in enumerate(grid.rows):
        head = [row[i] for i in keys]
        if groups and groups[-1][0] == head:
            groups[-1][2].append(row)
        else:
            groups.append((head, grid.name_of(index, ", "), [row]))
    # Groups of several rows (check, diff) get small tables, one-row groups (eras) items.
    tabular = any(len(rows) > 1 for _, _, rows in groups)
    for _, name, rows in groups:
        if name:
            print_prose(console, f"[b]{name}[/]", hang=2)
        sub = Grid("", [grid.columns[i] for i in short], [[r[i] for i in short] for r in rows])
        if tabular and short and fits(sub, console.width - 2):
            from rich.padding import Padding

            table = _rich_table(sub, list(range(len(short))), None)
            table.box = None
            console.print(Padding(table, (0, 0, 0, 1), expand=False))
            rows_left: list[Sequence[str]] = []
        else:
            rows_left = rows
        for row in rows_left:
            items = [
                f"{_plain_header(grid.columns[i])}: {row[i]}"
                for i in short
                if row[i] not in ("", "-")
            ]
            if items:
                print_prose(console, "   ".join(items), indent=2, hang=0, keep=True)
        for row in rows:
            for i in prose:
                if row[i]:
                    print_prose(console, row[i], indent=2, hang=0)


def _plain_header(column: Column) -> str:
    return " ".join(column.header.split())


def print_prose(
    console: Console, markup: str, *, indent: int = 0, hang: int = 2, keep: bool = False
) -> None:
    """Print rich ``markup`` wrapped to the console at word boundaries.

    The first line starts ``indent`` columns in, the following ones ``indent +
    hang``. With ``keep``, runs of three spaces separate items that are not
    broken inside (``name: value   name: value``).
    """
    text = _text(markup)
    width = max(console.width, 20)
    lines = wrap_text(text, width - indent, width - indent - hang, keep=keep)
    for n, line in enumerate(lines):
        pad = " " * (indent + (hang if n else 0))
        console.print(_text(pad) + line if pad else line, soft_wrap=True)


def wrap_offsets(plain: str, first: int, rest: int, *, keep: bool = False) -> list[tuple[int, int]]:
    """``(start, end)`` of each line when ``plain`` is wrapped: at spaces (with ``keep``,
    only at runs of three), a line ``first`` wide then ``rest`` wide; a piece longer
    than a line is broken inside it."""
    sep = "   " if keep else " "
    pieces: list[tuple[int, int]] = []
    start = 0
    while start <= len(plain):
        end = plain.find(sep, start)
        end = len(plain) if end < 0 else end
        if end > start:
            pieces.append((start, end))
        start = end + len(sep)
        while keep and start < len(plain) and plain[start] == " ":
            start += 1
    pieces = _glued(plain, pieces)
    lines: list[tuple[int, int]] = []
    line: tuple[int, int] | None = None
    for lo, hi in pieces:
        limit = first if not lines else rest
        if line is not None and hi - line[0] <= limit:
            line = (line[0], hi)
            continue
        if line is not None:
            lines.append(line)
            limit = rest
        while hi - lo > limit:
            lines.append((lo, lo + limit))
            lo += limit
            limit = rest
        line = (lo, hi)
    if line is not None:
        lines.append(line)
    return lines or [(0, 0)]


UNITS = frozenset({"s", "ms", "us", "min", "h", "d", "y", "k", "M", "G", "T", "%"})
"""Words kept on the line of the number before them (``2.25 s``, ``15.0 k``)."""


def _glued(plain: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pieces with a unit joined to its number and ``AS`` to its index, so that a line
    never ends in ``2.25`` with ``s`` on the next."""
    out: list[tuple[int, int]] = []
    for lo, hi in pieces:
        word = plain[lo:hi].rstrip(".,;:)")
        if out:
            before = plain[out[-1][0] : out[-1][1]]
            number_unit = before[-1:].isdigit() and word in UNITS
            if number_unit or (before.endswith("AS") and word[:1].isdigit()):
                out[-1] = (out[-1][0], hi)
                continue
        out.append((lo, hi))
    return out


def wrap_text(text: Text, first: int, rest: int, *, keep: bool = False) -> list[Text]:
    """``text`` (styles kept) as wrapped lines; see :func:`wrap_offsets`."""
    out = []
    for lo, hi in wrap_offsets(text.plain, max(first, 8), max(rest, 8), keep=keep):
        out.append(text[lo:hi])
    return out
