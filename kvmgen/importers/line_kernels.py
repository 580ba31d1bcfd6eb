"""Jitted loops of the bulk QEMU import: log bytes in, call rows, trace events and text out.

Kept apart from the importers' Python, as the engine and the trace scanners keep
theirs. Three loops, each with one signature:

- :func:`qemu_lines` reads every line of a QEMU ``kvm_set_user_memory`` log. A line
  in one of the shapes QEMU prints (the same shapes as ``qemu._COMMON``) becomes a
  row of numbers; a line that names the event in any other shape becomes a row
  marked :data:`SLOW`, which the Python parser reads (it accepts it or words the
  error); other lines are counted.
- :func:`apply_calls` replays the rows against the slots they imply, by the rules of
  :class:`~kvmgen.importers.memslots.MemslotTracker` (the reference this loop is
  tested against), into event rows, plus a row for each fact the summary states.
  It stops at the first call the tracker would refuse, and the caller imports the
  log the slow way, for the tracker's message.
- :func:`write_events` writes event rows as trace text, the bytes each format
  needs being tables the caller passes in (:mod:`kvmgen.importers.bulk`).

The caller allocates every array; no loop allocates (``kernel()``), and flags go
in as typed scalars, never literals (see scan_kernels on why).
"""

from __future__ import annotations

import numpy as np

from kvmgen.jit import kernel

# Constants that go into calls are numpy scalars: numba types a plain int argument
# by its value and would compile a copy of the callee for each value.
_I = np.int64

# ---- rows[call, Q_*]: one row per line that names the event
Q_LINE = 0
Q_TID = 1  # -1: the line has no tid@time: prefix
Q_T_NS = 2  # -1: no time
Q_AS = 3
Q_SLOT = 4
Q_FLAGS = 5
Q_GPA = 6
Q_SIZE = 7
Q_RET = 8
Q_MEMFD = 9  # 1: the call carried guest_memfd
Q_STATUS = 10  # PARSED or SLOW
Q_START = 11  # the line's bytes [start, end)
Q_END = 12
N_QCOLS = 13

PARSED = 0
SLOW = 1

# ---- counts[S_*] after qemu_lines
S_CALLS = 0
S_LINES = 1
S_UNRELATED = 2
S_ODD = 3  # 1 + the offset of a byte other than printable ASCII and tab (0: none)
N_SCAN = 4

# ---- the literal table qemu_lines matches: words[W_*[0] : W_*[0] + W_*[1]]
WORDS = (
    "kvm_set_user_memory",
    " AddrSpace#",
    "Slot#",
    " flags=0x",
    " gpa=0x",
    " size=0x",
    " ua=0x",
    " guest_memfd=",
    " guest_memfd_offset=0x",
    " ret=",
)
# (W_FLAGS .. W_UA and Q_FLAGS .. Q_SIZE follow one another: _call reads them in a loop.)
W_NAME, W_ADDRSPACE, W_SLOT, W_FLAGS, W_GPA, W_SIZE, W_UA, W_MEMFD, W_MEMFD_OFF, W_RET = map(
    _I, range(len(WORDS))
)

# ---- events[event, E_*]: what apply_calls (and trace_kernels.walk) make; a column's
# meaning depends on the op, which keeps the table 8 columns wide (a million events
# is 64 MB of it)
E_OP = 0  # an Op code: create 0, delete 1, move 2, flags 3, access 4
E_AS = 1
E_SLOT = 2  # access: the vCPU (written when not 0)
E_VALUE = 3  # flags: the flags (-1: a toggle, written without them); the rest: the gfn
E_PAGES = 4  # create: the pages; flags: repeat (0: no repeat key)
E_FLAGS = 5  # create: the flags (written when not 0); access: 1 for kind write
E_NOTE = 6  # > 0: an inferred delete, "inferred: missing before line N";
# < 0: a kvmgen probe marker, "event -1 - N of the probed trace"; 0: no note
E_T_NS = 7  # -1: none
N_ECOLS = 8
E_VCPU = E_SLOT  # of an access
E_WRITE = E_FLAGS  # of an access
E_REPEAT = E_PAGES  # of a flags event

OP_CREATE = _I(0)
OP_DELETE = _I(1)
OP_MOVE = _I(2)
OP_FLAGS = _I(3)  # E_VALUE -1: a toggle of bit 0, written without its flags
OP_ACCESS = _I(4)  # E_VALUE: the gfn

# ---- notes[note, N_*]: the facts the summary states, in the order they happened
N_KIND = 0
N_LINE = 1
N_AS = 2
N_SLOT = 3
N_A = 4
N_B = 5
N_C = 6
N_NCOLS = 7

NOTE_DECLARED_DELETED = _I(0)  # a slot first seen deleted: A gfn, B pages (1), C flags
NOTE_DECLARED_FLAGS = _I(1)  # a slot first seen changing flags: A gfn, B pages, C prior flags
NOTE_SIZE_CHANGED = _I(2)  # an inferred delete: A old pages, B new pages
NOTE_CREATED_OVER = _I(3)  # an inferred delete of slot N_SLOT: A the slot created over it

# ---- tally[T_*] after apply_calls
T_RECORDS = 0
T_FAILED = 1
T_GUEST_MEMFD = 2
T_NOOP_DELETES = 3
T_MOVES_WITH_FLAGS = 4
T_PER_AS = 5  # 2 columns: updates in address space 0, 1
T_PER_OP = 7  # 4 columns, by op code
T_EVENTS = 11
T_NOTES = 12
T_MID_RUN = 13  # in: -1 undecided (first_sight auto), 0 from creation, 1 mid-run; out: decided
T_STOP = 14  # the call apply_calls refused (-1: none)
N_TALLY = 15

# Slot keys: address space << 15 | slot (x86: address spaces 0 and 1, slots 0..32767).
KEYS = 1 << 16
_MAX_SLOT = 32767
_GFN_LIMIT = 1 << 40

# ---- state[X_*, key]: the live slots, carried by apply_calls
X_LIVE = 0
X_GFN = 1
X_PAGES = 2
X_FLAGS = 3
X_ORDER = 4  # when it became live (the tracker's dict order)
X_SEEN = 5
N_STATE = 6

# ---- the text table write_events copies from: text[spans[P_*, 0] : ... + spans[P_*, 1]]
PIECES = (
    "lead_first", "lead_rest", "tail", "open", "sep", "close",
    "key_op", "key_slot", "key_as", "key_gfn", "key_pages", "key_flags", "key_note", "key_t",
    "key_repeat", "key_vcpu", "key_kind",
    "op_create", "op_delete", "op_move", "op_flags", "op_access",
    "note_head", "note_tail", "src_head", "src_tail", "hex_open", "hex_close", "kind_write",
    "key_update", "key_event", "key_valid_gen", "key_used_pages", "key_access", "key_outcome",
    "key_kvm_gen", "key_spte_gen", "key_gen", "kind_zap", "kind_access",
    "event_kvm_mmu_zap_all_fast", "event_kvm_mmu_invalidate_zap_all_pages",
    "outcome_slow_path", "outcome_fast_path", "outcome_refault", "outcome_cache_hit",
)  # fmt: skip
(
    P_LEAD_FIRST, P_LEAD_REST, P_TAIL, P_OPEN, P_SEP, P_CLOSE,
    P_KEY_OP, P_KEY_SLOT, P_KEY_AS, P_KEY_GFN, P_KEY_PAGES, P_KEY_FLAGS, P_KEY_NOTE, P_KEY_T,
    P_KEY_REPEAT, P_KEY_VCPU, P_KEY_KIND,
    P_OP_CREATE, P_OP_DELETE, P_OP_MOVE, P_OP_FLAGS, P_OP_ACCESS,
    P_NOTE_HEAD, P_NOTE_TAIL, P_SRC_HEAD, P_SRC_TAIL, P_HEX_OPEN, P_HEX_CLOSE, P_KIND_WRITE,
    P_KEY_UPDATE, P_KEY_EVENT, P_KEY_VALID_GEN, P_KEY_USED_PAGES, P_KEY_ACCESS, P_KEY_OUTCOME,
    P_KEY_KVM_GEN, P_KEY_SPTE_GEN, P_KEY_GEN, P_KIND_ZAP, P_KIND_ACCESS,
    P_EVENT_ZAP_FAST, P_EVENT_ZAP_PAGES,
    P_OUTCOME_SLOW_PATH, P_OUTCOME_FAST_PATH, P_OUTCOME_REFAULT, P_OUTCOME_CACHE_HIT,
) = map(_I, range(len(PIECES)))  # fmt: skip

# ---- observations[obs, O_*]: what trace_kernels.walk makes, written by write_observations
O_KIND = 0  # OBS_ZAP or OBS_ACCESS
O_T_NS = 1
O_A = 2  # zap: the update; access: the event index
O_B = 3  # zap: 0 kvm_mmu_zap_all_fast, 1 kvm_mmu_invalidate_zap_all_pages; access: outcome
O_C = 4  # zap: valid gen; access: kvm gen (-1: none)
O_D = 5  # zap: used pages; access: spte gen (-1: none)
O_E = 6  # access: the marked gen (-1: none)
N_OCOLS = 7
OBS_ZAP = _I(0)
OBS_ACCESS = _I(1)  # O_B: an index into observed.ACCESS_OUTCOMES
LONGEST_EVENT = 600  # bytes: the most one event's text can take with the longest pieces

_NEWLINE = 10
_SPACE = 32
_TAB = 9
_ZERO = 48
_NINE = 57
_DASH = 45
_DOT = 46
_AT = 64
_COLON = 58

_0 = _I(0)
_1 = _I(1)
GIVE_UP = -2  # a reader's offset: the text may be right, but the loop cannot vouch for it

_OPT = {"error_model": "numpy", "no_cfunc_wrapper": True}  # called from Python only
_INNER = {"error_model": "numpy", "no_cpython_wrapper": True, "no_cfunc_wrapper": True}
_INLINE = {**_INNER, "inline": "always"}


# ---- reading -------------------------------------------------------------------------


@kernel(**_INLINE)
def _word(buf, i, stop, words, spans, which):
    """The offset past word ``which`` if it stands at ``i``, else -1."""
    start = spans[which, 0]
    length = spans[which, 1]
    if i + length > stop:
        return -1
    for k in range(length):
        if buf[i + k] != words[start + k]:
            return -1
    return i + length


@kernel(**_INNER)
def _decimal(buf, i, stop, negative_ok):
    """``-?[0-9]+`` of at most 18 digits at ``i``: (offset past it, value); offset -1: none."""
    sign = 1
    if negative_ok != 0 and i < stop and buf[i] == _DASH:
        sign = -1
        i += 1
    value = 0
    digits = 0
    while i < stop and _ZERO <= buf[i] <= _NINE:
        if digits == 18:
            return -1, 0
        value = value * 10 + (buf[i] - _ZERO)
        digits += 1
        i += 1
    if digits == 0:
        return -1, 0
    return i, sign * value


@kernel(**_INNER)
def hex_number(buf, i, stop, upper_ok, keep):
    """Hex digits at ``i`` (``upper_ok``: A-F too): (offset past them, value).

    The offset is -1 where no digit stands, GIVE_UP where ``keep`` asks for the value
    and it has over 15 digits (the loops' numbers stay below 2^60); without ``keep``
    any number of digits is skipped.
    """
    value = 0
    digits = 0
    while i < stop:
        c = buf[i]
        if _ZERO <= c <= _NINE:
            d = c - _ZERO
        elif 97 <= c <= 102:
            d = c - 87
        elif upper_ok != 0 and 65 <= c <= 70:
            d = c - 55
        else:
            break
        digits += 1
        if keep != 0:
            if digits > 15:
                return GIVE_UP, 0
            value = value * 16 + d
        i += 1
    if digits == 0:
        return -1, 0
    return i, value


@kernel(**_INNER)
def _call(buf, i, stop, words, spans, rows, r):
    """Read the line from ``i`` into ``rows[r]`` if it has a shape QEMU prints: its end, else -1.

    Every step stops at a byte it does not expect, so none reads past the line's end.
    """
    while i < stop and (buf[i] == _SPACE or buf[i] == _TAB):
        i += 1
    rows[r, Q_TID] = -1
    rows[r, Q_T_NS] = -1
    if i < stop and _ZERO <= buf[i] <= _NINE:  # tid@sec.frac:
        i, tid = _decimal(buf, i, stop, _0)
        if i < 0 or i >= stop or buf[i] != _AT:
            return -1
        i, sec = _decimal(buf, i + 1, stop, _0)
        if i < 0 or i >= stop or buf[i] != _DOT or sec > 9_000_000_000:
            return -1
        i += 1
        frac = 0
        digits = 0
        while i < stop and _ZERO <= buf[i] <= _NINE and digits < 9:
            frac = frac * 10 + (buf[i] - _ZERO)
            digits += 1
            i += 1
        if digits == 0 or i >= stop or buf[i] != _COLON:
            return -1
        for _ in range(9 - digits):
            frac *= 10
        rows[r, Q_TID] = tid
        rows[r, Q_T_NS] = sec * 1_000_000_000 + frac
        i += 1
    i = _word(buf, i, stop, words, spans, W_NAME)
    if i < 0:
        return -1
    j = _word(buf, i, stop, words, spans, W_ADDRSPACE)
    if j >= 0:
        i, space = _decimal(buf, j, stop, _0)
        if i < 0 or i >= stop or buf[i] != _SPACE:
            return -1
        i += 1
    else:
        if i >= stop or buf[i] != _SPACE:
            return -1
        i += 1
        space = -1
    i = _word(buf, i, stop, words, spans, W_SLOT)
    if i < 0:
        return -1
    i, slot = _decimal(buf, i, stop, _0)
    if i < 0 or slot > 0xFFFFFFFF:
        return -1
    if space >= 0:
        rows[r, Q_AS] = space
        rows[r, Q_SLOT] = slot
    else:  # printed with %d: address space << 16 | slot
        rows[r, Q_AS] = slot >> 16
        rows[r, Q_SLOT] = slot & 0xFFFF
    # flags, gpa, size (kept in Q_FLAGS, Q_GPA, Q_SIZE), then ua (not kept): hex each.
    for step in range(4):
        i = _word(buf, i, stop, words, spans, W_FLAGS + step)
        if i < 0:
            return -1
        i, value = hex_number(buf, i, stop, _1, _1)
        if i < 0:
            return -1
        if step < 3:
            rows[r, Q_FLAGS + step] = value
    rows[r, Q_MEMFD] = 0
    j = _word(buf, i, stop, words, spans, W_MEMFD)
    if j >= 0:
        i, _fd = _decimal(buf, j, stop, _1)
        if i < 0:
            return -1
        i = _word(buf, i, stop, words, spans, W_MEMFD_OFF)
        if i < 0:
            return -1
        i, _offset = hex_number(buf, i, stop, _1, _1)
        if i < 0:
            return -1
        rows[r, Q_MEMFD] = 1
    i = _word(buf, i, stop, words, spans, W_RET)
    if i < 0:
        return -1
    i, value = _decimal(buf, i, stop, _1)
    if i < 0:
        return -1
    rows[r, Q_RET] = value
    while i < stop and (buf[i] == _SPACE or buf[i] == _TAB):
        i += 1
    if i < stop and buf[i] != _NEWLINE:
        return -1
    return i


@kernel(**_INNER)
def _names_event(buf, i, stop, words, spans):
    """Whether the line ``[i, stop)`` holds the event's name anywhere."""
    first = words[spans[W_NAME, 0]]
    while i < stop:
        if buf[i] == first and _word(buf, i, stop, words, spans, W_NAME) >= 0:
            return True
        i += 1
    return False


@kernel(**_OPT)
def qemu_lines(buf, words, spans, rows, counts):
    """Read every line of ``buf`` (lines ended by ``\\n``) into ``rows``; fill ``counts``.

    ``rows`` must hold a row for every line that names the event (the caller
    counts the name's occurrences), and one more: a line is read into the next
    row before it is known to be a call. A byte other than printable ASCII and tab
    stops the scan (``counts[S_ODD]``): Python splits and strips such lines in
    ways this loop does not.
    """
    n = buf.shape[0]
    i = _0
    line = _0
    calls = _0
    unrelated = 0
    while i < n:
        line += 1
        stop = _call(buf, i, n, words, spans, rows, calls)
        if stop >= 0:
            rows[calls, Q_LINE] = line
            rows[calls, Q_STATUS] = PARSED
            calls += 1
            i = stop + 1
            continue
        stop = i
        while stop < n and buf[stop] != _NEWLINE:
            c = buf[stop]
            if c >= 127 or (c < _SPACE and c != _TAB):
                counts[S_ODD] = (
                    stop + 1
                )  # a line break or space the Python importer reads otherwise
                return
            stop += 1
        if _names_event(buf, i, stop, words, spans):
            rows[calls, Q_LINE] = line
            rows[calls, Q_STATUS] = SLOW
            rows[calls, Q_START] = i
            rows[calls, Q_END] = stop
            calls += 1
        else:
            for k in range(i, stop):
                if buf[k] != _SPACE and buf[k] != _TAB:
                    unrelated += 1
                    break
        i = stop + 1
    counts[S_CALLS] = calls
    counts[S_LINES] = line
    counts[S_UNRELATED] = unrelated


# ---- the slot model ------------------------------------------------------------------


@kernel(**_INNER)
def _overlaps(placed, space, gfn, pages):
    """Whether a range placed so far in address space ``space`` overlaps ``gfn`` + ``pages``."""
    for p in range(1, placed[0, 0] + 1):
        if (
            placed[p, 0] == space
            and placed[p, 1] < gfn + pages
            and gfn < placed[p, 1] + placed[p, 2]
        ):
            return True
    return False


@kernel(**_INNER)
def _event(events, tally, op, space, slot, value, pages, flags, note_line, t_ns):
    """Append one event row and count it."""
    e = tally[T_EVENTS]
    events[e, E_OP] = op
    events[e, E_AS] = space
    events[e, E_SLOT] = slot
    events[e, E_VALUE] = value
    events[e, E_PAGES] = pages
    events[e, E_FLAGS] = flags
    events[e, E_NOTE] = note_line
    events[e, E_T_NS] = t_ns
    tally[T_EVENTS] = e + 1
    tally[T_PER_AS + space] += 1
    tally[T_PER_OP + op] += 1


@kernel(**_INNER)
def append7(table, tally, at, v0, v1, v2, v3, v4, v5, v6):
    """Append the row ``v0 .. v6`` to ``table``, whose row count is ``tally[at]``."""
    m = tally[at]
    table[m, 0] = v0
    table[m, 1] = v1
    table[m, 2] = v2
    table[m, 3] = v3
    table[m, 4] = v4
    table[m, 5] = v5
    table[m, 6] = v6
    tally[at] = m + 1


@kernel(**_INLINE)
def _note(notes, tally, kind, line, space, slot, a, b, c):
    """Append one summary fact (its columns are N_KIND .. N_C, in order)."""
    append7(notes, tally, _I(T_NOTES), kind, line, space, slot, a, b, c)


@kernel(**_OPT)
def apply_calls(rows, count, state, live_keys, placed, events, notes, tally):
    """Replay calls ``rows[:count]`` against the slots they imply (MemslotTracker's rules).

    ``state``, ``live_keys`` (the live slot keys, ``tally`` counting nothing of them:
    ``live_keys[0]`` is their number) and ``placed`` (address space, gfn, pages of
    every range a create, move or declaration placed; ``placed[0, 0]`` the number)
    start empty. ``events`` and ``notes`` need two rows per call. On a call the
    tracker refuses, ``tally[T_STOP]`` is its row and nothing after it is read.
    """
    tally[T_STOP] = -1
    order = 0
    for r in range(count):
        tally[T_RECORDS] += 1
        if rows[r, Q_RET] != 0:
            tally[T_FAILED] += 1
            continue
        space = rows[r, Q_AS]
        slot = rows[r, Q_SLOT]
        gpa = rows[r, Q_GPA]
        size = rows[r, Q_SIZE]
        line = rows[r, Q_LINE]
        t_ns = rows[r, Q_T_NS]
        if tally[T_MID_RUN] < 0:
            from_creation = size > 0 and gpa == 0 and slot == 0 and space == 0
            tally[T_MID_RUN] = 0 if from_creation else 1
        if rows[r, Q_MEMFD] != 0:
            tally[T_GUEST_MEMFD] += 1
        if space > 1 or space < 0 or slot > _MAX_SLOT or slot < 0:
            tally[T_STOP] = r
            return
        if (gpa & 0xFFF) != 0 or (size & 0xFFF) != 0 or gpa < 0 or size < 0:
            tally[T_STOP] = r
            return
        gfn = gpa >> 12
        pages = size >> 12
        if gfn + max(pages, 1) > _GFN_LIMIT:
            tally[T_STOP] = r
            return
        key = space << 15 | slot
        live = state[X_LIVE, key] != 0
        first_sight = state[X_SEEN, key] == 0
        state[X_SEEN, key] = 1
        count_placed = placed[0, 0]
        if pages == 0:
            if not live and first_sight:
                # Declared as one page: its size is unknown.
                if _overlaps(placed, space, gfn, _1):
                    tally[T_STOP] = r
                    return
                _note(
                    notes,
                    tally,
                    NOTE_DECLARED_DELETED,
                    line,
                    space,
                    slot,
                    gfn,
                    _1,
                    rows[r, Q_FLAGS],
                )
                placed[1 + count_placed, 0] = space
                placed[1 + count_placed, 1] = gfn
                placed[1 + count_placed, 2] = 1
                placed[0, 0] = count_placed + 1
            elif not live:
                tally[T_NOOP_DELETES] += 1
                continue
            if live:
                state[X_LIVE, key] = 0
                _unlist(live_keys, key)
            _event(events, tally, OP_DELETE, space, slot, _0, _0, _0, _0, t_ns)
            continue
        flags = rows[r, Q_FLAGS]
        if (
            not live
            and first_sight
            and tally[T_MID_RUN] == 1
            and not _overlaps(placed, space, gfn, pages)
        ):
            _note(notes, tally, NOTE_DECLARED_FLAGS, line, space, slot, gfn, pages, flags ^ 1)
            placed[1 + count_placed, 0] = space
            placed[1 + count_placed, 1] = gfn
            placed[1 + count_placed, 2] = pages
            count_placed += 1
            placed[0, 0] = count_placed
            state[X_LIVE, key] = 1
            state[X_GFN, key] = gfn
            state[X_PAGES, key] = pages
            state[X_FLAGS, key] = flags ^ 1
            state[X_ORDER, key] = order
            order += 1
            _list(live_keys, key)
            live = True
        if live:
            if state[X_GFN, key] == gfn and state[X_PAGES, key] == pages:
                state[X_FLAGS, key] = flags
                _event(events, tally, OP_FLAGS, space, slot, flags, _0, _0, _0, t_ns)
                continue
            if state[X_PAGES, key] == pages:
                if state[X_FLAGS, key] != flags:
                    tally[T_MOVES_WITH_FLAGS] += 1
                state[X_GFN, key] = gfn
                state[X_FLAGS, key] = flags
                placed[1 + count_placed, 0] = space
                placed[1 + count_placed, 1] = gfn
                placed[1 + count_placed, 2] = pages
                placed[0, 0] = count_placed + 1
                _event(events, tally, OP_MOVE, space, slot, gfn, _0, _0, _0, t_ns)
                continue
            _note(
                notes, tally, NOTE_SIZE_CHANGED, line, space, slot, state[X_PAGES, key], pages, _0
            )
            _event(events, tally, OP_DELETE, space, slot, _0, _0, _0, line, t_ns)
            state[X_LIVE, key] = 0
            _unlist(live_keys, key)
        # Slots the new one lands on were deleted unseen, oldest first (the tracker's order).
        while True:
            oldest = -1
            for k in range(1, live_keys[0] + 1):
                other = live_keys[k]
                if other >> 15 != space:
                    continue
                overlaps = (
                    state[X_GFN, other] < gfn + pages
                    and gfn < state[X_GFN, other] + state[X_PAGES, other]
                )
                if overlaps and (oldest < 0 or state[X_ORDER, other] < state[X_ORDER, oldest]):
                    oldest = other
            if oldest < 0:
                break
            other_slot = oldest & _MAX_SLOT
            _note(notes, tally, NOTE_CREATED_OVER, line, space, other_slot, slot, _0, _0)
            _event(events, tally, OP_DELETE, space, other_slot, _0, _0, _0, line, t_ns)
            state[X_LIVE, oldest] = 0
            _unlist(live_keys, oldest)
        state[X_LIVE, key] = 1
        state[X_GFN, key] = gfn
        state[X_PAGES, key] = pages
        state[X_FLAGS, key] = flags
        state[X_ORDER, key] = order
        order += 1
        _list(live_keys, key)
        count_placed = placed[0, 0]
        placed[1 + count_placed, 0] = space
        placed[1 + count_placed, 1] = gfn
        placed[1 + count_placed, 2] = pages
        placed[0, 0] = count_placed + 1
        _event(events, tally, OP_CREATE, space, slot, gfn, pages, flags, _0, t_ns)


@kernel(**_INNER)
def _list(live_keys, key):
    live_keys[0] += 1
    live_keys[live_keys[0]] = key


@kernel(**_INNER)
def _unlist(live_keys, key):
    last = live_keys[0]
    for k in range(1, last + 1):
        if live_keys[k] == key:
            live_keys[k] = live_keys[last]
            live_keys[0] = last - 1
            return


# ---- writing -------------------------------------------------------------------------


@kernel(**_INLINE)
def _put(out, o, text, spans, which):
    start = spans[which, 0]
    for k in range(spans[which, 1]):
        out[o + k] = text[start + k]
    return o + spans[which, 1]


@kernel(**_INNER)
def _put_decimal(out, o, value):
    """``value`` (>= 0) in decimal."""
    digits = 1
    rest = value // 10
    while rest:
        digits += 1
        rest //= 10
    for k in range(digits - 1, -1, -1):
        out[o + k] = _ZERO + value % 10
        value //= 10
    return o + digits


@kernel(**_INNER)
def _put_hex(out, o, value):
    """``value`` (>= 0) in lower-case hex digits."""
    digits = 1
    rest = value >> 4
    while rest:
        digits += 1
        rest >>= 4
    for k in range(digits - 1, -1, -1):
        d = value & 15
        out[o + k] = _ZERO + d if d < 10 else 87 + d
        value >>= 4
    return o + digits


@kernel(**_INNER)
def _put_field(out, o, text, spans, key, value, hex_keys):
    """``, key: value``; ``hex_keys``: as the format writes gfns and page counts."""
    o = _put(out, o, text, spans, P_SEP)
    o = _put(out, o, text, spans, key)
    if hex_keys != 0:
        o = _put(out, o, text, spans, P_HEX_OPEN)
        o = _put_hex(out, o, value)
        return _put(out, o, text, spans, P_HEX_CLOSE)
    return _put_decimal(out, o, value)


@kernel(**_INNER)
def put_time(out, o, text, spans, t_ns):
    """``, t: seconds``: a time in whole microseconds below 2^32 s (the caller checks).

    Its shortest round-trip decimal, as Python's ``repr`` of ``round(t_ns / 1e9, 6)``
    prints it, is its microseconds with trailing zeros dropped.
    """
    o = _put(out, o, text, spans, P_SEP)
    o = _put(out, o, text, spans, P_KEY_T)
    o = _put_decimal(out, o, t_ns // 1_000_000_000)
    out[o] = _DOT
    o += 1
    micro = (t_ns % 1_000_000_000) // 1000
    places = 6
    while places > 1 and micro % 10 == 0:
        micro //= 10
        places -= 1
    for k in range(places - 1, -1, -1):
        out[o + k] = _ZERO + micro % 10
        micro //= 10
    return o + places


@kernel(**_INNER)
def _put_note(out, o, text, spans, head, number):
    """``, note: <head>number<tail>`` (``head + 1`` is the tail's piece)."""
    o = _put(out, o, text, spans, P_SEP)
    o = _put(out, o, text, spans, P_KEY_NOTE)
    o = _put(out, o, text, spans, head)
    o = _put_decimal(out, o, number)
    return _put(out, o, text, spans, head + 1)


@kernel(**_OPT)
def write_events(events, start, stop, text, spans, hex_keys, out):
    """Event rows ``[start, stop)`` as text into ``out``; the number of bytes written.

    Keys come in the order the Python importers put them: op, slot, as, a probe
    marker's note, the op's values, an inferred delete's note, repeat, t; an access
    is op, gfn, vcpu, kind, t. Times are as :func:`put_time` writes them.
    """
    o = _0
    for e in range(start, stop):
        o = _put(out, o, text, spans, P_LEAD_FIRST if e == 0 else P_LEAD_REST)
        o = _put(out, o, text, spans, P_OPEN)
        op = events[e, E_OP]
        o = _put(out, o, text, spans, P_KEY_OP)
        o = _put(out, o, text, spans, P_OP_CREATE + op)
        if op == OP_ACCESS:
            o = _put_field(out, o, text, spans, P_KEY_GFN, events[e, E_VALUE], hex_keys)
            if events[e, E_VCPU] != 0:
                o = _put_field(out, o, text, spans, P_KEY_VCPU, events[e, E_VCPU], _0)
            if events[e, E_WRITE] != 0:
                o = _put(out, o, text, spans, P_SEP)
                o = _put(out, o, text, spans, P_KEY_KIND)
                o = _put(out, o, text, spans, P_KIND_WRITE)
        else:
            o = _put_field(out, o, text, spans, P_KEY_SLOT, events[e, E_SLOT], _0)
            if events[e, E_AS] != 0:
                o = _put_field(out, o, text, spans, P_KEY_AS, events[e, E_AS], _0)
            if events[e, E_NOTE] < 0:
                o = _put_note(out, o, text, spans, P_SRC_HEAD, -1 - events[e, E_NOTE])
            if op == OP_FLAGS:
                if events[e, E_VALUE] >= 0:
                    o = _put_field(out, o, text, spans, P_KEY_FLAGS, events[e, E_VALUE], _0)
            elif op == OP_MOVE:
                o = _put_field(out, o, text, spans, P_KEY_GFN, events[e, E_VALUE], hex_keys)
            elif op == OP_CREATE:
                o = _put_field(out, o, text, spans, P_KEY_GFN, events[e, E_VALUE], hex_keys)
                o = _put_field(out, o, text, spans, P_KEY_PAGES, events[e, E_PAGES], hex_keys)
                if events[e, E_FLAGS] != 0:
                    o = _put_field(out, o, text, spans, P_KEY_FLAGS, events[e, E_FLAGS], _0)
            if events[e, E_NOTE] > 0:
                o = _put_note(out, o, text, spans, P_NOTE_HEAD, events[e, E_NOTE])
            if op == OP_FLAGS and events[e, E_REPEAT] != 0:
                o = _put_field(out, o, text, spans, P_KEY_REPEAT, events[e, E_REPEAT], _0)
        if events[e, E_T_NS] >= 0:
            o = put_time(out, o, text, spans, events[e, E_T_NS])
        o = _put(out, o, text, spans, P_CLOSE)
        o = _put(out, o, text, spans, P_TAIL)
    return o


@kernel(**_OPT)
def write_observations(obs, start, stop, text, spans, hex_keys, out):
    """Observation rows ``[start, stop)`` (zaps and accesses) as text into ``out``; bytes written.

    Keys in the order the Python importer puts them: kind, update, event, valid_gen,
    used_pages, t for a zap; kind, access, outcome, kvm_gen, spte_gen, gen, t for an
    access. ``start`` 0 leads with the first item's lead.
    """
    o = _0
    for b in range(start, stop):
        o = _put(out, o, text, spans, P_LEAD_FIRST if b == 0 else P_LEAD_REST)
        o = _put(out, o, text, spans, P_OPEN)
        o = _put(out, o, text, spans, P_KEY_KIND)
        if obs[b, O_KIND] == OBS_ZAP:
            o = _put(out, o, text, spans, P_KIND_ZAP)
            o = _put_field(out, o, text, spans, P_KEY_UPDATE, obs[b, O_A], _0)
            o = _put(out, o, text, spans, P_SEP)
            o = _put(out, o, text, spans, P_KEY_EVENT)
            o = _put(out, o, text, spans, P_EVENT_ZAP_FAST + obs[b, O_B])
            o = _put_field(out, o, text, spans, P_KEY_VALID_GEN, obs[b, O_C], _0)
            o = _put_field(out, o, text, spans, P_KEY_USED_PAGES, obs[b, O_D], hex_keys)
        else:
            o = _put(out, o, text, spans, P_KIND_ACCESS)
            o = _put_field(out, o, text, spans, P_KEY_ACCESS, obs[b, O_A], _0)
            o = _put(out, o, text, spans, P_SEP)
            o = _put(out, o, text, spans, P_KEY_OUTCOME)
            o = _put(out, o, text, spans, P_OUTCOME_SLOW_PATH + obs[b, O_B])
            if obs[b, O_C] >= 0:
                o = _put_field(out, o, text, spans, P_KEY_KVM_GEN, obs[b, O_C], hex_keys)
                o = _put_field(out, o, text, spans, P_KEY_SPTE_GEN, obs[b, O_D], hex_keys)
            if obs[b, O_E] >= 0:
                o = _put_field(out, o, text, spans, P_KEY_GEN, obs[b, O_E], hex_keys)
        o = put_time(out, o, text, spans, obs[b, O_T_NS])
        o = _put(out, o, text, spans, P_CLOSE)
        o = _put(out, o, text, spans, P_TAIL)
    return o
