"""Every numba-jitted function of kvmgen, and the array layouts they share.

Arrays in, arrays out: the kernels see int64/int8 numpy arrays and integers,
never Python objects. All 64-bit generations are held as int64 bit patterns
and handled with explicit masks, so additions wrap mod 2^64 exactly as the
kernel's u64 does (numba's int64 add wraps; mixing in uint64 would promote).

A run's state is five arrays, passed explicitly in this order to every kernel
that needs them: ``params`` (read-only), ``ctr`` (counters, generations and
scratch), ``spte`` (SPTEs and the slot layout per address space and gfn index),
``cache`` (vCPU MMIO caches) and ``rec`` (wrap, zap and stale-hit records).
Explicit arrays, not a tuple of them: passing a tuple costs ~65 ns per call
(measured), turning a 1-2 ns access path into a 150 ns one. For the same reason
every kernel is compiled with ``_nrt=False``: no kernel allocates, and numba's
reference counting of array arguments on each call cost ~30 ns per access (a
RAM access went from 62 ns to 5.5 ns without it, ``make bench``).

Numba's cache only notices edits to this file (numba caching notes), which is
why every constant a kernel reads is defined here and nowhere else; the Python
side (``encode.py``, ``replay.py``) imports these layouts from this module.
Semantics: ``docs/model.md``; section numbers below refer to it.
"""

from __future__ import annotations

import numpy as np

from kvmgen.jit import kernel

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

# ---- counters and small state, one int64 array carried across chunks
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
C_ZAP_EPOCH = 24
C_MMIO_EPOCH = 25
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

# ---- update table columns
U_LO = 0  # new range, as indices into the sorted access-gfn universe
U_HI = 1
U_OLO = 2  # old range (delete, move)
U_OHI = 3
U_BUMP_REPS = 4  # repetitions that bump; the rest change nothing
U_DSTART = 5  # this update's during accesses: rows [start, end) of the d_* arrays
U_DEND = 6
N_UCOLS = 7

# ---- SPTE table: spte[as, gfn_index, field]
S_KIND = 0  # 0 none, 1 RAM, 2 MMIO
S_EPOCH = 1  # whole-MMU zap epoch at install; -1 once a slot zap dropped it
S_MEPOCH = 2  # MMIO zap epoch at install
S_STORED = 3
S_MADE = 4
S_COVER = 5  # 1 while the gfn lies in a slot of this address space (the layout)
N_SFIELDS = 6
KIND_NONE = 0
KIND_RAM = 1
KIND_MMIO = 2

# ---- during accesses: dur[row, field]
D_AS = 0
D_VCPU = 1
D_GID = 2
D_REP = 3
D_WINDOW = 4
D_SUB = 5
N_DFIELDS = 6

# ---- vCPU cache: cache[vcpu, field]
K_HAS = 0
K_GID = 1
K_FILL_AS = 2
K_FILL_GEN = 3
K_FILL_AS0 = 4
N_KFIELDS = 5

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

BIT63 = np.int64(-(2**63))
LOW63 = np.int64(2**63 - 1)
LAYOUT_NONE = 0
LAYOUT_SET = 1
LAYOUT_CLEAR = 2


@kernel()
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


@kernel()
def nominal(params, g):
    """The truncated generation whose wrap is reported."""
    return (g + params[P_MMIO_OFFSET]) & params[P_NOMINAL_MASK]


@kernel()
def mmio_generation(params, g):
    """The MMIO generation the check compares (section 2)."""
    return (g + params[P_MMIO_OFFSET]) & params[P_CHECK_MASK]


@kernel()
def in_progress(params, g):
    """Whether ``g`` carries the era's update-in-progress marker."""
    scheme = params[P_BUMP_SCHEME]
    if scheme == B_ODD_EVEN or scheme == B_ODD_STRIDE:
        return (g & 1) == 1
    if scheme == B_BIT63:
        return g < 0
    return False


@kernel()
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
def spte_live(ctr, spte, a, x):
    """Whether (a, x) holds an SPTE that no zap has dropped."""
    kind = spte[a, x, S_KIND]
    if kind == KIND_NONE or spte[a, x, S_EPOCH] != ctr[C_ZAP_EPOCH]:
        return False
    return kind == KIND_RAM or spte[a, x, S_MEPOCH] == ctr[C_MMIO_EPOCH]


@kernel()
def zap(params, ctr, spte, rec, kind, scope, a, bump, olo, ohi):
    """Drop SPTEs per ``scope``, count and record it (section 5).

    Whole-MMU and MMIO-only zaps bump an epoch instead of touching every SPTE, so
    a zap costs O(1); an SPTE installed under an older epoch is gone.
    """
    ram = 0
    mmio = 0
    if scope == Z_ALL:
        for b in range(params[P_NAS]):
            ram += ctr[C_LIVE_RAM + b]
            mmio += ctr[C_LIVE_MMIO + b]
            ctr[C_LIVE_RAM + b] = 0
            ctr[C_LIVE_MMIO + b] = 0
        ctr[C_ZAP_EPOCH] += 1
    elif scope == Z_MMIO:
        for b in range(params[P_NAS]):
            mmio += ctr[C_LIVE_MMIO + b]
            ctr[C_LIVE_MMIO + b] = 0
        ctr[C_MMIO_EPOCH] += 1
    elif scope == Z_SLOT_RAM:
        for x in range(olo, ohi):
            if spte[a, x, S_KIND] == KIND_RAM and spte_live(ctr, spte, a, x):
                spte[a, x, S_EPOCH] = -1
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


@kernel()
def install(params, ctr, spte, a, x, ram):
    """Install a RAM or MMIO SPTE at (a, x); return whether a zap had dropped the last one."""
    live = spte_live(ctr, spte, a, x)
    was_dropped = spte[a, x, S_KIND] != KIND_NONE and not live
    if live:
        if spte[a, x, S_KIND] == KIND_RAM:
            ctr[C_LIVE_RAM + a] -= 1
        else:
            ctr[C_LIVE_MMIO + a] -= 1
    spte[a, x, S_EPOCH] = ctr[C_ZAP_EPOCH]
    spte[a, x, S_MEPOCH] = ctr[C_MMIO_EPOCH]
    if ram:
        spte[a, x, S_KIND] = KIND_RAM
        ctr[C_LIVE_RAM + a] += 1
    else:
        g = ctr[C_GEN + a]
        spte[a, x, S_KIND] = KIND_MMIO
        spte[a, x, S_MADE] = g
        spte[a, x, S_STORED] = mmio_generation(params, g) & params[P_STAMP_MASK]
        ctr[C_LIVE_MMIO + a] += 1
    return was_dropped


@kernel()
def fill_cache(params, ctr, cache, v, a, x):
    """Cache MMIO info for vCPU v; return whether the cache changed."""
    g0 = ctr[C_GEN]
    if params[P_CACHE_SKIPS_INPROG] == 1 and in_progress(params, g0):
        return False
    ga = ctr[C_GEN + a]
    same = (
        cache[v, K_HAS] == 1
        and cache[v, K_GID] == x
        and cache[v, K_FILL_AS] == a
        and cache[v, K_FILL_GEN] == ga
        and cache[v, K_FILL_AS0] == g0
    )
    cache[v, K_HAS] = 1
    cache[v, K_GID] = x
    cache[v, K_FILL_AS] = a
    cache[v, K_FILL_GEN] = ga
    cache[v, K_FILL_AS0] = g0
    return not same


@kernel()
def record_stale(params, ctr, spte, cache, rec, n, a, x, v, source, kind):
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
        spte[a, x, S_MADE],
        spte[a, x, S_STORED],
        cache[v, K_FILL_AS] if from_cache else 0,
        cache[v, K_FILL_GEN] if from_cache else 0,
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


@kernel()
def slow_path(params, ctr, spte, cache, a, x, v):
    """Fault with no usable SPTE: install RAM or MMIO (section 6 step 1); return the outcome."""
    if spte[a, x, S_COVER] == 1:
        dropped = install(params, ctr, spte, a, x, True)
        return O_RAM_REFAULT if dropped else O_RAM_FAULT
    install(params, ctr, spte, a, x, False)
    fill_cache(params, ctr, cache, v, a, x)
    return O_MMIO_SLOW


@kernel()
def stale_kind(params, ctr, spte, cache, a, x, v, from_cache):
    """0 harmful, 1 benign, -1 not stale, for a cache hit or a passed check (section 6)."""
    if spte[a, x, S_COVER] == 1:
        return 0
    ga = ctr[C_GEN + a]
    if from_cache:
        if params[P_CACHE_HAS_GEN] == 1 and (
            cache[v, K_FILL_AS] != a or cache[v, K_FILL_GEN] != ga
        ):
            return 1
    elif params[P_HAS_GEN] == 1 and spte[a, x, S_MADE] != ga:
        return 1
    return -1


@kernel(inline="always")
def cache_hit(params, ctr, cache, v, x):
    """Whether vCPU v's MMIO cache holds gfn index x and is still valid (section 6)."""
    hit = cache[v, K_HAS] == 1 and cache[v, K_GID] == x
    if hit and params[P_CACHE_HAS_GEN] == 1:
        hit = cache[v, K_FILL_AS0] == ctr[C_GEN]
    return hit


@kernel(inline="always")
def check_passes(params, spte, a, x, ga):
    """Whether the MMIO SPTE at (a, x) passes the generation check at generation ga."""
    if params[P_HAS_GEN] != 1:
        return True
    if params[P_BUMP_SCHEME] == B_BIT63 and ga < 0:
        return False
    return mmio_generation(params, ga) == spte[a, x, S_STORED]


@kernel(inline="always")
def access_once(params, ctr, spte, cache, rec, a, x, v):
    """One guest access (section 6). Returns (outcome, stale kind or -1, source, changed)."""
    if not spte_live(ctr, spte, a, x):
        return slow_path(params, ctr, spte, cache, a, x, v), -1, 0, True
    if spte[a, x, S_KIND] == KIND_RAM:
        return O_RAM_ACCESS, -1, 0, False
    if cache_hit(params, ctr, cache, v, x):
        kind = stale_kind(params, ctr, spte, cache, a, x, v, True)
        if kind >= 0:
            record_stale(params, ctr, spte, cache, rec, 1, a, x, v, 1, kind)
        return O_CACHE_HIT, kind, 1, False
    if not check_passes(params, spte, a, x, ctr[C_GEN + a]):
        slow_path(params, ctr, spte, cache, a, x, v)
        return O_MMIO_REFAULT, -1, 0, True
    kind = stale_kind(params, ctr, spte, cache, a, x, v, False)
    if kind >= 0:
        record_stale(params, ctr, spte, cache, rec, 1, a, x, v, 0, kind)
    changed = fill_cache(params, ctr, cache, v, a, x)
    return O_MMIO_FAST, kind, 0, changed


@kernel(inline="always")
def access(params, ctr, spte, cache, rec, a, x, v, reps):
    """``reps`` identical accesses; once one leaves the state unchanged, the rest repeat it."""
    done = 0
    while done < reps:
        outcome, kind, source, changed = access_once(params, ctr, spte, cache, rec, a, x, v)
        ctr[C_OUTCOME + outcome] += 1
        done += 1
        if not changed and done < reps:
            rest = reps - done
            ctr[C_OUTCOME + outcome] += rest
            if kind >= 0:
                record_stale(params, ctr, spte, cache, rec, rest, a, x, v, source, kind)
            return


@kernel()
def access_general(params, ctr, spte, cache, rec, a, x, v, reps, event, sub, race):
    """Any access, with the identity its stale-hit records carry (docs/model.md section 6)."""
    ctr[C_IDENT] = ctr[C_UPDATES]
    ctr[C_IDENT + 1] = event
    ctr[C_IDENT + 2] = sub
    ctr[C_IDENT + 3] = race
    access(params, ctr, spte, cache, rec, a, x, v, reps)


@kernel()
def run_window(params, ctr, spte, cache, rec, dur, start, end, window, event):
    """Run the ``during`` accesses of one window, in order."""
    for j in range(start, end):
        if dur[j, D_WINDOW] != window:
            continue
        access_general(
            params,
            ctr,
            spte,
            cache,
            rec,
            dur[j, D_AS],
            dur[j, D_GID],
            dur[j, D_VCPU],
            dur[j, D_REP],
            event,
            dur[j, D_SUB],
            np.int64(window),  # not a literal: one compiled access_general for every window
        )


@kernel()
def set_layout(spte, a, lo, hi, layout):
    """Mark gfn indices [lo, hi) of address space a as inside or outside a slot."""
    if layout == LAYOUT_NONE:
        return
    value = 1 if layout == LAYOUT_SET else 0
    for x in range(lo, hi):
        spte[a, x, S_COVER] = value


@kernel()
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


@kernel()
def bump(
    params,
    ctr,
    spte,
    cache,
    rec,
    dur,
    a,
    layout,
    lo,
    hi,
    dstart,
    dend,
    event,
    ends_ioctl,
    create_flush,
):
    """One memslot install in address space ``a``, in the order of docs/model.md section 4.1."""
    old = ctr[C_GEN + a]
    new = next_generation(params, old)
    ctr[C_BUMPS + a] += 1
    bump_no = ctr[C_BUMPS + a]
    timing = params[P_WRAP_TIMING]
    wrap_scope = params[P_WRAP_SCOPE]
    if params[P_INPROG_VIEW] == V_OLD_LAYOUT:
        # E0-E2: a vCPU can resolve the gfn on the old layout yet read the new generation.
        ctr[C_GEN + a] = new
        run_window(params, ctr, spte, cache, rec, dur, dstart, dend, WIN_IN_PROGRESS, event)
        set_layout(spte, a, lo, hi, layout)
    else:
        ctr[C_GEN + a] = old + 1 if params[P_INPROG_VIEW] == V_ODD else old | BIT63
        set_layout(spte, a, lo, hi, layout)
        if timing == T_BEFORE and wrap_test(params, new):
            zap(params, ctr, spte, rec, 0, wrap_scope, a, bump_no, 0, 0)
        run_window(params, ctr, spte, cache, rec, dur, dstart, dend, WIN_IN_PROGRESS, event)
        ctr[C_GEN + a] = new
    run_window(params, ctr, spte, cache, rec, dur, dstart, dend, WIN_BEFORE_ZAP, event)
    if (timing == T_AFTER or (timing == T_PER_IOCTL and ends_ioctl)) and wrap_test(params, new):
        zap(params, ctr, spte, rec, 0, wrap_scope, a, bump_no, 0, 0)
    if create_flush and params[P_CREATE_FLUSH_SCOPE] != Z_NOTHING:
        zap(params, ctr, spte, rec, 1, params[P_CREATE_FLUSH_SCOPE], a, bump_no, 0, 0)
    if params[P_HAS_GEN] == 1 and nominal(params, new) < nominal(params, old):
        record_wrap(params, ctr, rec, a, bump_no, old, new)


@kernel()
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


@kernel()
def raw_bumps(params, ctr, spte, cache, rec, dur, a, count, numbered, event):
    """``count`` plain bumps of ``a`` with no accesses (flags repeats, ``bump`` events)."""
    done = 0
    step = next_generation(params, np.int64(0))
    while done < count:
        k = quiet_bumps(params, ctr, a, count - done)
        if k > 0:
            ctr[C_GEN + a] += k * step
            ctr[C_BUMPS + a] += k
            if numbered:
                ctr[C_UPDATES] += k
            done += k
            continue
        if numbered:
            ctr[C_UPDATES] += 1
        bump(params, ctr, spte, cache, rec, dur, a, LAYOUT_NONE, 0, 0, 0, 0, event, True, False)
        done += 1


@kernel()
def update(params, ctr, spte, cache, rec, dur, op, a, row, reps, event):
    """One memslot update event (create, delete, move, flags) with its repetitions."""
    dstart = row[U_DSTART]
    dend = row[U_DEND]
    bumping = row[U_BUMP_REPS]
    if bumping == 0:
        # Nothing changes (flags to the same value, move to the same gfn): the
        # ordinals are still used, and during accesses run as plain accesses.
        ctr[C_UPDATES] += reps
        run_window(params, ctr, spte, cache, rec, dur, dstart, dend, WIN_IN_PROGRESS, event)
        run_window(params, ctr, spte, cache, rec, dur, dstart, dend, WIN_BEFORE_ZAP, event)
        return
    if op == OP_FLAGS and dstart == dend:
        raw_bumps(params, ctr, spte, cache, rec, dur, a, bumping, True, event)
        ctr[C_UPDATES] += reps - bumping
        return
    ctr[C_UPDATES] += 1
    layout = LAYOUT_SET if op == OP_CREATE or op == OP_MOVE else LAYOUT_NONE
    if op == OP_DELETE or op == OP_MOVE:
        # The slot is first published as invalid, then the MMU is flushed (section 4).
        bump(
            params,
            ctr,
            spte,
            cache,
            rec,
            dur,
            a,
            LAYOUT_CLEAR,
            row[U_OLO],
            row[U_OHI],
            0,
            0,
            event,
            False,
            False,
        )
        zap(
            params,
            ctr,
            spte,
            rec,
            1,
            params[P_FLUSH_SCOPE],
            a,
            ctr[C_BUMPS + a],
            row[U_OLO],
            row[U_OHI],
        )
    bump(
        params,
        ctr,
        spte,
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
        True,
        layout == LAYOUT_SET,
    )


@kernel()
def plain_accesses(ev_op, ev_as, ev_vcpu, ev_x, ev_rep, start, params, ctr, spte, cache):
    """Replay top-level accesses from row ``start`` on while they take the fast path.

    Returns the row of the first event it left alone (an update, a bump, or an
    access ``access_general`` must handle), or the end of the block. An access is
    only taken here when it can be seen, before changing anything, that
    ``access`` would end the same way: a live RAM SPTE, or a live MMIO SPTE outside
    every slot with a cache miss and no stale hit; it then does what ``access``
    would, through the same helpers. Counters stay in registers until the end.
    """
    # params is read-only: read what the fast path needs once.
    has_gen = params[P_HAS_GEN] == 1
    stamp_mask = params[P_STAMP_MASK]
    # Outcomes counted in registers and added to ctr once.
    ram_access = 0
    mmio_fast = 0
    mmio_refault = 0
    # Views from ``start``, so the loop index counts up from 0 and numba's
    # negative-index fixup drops out (a loop from ``start`` itself was ~15% slower).
    op_rows = ev_op[start:]
    as_rows = ev_as[start:]
    vcpu_rows = ev_vcpu[start:]
    x_rows = ev_x[start:]
    rep_rows = ev_rep[start:]
    n = op_rows.shape[0]
    stop = n
    for i in range(n):
        if op_rows[i] != OP_ACCESS:
            stop = i
            break
        a = np.int64(as_rows[i])
        x = x_rows[i]
        reps = rep_rows[i]
        if not spte_live(ctr, spte, a, x):
            stop = i
            break
        if spte[a, x, S_KIND] == KIND_RAM:
            # Never stale, changes nothing: every repetition is the same.
            ram_access += reps
            continue
        if reps != 1 or spte[a, x, S_COVER] != 0:
            stop = i
            break
        # A live MMIO SPTE outside every slot: neither a refault nor a passed check
        # can be harmful. A cache hit is checked for staleness, so leave it.
        v = np.int64(vcpu_rows[i])
        ga = ctr[C_GEN + a]
        if cache_hit(params, ctr, cache, v, x):
            stop = i
            break
        if check_passes(params, spte, a, x, ga):
            # A passed check is a benign stale hit when the SPTE's generation differs.
            if has_gen and spte[a, x, S_MADE] != ga:
                stop = i
                break
            mmio_fast += 1
        else:
            # Reinstall the same MMIO SPTE (install: the live counts stay).
            spte[a, x, S_MADE] = ga
            spte[a, x, S_STORED] = mmio_generation(params, ga) & stamp_mask
            mmio_refault += 1
        fill_cache(params, ctr, cache, v, a, x)
    ctr[C_OUTCOME + O_RAM_ACCESS] += ram_access
    ctr[C_OUTCOME + O_MMIO_FAST] += mmio_fast
    ctr[C_OUTCOME + O_MMIO_REFAULT] += mmio_refault
    return start + stop


@kernel()
def replay_events(
    ev_op, ev_as, ev_vcpu, ev_x, ev_rep, ev_index, upd, dur, params, ctr, spte, cache, rec
):
    """Replay a block of events into the state arrays (``params`` .. ``rec``).

    Top-level rows: ``ev_*``; an update's ``ev_x`` indexes ``upd``, an access's is
    its gfn index, a bump's is unused. ``during`` accesses are rows of ``dur``.
    Runs of plain accesses go through ``plain_accesses``; this loop takes the rest.
    """
    n = ev_op.shape[0]
    ctr[C_EVENTS] += n
    i = np.int64(0)
    while True:
        i = plain_accesses(ev_op, ev_as, ev_vcpu, ev_x, ev_rep, i, params, ctr, spte, cache)
        if i >= n:
            break
        op = ev_op[i]
        a = np.int64(ev_as[i])
        event = ev_index[i]
        if op == OP_ACCESS:
            x = ev_x[i]
            v = np.int64(ev_vcpu[i])
            # np.int64(): typed as run_window's values are, not as literals, so
            # access_general is compiled once rather than once per call site.
            sub = np.int64(-1)
            race = np.int64(WIN_NONE)
            access_general(params, ctr, spte, cache, rec, a, x, v, ev_rep[i], event, sub, race)
        elif op == OP_BUMP:
            raw_bumps(params, ctr, spte, cache, rec, dur, a, ev_rep[i], False, event)
        else:
            update(params, ctr, spte, cache, rec, dur, op, a, upd[ev_x[i]], ev_rep[i], event)
        i += 1
