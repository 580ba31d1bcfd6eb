"""Every numba-jitted engine function of kvmgen, and the array layouts they share.

Arrays in, arrays out: the kernels see numpy arrays and integers, never Python
objects. All 64-bit generations are held as int64 bit patterns and handled with
explicit masks, so additions wrap mod 2^64 exactly as the kernel's u64 does
(numba's int64 add wraps; mixing in uint64 would promote).

A run's state is five arrays, passed explicitly in this order to every kernel
that needs them: ``params`` (read-only), ``ctr`` (counters, generations and
scratch), ``pages`` (per address space and gfn index: a word holding the SPTE
kind, slot cover and zap epoch, beside the generation an MMIO SPTE was installed
at), ``cache`` (vCPU MMIO caches) and ``rec`` (wrap, zap and stale-hit records).
Explicit arrays, not a tuple of them: passing a tuple costs ~65 ns per call
(measured), turning a 1-2 ns access path into a 150 ns one. For the same reason
every kernel is compiled with ``_nrt=False``: no kernel allocates, and numba's
reference counting of array arguments on each call cost ~30 ns per access.

Calls between kernels never pass a literal (``0``, ``True``): numba compiles one
copy of the callee per literal value it sees, so constants are passed as
``np.int64(...)`` values and flags as int64 0/1.

Numba's cache only notices edits to this file (numba caching notes), which is
why every constant a kernel reads is defined here and nowhere else; the Python
side (``encode.py``, ``replay.py``) imports these layouts from this module.
Semantics: ``docs/model.md``; section numbers below refer to it.
"""

from __future__ import annotations

import numpy as np

from kvmgen.jit import kernel, never_inline

# ---- params: one int64 array per run (replay.py fills it from the Era and RunSpec)
P_NAS = 0
P_HAS_GEN = 1
P_BUMP_SCHEME = 2  # BumpScheme: 0 plain, 1 odd/even, 2 odd/stride, 3 bit 63
P_MMIO_OFFSET = 3
P_CHECK_MASK = 4
P_STAMP_MASK = 5
P_NOMINAL_MASK = 6
P_WRAP_TEST = 7  # WrapTest: 0 none, 1 at least, 2 low bits zero
P_WRAP_THRESHOLD = 8
P_WRAP_TIMING = 9  # WrapCheckTiming: 0 never, 1 per ioctl, 2 per bump after, 3 before
P_WRAP_SCOPE = 10  # ZapScope
P_FLUSH_SCOPE = 11
P_CREATE_FLUSH_SCOPE = 12
P_INPROG_VIEW = 13  # InProgressView: 0 old layout/new gen, 1 odd, 2 bit 63
P_CACHE_HAS_GEN = 14
P_CACHE_SKIPS_INPROG = 15
P_RECORD_LIMIT = 16
N_PARAMS = 17

# ---- counters and small state, one int64 array carried across blocks
C_UPDATES = 0
C_BUMPS = 1  # two slots: per address space
C_OUTCOME = 3  # seven slots, in stats.OUTCOMES order
C_WRAP_ZAPS = 10
C_FLUSH_ZAPS = 11
C_DROP_WRAP_RAM = 12
C_DROP_WRAP_MMIO = 13
C_DROP_FLUSH_RAM = 14
C_DROP_FLUSH_MMIO = 15
C_WRAPS = 16
C_WRAPS_UNDETECTED = 17
C_HARMFUL = 18
C_BENIGN = 19
C_STALE_RECORDS = 20
C_WRAP_RECORDS = 21
C_ZAP_RECORDS = 22
C_EVENTS = 23
C_ZAP_CLOCK = 24  # counts whole-MMU and MMIO-only zaps: an MMIO SPTE is live iff installed at it
C_RAM_FLOOR = 25  # the clock at the last whole-MMU zap: a RAM SPTE is live iff installed since
C_LIVE_RAM = 26  # two slots
C_LIVE_MMIO = 28  # two slots
C_ZAP_SEEN = 30  # two slots: a wrap zap fired on this AS since its last wrap
C_GEN = 32  # two slots: the full generation of each address space (int64 bit pattern)
C_LAST = 34  # N_RFIELDS slots: the last stale-hit record made, for merging repeats
C_IDENT = 51  # four slots: (update, event, sub, race) of the access being replayed
N_COUNTERS = 55

# ---- access outcomes (offsets from C_OUTCOME), in stats.OUTCOMES order
O_RAM_FAULT = 0
O_RAM_REFAULT = 1
O_RAM_ACCESS = 2
O_MMIO_SLOW = 3
O_MMIO_FAST = 4
O_MMIO_REFAULT = 5
O_CACHE_HIT = 6
N_OUTCOMES = 7

# ---- ops (records.Op) and windows (records.Window)
OP_CREATE = 0
OP_DELETE = 1
OP_MOVE = 2
OP_FLAGS = 3
OP_BUMP = 4
OP_ACCESS = 5
WIN_NONE = 0
WIN_IN_PROGRESS = 1
WIN_BEFORE_ZAP = 2

# ---- top-level events: ev_code (uint8), ev_vcpu (uint16), ev_x (uint32) per event.
# ev_code = op | address space << EV_AS_SHIFT | EV_AUX when ev_x indexes the aux table
# (every update and bump, and an access repeated other than once); a plain access's
# ev_x is its gfn index. The event's index is the block's first index plus its row.
EV_OP = 7
EV_AS_SHIFT = 3
EV_AUX = 16
EV_PLAIN_AS0 = OP_ACCESS  # the code of a plain access in address space 0
EV_PLAIN_AS1 = OP_ACCESS | 1 << EV_AS_SHIFT

# ---- aux table columns (int64), one row per update, bump or repeated access
U_LO = 0  # new range, as indices into the sorted access-gfn universe
U_HI = 1
U_OLO = 2  # old range (delete, move)
U_OHI = 3
U_BUMP_REPS = 4  # repetitions that bump; the rest change nothing
U_DSTART = 5  # this update's during accesses: rows [start, end) of dur
U_DEND = 6
U_REPS = 7  # the event's repeat
U_GID = 8  # an access's gfn index
N_UCOLS = 9

# ---- pages[as, gfn_index, PG_*]: per address space, each page's word beside the
# generation its MMIO SPTE was made at, so an MMIO access reads one cache line, not
# two. Against a word array beside a generation array, in bench/run.py's engine rows
# (interleaved runs, checked_as0 never inlined in both): all-MMIO a few per cent
# faster, all-RAM ~8% slower (its words spread over twice the bytes).
# The word is epoch << PAGE_EPOCH_SHIFT | cover | kind; the epoch is C_ZAP_CLOCK at
# install, -1 once a slot zap dropped the SPTE. An epoch has 60 bits: the clock only
# moves when a zap runs, a few times per replay step at most, so it cannot outgrow them.
PG_WORD = 0
PG_MADE = 1
N_PG = 2
PAGE_KIND = 3
PAGE_COVER = 4  # set while the gfn lies in a slot of this address space (the layout)
PAGE_EPOCH_SHIFT = 3
KIND_NONE = 0
KIND_RAM = 1
KIND_MMIO = 2
DROPPED = -1 << PAGE_EPOCH_SHIFT

# ---- checked_as0's tally: refaults counted in bit 31 up, MMIO accesses below (2^31 is
# an add x86 encodes in 32 bits, as a subtract of -2^31; 2^32 needs a register).
TALLY_SHIFT = 31
TALLY_REFAULT = 1 << TALLY_SHIFT
TALLY_LOW = TALLY_REFAULT - 1
TALLY_EVENTS = TALLY_LOW  # events it takes in one call, so the low count cannot carry

# ---- during accesses: dur[row, field]
D_AS = 0
D_VCPU = 1
D_GID = 2
D_REP = 3
D_WINDOW = 4
D_SUB = 5
N_DFIELDS = 6

# ---- vCPU caches: cache[vcpu, field] (a vCPU's fields side by side, 32 bytes: a
# vCPU's entry is found by a shift, not a multiply, on the access path);
# K_KEY = gfn index << 1 | the address space it was filled from, -1 while empty;
# K_FILL_GEN is only kept for a fill from address space 1 (from 0 it equals K_FILL_AS0),
# so a fill from address space 0, the common case, costs two stores.
K_KEY = 0
K_FILL_AS0 = 1
K_FILL_GEN = 2
N_KFIELDS = 4  # the fourth is never used: it only pads the entry to a power of two

# ---- the model's enums as the kernels see them; tests/unit/test_engine_codes.py pins
# every value to model/eras.py, records.py and stats.py (numba's cache would not
# notice a change there, so they are copied here rather than imported)
Z_NOTHING = 0
Z_ALL = 1
Z_MMIO = 2
Z_SLOT_RAM = 3
B_PLAIN = 0
B_ODD_EVEN = 1
B_ODD_STRIDE = 2
B_BIT63 = 3
T_NEVER = 0
T_PER_IOCTL = 1
T_AFTER = 2
T_BEFORE = 3
V_OLD_LAYOUT = 0
V_ODD = 1
V_BIT63 = 2
WT_NONE = 0
WT_AT_LEAST = 1
WT_LOW_BITS_ZERO = 2

# ---- records: rec[kind, i, field], the first record_limit of each kind
REC_STALE = 0
REC_WRAP = 1
REC_ZAP = 2
R_UPDATE = 0
R_EVENT = 1
R_SUB = 2
R_AS = 3
R_GID = 4
R_VCPU = 5
R_SOURCE = 6  # 0 spte, 1 vcpu cache
R_KIND = 7  # 0 harmful, 1 benign
R_RACE = 8  # window code
R_COUNT = 9
R_SPTE_MADE = 10
R_SPTE_STORED = 11
R_CACHE_AS = 12
R_CACHE_GEN = 13
R_CACHE_AS0 = 14
R_CUR_GEN = 15
R_CUR_MMIO = 16
N_RFIELDS = 17

W_AS = 0
W_UPDATE = 1
W_BUMP = 2
W_DETECTED = 3
W_BEFORE = 4
W_AFTER = 5
N_WFIELDS = 6

ZR_KIND = 0  # 0 wrap, 1 memslot flush
ZR_SCOPE = 1
ZR_AS = 2
ZR_UPDATE = 3
ZR_BUMP = 4
ZR_RAM = 5
ZR_MMIO = 6
N_ZFIELDS = 7

# ---- what check_events finds wrong with an event (compiled.py words each one)
BAD_OP = 1
BAD_NO_AUX = 2
BAD_VCPU = 3
BAD_GFN = 4
BAD_AUX_ROW = 5

# Numba builds two wrappers for each compiled function: one that Python can call,
# and a C function pointer (for functions passed as values, which no kernel is).
# Kernels only other kernels call get neither, the rest only the first: from a
# fresh numba cache, building them made compiling the engine over a second slower.
_OUTER = {"no_cfunc_wrapper": True}
_INNER = {"no_cfunc_wrapper": True, "no_cpython_wrapper": True}

BIT63 = np.int64(-(2**63))
LOW63 = np.int64(2**63 - 1)
LAYOUT_NONE = 0
LAYOUT_SET = 1
LAYOUT_CLEAR = 2


@kernel(**_OUTER)
def next_generation(params, old):
    """The value a bump leaves (docs/model.md section 3)."""
    scheme = params[P_BUMP_SCHEME]
    if scheme == B_PLAIN:
        return old + 1
    if scheme == B_ODD_EVEN:
        return old + 2
    if scheme == B_ODD_STRIDE:
        return old + 2 * params[P_NAS]
    return (old & LOW63) + params[P_NAS]


@kernel(**_OUTER)
def nominal(params, g):
    """The truncated generation whose wrap is reported."""
    return (g + params[P_MMIO_OFFSET]) & params[P_NOMINAL_MASK]


@kernel(**_OUTER)
def mmio_generation(params, g):
    """The MMIO generation the check compares (section 2)."""
    return (g + params[P_MMIO_OFFSET]) & params[P_CHECK_MASK]


@kernel(**_OUTER)
def in_progress(params, g):
    """Whether ``g`` carries the era's update-in-progress marker."""
    scheme = params[P_BUMP_SCHEME]
    if scheme == B_ODD_EVEN or scheme == B_ODD_STRIDE:
        return (g & 1) == 1
    if scheme == B_BIT63:
        return g < 0
    return False


@kernel(inline="always")
def check_target(params, ga):
    """The MMIO generation a check at ``ga`` compares, or -1 when none can pass.

    None can while bit 63 is set (BIT63 eras: an update is in progress).
    """
    if params[P_BUMP_SCHEME] == B_BIT63 and ga < 0:
        return np.int64(-1)
    return mmio_generation(params, ga)


@kernel(inline="always")
def cache_fills(params, g0):
    """Whether an MMIO access fills the vCPU cache now (some eras skip it mid-update)."""
    return not (params[P_CACHE_SKIPS_INPROG] == 1 and in_progress(params, g0))


@kernel(**_OUTER)
def wrap_test(params, new):
    """The kernel's wrap-zap condition on the new generation."""
    test = params[P_WRAP_TEST]
    n = nominal(params, new)
    if test == WT_AT_LEAST:
        return n >= params[P_WRAP_THRESHOLD]
    if test == WT_LOW_BITS_ZERO:
        ignore = params[P_NAS] - 1 if params[P_BUMP_SCHEME] == B_BIT63 else 0
        return (n & ~ignore) == 0
    return False


@kernel(inline="always")
def page_live(ctr, word):
    """Whether a page word holds an SPTE that no zap has dropped."""
    kind = word & PAGE_KIND
    if kind == KIND_RAM:
        return word >= ctr[C_RAM_FLOOR] << PAGE_EPOCH_SHIFT
    if kind == KIND_MMIO:
        return word >= ctr[C_ZAP_CLOCK] << PAGE_EPOCH_SHIFT
    return False


@kernel(**_INNER)
def zap(params, ctr, pages, rec, kind, scope, a, bump, olo, ohi):
    """Drop SPTEs per ``scope``, count and record it (section 5).

    Whole-MMU and MMIO-only zaps advance the zap clock instead of touching every
    SPTE, so a zap costs O(1); an SPTE installed before is gone.
    """
    ram = 0
    mmio = 0
    if scope == Z_ALL or scope == Z_MMIO:
        for b in range(params[P_NAS]):
            mmio += ctr[C_LIVE_MMIO + b]
            ctr[C_LIVE_MMIO + b] = 0
            if scope == Z_ALL:
                ram += ctr[C_LIVE_RAM + b]
                ctr[C_LIVE_RAM + b] = 0
        ctr[C_ZAP_CLOCK] += 1
        if scope == Z_ALL:
            ctr[C_RAM_FLOOR] = ctr[C_ZAP_CLOCK]
    elif scope == Z_SLOT_RAM:
        for x in range(olo, ohi):
            word = pages[a, x, PG_WORD]
            if (word & PAGE_KIND) == KIND_RAM and page_live(ctr, word):
                pages[a, x, PG_WORD] = DROPPED | (word & (PAGE_KIND | PAGE_COVER))
                ram += 1
        ctr[C_LIVE_RAM + a] -= ram
    if kind == 0:
        ctr[C_WRAP_ZAPS] += 1
        ctr[C_DROP_WRAP_RAM] += ram
        ctr[C_DROP_WRAP_MMIO] += mmio
        ctr[C_ZAP_SEEN + a] = 1
    else:
        ctr[C_FLUSH_ZAPS] += 1
        ctr[C_DROP_FLUSH_RAM] += ram
        ctr[C_DROP_FLUSH_MMIO] += mmio
    i = ctr[C_ZAP_RECORDS]
    if i < rec.shape[1]:
        rec[REC_ZAP, i, ZR_KIND] = kind
        rec[REC_ZAP, i, ZR_SCOPE] = scope
        rec[REC_ZAP, i, ZR_AS] = a
        rec[REC_ZAP, i, ZR_UPDATE] = ctr[C_UPDATES]
        rec[REC_ZAP, i, ZR_BUMP] = bump
        rec[REC_ZAP, i, ZR_RAM] = ram
        rec[REC_ZAP, i, ZR_MMIO] = mmio
    ctr[C_ZAP_RECORDS] = i + 1


@kernel(inline="always")
def stored_stamp(params, made_gen):
    """The MMIO generation an SPTE made at ``made_gen`` holds (the era may store fewer bits)."""
    return mmio_generation(params, made_gen) & params[P_STAMP_MASK]


@kernel(**_INNER)
def slow_path(params, ctr, pages, cache, a, x, v):
    """Fault with no usable SPTE: install RAM or MMIO (section 6 step 1); return the outcome."""
    word = pages[a, x, PG_WORD]
    kind = word & PAGE_KIND
    live = page_live(ctr, word)
    if live:
        if kind == KIND_RAM:
            ctr[C_LIVE_RAM + a] -= 1
        else:
            ctr[C_LIVE_MMIO + a] -= 1
    installed = ctr[C_ZAP_CLOCK] << PAGE_EPOCH_SHIFT | (word & PAGE_COVER)
    if (word & PAGE_COVER) != 0:
        pages[a, x, PG_WORD] = installed | KIND_RAM
        ctr[C_LIVE_RAM + a] += 1
        # A zap had dropped the last SPTE here: a refault, not a first fault.
        return O_RAM_REFAULT if kind != KIND_NONE and not live else O_RAM_FAULT
    pages[a, x, PG_WORD] = installed | KIND_MMIO
    pages[a, x, PG_MADE] = ctr[C_GEN + a]
    ctr[C_LIVE_MMIO + a] += 1
    fill_cache(params, ctr, cache, v, a, x)
    return O_MMIO_SLOW


@kernel(inline="always")
def cache_fill_gen(cache, v):
    """The generation of the address space vCPU v's cache was filled from."""
    return cache[v, K_FILL_AS0] if (cache[v, K_KEY] & 1) == 0 else cache[v, K_FILL_GEN]


@kernel(**_INNER)
def fill_cache(params, ctr, cache, v, a, x):
    """Cache MMIO info for vCPU v; return whether the cache changed."""
    g0 = ctr[C_GEN]
    if not cache_fills(params, g0):
        return False
    ga = ctr[C_GEN + a]
    key = x << 1 | a
    same = cache[v, K_KEY] == key and cache_fill_gen(cache, v) == ga and cache[v, K_FILL_AS0] == g0
    cache[v, K_KEY] = key
    cache[v, K_FILL_AS0] = g0
    if a == 1:
        cache[v, K_FILL_GEN] = ga
    return not same


@kernel(**_INNER)
def record_stale(params, ctr, pages, cache, rec, n, a, x, v, source, kind):
    """Count ``n`` stale hits and record them, merging with the previous record when equal.

    The access's (update, event, sub, race) are in ``ctr[C_IDENT:]``; the record
    being built goes into ``ctr[C_LAST:]`` once it differs from the last one.
    """
    from_cache = source == 1
    ga = ctr[C_GEN + a]
    fields = (
        ctr[C_IDENT],
        ctr[C_IDENT + 1],
        ctr[C_IDENT + 2],
        a,
        x,
        v,
        source,
        kind,
        ctr[C_IDENT + 3],
        n,
        pages[a, x, PG_MADE],
        stored_stamp(params, pages[a, x, PG_MADE]),
        cache[v, K_KEY] & 1 if from_cache else 0,
        cache_fill_gen(cache, v) if from_cache else 0,
        cache[v, K_FILL_AS0] if from_cache else 0,
        ga,
        mmio_generation(params, ga),
    )
    if kind == 0:
        ctr[C_HARMFUL] += n
    else:
        ctr[C_BENIGN] += n
    i = ctr[C_STALE_RECORDS]
    merge = i > 0
    if merge:
        for f in range(N_RFIELDS):
            if f != R_COUNT and ctr[C_LAST + f] != fields[f]:
                merge = False
                break
    if merge:
        ctr[C_LAST + R_COUNT] += n
        if i - 1 < rec.shape[1]:
            rec[REC_STALE, i - 1, R_COUNT] = ctr[C_LAST + R_COUNT]
        return
    for f in range(N_RFIELDS):
        ctr[C_LAST + f] = fields[f]
        if i < rec.shape[1]:
            rec[REC_STALE, i, f] = fields[f]
    ctr[C_STALE_RECORDS] = i + 1


@kernel(**_INNER)
def stale_kind(params, ctr, pages, cache, a, x, v, from_cache):
    """0 harmful, 1 benign, -1 not stale, for a cache hit or a passed check (section 6)."""
    if (pages[a, x, PG_WORD] & PAGE_COVER) != 0:
        return 0
    ga = ctr[C_GEN + a]
    if from_cache == 1:
        if params[P_CACHE_HAS_GEN] == 1 and (
            (cache[v, K_KEY] & 1) != a or cache_fill_gen(cache, v) != ga
        ):
            return 1
    elif params[P_HAS_GEN] == 1 and pages[a, x, PG_MADE] != ga:
        return 1
    return -1


@kernel(inline="always")
def check_passes(params, made_gen, ga):
    """Whether an MMIO SPTE made at ``made_gen`` passes the generation check at ``ga``."""
    if params[P_HAS_GEN] != 1:
        return True
    return check_target(params, ga) == stored_stamp(params, made_gen)


@kernel(**_INNER)
def access_once(params, ctr, pages, cache, rec, a, x, v):
    """One guest access (section 6). Returns (outcome, stale kind or -1, source, changed)."""
    word = pages[a, x, PG_WORD]
    if not page_live(ctr, word):
        return slow_path(params, ctr, pages, cache, a, x, v), -1, 0, True
    if (word & PAGE_KIND) == KIND_RAM:
        return O_RAM_ACCESS, -1, 0, False
    one = np.int64(1)
    hit = cache[v, K_KEY] >> 1 == x
    if hit and params[P_CACHE_HAS_GEN] == 1:
        hit = cache[v, K_FILL_AS0] == ctr[C_GEN]
    if hit:
        kind = stale_kind(params, ctr, pages, cache, a, x, v, one)
        if kind >= 0:
            record_stale(params, ctr, pages, cache, rec, one, a, x, v, one, kind)
        return O_CACHE_HIT, kind, 1, False
    ga = ctr[C_GEN + a]
    if not check_passes(params, pages[a, x, PG_MADE], ga):
        slow_path(params, ctr, pages, cache, a, x, v)
        return O_MMIO_REFAULT, -1, 0, True
    zero = np.int64(0)
    kind = stale_kind(params, ctr, pages, cache, a, x, v, zero)
    if kind >= 0:
        record_stale(params, ctr, pages, cache, rec, one, a, x, v, zero, kind)
    changed = fill_cache(params, ctr, cache, v, a, x)
    return O_MMIO_FAST, kind, 0, changed


@kernel(**_INNER)
def access_general(params, ctr, pages, cache, rec, a, x, v, reps, event, sub, race):
    """``reps`` identical accesses with the identity their stale-hit records carry (section 6).

    Once one access leaves the state unchanged, the rest repeat it.
    """
    ctr[C_IDENT] = ctr[C_UPDATES]
    ctr[C_IDENT + 1] = event
    ctr[C_IDENT + 2] = sub
    ctr[C_IDENT + 3] = race
    done = 0
    while done < reps:
        outcome, kind, source, changed = access_once(params, ctr, pages, cache, rec, a, x, v)
        ctr[C_OUTCOME + outcome] += 1
        done += 1
        if not changed and done < reps:
            rest = reps - done
            ctr[C_OUTCOME + outcome] += rest
            if kind >= 0:
                record_stale(
                    params,
                    ctr,
                    pages,
                    cache,
                    rec,
                    rest,
                    a,
                    x,
                    v,
                    np.int64(source),
                    np.int64(kind),
                )
            return


@kernel(**_INNER)
def run_window(params, ctr, pages, cache, rec, dur, start, end, window, event):
    """Run the ``during`` accesses of one window, in order."""
    for j in range(start, end):
        if dur[j, D_WINDOW] != window:
            continue
        access_general(
            params,
            ctr,
            pages,
            cache,
            rec,
            dur[j, D_AS],
            dur[j, D_GID],
            dur[j, D_VCPU],
            dur[j, D_REP],
            event,
            dur[j, D_SUB],
            window,
        )


@kernel(**_INNER)
def set_layout(pages, a, lo, hi, layout):
    """Mark gfn indices [lo, hi) of address space a as inside or outside a slot."""
    if layout == LAYOUT_SET:
        for x in range(lo, hi):
            pages[a, x, PG_WORD] |= PAGE_COVER
    elif layout == LAYOUT_CLEAR:
        for x in range(lo, hi):
            pages[a, x, PG_WORD] &= ~PAGE_COVER


@kernel(**_INNER)
def record_wrap(params, ctr, rec, a, bump_no, old, new):
    """Count and record a wrap of ``a``; detected if a wrap zap of ``a`` came since the last."""
    detected = ctr[C_ZAP_SEEN + a]
    ctr[C_WRAPS] += 1
    if detected == 0:
        ctr[C_WRAPS_UNDETECTED] += 1
    i = ctr[C_WRAP_RECORDS]
    if i < rec.shape[1]:
        rec[REC_WRAP, i, W_AS] = a
        rec[REC_WRAP, i, W_UPDATE] = ctr[C_UPDATES]
        rec[REC_WRAP, i, W_BUMP] = bump_no
        rec[REC_WRAP, i, W_DETECTED] = detected
        rec[REC_WRAP, i, W_BEFORE] = nominal(params, old)
        rec[REC_WRAP, i, W_AFTER] = nominal(params, new)
    ctr[C_WRAP_RECORDS] = i + 1
    ctr[C_ZAP_SEEN + a] = 0


@kernel(**_INNER)
def bump(params, ctr, pages, cache, rec, dur, a, layout, lo, hi, dstart, dend, event, flags):
    """One memslot install in address space ``a``, in the order of docs/model.md section 4.1.

    ``flags``: bit 0 set when this install ends the ioctl, bit 1 when it creates a slot.
    """
    old = ctr[C_GEN + a]
    new = next_generation(params, old)
    ctr[C_BUMPS + a] += 1
    bump_no = ctr[C_BUMPS + a]
    timing = params[P_WRAP_TIMING]
    wrap_scope = params[P_WRAP_SCOPE]
    wrap = np.int64(0)
    flush = np.int64(1)
    nothing = np.int64(0)
    in_progress_window = np.int64(WIN_IN_PROGRESS)
    if params[P_INPROG_VIEW] == V_OLD_LAYOUT:
        # E0-E2: a vCPU can resolve the gfn on the old layout yet read the new generation.
        ctr[C_GEN + a] = new
        run_window(params, ctr, pages, cache, rec, dur, dstart, dend, in_progress_window, event)
        set_layout(pages, a, lo, hi, layout)
    else:
        ctr[C_GEN + a] = old + 1 if params[P_INPROG_VIEW] == V_ODD else old | BIT63
        set_layout(pages, a, lo, hi, layout)
        if timing == T_BEFORE and wrap_test(params, new):
            zap(params, ctr, pages, rec, wrap, wrap_scope, a, bump_no, nothing, nothing)
        run_window(params, ctr, pages, cache, rec, dur, dstart, dend, in_progress_window, event)
        ctr[C_GEN + a] = new
    run_window(params, ctr, pages, cache, rec, dur, dstart, dend, np.int64(WIN_BEFORE_ZAP), event)
    ends_ioctl = (flags & 1) == 1
    if (timing == T_AFTER or (timing == T_PER_IOCTL and ends_ioctl)) and wrap_test(params, new):
        zap(params, ctr, pages, rec, wrap, wrap_scope, a, bump_no, nothing, nothing)
    if (flags & 2) == 2 and params[P_CREATE_FLUSH_SCOPE] != Z_NOTHING:
        scope = params[P_CREATE_FLUSH_SCOPE]
        zap(params, ctr, pages, rec, flush, scope, a, bump_no, nothing, nothing)
    if params[P_HAS_GEN] == 1 and nominal(params, new) < nominal(params, old):
        record_wrap(params, ctr, rec, a, bump_no, old, new)


@kernel(**_OUTER)
def quiet_bumps(params, ctr, a, remaining):
    """How many of the next ``remaining`` bumps of ``a`` provably neither wrap nor zap.

    Those bumps only move the counters, so the caller applies them at once; this is
    what makes ``repeat: 10**9`` cost O(1). Wrap tests and wraps only fire where the
    new nominal value is within 2 of 0 or of its maximum (section 3), so every bump
    landing in [4, max-3] without crossing the maximum is quiet.
    """
    if params[P_HAS_GEN] == 0:
        return remaining
    step = next_generation(params, np.int64(0))
    g = ctr[C_GEN + a]
    if params[P_BUMP_SCHEME] == B_BIT63 and g < 0:
        return 0
    p = nominal(params, g)
    top = params[P_NOMINAL_MASK] - 3
    if p + step < 4 or p + step > top:
        return 0
    k = (top - p) // step
    if params[P_BUMP_SCHEME] == B_BIT63:
        # Counting into bit 63 changes the arithmetic (the flag would be set at rest).
        k = min(k, (LOW63 - g) // step)
    return min(k, remaining)


@kernel(**_INNER)
def skip_bumps(params, ctr, a, count, numbered):
    """Apply ``count`` bumps of ``a`` that ``quiet_bumps`` found quiet (counters only)."""
    ctr[C_GEN + a] += count * next_generation(params, np.int64(0))
    ctr[C_BUMPS + a] += count
    if numbered == 1:
        ctr[C_UPDATES] += count


@kernel(**_INNER)
def quiet_flags(params, ctr, op, a, row):
    """Apply a ``flags`` update if its bumps are quiet and it has no during accesses.

    Returns whether it did. ``replay_events`` tries this before ``update``, whose
    call passes every state array: on 1M flags updates, 15 ns an update here
    against 52 ns through ``update``.
    """
    bumping = row[U_BUMP_REPS]
    if op != OP_FLAGS or row[U_DSTART] != row[U_DEND] or bumping == 0:
        return False
    if quiet_bumps(params, ctr, a, bumping) < bumping:
        return False
    skip_bumps(params, ctr, a, bumping, np.int64(1))
    ctr[C_UPDATES] += row[U_REPS] - bumping
    return True


@kernel(**_INNER)
def raw_bumps(params, ctr, pages, cache, rec, dur, a, count, numbered, event):
    """``count`` plain bumps of ``a`` with no accesses (flags repeats, ``bump`` events)."""
    done = 0
    nothing = np.int64(0)
    while done < count:
        k = quiet_bumps(params, ctr, a, count - done)
        if k > 0:
            skip_bumps(params, ctr, a, k, numbered)
            done += k
            continue
        if numbered == 1:
            ctr[C_UPDATES] += 1
        bump(
            params,
            ctr,
            pages,
            cache,
            rec,
            dur,
            a,
            np.int64(LAYOUT_NONE),
            nothing,
            nothing,
            nothing,
            nothing,
            event,
            np.int64(1),
        )
        done += 1


@kernel(**_INNER)
def update(params, ctr, pages, cache, rec, dur, op, a, row, event):
    """One memslot update event (create, delete, move, flags) with its repetitions."""
    dstart = row[U_DSTART]
    dend = row[U_DEND]
    bumping = row[U_BUMP_REPS]
    reps = row[U_REPS]
    if bumping == 0:
        # Nothing changes (flags to the same value, move to the same gfn): the
        # ordinals are still used, and during accesses run as plain accesses.
        ctr[C_UPDATES] += reps
        for window in (np.int64(WIN_IN_PROGRESS), np.int64(WIN_BEFORE_ZAP)):
            run_window(params, ctr, pages, cache, rec, dur, dstart, dend, window, event)
        return
    if op == OP_FLAGS and dstart == dend:
        raw_bumps(params, ctr, pages, cache, rec, dur, a, bumping, np.int64(1), event)
        ctr[C_UPDATES] += reps - bumping
        return
    ctr[C_UPDATES] += 1
    creates = op == OP_CREATE or op == OP_MOVE
    if op == OP_DELETE or op == OP_MOVE:
        # The slot is first published as invalid, then the MMU is flushed (section 4).
        nothing = np.int64(0)
        bump(
            params,
            ctr,
            pages,
            cache,
            rec,
            dur,
            a,
            np.int64(LAYOUT_CLEAR),
            row[U_OLO],
            row[U_OHI],
            nothing,
            nothing,
            event,
            nothing,
        )
        flush = np.int64(1)
        scope = params[P_FLUSH_SCOPE]
        zap(params, ctr, pages, rec, flush, scope, a, ctr[C_BUMPS + a], row[U_OLO], row[U_OHI])
    layout = np.int64(LAYOUT_SET) if creates else np.int64(LAYOUT_NONE)
    flags = np.int64(3) if creates else np.int64(1)
    bump(
        params,
        ctr,
        pages,
        cache,
        rec,
        dur,
        a,
        layout,
        row[U_LO],
        row[U_HI],
        dstart,
        dend,
        event,
        flags,
    )


@kernel(**_OUTER)
def apply_updates(
    rows, op, space, slot, gfn, pages, flags, flags_set, repeat, base, size, flag, out
):
    """Apply the memslot updates at ``rows`` of the event columns to a slot table, in order.

    The table is ``base``, ``size`` and ``flag`` indexed by ``[address space, slot]``:
    a slot's first gfn, its pages and its flags (a delete leaves them; only a create
    reads that slot next). Row u of ``out`` gets update u's repetitions that bump
    (U_BUMP_REPS; the rest change nothing) and its new and old guest-frame ranges
    as gfns (U_LO, U_HI and U_OLO, U_OHI; 0 to 0 for none). Runs as Python too
    (``apply_updates.py_func``), for blocks with few updates.
    """
    for u in range(rows.shape[0]):
        r = rows[u]
        o = np.int64(op[r])
        a = np.int64(space[r])
        s = np.int64(slot[r])
        g = gfn[r]
        bumping = np.int64(1)
        lo = hi = olo = ohi = np.int64(0)
        if o == OP_CREATE:
            base[a, s] = g
            size[a, s] = pages[r]
            flag[a, s] = flags[r] if flags_set[r] else 0
            lo, hi = g, g + pages[r]
        elif o == OP_DELETE:
            olo, ohi = base[a, s], base[a, s] + size[a, s]
        elif o == OP_MOVE:
            olo, ohi = base[a, s], base[a, s] + size[a, s]
            if olo == g:
                bumping = 0
            base[a, s] = g
            lo, hi = g, g + size[a, s]
        elif flags_set[r]:
            if flag[a, s] == flags[r]:
                bumping = 0
            flag[a, s] = flags[r]
        else:
            bumping = repeat[r]  # each repetition toggles bit 0
            flag[a, s] ^= repeat[r] & 1
        out[u, U_BUMP_REPS] = bumping
        out[u, U_LO] = lo
        out[u, U_HI] = hi
        out[u, U_OLO] = olo
        out[u, U_OHI] = ohi


@kernel(**_INNER)
def checked_mask(params, ctr):
    """The generation mask ``checked_as0`` compares with, or -1 if it cannot take accesses now.

    It can when the run has one address space and the era checks the generation,
    caches it per vCPU and fills the cache now (no update in progress), an SPTE
    made now passes the check, and the check compares low bits (a 2^k - 1 mask).
    """
    ga = ctr[C_GEN]
    mask = params[P_CHECK_MASK] & params[P_STAMP_MASK]
    want = check_target(params, ga)
    usable = (
        params[P_NAS] == 1
        and params[P_HAS_GEN] == 1
        and params[P_CACHE_HAS_GEN] == 1
        and cache_fills(params, ga)
        and want >= 0
        and ((ga + params[P_MMIO_OFFSET]) & mask) == want
        and (mask & (mask + 1)) == 0
    )
    return mask if usable else np.int64(-1)


@kernel(**_INNER)
def checked_as0(codes, xs, vcpus, flat_pages, flat_cache, ctr, mask):
    """``plain_accesses`` when ``checked_mask`` allows it, with no test its loop can drop.

    Under those settings (one address space, so a cached key is always
    ``x << 1``; the check compares the ``mask`` low bits, so an SPTE made at
    ``g`` passes iff ``(g - ga) & mask == 0``) the general loop's era and
    address-space tests are constants. Without them the loop's values fit in
    registers, and both MMIO counts share one (``TALLY_*``); the general loop
    spills some, and an MMIO access cost it about a third more (bench/run.py's
    all-MMIO row). It is never inlined: inlined into ``replay_events``, LLVM
    reloaded the page and vCPU arrays' pointers from the stack on every access.
    ``flat_pages`` is a 1-D view of address space 0's pages (gfn index ``x``'s
    word at ``2x``, its generation next: ``2x`` is also the cache key),
    ``flat_cache`` one of the vCPU caches. Returns the events it took.
    """
    never_inline()
    ga = ctr[C_GEN]
    ram_live = ctr[C_RAM_FLOOR] << PAGE_EPOCH_SHIFT
    mmio_outside = ctr[C_ZAP_CLOCK] << PAGE_EPOCH_SHIFT | KIND_MMIO
    # Both MMIO counts in one register (a register is what the loop is short of):
    # MMIO accesses in the low 31 bits, refaults above (TALLY_*).
    tally = np.int64(0)
    n = min(codes.shape[0], TALLY_EVENTS)
    stop = n
    for i in range(n):
        if codes[i] != EV_PLAIN_AS0:
            stop = i
            break
        x = np.int64(xs[i])
        at = x * N_PG
        word = flat_pages[at + PG_WORD]
        if word != mmio_outside:
            if (word & PAGE_KIND) == KIND_RAM and word >= ram_live:
                continue
            stop = i
            break
        entry = np.int64(vcpus[i]) * N_KFIELDS
        key = x << 1
        if flat_cache[entry + K_KEY] == key and flat_cache[entry + K_FILL_AS0] == ga:
            stop = i
            break
        behind = flat_pages[at + PG_MADE] - ga
        if behind != 0:
            if (behind & mask) == 0:
                stop = i  # a passed check on an older SPTE: a benign stale hit
                break
            flat_pages[at + PG_MADE] = ga
            tally += TALLY_REFAULT
        tally += 1
        flat_cache[entry + K_KEY] = key
        flat_cache[entry + K_FILL_AS0] = ga
    mmio = tally & TALLY_LOW
    refaults = tally >> TALLY_SHIFT
    ctr[C_OUTCOME + O_RAM_ACCESS] += stop - mmio
    ctr[C_OUTCOME + O_MMIO_FAST] += mmio - refaults
    ctr[C_OUTCOME + O_MMIO_REFAULT] += refaults
    return stop


@kernel(**_INNER)
def plain_accesses(ev_code, ev_vcpu, ev_x, start, code, params, ctr, pages, cache):
    """Replay plain accesses of one address space from row ``start`` on while they are fast.

    ``code`` is the event code of a plain access in that address space. Returns
    the row of the first event it left alone (an update, a bump, an access of the
    other address space, or one ``access_general`` must handle), or the end of
    the block. An access is only taken here when it can be seen, before changing
    anything, that ``access_general`` would end the same way: a live RAM SPTE, or
    a live MMIO SPTE outside every slot with a cache miss and no stale hit (and,
    when ``checked_as0`` runs, a first fault: ``slow_path``, as ``access_once``
    calls it); it then does what ``access_general`` would. Leaving for every first
    fault cost the all-MMIO row ~6% (8,192 of them in 10M events, ~200 ns each).
    No generation changes in here, so everything the checks compare with is read
    once, before the loop, and the loop keeps as few values live as it can (two
    counters, no address-space switch): with more, LLVM spills them and every
    access pays for it.
    """
    a = (code >> EV_AS_SHIFT) & 1
    has_gen = params[P_HAS_GEN] == 1
    offset = params[P_MMIO_OFFSET]
    mask = params[P_CHECK_MASK] & params[P_STAMP_MASK]
    cache_has_gen = params[P_CACHE_HAS_GEN] == 1
    g0 = ctr[C_GEN]
    ga = ctr[C_GEN + a]
    want = check_target(params, ga)
    same_passes = not has_gen or ((ga + offset) & mask) == want  # an SPTE made now passes
    fills = cache_fills(params, g0)
    ram_live = ctr[C_RAM_FLOOR] << PAGE_EPOCH_SHIFT
    # A live MMIO SPTE was installed at the current zap clock (every zap advances it):
    # outside every slot, its word is exactly this.
    mmio_outside = ctr[C_ZAP_CLOCK] << PAGE_EPOCH_SHIFT | KIND_MMIO
    # 1-D views and unsigned indices: no stride multiply, no negative-index fixup.
    row = min(a, pages.shape[0] - 1)
    flat_pages = pages[row].reshape(pages.shape[1] * N_PG)
    flat_cache = cache.reshape(cache.shape[0] * N_KFIELDS)
    codes = ev_code[start:]
    xs = ev_x[start:]
    vcpus = ev_vcpu[start:]
    checked = checked_mask(params, ctr)
    if checked >= 0:
        # A first fault (no live SPTE) is taken here too, between two runs of the
        # loop, as access_general would take it: it changes no generation.
        done = np.int64(0)
        while True:
            done += checked_as0(
                codes[done:], xs[done:], vcpus[done:], flat_pages, flat_cache, ctr, checked
            )
            if done == codes.shape[0] or codes[done] != EV_PLAIN_AS0:
                return start + done
            x = np.int64(xs[done])
            if page_live(ctr, pages[0, x, PG_WORD]):
                return start + done
            v = np.int64(vcpus[done])
            ctr[C_OUTCOME + slow_path(params, ctr, pages, cache, a, x, v)] += 1
            done += 1
    mmio = 0
    mmio_refault = 0
    n = codes.shape[0]
    stop = n
    for i in range(n):
        if codes[i] != code:
            stop = i
            break
        x = np.int64(xs[i])
        at = x * N_PG
        word = flat_pages[at + PG_WORD]
        if word != mmio_outside:
            if (word & PAGE_KIND) == KIND_RAM and word >= ram_live:
                continue  # a RAM access: never stale, changes nothing
            stop = i
            break
        # A live MMIO SPTE outside every slot: neither a refault nor a passed check
        # can be harmful. A cache hit is checked for staleness, so leave it.
        entry = np.int64(vcpus[i]) * N_KFIELDS
        if flat_cache[entry + K_KEY] >> 1 == x and (
            not cache_has_gen or flat_cache[entry + K_FILL_AS0] == g0
        ):
            stop = i
            break
        made_gen = flat_pages[at + PG_MADE]
        if made_gen != ga or not same_passes:
            if made_gen != ga and has_gen and ((made_gen + offset) & mask) == want:
                stop = i  # a passed check on an older SPTE: a benign stale hit
                break
            if has_gen:
                # The check fails: reinstall the same MMIO SPTE (live counts and epoch stay).
                flat_pages[at + PG_MADE] = ga
                mmio_refault += 1
        mmio += 1
        if fills:
            flat_cache[entry + K_KEY] = x << 1 | a
            flat_cache[entry + K_FILL_AS0] = g0
            if a == 1:
                flat_cache[entry + K_FILL_GEN] = ga
    ctr[C_OUTCOME + O_RAM_ACCESS] += stop - mmio
    ctr[C_OUTCOME + O_MMIO_FAST] += mmio - mmio_refault
    ctr[C_OUTCOME + O_MMIO_REFAULT] += mmio_refault
    return start + stop


@kernel(**_OUTER)
def replay_events(ev_code, ev_vcpu, ev_x, first_index, aux, dur, params, ctr, pages, cache, rec):
    """Replay a block of events into the state arrays (``params`` .. ``rec``).

    Top-level rows: ``ev_*`` (see EV_* above); ``during`` accesses are rows of
    ``dur``. Runs of plain accesses go through ``plain_accesses``; this loop takes
    the rest.
    """
    n = ev_code.shape[0]
    ctr[C_EVENTS] += n
    i = np.int64(0)
    no_sub = np.int64(-1)
    no_race = np.int64(WIN_NONE)
    while i < n:
        code = np.int64(ev_code[i])
        if code == EV_PLAIN_AS0 or code == EV_PLAIN_AS1:
            after = plain_accesses(ev_code, ev_vcpu, ev_x, i, code, params, ctr, pages, cache)
            if after > i:
                i = after
                continue
        op = code & EV_OP
        a = (code >> EV_AS_SHIFT) & 1
        event = first_index + i
        x = np.int64(ev_x[i])
        if op == OP_ACCESS:
            v = np.int64(ev_vcpu[i])
            reps = np.int64(1)
            if (code & EV_AUX) != 0:
                reps = aux[x, U_REPS]
                x = aux[x, U_GID]
            access_general(params, ctr, pages, cache, rec, a, x, v, reps, event, no_sub, no_race)
        elif op == OP_BUMP:
            count = aux[x, U_REPS]
            raw_bumps(params, ctr, pages, cache, rec, dur, a, count, np.int64(0), event)
        elif not quiet_flags(params, ctr, op, a, aux[x]):
            update(params, ctr, pages, cache, rec, dur, op, a, aux[x], event)
        i += 1


@kernel(inline="always")
def event_fault(code, vcpu, x, gfns, aux_rows, vcpus):
    """The BAD_* reason the engine could not replay one event for, or 0."""
    op = code & EV_OP
    in_aux = (code & EV_AUX) != 0
    if op > OP_ACCESS or (code & (0xFF ^ (EV_OP | 1 << EV_AS_SHIFT | EV_AUX))) != 0:
        return BAD_OP
    if op != OP_ACCESS and not in_aux:
        return BAD_NO_AUX
    if vcpu >= vcpus:
        return BAD_VCPU
    if in_aux:
        return BAD_AUX_ROW if x >= aux_rows else 0
    return BAD_GFN if x >= gfns else 0


@kernel(**_OUTER)
def check_events(ev_code, ev_vcpu, ev_x, gfns, aux_rows, vcpus):
    """The first event the engine could not index with, as (row, BAD_* reason), or (-1, 0).

    The kernels read a compiled trace's event columns without bounds checks. Each
    stretch of events is first tested without branching (which the compiler can
    vectorise); only a stretch holding a bad event is looked at event by event.
    """
    unknown = 0xFF ^ (EV_OP | 1 << EV_AS_SHIFT | EV_AUX)
    n = ev_code.shape[0]
    stretch = 1 << 14
    for start in range(0, n, stretch):
        stop = min(start + stretch, n)
        wrong = False
        for i in range(start, stop):
            code = np.int64(ev_code[i])
            op = code & EV_OP
            in_aux = (code & EV_AUX) != 0
            limit = aux_rows if in_aux else gfns
            wrong |= (
                (op > OP_ACCESS)
                | ((code & unknown) != 0)
                | ((op != OP_ACCESS) & ~in_aux)
                | (np.int64(ev_vcpu[i]) >= vcpus)
                | (np.int64(ev_x[i]) >= limit)
            )
        if wrong:
            for i in range(start, stop):
                fault = event_fault(
                    np.int64(ev_code[i]),
                    np.int64(ev_vcpu[i]),
                    np.int64(ev_x[i]),
                    gfns,
                    aux_rows,
                    vcpus,
                )
                if fault != 0:
                    return i, fault
    return -1, 0
