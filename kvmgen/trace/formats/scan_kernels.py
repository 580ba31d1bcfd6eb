"""Jitted byte scanners for every trace syntax, and the slot-layout check: bytes in, columns out.

Kept apart from the loaders' Python (as the engine keeps its kernels in one
module). One event parser reads an event object, with its ``during`` entries,
in either syntax: JSON (``{"op": "move", "slot": 1, "gfn": 64}``, also each
line of JSON Lines) or YAML flow style (``{op: move, slot: 1, gfn: 0x40}``).
Every event written in the plain subset of the syntax (no escapes, known keys
once each, plain numbers and words) becomes rows, whatever its op: one for the
event, then one per during entry, each holding the value of every key read.
:mod:`~kvmgen.trace.formats.scan` then checks them against the format's field
rules, over columns. Anything else is only delimited and left to the Python
validator, which accepts it or words the error. Three loops drive the parser:
:func:`json_lines` (JSON Lines), :func:`json_events` (the events list of a JSON
document, a chunk at a time) and :func:`yaml_lines` (the flow-style event lines
of YAML). :func:`check_slots` replays the memslot layout over the rows, block
after block, and finds the first update that breaks it.

Compile time is what a fresh install or CI runner pays, and numba's grows
faster than the code: so the parser only parses (the rules are numpy over
columns), lookups are tables the caller passes in, and every argument has one
type. Numba types a constant argument (``True``, ``0``) by its value and
compiles a copy of the callee for each, so flags go in as typed scalars
(``_NO``, ``_YES``). A trace compiles only the loop its syntax needs and the
parser; :func:`check_slots` and :func:`times` only past a few updates and times
(fewer run as Python: ``check_slots.py_func``, the same code uncompiled).

Positions: ``line`` is 1-based; ``column`` is the 1-based byte column, the
character column because the callers pass ASCII where columns count (JSON
documents, YAML event lines) or need none (JSON Lines: column 0).
"""

from __future__ import annotations

import numpy as np

from kvmgen.jit import kernel

OK = 0
FALLBACK = 1
MORE = 2  # the chunk ended inside an event: read on from counts[C_RESUME]

# ---- other events, delimited only: other[row, X_*]
X_INDEX = 0
X_START = 1  # offset of its first byte
X_END = 2  # offset just past its last byte
X_LINE = 3
X_COLUMN = 4
N_XCOLS = 5

# ---- scratch[S_*]: the loops' working rows, allocated by the caller
S_VALS = 0  # an event's values (K_*, V_*)
S_ENTRY = 1  # a during entry's values
S_LC = 2  # line, offset of the line's start
N_SCRATCH = 3
SCRATCH_WIDTH = 32  # >= N_VALS

# ---- counts[...]: totals after a scan, and what carries over from chunk to chunk
C_EVENTS = 0
C_ROWS = 1
C_OTHERS = 2
C_RESUME = 3  # json_events: where to read on (MORE), or the offset of the list's "]" (OK)
C_LINE = 4  # json_events: the line at C_RESUME, and where that line starts
C_LINE_START = 5
C_INDENT = 6  # yaml_lines: the spaces before "- {" on every event line (-1: none seen yet)
N_COUNTS = 7

# Op codes (kvmgen.trace.records.Op), as the rows hold them.
OP_CREATE = 0
OP_DELETE = 1
OP_MOVE = 2
OP_FLAGS = 3
OP_BUMP = 4
OP_ACCESS = 5

# ---- one row per event and per during entry, stored by column: rows[column, row], so
# that the field rules are numpy over contiguous columns
# Columns 0..N_KEYS-1 hold the value of each key read (K_*, 0 when absent); then:
R_SEEN = 15  # the keys read, as bits 1 << K_*
R_NOTE_START = 16  # the note's bytes, [start, end); -1: no note
R_NOTE_END = 17
R_INDEX = 18
R_SUB = 19  # -1 for the event's own row, else the entry's position in its during list
R_LINE = 20
R_COLUMN = 21
R_START = 22  # a top-level row's event bytes [start, end), for the validator
R_END = 23
R_T_END = 24  # a time's text is [rows[K_T], rows[R_T_END]); times() reads it
N_RCOLS = 25

# ---- the keys of an event: bit positions in R_SEEN, and columns of a row
K_OP = 0  # an Op code
K_SLOT = 1
K_AS = 2
K_GFN = 3
K_GPA = 4
K_PAGES = 5
K_FLAGS = 6
K_REPEAT = 7
K_COUNT = 8
K_VCPU = 9  # keys K_SLOT..K_VCPU hold integers
K_KIND = 10  # an AccessKind
K_WINDOW = 11  # a Window
K_T = 12
K_NOTE = 13
K_DURING = 14
N_KEYS = 15
KEY_NAMES = (
    "op", "slot", "as", "gfn", "gpa", "pages", "flags", "repeat", "count", "vcpu", "kind",
    "window", "t", "note", "during",
)  # fmt: skip

# Flags passed to jitted calls as numpy scalars: numba types a literal argument
# (True, 0) by its value and would compile one copy of the callee per value.
_NO = np.int64(0)
_YES = np.int64(1)

# Integers of up to 19 decimal digits led by 0..8 or 16 hex digits led by 0..7 fit an
# int64 (2^62, the largest repeat, has 19); anything longer is left to the validator.
_MAX_DIGITS = 19
_MAX_HEX_DIGITS = 16
_MAX_FRACTION_DIGITS = 18  # digits of a time with a fraction, all told
_MAX_REAL_DIGITS = 15  # a decimal of up to 15 digits times 10^-22..10^22 rounds exactly once
_MAX_NAME = 12  # letters of a key or word, 5 bits each in an int64
_GFN_END = 1 << 40

_QUOTE = 34
_BACKSLASH = 92
_COLON = 58
_COMMA = 44
_LBRACE = 123
_RBRACE = 125
_LBRACKET = 91
_RBRACKET = 93
_NEWLINE = 10
_SPACE = 32
_TAB = 9
_CR = 13
_HASH = 35
_DASH = 45
_DOT = 46
_ZERO = 48
_NINE = 57
_UNDERSCORE = 95


def _packed(word: str) -> int:
    """A word of ``_a-z`` as the kernels read it: 5 bits a letter (12 letters fit an int64)."""
    value = 0
    for char in word.encode():
        value = value * 32 + (char - 94)
    return value


# Value words: the ops in Op order, read and write, then the windows.
_WORDS = (
    "create", "delete", "move", "flags", "bump", "access", "read", "write", "in_progress",
    "before_zap",
)  # fmt: skip
_W_KINDS = 6  # words 6, 7: AccessKind 0, 1
_W_WINDOWS = 7  # words 8, 9: Window 1, 2

# ---- scratch[S_*]: working rows and lookup tables, a copy of SCRATCH per scan
S_LC = 0  # line, offset of the line's start
S_NAMES = 1  # KEY_NAMES packed
S_WORDS = 2  # _WORDS packed
N_SCRATCH = 3
SCRATCH_WIDTH = 16


def _scratch() -> np.ndarray:
    """The scratch rows with the tables filled in (each scan takes a copy).

    Passed in rather than global: numba cannot cache code holding a global
    array when it compiles without optimising (NUMBA_OPT=0).
    """
    scratch = np.zeros((N_SCRATCH, SCRATCH_WIDTH), dtype=np.int64)
    scratch[S_NAMES, :N_KEYS] = [_packed(name) for name in KEY_NAMES]
    scratch[S_WORDS, : len(_WORDS)] = [_packed(word) for word in _WORDS]
    return scratch


SCRATCH = _scratch()


# Compile options: no allocation (no reference counting, kernel()), numpy's error
# model (no division checks to lower), and for functions only other kernels call,
# no wrappers callable from Python (less to compile, nothing lost).
_OUTER = {"error_model": "numpy"}
_INNER = {"error_model": "numpy", "no_cpython_wrapper": True, "no_cfunc_wrapper": True}


# ---- one event object -----------------------------------------------------------------


@kernel(**_INNER)
def _ws(buf, i, stop, yaml, lc):
    """Skip whitespace from ``i``: JSON's four bytes (counting lines in ``lc``), or YAML spaces.

    ``lc`` = [line, offset of the line's start].
    """
    while i < stop:
        c = buf[i]
        if c != _SPACE:
            if yaml:
                return i
            if c == _NEWLINE:
                lc[0] += 1
                lc[1] = i + 1
            elif c != _TAB and c != _CR:
                return i
        i += 1
    return i


# States of _event: what is due at the offset it reads from.
_KEY = 0  # a key of the object being read
_AFTER = 1  # a value was read: "," or "}"
_ENTRY = 2  # a during entry's "{"
_AFTER_ENTRY = 3  # an entry was read: "," or "]"


@kernel(**_INNER)
def _event(buf, i, stop, yaml, columns, lc, index, rows, counts, scratch):
    """Read the event object at ``i`` into rows; the offset past it, or -1 (rows left unused).

    The event's row comes first, then one row per during entry in list order
    (``sub`` is the position in the list). Each row holds the value of every
    key read (see R_*, K_*); whether they keep the format's rules is checked
    after (:class:`~kvmgen.trace.formats.scan.ScanTables`). With ``columns`` 0
    every row's column is 0 (JSON Lines).

    Read are: the words of op, kind and window (quoted, or bare in YAML); a
    note as a string without escapes; integers in decimal without sign or
    leading zero or, quoted or in YAML, 0x-hex; a time as a decimal Python's
    float() reads exactly so (JSON also signed and with an exponent). -1 for
    anything else, a key twice or an unknown key: the validator reads those.
    """
    top = r = counts[C_ROWS]
    if r >= rows.shape[1]:
        return -1
    for k in range(R_SEEN + 1):  # every key absent (0); the rest is written when read
        rows[k, r] = 0
    start = i
    line = lc[0]
    column = i - lc[1] + 1 if columns else 0
    sub = np.int64(-1)
    state = _KEY
    i = _ws(buf, i + 1, stop, yaml, lc)
    while True:
        if state == _ENTRY:
            sub += 1
            r = top + 1 + sub
            if not (i < stop and buf[i] == _LBRACE) or r >= rows.shape[1]:
                return -1
            for k in range(R_SEEN + 1):  # every key absent (0); the rest is written when read
                rows[k, r] = 0
            rows[R_LINE, r] = lc[0]
            rows[R_COLUMN, r] = i - lc[1] + 1 if columns else 0
            i = _ws(buf, i + 1, stop, yaml, lc)
            state = _KEY
            continue
        if state == _AFTER_ENTRY:
            i = _ws(buf, i, stop, yaml, lc)
            c = buf[i] if i < stop else 0
            if c == _COMMA:
                i = _ws(buf, i + 1, stop, yaml, lc)
                state = _ENTRY
            elif c == _RBRACKET:
                i += 1
                r = top
                state = _AFTER
            else:
                return -1
            continue
        if state == _KEY:
            # ---- a key: quoted in JSON, bare in YAML, and one of the format's
            quoted = i < stop and buf[i] == _QUOTE
            if quoted == (yaml != 0):
                return -1
            name = i + 1 if quoted else i
            k = name
            packed = 0
            while k < stop and (97 <= buf[k] <= 122 or buf[k] == _UNDERSCORE):
                packed = packed * 32 + (buf[k] - 94)
                k += 1
            if k - name > _MAX_NAME:
                return -1
            if quoted:
                if not (k < stop and buf[k] == _QUOTE):
                    return -1
                k = _ws(buf, k + 1, stop, yaml, lc)
                if not (k < stop and buf[k] == _COLON):
                    return -1
                i = _ws(buf, k + 1, stop, yaml, lc)
            else:
                if not (k + 1 < stop and buf[k] == _COLON and buf[k + 1] == _SPACE):
                    return -1
                i = _ws(buf, k + 2, stop, yaml, lc)
            key = 0
            while key < N_KEYS and scratch[S_NAMES, key] != packed:
                key += 1
            seen = rows[R_SEEN, r]
            if key == N_KEYS or (seen >> key) & 1:
                return -1  # an unknown key, or a key twice
            rows[R_SEEN, r] = seen | (1 << key)
            c = buf[i] if i < stop else 0
            if key == K_DURING:
                if sub >= 0 or c != _LBRACKET:
                    return -1
                i = _ws(buf, i + 1, stop, yaml, lc)
                if i < stop and buf[i] == _RBRACKET:
                    i += 1
                    state = _AFTER
                else:
                    state = _ENTRY
                continue
            # ---- its value
            first = i
            end = -1
            if c == _QUOTE:
                i += 1
                while i < stop and buf[i] != _QUOTE:
                    if buf[i] == _BACKSLASH or buf[i] < 32 or buf[i] > 126:
                        return -1
                    i += 1
                if i == stop:
                    return -1
                first += 1
                end = i
                i += 1
            if key == K_OP or key == K_KIND or key == K_WINDOW:
                if end < 0:
                    if not yaml:
                        return -1
                    end = first
                    while end < stop and (97 <= buf[end] <= 122 or buf[end] == _UNDERSCORE):
                        end += 1
                    i = end
                packed = 0
                for k in range(first, end):
                    if not (97 <= buf[k] <= 122 or buf[k] == _UNDERSCORE) or k - first >= _MAX_NAME:
                        return -1
                    packed = packed * 32 + (buf[k] - 94)
                word = 0
                while word < len(_WORDS) and scratch[S_WORDS, word] != packed:
                    word += 1
                if key == K_OP and word <= OP_ACCESS:
                    rows[K_OP, r] = word
                elif key == K_KIND and _W_KINDS <= word <= _W_KINDS + 1:
                    rows[K_KIND, r] = word - _W_KINDS
                elif key == K_WINDOW and _W_WINDOWS < word <= _W_WINDOWS + 2:
                    rows[K_WINDOW, r] = word - _W_WINDOWS
                else:
                    return -1
            elif key == K_NOTE:
                if end < 0:
                    return -1  # a note that is not a plain string: the validator reads it
                rows[R_NOTE_START, r] = first
                rows[R_NOTE_END, r] = end
            elif key == K_T:
                if end >= 0:
                    return -1  # a string for a time
                # Delimited here, read by times() (a time is read exactly, or left to Python).
                while i < stop and (
                    _ZERO <= buf[i] <= _NINE
                    or buf[i] == _DOT
                    or buf[i] == _DASH
                    or buf[i] == 43
                    or (buf[i] | 32) == 101
                ):
                    i += 1
                if i == first:
                    return -1
                rows[K_T, r] = first
                rows[R_T_END, r] = i
            elif end < 0:
                i = _integer(buf, i, stop, yaml, rows, key, r)
                if i < 0:
                    return -1
            elif _integer(buf, first, end, _YES, rows, key, r) != end:
                return -1  # a string that is no plain integer
            state = _AFTER
        # ---- "," and the next key, or "}" closing the object
        i = _ws(buf, i, stop, yaml, lc)
        c = buf[i] if i < stop else 0
        if c == _COMMA:
            i = _ws(buf, i + 1, stop, yaml, lc)
            state = _KEY
            continue
        if c != _RBRACE:
            return -1
        i += 1
        rows[R_INDEX, r] = index
        rows[R_SUB, r] = sub if r != top else -1
        if r != top:
            state = _AFTER_ENTRY
            continue
        rows[R_LINE, r] = line
        rows[R_COLUMN, r] = column
        rows[R_START, r] = start
        rows[R_END, r] = i
        counts[C_ROWS] = top + 2 + sub
        return i


@kernel(**_INNER)
def _integer(buf, i, stop, hexadecimal, rows, key, r):
    """The integer at ``i`` into rows[key, r]; the offset past it, or -1.

    Decimal, without sign or leading zero; with ``hexadecimal`` also 0x-hex
    (YAML, or a JSON string). Anything else, or too big for an int64, is left to
    the validator.
    """
    c = buf[i] if i < stop else 0
    digits_at = i
    value = 0
    if hexadecimal and c == _ZERO and i + 1 < stop and (buf[i + 1] | 32) == 120:
        i += 2  # 0x or 0X
        while i < stop and i - digits_at - 2 <= _MAX_HEX_DIGITS:
            c = buf[i] | 32
            if _ZERO <= c <= _NINE:
                value = value * 16 + (c - _ZERO)
            elif 97 <= c <= 102:
                value = value * 16 + (c - 87)
            else:
                break
            i += 1
        digits = i - digits_at - 2
        if digits == 0 or digits > _MAX_HEX_DIGITS or value < 0:
            return -1  # none, or too many (a 16th digit past 7 makes it negative)
        rows[key, r] = value
        return i
    while _ZERO <= c <= _NINE and i - digits_at < _MAX_DIGITS:
        value = value * 10 + (c - _ZERO)
        i += 1
        c = buf[i] if i < stop else 0
    digits = i - digits_at
    if digits == 0 or _ZERO <= c <= _NINE or (buf[digits_at] == _ZERO and digits > 1):
        return -1
    if digits == _MAX_DIGITS and buf[digits_at] > 56:  # led by 9: maybe past 2^63
        return -1
    if c == _DOT or (c | 32) == 101:  # a fraction or an exponent: a float
        return -1
    rows[key, r] = value
    return i


@kernel(**_OUTER)
def times(buf, starts, ends, yaml, values, read):
    """Read each time text buf[starts[k]:ends[k]] as Python's float() does, where it can.

    ``values[k]`` gets it and ``read[k]`` whether it could be read: a decimal
    with an optional sign and fraction (JSON also an exponent) of at most 15
    digits within 10^-22..10^22 of a whole number, which one product or
    quotient of two exact doubles rounds exactly so; or a whole number (float()
    of an int). Runs as Python too (``times.py_func``, given bytes), for few times.
    """
    for k in range(len(starts)):
        i, stop = starts[k], ends[k]
        read[k] = False
        c = buf[i] if i < stop else 0
        negative = c == _DASH
        if negative:
            i += 1
            c = buf[i] if i < stop else 0
        digits_at = i
        mantissa = 0
        while _ZERO <= c <= _NINE and i - digits_at < _MAX_DIGITS:
            mantissa = mantissa * 10 + (c - _ZERO)
            i += 1
            c = buf[i] if i < stop else 0
        digits = i - digits_at
        if digits == 0 or _ZERO <= c <= _NINE or (buf[digits_at] == _ZERO and digits > 1):
            continue
        if digits == _MAX_DIGITS and buf[digits_at] > 56:
            continue
        scale = 0
        whole = True
        if c == _DOT:
            whole = False
            i += 1
            c = buf[i] if i < stop else 0
            frac_at = i
            while _ZERO <= c <= _NINE and digits + i - frac_at < _MAX_FRACTION_DIGITS:
                mantissa = mantissa * 10 + (c - _ZERO)
                i += 1
                c = buf[i] if i < stop else 0
            if i == frac_at or _ZERO <= c <= _NINE:
                continue
            digits += i - frac_at
            scale = frac_at - i
        if (c | 32) == 101 and not yaml:  # e E
            whole = False
            i += 1
            c = buf[i] if i < stop else 0
            sign = -1 if c == _DASH else 1
            if c == _DASH or c == 43:
                i += 1
                c = buf[i] if i < stop else 0
            exp_at = i
            exponent = 0
            while _ZERO <= c <= _NINE and i - exp_at < 4:
                exponent = exponent * 10 + (c - _ZERO)
                i += 1
                c = buf[i] if i < stop else 0
            if i == exp_at or _ZERO <= c <= _NINE:
                continue
            scale += sign * exponent
        if i != stop:
            continue
        if whole:
            values[k] = float(-mantissa if negative else mantissa)  # float() of an int; -0 is 0
        elif digits > _MAX_REAL_DIGITS or scale < -22 or scale > 22:
            continue
        else:
            power = 1.0
            for _ in range(abs(scale)):
                power *= 10.0  # exact: every power of ten up to 10^22 is a double
            value = mantissa * power if scale >= 0 else mantissa / power
            values[k] = -value if negative else value
        read[k] = True


# ---- events the parser leaves to Python: delimited only ---------------------------------


@kernel(**_INNER)
def _skip(buf, i, stop, lc):
    """Offset just past the JSON value at ``i``, counting lines in ``lc``; -1 if it does not end.

    Only delimits: strings, and containers by depth (the full parser reads it).
    """
    c = buf[i] if i < stop else 0
    if c != _LBRACE and c != _LBRACKET and c != _QUOTE:
        while i < stop:  # a scalar: the validator (or the full parser) judges its text
            c = buf[i]
            if c == _COMMA or c == _RBRACE or c == _RBRACKET or c == _COLON or c == _QUOTE:
                return i
            if c == _SPACE or c == _TAB or c == _CR or c == _NEWLINE:
                return i
            if c == _LBRACE or c == _LBRACKET:
                return -1
            i += 1
        return i
    depth = 0
    while i < stop:
        c = buf[i]
        if c == _QUOTE:
            i += 1
            while i < stop and buf[i] != _QUOTE:
                i += 2 if buf[i] == _BACKSLASH else 1
            if i >= stop:
                return -1
            if depth == 0:
                return i + 1
        elif c == _NEWLINE:
            lc[0] += 1
            lc[1] = i + 1
        elif c == _LBRACE or c == _LBRACKET:
            depth += 1
        elif c == _RBRACE or c == _RBRACKET:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


# ---- the three loops ------------------------------------------------------------------


@kernel(**_OUTER)
def json_lines(buf, first_line, first_index, rows, other, counts, scratch):
    """Scan JSON Lines events: every non-blank line of ``buf`` is one event.

    ``buf`` holds whole lines, the first of which is line ``first_line`` of the
    file and (if not blank) event ``first_index``. Events the parser reads go
    into ``rows`` (column 0: JSON Lines positions are lines); every other line
    is left to Python as the span of the whole line in ``other``. ``scratch``
    is a copy of SCRATCH.
    """
    lc = scratch[S_LC]
    n = buf.shape[0]
    line = first_line
    index = first_index
    i = 0
    while i < n:
        eol = i
        while eol < n and buf[eol] != _NEWLINE:
            eol += 1
        start = i
        while start < eol and (buf[start] == _SPACE or 9 <= buf[start] <= 13):
            start += 1  # a line of only whitespace (as bytes.strip() sees it) is blank
        if start < eol:
            lc[0], lc[1] = line, i
            r0 = counts[C_ROWS]
            end = -1
            if buf[start] == _LBRACE:
                end = _event(buf, start, eol, _NO, _NO, lc, index, rows, counts, scratch)
            if end >= 0:
                end = _ws(buf, end, eol, _NO, lc)
            if end != eol:
                counts[C_ROWS] = r0
                o = counts[C_OTHERS]
                if o >= other.shape[0]:
                    return FALLBACK
                other[o, X_INDEX] = index
                other[o, X_START] = start
                other[o, X_END] = eol
                other[o, X_LINE] = line
                other[o, X_COLUMN] = 0
                counts[C_OTHERS] = o + 1
            index += 1
            counts[C_EVENTS] = index - first_index
        line += 1
        i = eol + 1
    return OK


@kernel(**_OUTER)
def json_events(
    buf,
    start,
    line,
    line_start,
    first_index,
    expect_first,
    final,
    rows,
    other,
    counts,
    scratch,
):
    """Scan a JSON document's events list from ``start``, one chunk of it at a time.

    ``start`` is just past the list's "[" (``expect_first``: the list may be
    empty) or past a comma; ``line`` is the line there and ``line_start`` where
    that line starts (negative: in an earlier chunk). Returns OK with
    counts[C_RESUME], C_LINE and C_LINE_START at the list's "]"; MORE with them
    where to go on when the chunk ends first (never inside an event; with
    ``final`` that is FALLBACK); or FALLBACK for anything that is not a list of
    delimitable values. Events are numbered from ``first_index``.
    """
    lc = scratch[S_LC]
    lc[0], lc[1] = line, line_start
    n = buf.shape[0]
    i = start
    index = first_index
    first = expect_first
    while True:
        # A value is due at i (after "[" or ","): everything before i is settled.
        counts[C_RESUME], counts[C_LINE], counts[C_LINE_START] = i, lc[0], lc[1]
        r0, o0 = counts[C_ROWS], counts[C_OTHERS]
        i = _ws(buf, i, n, _NO, lc)
        c = buf[i] if i < n else 0
        if c == _RBRACKET:
            if not first:
                return FALLBACK  # a trailing comma
            counts[C_RESUME], counts[C_LINE], counts[C_LINE_START] = i, lc[0], lc[1]
            return OK
        end = -1
        at_line, at_start = lc[0], lc[1]
        if c == _LBRACE:
            end = _event(buf, i, n, _NO, _YES, lc, index, rows, counts, scratch)
        if end < 0 and i < n:
            counts[C_ROWS] = r0
            lc[0], lc[1] = at_line, at_start
            end = _skip(buf, i, n, lc)
            if end == i:
                return FALLBACK  # no value at all
            o = counts[C_OTHERS]
            if end >= 0:
                if o >= other.shape[0]:
                    return FALLBACK
                other[o, X_INDEX] = index
                other[o, X_START] = i
                other[o, X_END] = end
                other[o, X_LINE] = at_line
                other[o, X_COLUMN] = i - at_start + 1
                counts[C_OTHERS] = o + 1
        if end >= 0:
            end = _ws(buf, end, n, _NO, lc)
        c = buf[end] if 0 <= end < n else 0
        if c != _COMMA and c != _RBRACKET:
            if 0 <= end < n or final:
                return FALLBACK  # a value, then something that does not go on the list
            # The chunk ends inside this event (or before what follows it): read it again.
            counts[C_ROWS], counts[C_OTHERS] = r0, o0
            counts[C_EVENTS] = index - first_index
            return MORE
        index += 1
        counts[C_EVENTS] = index - first_index
        if c == _RBRACKET:
            counts[C_RESUME], counts[C_LINE], counts[C_LINE_START] = end, lc[0], lc[1]
            return OK
        i = end + 1
        first = 0


@kernel(**_OUTER)
def yaml_lines(buf, first_line, first_index, rows, other, counts, scratch):
    """Scan the event lines of a flow-style YAML trace (everything after ``events:``).

    Every non-blank line must be ``<indent>- {...}`` with one indent throughout
    (counts[C_INDENT] carries it from chunk to chunk), or a comment after the
    first event; otherwise FALLBACK, and so for an ASCII control character YAML
    refuses or reads as a line break. Events the parser reads go into ``rows``;
    every other event line is delimited in ``other`` by the span inside its
    braces, for the Python reader. Columns are the 1-based byte columns of each
    "{" (lines the parser reads are ASCII).
    """
    lc = scratch[S_LC]
    n = buf.shape[0]
    line = first_line
    index = first_index
    indent = counts[C_INDENT]
    i = 0
    while i < n:
        eol = i
        while eol < n:
            c = buf[eol]
            if c < 32 or c == 127:
                if c == _NEWLINE:
                    break
                if c != _TAB:
                    return FALLBACK  # a control character (CR too: another line break)
            eol += 1
        first = i
        while first < eol and buf[first] == _SPACE:
            first += 1  # a tab may not start a line in YAML's block style
        if first < eol and buf[first] == _HASH:
            if indent < 0:
                return FALLBACK  # a comment before any event: the Python path refuses it
        elif first < eol:
            brace = first + 2
            if indent < 0:
                indent = first - i
            if first - i != indent or brace >= eol:
                return FALLBACK
            if buf[first] != _DASH or buf[first + 1] != _SPACE or buf[brace] != _LBRACE:
                return FALLBACK
            close = eol - 1
            while close > brace and (buf[close] == _SPACE or buf[close] == _TAB):
                close -= 1
            if buf[close] != _RBRACE:
                return FALLBACK
            lc[0], lc[1] = line, i
            r0 = counts[C_ROWS]
            end = _event(buf, brace, close + 1, _YES, _YES, lc, index, rows, counts, scratch)
            if end != close + 1:
                counts[C_ROWS] = r0
                o = counts[C_OTHERS]
                if o >= other.shape[0]:
                    return FALLBACK
                other[o, X_INDEX] = index
                other[o, X_START] = brace + 1
                other[o, X_END] = close
                other[o, X_LINE] = line
                other[o, X_COLUMN] = brace - i + 1
                counts[C_OTHERS] = o + 1
            index += 1
            counts[C_EVENTS] = index - first_index
        line += 1
        i = eol + 1
    counts[C_INDENT] = indent
    return OK


# ---- the memslot layout, over columns -------------------------------------------------


@kernel(**_OUTER)
def check_slots(
    updates, op, space, slot, gfn, pages, line, live, base, size, placed, starts, ids, used
):
    """Apply the updates at rows ``updates`` to the slot layout, in order; -1, or the failing row.

    The layout (kvmgen.trace.validate.layout) of each address space a: slot s
    is live when ``live[a, s]``, at ``base[a, s]`` for ``size[a, s]`` pages,
    placed by line ``placed[a, s]``; the live slots sorted by first gfn are
    ``ids[a, :used[a]]``, starting at ``starts[a, :used[a]]``. A failing row is
    not applied, so the layout is the one the Python validator words its error
    on. A move's ``pages`` (the slot's size) is filled in. Runs as Python too
    (``check_slots.py_func``), for traces with few updates.
    """
    for k in range(len(updates)):
        r = updates[k]
        o = op[r]
        a = np.int64(space[r])
        s = np.int64(slot[r])
        if o == OP_CREATE:
            if live[a, s]:
                return r
            g, p = gfn[r], pages[r]
        elif not live[a, s]:
            return r  # delete, move or flags of a slot that does not exist
        elif o == OP_FLAGS:
            continue
        else:
            g, p = base[a, s], size[a, s]
            if o == OP_MOVE and gfn[r] + p > _GFN_END:
                return r
            # Take the slot out of the sorted list; a delete is done then.
            lo, hi = 0, used[a]
            while lo < hi:
                mid = (lo + hi) // 2
                if starts[a, mid] <= g:
                    lo = mid + 1
                else:
                    hi = mid
            used[a] -= 1
            for m in range(lo - 1, used[a]):
                starts[a, m], ids[a, m] = starts[a, m + 1], ids[a, m + 1]
            live[a, s] = 0
            if o == OP_DELETE:
                continue
            g = gfn[r]
        # Place [g, g + p): only the live slot starting last at or below g, and
        # the one starting first above it, can share a frame with it.
        lo, hi = 0, used[a]
        while lo < hi:
            mid = (lo + hi) // 2
            if starts[a, mid] <= g:
                lo = mid + 1
            else:
                hi = mid
        before = ids[a, lo - 1] if lo > 0 else -1
        if (before >= 0 and base[a, before] + size[a, before] > g) or (
            lo < used[a] and starts[a, lo] < g + p
        ):
            if o == OP_CREATE:
                return r
            # A move that overlaps: put the slot back, so the layout is as before the row.
            g = base[a, s]
            lo, hi = 0, used[a]
            while lo < hi:
                mid = (lo + hi) // 2
                if starts[a, mid] <= g:
                    lo = mid + 1
                else:
                    hi = mid
            failed = True
        else:
            failed = False
            base[a, s], size[a, s], placed[a, s] = g, p, line[r]
            if o == OP_MOVE:
                pages[r] = p
        for m in range(used[a], lo, -1):
            starts[a, m], ids[a, m] = starts[a, m - 1], ids[a, m - 1]
        starts[a, lo], ids[a, lo] = g, s
        used[a] += 1
        live[a, s] = 1
        if failed:
            return r
    return -1
