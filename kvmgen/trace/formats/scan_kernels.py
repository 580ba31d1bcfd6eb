"""Jitted byte scanners for JSON and flow-style YAML traces: bytes in, columns out.

Kept apart from the loaders' Python (as the engine keeps its kernels in one
module): :func:`scan_json_events` walks a JSON document once, finds the
top-level ``events`` list and reads every plain access straight into columns.
Every other event (updates, bumps, accesses with a note, a ``t``, a ``gpa``,
a string number...) is only delimited, with its key counts and the position of
each nested object, and left to the Python validator. The scanner is strict:
whatever it does not understand makes it report ``FALLBACK``, and the caller
then reads the document with the full loader, which words any error.

Positions: ``line`` is 1-based; ``column`` is the 1-based byte column, which is
the character column because callers only pass ASCII documents.
"""

from __future__ import annotations

import numpy as np

from kvmgen.jit import jit

OK = 0
FALLBACK = 1

# ---- plain-access columns: acc[row, A_*]
A_INDEX = 0
A_GFN = 1
A_AS = 2
A_VCPU = 3
A_REPEAT = 4
A_KIND = 5
A_LINE = 6
A_COLUMN = 7
N_ACOLS = 8

# ---- other events, delimited only: other[row, X_*]
X_INDEX = 0
X_START = 1  # offset of its "{"
X_END = 2  # offset just past its "}"
X_LINE = 3
X_COLUMN = 4
X_KEYS = 5  # keys in the event object, duplicates included
N_XCOLS = 6

# ---- objects two levels inside another event (its during entries): nested[row, N_*]
N_EVENT = 0
N_LINE = 1
N_COLUMN = 2
N_KEYS = 3
N_NCOLS = 4

# ---- counts[...] after a scan
C_EVENTS = 0
C_ACCESSES = 1
C_OTHERS = 2
C_NESTED = 3
C_LIST_START = 4  # offset of the events list's "["
C_LIST_END = 5  # offset of its "]"
C_INDENT = 6  # YAML: the spaces before "- {" on every event line (-1: none seen yet)
N_COUNTS = 7

_MAX_DEPTH = 64
_MAX_DIGITS = 18  # below 2^62 + anything larger is left to the validator
_GFN_END = 1 << 40
_REPEAT_MAX = 1 << 62

_QUOTE = 34
_BACKSLASH = 92
_COLON = 58
_COMMA = 44
_LBRACE = 123
_RBRACE = 125
_LBRACKET = 91
_RBRACKET = 93
_NEWLINE = 10
_ZERO = 48
_NINE = 57

# Key ids of a plain access and the bytes of the words it may contain.
_K_OP = 1
_K_GFN = 2
_K_AS = 3
_K_VCPU = 4
_K_REPEAT = 5
_K_KIND = 6
_OP = (111, 112)
_GFN = (103, 102, 110)
_AS = (97, 115)
_VCPU = (118, 99, 112, 117)
_REPEAT = (114, 101, 112, 101, 97, 116)
_KIND = (107, 105, 110, 100)
_EVENTS = (101, 118, 101, 110, 116, 115)
_ACCESS = (97, 99, 99, 101, 115, 115)
_READ = (114, 101, 97, 100)
_WRITE = (119, 114, 105, 116, 101)


@jit()
def count_byte(buf, value):
    """How many bytes of ``buf`` equal ``value`` (an upper bound on objects, for sizing)."""
    n = 0
    for i in range(buf.shape[0]):
        if buf[i] == value:
            n += 1
    return n


@jit()
def _byte(buf, i):
    # Reading past the end gives 0, which no rule accepts: no bounds checks elsewhere.
    return buf[i] if i < buf.shape[0] else 0


@jit()
def _is(buf, start, end, word):
    if end - start != len(word):
        return False
    for j in range(len(word)):
        if buf[start + j] != word[j]:
            return False
    return True


@jit()
def _space(buf, i, lc):
    """Skip JSON whitespace from ``i``; ``lc`` = [line, offset of the line's start]."""
    while True:
        c = _byte(buf, i)
        if c == _NEWLINE:
            lc[0] += 1
            lc[1] = i + 1
        elif c != 32 and c != 9 and c != 13:
            return i
        i += 1


@jit()
def _string_end(buf, i, stop):
    """Offset of the quote closing the string that starts at ``i`` (-1: not before ``stop``)."""
    i += 1
    while i < stop:
        c = buf[i]
        if c == _QUOTE:
            return i
        if c == _BACKSLASH:
            i += 1
        i += 1
    return -1


@jit()
def _plain_string_end(buf, i):
    """Like _string_end, but -1 for any escape or control byte (left to the validator)."""
    i += 1
    while True:
        c = _byte(buf, i)
        if c == _QUOTE:
            return i
        if c == _BACKSLASH or c < 32:
            return -1
        i += 1


@jit()
def _skip(buf, i, stop, lc, nested, counts, event, keys, rows):
    """Offset just past the JSON value at ``i``, counting lines; -1 if it cannot be delimited.

    Containers are walked with a stack of per-level key counts in ``keys`` (a
    colon outside strings is one key of the innermost object); the outermost
    one's count ends in ``lc[2]``, which is how a duplicate key shows (the
    Python side parses with orjson, which keeps only the last). With ``event``
    >= 0 the value is that event's object, and the objects two levels down (its
    during entries) are recorded in ``nested`` with positions and key counts.
    ``keys`` and ``rows`` are scratch stacks of ``_MAX_DEPTH`` entries; bytes
    from ``stop`` on are not looked at.
    """
    c = _byte(buf, i)
    if c == _QUOTE:
        end = _string_end(buf, i, stop)
        return -1 if end < 0 else end + 1
    if c != _LBRACE and c != _LBRACKET:
        while True:  # a scalar: the validator (or the full parser) judges its text
            c = _byte(buf, i)
            if c == 0 or c == _COMMA or c == _RBRACE or c == _RBRACKET or c == _COLON:
                return i
            if c == 32 or c == 9 or c == 13 or c == _NEWLINE or c == _QUOTE:
                return i
            if c == _LBRACE or c == _LBRACKET:
                return -1
            i += 1
    depth = 0
    while i < stop:
        c = buf[i]
        if c == _QUOTE:
            end = _string_end(buf, i, stop)
            if end < 0:
                return -1
            i = end
        elif c == _NEWLINE:
            lc[0] += 1
            lc[1] = i + 1
        elif c == _COLON:
            if depth > 0:
                keys[depth - 1] += 1
        elif c == _LBRACE or c == _LBRACKET:
            if depth == _MAX_DEPTH:
                return -1
            keys[depth] = 0
            rows[depth] = -1
            if c == _LBRACE and depth == 2 and event >= 0:
                row = counts[C_NESTED]
                if row >= nested.shape[0]:
                    return -1
                nested[row, N_EVENT] = event
                nested[row, N_LINE] = lc[0]
                nested[row, N_COLUMN] = i - lc[1] + 1
                rows[depth] = row
                counts[C_NESTED] = row + 1
            depth += 1
        elif c == _RBRACE or c == _RBRACKET:
            if depth == 0:
                return -1
            depth -= 1
            if rows[depth] >= 0:
                nested[rows[depth], N_KEYS] = keys[depth]
            if depth == 0:
                lc[2] = keys[0]
                return i + 1
        i += 1
    return -1


@jit()
def _number(buf, i, out, at):
    """A plain decimal integer at ``i`` into ``out[at]``; offset past it, -1 for anything else."""
    start = i
    value = 0
    while True:
        c = _byte(buf, i)
        if c < _ZERO or c > _NINE:
            break
        value = value * 10 + (c - _ZERO)
        i += 1
        if i - start > _MAX_DIGITS:
            return -1
    if i == start or (buf[start] == _ZERO and i - start > 1):
        return -1
    c = _byte(buf, i)
    if c == 46 or c == 101 or c == 69:  # . e E: a float, for the validator
        return -1
    out[at] = value
    return i


@jit()
def _access_key(buf, start, end):
    """The id of the plain-access key spelled by bytes [start, end), or 0."""
    if _is(buf, start, end, _OP):
        return _K_OP
    if _is(buf, start, end, _GFN):
        return _K_GFN
    if _is(buf, start, end, _AS):
        return _K_AS
    if _is(buf, start, end, _VCPU):
        return _K_VCPU
    if _is(buf, start, end, _REPEAT):
        return _K_REPEAT
    if _is(buf, start, end, _KIND):
        return _K_KIND
    return 0


@jit()
def _complete_access(seen, fields, vcpus):
    """Whether the keys ``seen`` and the ``fields`` read make a valid plain access.

    What format v1 requires of one (fastpath.plain_access in Python): op and
    gfn given, every value in range, the vCPU below the header's count.
    """
    if not (seen & (1 << _K_OP)) or not (seen & (1 << _K_GFN)):
        return False
    if fields[0] >= _GFN_END or fields[1] > 1 or fields[2] >= vcpus:
        return False
    return 1 <= fields[3] <= _REPEAT_MAX


@jit()
def _plain_access(buf, i, lc, fields, vcpus):
    """Read the object at ``i`` as a plain access into ``fields``; offset past it, or -1.

    ``fields`` = [gfn, as, vcpu, repeat, kind]. -1 means "not a plain access or
    not sure" (a vCPU >= ``vcpus`` included): the caller delimits the object
    again and leaves it to Python.
    """
    i = _space(buf, i + 1, lc)
    if _byte(buf, i) == _RBRACE:
        return -1
    seen = 0
    fields[0] = -1
    fields[1] = 0
    fields[2] = 0
    fields[3] = 1
    fields[4] = 0
    while True:
        if _byte(buf, i) != _QUOTE:
            return -1
        end = _plain_string_end(buf, i)
        if end < 0:
            return -1
        key = _access_key(buf, i + 1, end)
        if key == 0 or seen & (1 << key):
            return -1
        seen |= 1 << key
        i = _space(buf, end + 1, lc)
        if _byte(buf, i) != _COLON:
            return -1
        i = _space(buf, i + 1, lc)
        if key == _K_OP or key == _K_KIND:
            if _byte(buf, i) != _QUOTE:
                return -1
            end = _plain_string_end(buf, i)
            if end < 0:
                return -1
            if key == _K_OP and not _is(buf, i + 1, end, _ACCESS):
                return -1
            if key == _K_KIND:
                if _is(buf, i + 1, end, _WRITE):
                    fields[4] = 1
                elif not _is(buf, i + 1, end, _READ):
                    return -1
            i = end + 1
        else:
            i = _number(buf, i, fields, key - _K_GFN)
            if i < 0:
                return -1
        i = _space(buf, i, lc)
        c = _byte(buf, i)
        if c == _COMMA:
            i = _space(buf, i + 1, lc)
        elif c == _RBRACE:
            break
        else:
            return -1
    return i + 1 if _complete_access(seen, fields, vcpus) else -1


@jit()
def _add_access(acc, counts, index, fields, line, column):
    row = counts[C_ACCESSES]
    if row >= acc.shape[0]:
        return False
    acc[row, A_INDEX] = index
    acc[row, A_GFN] = fields[0]
    acc[row, A_AS] = fields[1]
    acc[row, A_VCPU] = fields[2]
    acc[row, A_REPEAT] = fields[3]
    acc[row, A_KIND] = fields[4]
    acc[row, A_LINE] = line
    acc[row, A_COLUMN] = column
    counts[C_ACCESSES] = row + 1
    return True


@jit()
def _add_other(other, counts, index, start, end, line, column, keys):
    row = counts[C_OTHERS]
    if row >= other.shape[0]:
        return False
    other[row, X_INDEX] = index
    other[row, X_START] = start
    other[row, X_END] = end
    other[row, X_LINE] = line
    other[row, X_COLUMN] = column
    other[row, X_KEYS] = keys
    counts[C_OTHERS] = row + 1
    return True


@jit()
def _event_list(buf, i, lc, acc, other, nested, counts, vcpus):
    """Scan the events list whose "[" is at ``i``; offset of its "]", or -1."""
    fields = np.zeros(5, dtype=np.int64)
    keys = np.zeros(_MAX_DEPTH, dtype=np.int64)
    rows = np.zeros(_MAX_DEPTH, dtype=np.int64)
    i = _space(buf, i + 1, lc)
    if _byte(buf, i) == _RBRACKET:
        return i
    index = 0
    while True:
        if _byte(buf, i) != _LBRACE:
            return -1
        line, line_start = lc[0], lc[1]
        column = i - line_start + 1
        end = _plain_access(buf, i, lc, fields, vcpus)
        if end >= 0:
            if not _add_access(acc, counts, index, fields, line, column):
                return -1
        else:
            lc[0], lc[1] = line, line_start
            end = _skip(buf, i, buf.shape[0], lc, nested, counts, index, keys, rows)
            if end < 0 or not _add_other(other, counts, index, i, end, line, column, lc[2]):
                return -1
        index += 1
        counts[C_EVENTS] = index
        i = _space(buf, end, lc)
        c = _byte(buf, i)
        if c == _RBRACKET:
            return i
        if c != _COMMA:
            return -1
        i = _space(buf, i + 1, lc)


@jit()
def scan_json_events(buf, acc, other, nested, counts, vcpus):
    """Scan a whole JSON document; OK with the events list read into the tables, else FALLBACK.

    The document must be one object with exactly one ``events`` key whose value
    is a list; other top-level values are only delimited (the caller reads the
    header with the full loader). Accesses naming a vCPU >= ``vcpus`` are left
    to Python.
    """
    lc = np.zeros(3, dtype=np.int64)  # line, offset of its start, last object's key count
    lc[0] = 1
    keys = np.zeros(_MAX_DEPTH, dtype=np.int64)
    rows = np.zeros(_MAX_DEPTH, dtype=np.int64)
    i = _space(buf, 0, lc)
    if _byte(buf, i) != _LBRACE:
        return FALLBACK
    i = _space(buf, i + 1, lc)
    found = False
    while True:
        if _byte(buf, i) != _QUOTE:
            return FALLBACK
        end = _plain_string_end(buf, i)
        if end < 0:
            return FALLBACK
        is_events = _is(buf, i + 1, end, _EVENTS)
        i = _space(buf, end + 1, lc)
        if _byte(buf, i) != _COLON:
            return FALLBACK
        i = _space(buf, i + 1, lc)
        if is_events:
            if found or _byte(buf, i) != _LBRACKET:
                return FALLBACK
            found = True
            counts[C_LIST_START] = i
            i = _event_list(buf, i, lc, acc, other, nested, counts, vcpus)
            if i < 0:
                return FALLBACK
            counts[C_LIST_END] = i
            i += 1
        else:
            i = _skip(buf, i, buf.shape[0], lc, nested, counts, -1, keys, rows)
            if i < 0:
                return FALLBACK
        i = _space(buf, i, lc)
        c = _byte(buf, i)
        if c == _COMMA:
            i = _space(buf, i + 1, lc)
        elif c == _RBRACE:
            break
        else:
            return FALLBACK
    if _space(buf, i + 1, lc) != buf.shape[0] or not found:
        return FALLBACK
    return OK


@jit()
def scan_json_lines(buf, first_line, first_index, acc, other, nested, counts, vcpus):
    """Scan JSON Lines events: every non-blank line of ``buf`` is one event.

    ``buf`` holds whole lines, the first of which is line ``first_line`` of the
    file and (if not blank) event ``first_index``. Plain accesses go into
    ``acc`` (column 0: JSON Lines positions are lines); every other line is
    delimited in ``other`` as the span of the whole line, with its key count
    (-1 when the line cannot be delimited: Python then reports it).
    """
    keys = np.zeros(_MAX_DEPTH, dtype=np.int64)
    rows = np.zeros(_MAX_DEPTH, dtype=np.int64)
    fields = np.zeros(5, dtype=np.int64)
    lc = np.zeros(3, dtype=np.int64)
    n = buf.shape[0]
    line = first_line
    index = first_index
    i = 0
    while i < n:
        eol = i
        while eol < n and buf[eol] != _NEWLINE:
            eol += 1
        start = i
        while start < eol and (buf[start] == 32 or 9 <= buf[start] <= 13):
            start += 1  # a line of only whitespace (as bytes.strip() sees it) is blank
        if start < eol:
            lc[0], lc[1] = line, i
            end = _plain_access(buf, start, lc, fields, vcpus) if buf[start] == _LBRACE else -1
            if 0 <= end <= eol:
                rest = end
                while rest < eol and (buf[rest] == 32 or buf[rest] == 9 or buf[rest] == 13):
                    rest += 1
                if rest != eol:
                    end = -1
            if 0 <= end <= eol:
                if not _add_access(acc, counts, index, fields, line, 0):
                    return FALLBACK
            else:
                lc[2] = -1
                if _skip(buf, start, eol, lc, nested, counts, index, keys, rows) < 0:
                    lc[2] = -1
                if not _add_other(other, counts, index, start, eol, line, 0, lc[2]):
                    return FALLBACK
            index += 1
            counts[C_EVENTS] = index - first_index
        line += 1
        i = eol + 1
    return OK


_SPACE = 32
_HASH = 35
_DASH = 45
_X_LOWER = 120
_X_UPPER = 88
_MAX_HEX_DIGITS = 15  # below 2^60


@jit()
def _word_char(c):
    return (97 <= c <= 122) or (65 <= c <= 90) or c == 95  # a-z A-Z _


@jit()
def _yaml_int(buf, i, end, out, at):
    """A decimal (no leading zero) or 0x-hex integer spanning exactly [i, end) into out[at]."""
    value = 0
    if end - i > 2 and buf[i] == _ZERO and (buf[i + 1] == _X_LOWER or buf[i + 1] == _X_UPPER):
        if end - i - 2 > _MAX_HEX_DIGITS:
            return False
        for j in range(i + 2, end):
            c = buf[j]
            if _ZERO <= c <= _NINE:
                digit = c - _ZERO
            elif 97 <= c <= 102:
                digit = c - 87
            elif 65 <= c <= 70:
                digit = c - 55
            else:
                return False
            value = value * 16 + digit
        out[at] = value
        return True
    if end - i < 1 or end - i > _MAX_DIGITS or (buf[i] == _ZERO and end - i > 1):
        return False
    for j in range(i, end):
        c = buf[j]
        if c < _ZERO or c > _NINE:
            return False
        value = value * 10 + (c - _ZERO)
    out[at] = value
    return True


@jit()
def _yaml_plain_access(buf, i, end, fields, vcpus):
    """Whether ``key: value, ...`` in [i, end) (inside the braces) is a plain access.

    Only bare keys followed by ": ", the words access/read/write and plain
    integers are read; anything else is left to the Python fast path.
    """
    seen = 0
    fields[0] = -1
    fields[1] = 0
    fields[2] = 0
    fields[3] = 1
    fields[4] = 0
    while True:
        while i < end and buf[i] == _SPACE:
            i += 1
        k = i
        while k < end and _word_char(buf[k]):
            k += 1
        key = _access_key(buf, i, k)
        if key == 0 or seen & (1 << key):
            return False
        seen |= 1 << key
        if k + 1 >= end or buf[k] != _COLON or buf[k + 1] != _SPACE:
            return False
        i = k + 2
        while i < end and buf[i] == _SPACE:
            i += 1
        v = i
        while v < end and buf[v] != _COMMA:
            v += 1
        stop = v
        while stop > i and buf[stop - 1] == _SPACE:
            stop -= 1
        if key == _K_OP:
            if not _is(buf, i, stop, _ACCESS):
                return False
        elif key == _K_KIND:
            if _is(buf, i, stop, _WRITE):
                fields[4] = 1
            elif not _is(buf, i, stop, _READ):
                return False
        elif not _yaml_int(buf, i, stop, fields, key - _K_GFN):
            return False
        if v == end:
            break
        i = v + 1
    return _complete_access(seen, fields, vcpus)


@jit()
def scan_yaml_lines(buf, first_line, acc, other, counts, vcpus):
    """Scan the event lines of a flow-style YAML trace (everything after ``events:``).

    Every non-blank line must be ``<indent>- {...}`` with one indent throughout,
    or a comment after the first event; otherwise FALLBACK. Plain accesses go
    into ``acc``; every other event line is delimited in ``other`` by the span
    inside its braces, for the Python fast path. Columns are 1-based byte
    columns of the "{" (callers pass event lines that are ASCII for accesses).
    """
    fields = np.zeros(5, dtype=np.int64)
    n = buf.shape[0]
    line = first_line
    index = 0
    indent = counts[C_INDENT]
    i = 0
    while i < n:
        eol = i
        while eol < n and buf[eol] != _NEWLINE:
            eol += 1
        first = i
        while first < eol and buf[first] == _SPACE:
            first += 1  # a tab may not start a line in YAML's block style
        if first < eol and buf[first] == _HASH:
            if indent < 0:
                return FALLBACK  # a comment before any event: the Python path refuses it
        elif first < eol:
            spaces = 0
            while i + spaces < eol and buf[i + spaces] == _SPACE:
                spaces += 1
            brace = i + spaces + 2
            if indent < 0:
                indent = spaces
            if spaces != indent or brace >= eol:
                return FALLBACK
            if buf[i + spaces] != _DASH or buf[i + spaces + 1] != _SPACE or buf[brace] != _LBRACE:
                return FALLBACK
            close = eol - 1
            while close > brace and (buf[close] == _SPACE or buf[close] == 9):
                close -= 1
            if buf[close] != _RBRACE:
                return FALLBACK
            column = brace - i + 1
            if _yaml_plain_access(buf, brace + 1, close, fields, vcpus):
                if not _add_access(acc, counts, index, fields, line, column):
                    return FALLBACK
            elif not _add_other(other, counts, index, brace + 1, close, line, column, 0):
                return FALLBACK
            index += 1
            counts[C_EVENTS] = index
        line += 1
        i = eol + 1
    counts[C_INDENT] = indent
    return OK
