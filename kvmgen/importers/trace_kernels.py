"""Jitted loops of the bulk kernel-trace import: tracefs text in, line rows and events out.

The Python importer (:mod:`kvmgen.importers.tracefs`) is the reference these loops
are tested against; :mod:`kvmgen.importers.bulk_trace` runs them. Three loops, each
with one signature:

- :func:`trace_lines` reads every line. A line in the tracefs shape whose event the
  import uses (kvmgen update markers, zaps, MMU and MMIO tracepoints) becomes a row
  of numbers; a line of another event in that shape is counted by its name; every
  other line (blank lines aside) is marked :data:`K_SLOW` for the Python parser,
  which reads it, words its error, or sends the whole capture the Python way.
  A row is marked slow rather than guessed whenever the loop is not sure it reads the
  line as ``tracefs._TRACEFS`` would (the first ``-`` that opens a pid, cpu and time
  column is taken; the regex could try a later one).
- :func:`group_accesses` groups the MMU and MMIO rows of each thread into guest
  accesses, as ``_Importer.mmu`` does.
- :func:`walk` turns the time-ordered updates, zaps and accesses into event rows
  (``line_kernels.E_*``, written by ``line_kernels.write_events``) and observation
  rows (``O_*``), as ``_Importer.build`` does for a capture without a log merged in.

The caller allocates every array; no loop allocates, and constants go into calls as
typed scalars (line_kernels explains why).
"""

from __future__ import annotations

import numpy as np

from kvmgen.importers import line_kernels as lk
from kvmgen.importers.line_kernels import (
    _INLINE,
    _INNER,
    _OPT,
    GIVE_UP,
    _decimal,
    _word,
    hex_number,
)
from kvmgen.jit import kernel

_I = np.int64
_0 = _I(0)
_1 = _I(1)

# ---- rows[line - 1, R_*]: one row per line
R_KIND = 0  # K_*
R_EVENT = 1  # an EVENTS index; N_EVENTS: another event (its name at R_F0:R_F1)
R_T_NS = 2
R_PID = 3
R_TGID = 4  # -1: no tgid column, or dashes in it
R_VCPU = 5  # MMU and MMIO lines: the n of "CPU n/KVM" in the comm (n < 4096), else -1
R_START = 6  # the line's bytes [start, end)
R_END = 7
R_F0 = 8  # fields, by kind (below)
N_FIELDS = 8
N_RCOLS = R_F0 + N_FIELDS

K_BLANK = 0  # only spaces and tabs
K_SLOW = 1  # for the Python parser
K_SEEN = 2  # a trace event with no part in the trace (counted, timed)
K_UPDATE = 3  # F: ordinal, op, as, slot, gfn, pages, flags, src (-1: none)
K_ZAP = 4  # F: valid gen, used pages
K_CHECK = 5  # F: kvm gen, spte gen, valid
K_MARK = 6  # F: gfn, gen
K_HANDLE = 7  # F: gfn
K_MMIO = 8  # F: MMIO_* kind, gfn
K_NONE = 9  # set by Python: not a trace event (an unrelated or lost-events line)

U_ORDINAL, U_OP, U_AS, U_SLOT, U_GFN, U_PAGES, U_FLAGS, U_SRC = range(R_F0, R_F0 + 8)

MMIO_UNSATISFIED = 0
MMIO_READ = 1
MMIO_WRITE = 2

# The events the loops know, by R_EVENT (the zap events first, in ZAP_EVENTS' order).
EVENTS = (
    "kvm_mmu_zap_all_fast",
    "kvm_mmu_invalidate_zap_all_pages",
    "tracing_mark_write",
    "check_mmio_spte",
    "mark_mmio_spte",
    "handle_mmio_page_fault",
    "kvm_mmio",
)
N_EVENTS = len(EVENTS)
# Events whose lines Python reads: markers as trace-cmd prints them, and the syscall
# events (renamed, and their payloads checked, by the Python parser).
PYTHON_EVENTS = ("print", "sys_ioctl", "sys_enter_ioctl", "sys_exit_ioctl")
OPS = ("create", "delete", "move", "flags")
_PY_EVENT = N_EVENTS + 1  # while reading: one of PYTHON_EVENTS
EV_ZAP_FAST, EV_ZAP_PAGES, EV_MARKER, EV_CHECK, EV_MARK, EV_HANDLE, EV_MMIO = map(
    _I, range(N_EVENTS)
)

# ---- the literal table trace_lines matches: words[spans[W_*, 0] : ... + spans[W_*, 1]]
WORDS = (
    *EVENTS,
    *PYTHON_EVENTS,
    "kvmgen:",
    "update",
    "op=",
    "as=",
    "slot=",
    "gfn=",
    "pages=",
    "flags=",
    "src=",
    *OPS,
    "kvm-mmu-valid-gen ",
    " used_pages ",
    "spte ",
    " kvm_gen ",
    " spte-gen ",
    " valid ",
    "sptep:",
    " gfn ",
    " access ",
    " gen ",
    "addr:",
    "mmio ",
    "unsatisfied-read",
    "read",
    "write",
    " len ",
    " gpa 0x",
    " val 0x",
    "CPU ",
    "/KVM",
    "EVENTS",
)
(
    W_KVMGEN, W_UPDATE, W_OP, W_AS, W_SLOT, W_GFN, W_PAGES, W_FLAGS, W_SRC,
    W_CREATE, W_DELETE, W_MOVE, W_FLAGS_OP,
    W_VALID_GEN, W_USED_PAGES, W_SPTE, W_KVM_GEN, W_SPTE_GEN, W_VALID,
    W_SPTEP, W_SP_GFN, W_SP_ACCESS, W_SP_GEN, W_ADDR,
    W_MMIO, W_UNSATISFIED, W_READ, W_WRITE, W_LEN, W_GPA, W_VAL,
    W_CPU, W_KVM, W_EVENTS,
) = map(_I, range(N_EVENTS + len(PYTHON_EVENTS), len(WORDS)))  # fmt: skip
_N_KEYS = 7  # W_OP .. W_SRC

# ---- counts[C_*] after trace_lines
C_LINES = 0
C_ODD = 1  # 1 + the offset of a byte other than printable ASCII and tab (0: none)
C_PER_EVENT = 2  # N_EVENTS columns: the lines of each known event the loop read
N_COUNTS = C_PER_EVENT + N_EVENTS

# ---- accesses[access, A_*]: what group_accesses makes
A_ROW = 0  # the row of its first line
A_GFN = 1  # -1: never showed
A_WRITE = 2
A_KVM_GEN = 3  # check_mmio_spte's (-1: no check)
A_SPTE_GEN = 4
A_VALID = 5
A_MARK_GEN = 6  # -1: not marked
A_HANDLED = 7
A_MMIO = 8  # MMIO_* (-1: no kvm_mmio yet)
N_ACOLS = 9

# ---- the time-ordered items walk reads: items[k, 0] an ITEM_* kind, items[k, 1] its index
ITEM_UPDATE = 0  # a row
ITEM_ZAP = 1  # a row
ITEM_ACCESS = 2  # an access

# ---- observations: line_kernels.O_* rows
O_KIND, O_T_NS, O_A, O_B, O_C, O_D, O_E = (
    lk.O_KIND,
    lk.O_T_NS,
    lk.O_A,
    lk.O_B,
    lk.O_C,
    lk.O_D,
    lk.O_E,
)
OBS_ZAP, OBS_ACCESS = lk.OBS_ZAP, lk.OBS_ACCESS

# ---- tally[Y_*] after walk
Y_EVENTS = 0
Y_OBSERVATIONS = 1
Y_UPDATES = 2
Y_ACCESSES = 3
Y_ZAPS = 4
Y_NO_GFN = 5
N_TALLY = 6

_SPACE = 32
_TAB = 9
_NEWLINE = 10
_DASH = 45
_DOT = 46
_COLON = 58
_ZERO = 48
_NINE = 57
_LPAREN = 40
_RPAREN = 41
_LBRACKET = 91
_RBRACKET = 93
_GT = 62
_EQUALS = 61
# What trace_lines looks for in each byte: a line's end, a byte other than printable
# ASCII and tab, or the E that may start "EVENTS" (a global array: numba freezes it).
_B_NEWLINE = 1
_B_ODD = 2
_B_E = 3
BYTE_CLASS = np.array(
    [
        _B_NEWLINE if c == _NEWLINE else _B_ODD if c >= 127 or (c < _SPACE and c != _TAB)
        else _B_E if c == ord("E") else 0
        for c in range(256)
    ],
    dtype=np.uint8,
)  # fmt: skip


@kernel(**_INLINE)
def _blank(c):
    return c == _SPACE or c == _TAB


@kernel(**_INLINE)
def _word_char(c):
    return (_ZERO <= c <= _NINE) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95


@kernel(**_INLINE)
def _lhex(buf, i, stop, keep):
    """``[0-9a-f]+`` at ``i``, as the kernel's formats print it (line_kernels.hex_number)."""
    return hex_number(buf, i, stop, _0, keep)


@kernel(**_INNER)
def _digits(buf, i, stop):
    """``[0-9]+`` at ``i``: (offset past it, value); -1: none; GIVE_UP: over 18 digits."""
    j, value = _decimal(buf, i, stop, _0)
    if j < 0 and i < stop and _ZERO <= buf[i] <= _NINE:
        return GIVE_UP, 0
    return j, value


@kernel(**_INNER)
def _columns(buf, d, stop, rows, r):
    """The pid, tgid and cpu columns from the ``-`` at ``d``: the offset past them (and the
    blanks after), -1 if they do not stand there, GIVE_UP for a number too long."""
    i, pid = _digits(buf, d + 1, stop)
    if i < 0:
        return i
    if i >= stop or not _blank(buf[i]):
        return -1
    while i < stop and _blank(buf[i]):
        i += 1
    tgid = -1
    if i < stop and buf[i] == _LPAREN:  # (tgid), or (-----) where it is unknown
        j = i + 1
        while j < stop and _blank(buf[j]):
            j += 1
        if j < stop and buf[j] == _DASH:
            while j < stop and buf[j] == _DASH:
                j += 1
        else:
            j, tgid = _digits(buf, j, stop)
            if j < 0:
                return j
        if j >= stop or buf[j] != _RPAREN or j + 1 >= stop or not _blank(buf[j + 1]):
            return -1
        i = j + 1
        while i < stop and _blank(buf[i]):
            i += 1
    if i >= stop or buf[i] != _LBRACKET:
        return -1
    i, _cpu = _digits(buf, i + 1, stop)
    if i < 0:
        return i
    if i >= stop or buf[i] != _RBRACKET or i + 1 >= stop or not _blank(buf[i + 1]):
        return -1
    i += 1
    while i < stop and _blank(buf[i]):
        i += 1
    rows[r, R_PID] = pid
    rows[r, R_TGID] = tgid
    return i


@kernel(**_INNER)
def _vcpu_named(buf, i, stop, words, spans):
    """The n of the first "CPU n/KVM" in ``[i, stop)`` if n < 4096, else -1."""
    while i < stop:
        j = _word(buf, i, stop, words, spans, W_CPU)
        if j >= 0 and j < stop and _ZERO <= buf[j] <= _NINE:
            n = 0
            while j < stop and _ZERO <= buf[j] <= _NINE:
                n = min(n * 10 + (buf[j] - _ZERO), 1 << 20)
                j += 1
            if _word(buf, j, stop, words, spans, W_KVM) >= 0:
                return n if n < 4096 else -1
        i += 1
    return -1


@kernel(**_INNER)
def _head(buf, i, stop, words, spans, rows, r):
    """Read ``comm-pid [(tgid)] [cpu] [flags] sec.frac: event`` from ``i`` into ``rows[r]``.

    Returns the offset of the payload (past ``:`` and its blanks, or at ``(``/`` ->``),
    or -1 if the line is not in this shape as far as the loop can vouch; and where
    the comm ends (the ``-`` before the pid).
    """
    while i < stop and _blank(buf[i]):
        i += 1
    d = i
    while True:  # the comm is the shortest prefix followed by -pid, (tgid) and [cpu]
        while d < stop and buf[d] != _DASH:
            d += 1
        if d >= stop:
            return -1, d
        i = _columns(buf, d, stop, rows, r)
        if i == GIVE_UP:
            return -1, d
        if i >= 0:
            break
        d += 1
    # flags: 4 or 5 characters other than blanks and ']', then blanks
    n = 0
    while i + n < stop and n < 6 and not _blank(buf[i + n]) and buf[i + n] != _RBRACKET:
        n += 1
    if (n == 4 or n == 5) and i + n < stop and _blank(buf[i + n]):
        i += n
        while i < stop and _blank(buf[i]):
            i += 1
    i, sec = _decimal(buf, i, stop, _0)
    if i < 0 or i >= stop or buf[i] != _DOT or sec > 9_000_000_000:
        return -1, d
    i += 1
    frac = 0
    digits = 0
    while i < stop and _ZERO <= buf[i] <= _NINE:
        if digits < 9:
            frac = frac * 10 + (buf[i] - _ZERO)
        digits += 1
        i += 1
    if digits == 0 or i + 1 >= stop or buf[i] != _COLON or not _blank(buf[i + 1]):
        return -1, d
    for _ in range(9 - min(digits, 9)):
        frac *= 10
    rows[r, R_T_NS] = sec * 1_000_000_000 + frac
    i += 1
    while i < stop and _blank(buf[i]):
        i += 1
    event = i
    while i < stop and _word_char(buf[i]):
        i += 1
    if i == event:
        return -1, d
    rows[r, R_EVENT] = N_EVENTS
    rows[r, R_F0] = event
    rows[r, R_F0 + 1] = i
    for which in range(N_EVENTS + len(PYTHON_EVENTS)):
        if _word(buf, event, i, words, spans, _I(which)) == i:
            rows[r, R_EVENT] = which if which < N_EVENTS else _PY_EVENT
            break
    if i < stop and buf[i] == _COLON:
        i += 1
        while i < stop and _blank(buf[i]):
            i += 1
        return i, d
    if i < stop and buf[i] == _LPAREN:
        return i, d
    if i + 2 < stop and _blank(buf[i]) and buf[i + 1] == _DASH and buf[i + 2] == _GT:
        return i, d
    return -1, d


@kernel(**_INNER)
def _number(buf, i, stop):
    """A marker's integer value (``0x`` lower-case hex or plain decimal) ending at a blank
    or the end: (offset past it, value), -1 if the loop does not read it as Python would."""
    if i + 1 < stop and buf[i] == _ZERO and buf[i + 1] == 120:  # 0x
        j, value = _lhex(buf, i + 2, stop, _1)
    elif i < stop and buf[i] == _ZERO:
        j, value = i + 1, 0
    else:
        j, value = _decimal(buf, i, stop, _0)
    if j < 0 or (j < stop and not _blank(buf[j])):
        return -1, 0
    return j, value


@kernel(**_INNER)
def _update(buf, i, stop, words, spans, rows, r):
    """``kvmgen: update N op=... [key=value ...]`` from ``i``: True if read."""
    i = _word(buf, i, stop, words, spans, W_KVMGEN)
    if i < 0:
        return False
    while i < stop and _blank(buf[i]):
        i += 1
    i = _word(buf, i, stop, words, spans, W_UPDATE)
    if i < 0 or i >= stop or not _blank(buf[i]):
        return False
    while i < stop and _blank(buf[i]):
        i += 1
    i, ordinal = _decimal(buf, i, stop, _0)
    if i < 0 or (i < stop and not _blank(buf[i])):
        return False
    rows[r, U_ORDINAL] = ordinal
    rows[r, U_OP] = -1
    rows[r, U_AS] = 0
    rows[r, U_SLOT] = 0
    rows[r, U_GFN] = -1
    rows[r, U_PAGES] = -1
    rows[r, U_FLAGS] = 0
    rows[r, U_SRC] = -1
    while True:
        while i < stop and _blank(buf[i]):
            i += 1
        if i >= stop:
            break
        key = -1
        for k in range(_N_KEYS):
            j = _word(buf, i, stop, words, spans, W_OP + k)
            if j >= 0:
                key = k
                i = j
                break
        if key < 0:
            return False
        if key == 0:  # op=
            op = -1
            for k in range(4):
                j = _word(buf, i, stop, words, spans, W_CREATE + k)
                if j >= 0 and (j >= stop or _blank(buf[j])):
                    op = k
                    i = j
                    break
            if op < 0:
                return False
            rows[r, U_OP] = op
        else:
            i, value = _number(buf, i, stop)
            if i < 0:
                return False
            rows[r, U_OP + key] = value
    op = rows[r, U_OP]
    if op < 0:
        return False
    if op == lk.OP_CREATE and (rows[r, U_GFN] < 0 or rows[r, U_PAGES] < 0):
        return False
    if op == lk.OP_MOVE and rows[r, U_GFN] < 0:
        return False
    return True


# ---- payload shapes: the prefix each event's TP_printk gives (tracefs' regexes, matched
# from the payload's start), as steps (S_*, argument) that _payload follows
S_END = 0
S_WORD = 1  # a WORDS entry
S_HEX = 2  # lower-case hex digits into field argument (-1: skipped, any length)
S_DEC = 3  # decimal digits into field argument (-1: skipped)
S_NONBLANK = 4  # one or more characters other than blanks
S_BIT = 5  # 0 or 1 into field argument
S_CHOICE = 6  # the first of three WORDS from argument that stands here: its index into F0
_SHAPES = {
    EV_ZAP_FAST: [(S_WORD, W_VALID_GEN), (S_DEC, 0), (S_WORD, W_USED_PAGES), (S_HEX, 1)],
    EV_ZAP_PAGES: [(S_WORD, W_VALID_GEN), (S_HEX, 0), (S_WORD, W_USED_PAGES), (S_HEX, 1)],
    EV_CHECK: [
        (S_WORD, W_SPTE), (S_HEX, -1), (S_WORD, W_KVM_GEN), (S_HEX, 0),
        (S_WORD, W_SPTE_GEN), (S_HEX, 1), (S_WORD, W_VALID), (S_BIT, 2),
    ],
    EV_MARK: [
        (S_WORD, W_SPTEP), (S_NONBLANK, 0), (S_WORD, W_SP_GFN), (S_HEX, 0),
        (S_WORD, W_SP_ACCESS), (S_HEX, -1), (S_WORD, W_SP_GEN), (S_HEX, 1),
    ],
    EV_HANDLE: [
        (S_WORD, W_ADDR), (S_HEX, -1), (S_WORD, W_SP_GFN), (S_HEX, 0),
        (S_WORD, W_SP_ACCESS), (S_HEX, -1),
    ],
    EV_MMIO: [
        (S_WORD, W_MMIO), (S_CHOICE, W_UNSATISFIED), (S_WORD, W_LEN), (S_DEC, -1),
        (S_WORD, W_GPA), (S_HEX, 1), (S_WORD, W_VAL), (S_HEX, -1),
    ],
}  # fmt: skip
SHAPES = np.zeros((N_EVENTS, 9, 2), dtype=np.int64)  # a global: numba freezes it
for _event, _steps in _SHAPES.items():
    SHAPES[_event, : len(_steps)] = np.array(_steps, dtype=np.int64)
# The kind of row each event's line becomes.
KIND_OF = np.array([K_ZAP, K_ZAP, K_UPDATE, K_CHECK, K_MARK, K_HANDLE, K_MMIO], dtype=np.int64)


@kernel(**_INNER)
def _payload(buf, i, stop, words, spans, rows, r, event):
    """Read the payload of a known event into ``rows[r]``: its K_* kind, or K_SLOW."""
    if event == EV_MARKER:
        return K_UPDATE if _update(buf, i, stop, words, spans, rows, r) else K_SLOW
    for step in range(SHAPES.shape[1]):
        op = SHAPES[event, step, 0]
        arg = SHAPES[event, step, 1]
        if op == S_END:
            break
        if op == S_WORD:
            i = _word(buf, i, stop, words, spans, arg)
        elif op == S_HEX or op == S_DEC:
            if op == S_HEX:
                i, value = _lhex(buf, i, stop, _1 if arg >= 0 else _0)
            else:
                i, value = _decimal(buf, i, stop, _0)
            if i >= 0 and arg >= 0:
                rows[r, R_F0 + arg] = value
        elif op == S_NONBLANK:
            j = i
            while j < stop and not _blank(buf[j]):
                j += 1
            i = j if j > i else -1
        elif op == S_BIT:
            if i < stop and (buf[i] == _ZERO or buf[i] == _ZERO + 1):
                rows[r, R_F0 + arg] = buf[i] - _ZERO
                i += 1
            else:
                i = -1
        else:  # S_CHOICE
            j = -1
            for k in range(3):
                j = _word(buf, i, stop, words, spans, arg + k)
                if j >= 0:
                    rows[r, R_F0] = k
                    break
            i = j
        if i < 0:
            return K_SLOW
    if event == EV_MMIO:
        rows[r, R_F0 + 1] >>= 12  # the gpa's page
    return KIND_OF[event]


@kernel(**_OPT)
def trace_lines(buf, words, spans, rows, counts):
    """Read every line of ``buf`` (ended by ``\\n``) into ``rows`` (one each); fill ``counts``.

    A byte other than printable ASCII and tab stops the scan (``counts[C_ODD]``):
    Python splits and strips such lines in ways this loop does not.
    """
    n = buf.shape[0]
    i = _0
    r = _0
    while i < n:
        stop = i
        notice = False  # "EVENTS": maybe a lost-events notice, which Python reads
        while stop < n:
            c = BYTE_CLASS[buf[stop]]
            if c != 0:
                if c == _B_NEWLINE:
                    break
                if c == _B_ODD:
                    counts[C_ODD] = stop + 1
                    return
                if _word(buf, stop, n, words, spans, W_EVENTS) >= 0:
                    notice = True
            stop += 1
        rows[r, R_START] = i
        rows[r, R_END] = stop
        end = stop  # the payload's end, trailing blanks cut
        while end > i and _blank(buf[end - 1]):
            end -= 1
        if end == i:
            rows[r, R_KIND] = K_BLANK
        elif notice:
            rows[r, R_KIND] = K_SLOW
        else:
            p, comm_end = _head(buf, i, stop, words, spans, rows, r)
            if p < 0:
                rows[r, R_KIND] = K_SLOW
            elif rows[r, R_EVENT] == N_EVENTS:
                rows[r, R_KIND] = K_SEEN
            elif rows[r, R_EVENT] == _PY_EVENT:
                rows[r, R_KIND] = K_SLOW
            else:
                kind = _payload(buf, p, end, words, spans, rows, r, rows[r, R_EVENT])
                rows[r, R_KIND] = kind
                vcpu = -1
                if kind >= K_CHECK and kind <= K_MMIO:  # an access's line: its vCPU
                    comm = i
                    while _blank(buf[comm]):
                        comm += 1
                    vcpu = _vcpu_named(buf, comm, comm_end, words, spans)
                rows[r, R_VCPU] = vcpu
                if kind != K_SLOW:
                    counts[C_PER_EVENT + rows[r, R_EVENT]] += 1
        r += 1
        i = stop + 1
    counts[C_LINES] = r


# ---- accesses ----------------------------------------------------------------------------


@kernel(**_INNER)
def _start(accesses, count, open_of, tid, r):
    """A new access at row ``r``, open on its thread: its index."""
    a = count[0]
    count[0] = a + 1
    accesses[a, A_ROW] = r
    accesses[a, A_GFN] = -1
    accesses[a, A_WRITE] = 0
    accesses[a, A_KVM_GEN] = -1
    accesses[a, A_SPTE_GEN] = -1
    accesses[a, A_VALID] = 0
    accesses[a, A_MARK_GEN] = -1
    accesses[a, A_HANDLED] = 0
    accesses[a, A_MMIO] = -1
    open_of[tid] = a
    return a


@kernel(**_OPT)
def group_accesses(rows, tids, open_of, accesses, count):
    """Group the MMU and MMIO rows of each thread into accesses, as ``_Importer.mmu`` does.

    ``tids`` is each row's thread as a dense index, ``open_of`` (-1 each) the
    access open on each thread; ``count[0]`` ends as the number of accesses.
    """
    for r in range(rows.shape[0]):
        kind = rows[r, R_KIND]
        if kind < K_CHECK or kind > K_MMIO:
            continue
        tid = tids[r]
        cur = open_of[tid]
        if kind == K_CHECK:
            a = _start(accesses, count, open_of, tid, r)
            accesses[a, A_KVM_GEN] = rows[r, R_F0]
            accesses[a, A_SPTE_GEN] = rows[r, R_F0 + 1]
            accesses[a, A_VALID] = rows[r, R_F0 + 2]
        elif kind == K_MARK:
            gfn = rows[r, R_F0]
            if not (
                cur >= 0
                and accesses[cur, A_KVM_GEN] >= 0
                and accesses[cur, A_MARK_GEN] < 0
                and accesses[cur, A_MMIO] < 0
                and (accesses[cur, A_GFN] < 0 or accesses[cur, A_GFN] == gfn)
            ):
                cur = _start(accesses, count, open_of, tid, r)
            accesses[cur, A_GFN] = gfn
            accesses[cur, A_MARK_GEN] = rows[r, R_F0 + 1]
        elif kind == K_HANDLE:
            gfn = rows[r, R_F0]
            if not (
                cur >= 0
                and accesses[cur, A_KVM_GEN] >= 0
                and accesses[cur, A_VALID] != 0
                and accesses[cur, A_HANDLED] == 0
                and accesses[cur, A_MMIO] < 0
                and (accesses[cur, A_GFN] < 0 or accesses[cur, A_GFN] == gfn)
            ):
                cur = _start(accesses, count, open_of, tid, r)
            accesses[cur, A_GFN] = gfn
            accesses[cur, A_HANDLED] = 1
        else:
            mmio = rows[r, R_F0]
            gfn = rows[r, R_F0 + 1]
            if (
                cur >= 0
                and (accesses[cur, A_GFN] < 0 or accesses[cur, A_GFN] == gfn)
                and accesses[cur, A_MMIO] < 0
            ):
                accesses[cur, A_GFN] = gfn
                accesses[cur, A_MMIO] = mmio
            elif (
                cur >= 0
                and accesses[cur, A_GFN] == gfn
                and accesses[cur, A_MMIO] == MMIO_UNSATISFIED
                and mmio == MMIO_READ
            ):
                accesses[cur, A_MMIO] = mmio  # the read completed by userspace: same access
            else:
                cur = _start(accesses, count, open_of, tid, r)
                accesses[cur, A_GFN] = gfn
                accesses[cur, A_MMIO] = mmio
            if mmio == MMIO_WRITE:
                accesses[cur, A_WRITE] = 1
            if mmio != MMIO_UNSATISFIED:
                open_of[tid] = -1  # kvm_mmio ends the fault


# ---- the timeline ------------------------------------------------------------------------


@kernel(**_INLINE)
def _observe(obs, tally, kind, t_ns, a, b, c, d, e):
    """Append one observation (its columns are O_KIND .. O_E, in order)."""
    lk.append7(obs, tally, _I(Y_OBSERVATIONS), kind, t_ns, a, b, c, d, e)


@kernel(**_INNER)
def _new_event(events, tally):
    """A new event row, every column cleared to what writes nothing: its index."""
    e = tally[Y_EVENTS]
    tally[Y_EVENTS] = e + 1
    for c in range(lk.N_ECOLS):
        events[e, c] = 0
    events[e, lk.E_T_NS] = -1
    return e


@kernel(**_INNER)
def _emit_update(rows, r, key, flags_now, events, tally):
    """The event(s) of a kvmgen update marker, as ``_Importer.emit_update`` makes them."""
    op = rows[r, U_OP]
    space = rows[r, U_AS]
    slot = rows[r, U_SLOT]
    src = rows[r, U_SRC]
    flags = rows[r, U_FLAGS]
    value = 0
    if op == lk.OP_CREATE:
        flags_now[key] = flags
        value = rows[r, U_GFN]
    elif op == lk.OP_MOVE:
        value = rows[r, U_GFN]
    elif op == lk.OP_DELETE:
        flags_now[key] = -1
    else:
        old = flags_now[key]
        flags_now[key] = flags
        value = flags
        if old >= 0 and flags == old ^ 1:
            value = -1  # a toggle: written without its flags
            last = tally[Y_EVENTS] - 1
            if (
                src < 0  # a new event of a probed trace starts a new line
                and last >= 0
                and events[last, lk.E_OP] == lk.OP_FLAGS
                and events[last, lk.E_VALUE] < 0
                and events[last, lk.E_SLOT] == slot
                and events[last, lk.E_AS] == space
            ):
                events[last, lk.E_REPEAT] = max(events[last, lk.E_REPEAT], 1) + 1
                return
    e = _new_event(events, tally)
    events[e, lk.E_OP] = op
    events[e, lk.E_AS] = space
    events[e, lk.E_SLOT] = slot
    events[e, lk.E_VALUE] = value
    if src >= 0:
        events[e, lk.E_NOTE] = -1 - src
    if op == lk.OP_CREATE:
        events[e, lk.E_PAGES] = rows[r, U_PAGES]
        events[e, lk.E_FLAGS] = flags


@kernel(**_OPT)
def walk(
    rows,
    items,
    tids,
    keys,
    accesses,
    flags_now,
    entered,
    vcpu_of,
    observe,
    events,
    obs,
    ordinals,
    tally,
):
    """Updates, zaps and accesses in time order into events and observations.

    ``items`` (ITEM_* kind, index) are in time order; ``tids`` each row's thread and
    ``keys`` each update row's (address space, slot) as dense indices; ``flags_now``,
    ``entered`` and ``vcpu_of`` (per key, per thread, per thread) start at -1.
    ``observe``: accesses get an observation (the MMU tracepoints were on and MMIO
    caching was not off). ``ordinals`` gets each update row's ordinal.
    """
    ordinal = 0
    vcpus = 0
    for k in range(items.shape[0]):
        kind = items[k, 0]
        ref = items[k, 1]
        if kind == ITEM_UPDATE:
            _emit_update(rows, ref, keys[ref], flags_now, events, tally)
            ordinal += 1
            ordinals[ref] = ordinal
            entered[tids[ref]] = ordinal
        elif kind == ITEM_ZAP:
            # A zap belongs to the latest update its thread made, if any, else the latest.
            at = entered[tids[ref]]
            _observe(
                obs, tally, OBS_ZAP, rows[ref, R_T_NS], at if at >= 0 else ordinal,
                rows[ref, R_EVENT], rows[ref, R_F0], rows[ref, R_F0 + 1], _I(-1),
            )  # fmt: skip
            tally[Y_ZAPS] += 1
        else:
            gfn = accesses[ref, A_GFN]
            if gfn < 0:
                tally[Y_NO_GFN] += 1
                continue
            r = accesses[ref, A_ROW]
            vcpu = rows[r, R_VCPU]
            if vcpu < 0:
                tid = tids[r]
                if vcpu_of[tid] < 0:
                    vcpu_of[tid] = min(vcpus, 4095)
                    vcpus += 1
                vcpu = vcpu_of[tid]
            e = _new_event(events, tally)
            events[e, lk.E_OP] = lk.OP_ACCESS
            events[e, lk.E_VALUE] = gfn
            events[e, lk.E_VCPU] = vcpu
            events[e, lk.E_WRITE] = accesses[ref, A_WRITE]
            events[e, lk.E_T_NS] = rows[r, R_T_NS]
            tally[Y_ACCESSES] += 1
            if observe == 0:
                continue
            if accesses[ref, A_KVM_GEN] >= 0:
                outcome = 1 if accesses[ref, A_VALID] != 0 else 2
            elif accesses[ref, A_MARK_GEN] >= 0:
                outcome = 0
            elif accesses[ref, A_HANDLED] != 0:
                outcome = 1
            else:
                outcome = 3
            _observe(
                obs, tally, OBS_ACCESS, rows[r, R_T_NS], e, outcome, accesses[ref, A_KVM_GEN],
                accesses[ref, A_SPTE_GEN], accesses[ref, A_MARK_GEN],
            )  # fmt: skip
    tally[Y_UPDATES] = ordinal
