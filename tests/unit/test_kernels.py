"""The numba kernels' arithmetic at the edges (kvmgen/engine/kernels.py).

Generations are int64 bit patterns inside the kernels; the helpers below turn a
u64 into that pattern and back. Expected values follow docs/model.md sections 2
and 3 and model.md section 1 (bias placement), worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.engine import kernels as k
from kvmgen.engine.replay import engine_params, python_kernels, python_kernels_with
from kvmgen.model.eras import ERAS
from kvmgen.model.policy import RunSpec, parse_policy, resolve_runs

pytestmark = pytest.mark.usefixtures("warm_engine")

TWO64 = 1 << 64
U64 = TWO64 - 1
BIT63 = 1 << 63
M19 = (1 << 19) - 1
M20 = (1 << 20) - 1


def i64(u: int) -> np.int64:
    """The int64 bit pattern of a u64 (or a negative int, taken mod 2^64)."""
    u &= U64
    return np.int64(u - TWO64 if u >= BIT63 else u)


def u64(x: object) -> int:
    return int(x) & U64  # type: ignore[call-overload]


def spec(era: str, nas: int, bias: str) -> RunSpec:
    (run,) = resolve_runs(ERAS[era], nas, [parse_policy(bias)])
    return run


def params(era: str, nas: int = 0, bias: str = "none") -> np.ndarray:
    return engine_params(spec(era, nas or ERAS[era].default_address_spaces, bias), 4)


def step(p: np.ndarray, g: int) -> int:
    return u64(k.next_generation(p, i64(g)))


def quiet(p: np.ndarray, gens: list[int], a: int, remaining: int) -> int:
    """``quiet_bumps`` for address space ``a`` with generations ``gens`` (u64).

    The kernels keep each address space's generation in the counter array at ``C_GEN``.
    """
    ctr = np.zeros(k.N_COUNTERS, dtype=np.int64)
    for i, g in enumerate(gens):
        ctr[k.C_GEN + i] = i64(g)
    return int(k.quiet_bumps(p, ctr, np.int64(a), np.int64(remaining)))


# ---- engine_params


def test_engine_params_layout() -> None:
    p = params("E2", 1, "historical")
    assert p.dtype == np.int64
    assert p.shape == (k.N_PARAMS,)
    assert p[k.P_NAS] == 1
    assert p[k.P_HAS_GEN] == 1
    assert p[k.P_MMIO_OFFSET] == M19 - 150
    assert p[k.P_CHECK_MASK] == M19
    assert p[k.P_NOMINAL_MASK] == M19
    assert p[k.P_WRAP_THRESHOLD] == 0x7FFFF
    assert p[k.P_RECORD_LIMIT] == 4
    e8 = params("E8")
    assert e8[k.P_STAMP_MASK] == (1 << 9) - 1
    assert e8[k.P_NOMINAL_MASK] == (1 << 18) - 1
    assert params("E0")[k.P_HAS_GEN] == 0


# ---- next_generation (docs/model.md section 3)


@pytest.mark.parametrize(
    ("era", "nas", "old", "new"),
    [
        ("E1", 1, 0, 1),
        ("E2", 1, 149, 150),
        ("E2", 1, U64, 0),  # u64 wrap
        ("E2", 1, BIT63 - 1, BIT63),  # crosses the int64 sign
        ("E3", 1, TWO64 - 150, TWO64 - 148),  # +2 per bump (odd, then even)
        ("E3", 1, TWO64 - 2, 0),
        ("E3", 1, BIT63 - 2, BIT63),
        ("E4", 2, TWO64 - 150, TWO64 - 148),
        ("E5", 2, TWO64 - 150, TWO64 - 146),  # +1, +3 = +2*NAS
        ("E5", 2, TWO64 - 4, 0),
        ("E5", 2, BIT63 - 2, BIT63 + 2),
        ("E6", 2, 0, 2),  # clear bit 63, + NAS
        ("E12", 2, 5, 7),
        ("E12", 2, BIT63 | 5, 7),  # an in-progress value drops its flag
        ("E12", 1, M19, 1 << 19),
        ("E12", 1, BIT63 | M19, 1 << 19),
        ("E12", 2, BIT63 - 1, BIT63 + 1),  # 2^63 - 1 + 2 sets bit 63: u64 arithmetic
        ("E0", 1, 41, 42),
    ],
)
def test_next_generation(era: str, nas: int, old: int, new: int) -> None:
    assert step(params(era, nas), old) == new


# ---- nominal / mmio_generation (docs/model.md section 2)


@pytest.mark.parametrize(
    ("era", "bias", "g", "nominal", "mmio"),
    [
        # E1/E2 with bias 150: (g + 2^19 - 151) mod 2^19
        ("E2", "150", 0, M19 - 150, M19 - 150),
        ("E2", "150", 149, M19 - 1, M19 - 1),  # 0x7fffe
        ("E2", "150", 150, M19, M19),  # 0x7ffff: the last value before the wrap
        ("E2", "150", 151, 0, 0),  # the wrap
        ("E2", "150", U64, M19 - 151, M19 - 151),  # offset added across 2^64
        ("E1", "none", M19, M19, M19),
        ("E1", "none", 1 << 19, 0, 0),
        # E3-E5: g mod 2^20
        ("E3", "150", TWO64 - 150, (1 << 20) - 150, (1 << 20) - 150),
        ("E3", "none", M20 - 1, M20 - 1, M20 - 1),
        ("E3", "none", 1 << 20, 0, 0),
        ("E5", "150", TWO64 - 2, M20 - 1, M20 - 1),
        # E6+: g & (2^W - 1); bit 63 dropped by the mask
        ("E12", "none", BIT63 | 7, 7, 7),
        ("E12", "none", (1 << 19) + 3, 3, 3),
        ("E8", "none", (1 << 18) + 3, 3, 3),
        ("E9", "none", BIT63 | (1 << 18) - 1, (1 << 18) - 1, (1 << 18) - 1),
        ("E0", "none", 12345, 0, 0),
    ],
)
def test_nominal_and_mmio_generation(era: str, bias: str, g: int, nominal: int, mmio: int) -> None:
    p = params(era, 0, bias)
    assert u64(k.nominal(p, i64(g))) == nominal
    assert u64(k.mmio_generation(p, i64(g))) == mmio


def test_e3_stamp_drops_bit_0() -> None:
    p = params("E3")
    stamp = u64(k.mmio_generation(p, i64(M20))) & int(p[k.P_STAMP_MASK])
    assert stamp == M20 - 1


# ---- in_progress


@pytest.mark.parametrize(
    ("era", "g", "expected"),
    [
        ("E0", 1, False),
        ("E2", 1, False),
        ("E2", BIT63, False),
        ("E3", TWO64 - 149, True),  # odd
        ("E3", TWO64 - 150, False),
        ("E3", BIT63, False),
        ("E5", 3, True),
        ("E5", 4, False),
        ("E12", BIT63, True),
        ("E12", BIT63 | 6, True),
        ("E12", BIT63 - 1, False),
        ("E12", 1, False),
    ],
)
def test_in_progress(era: str, g: int, expected: bool) -> None:
    assert bool(k.in_progress(params(era), i64(g))) is expected


# ---- wrap_test (docs/model.md section 3)


@pytest.mark.parametrize(
    ("era", "nas", "bias", "g", "fires"),
    [
        # E1: nominal >= 0x7fffe; with bias 150 that is g = 149 and g = 150
        ("E1", 1, "150", 148, False),
        ("E1", 1, "150", 149, True),
        ("E1", 1, "150", 150, True),
        ("E1", 1, "150", 151, False),
        ("E1", 1, "none", M19 - 1, True),
        ("E1", 1, "none", M19 - 2, False),
        # E2: nominal == 0x7ffff: g = 150 only
        ("E2", 1, "150", 149, False),
        ("E2", 1, "150", 150, True),
        ("E2", 1, "150", 151, False),
        ("E2", 1, "none", M19, True),
        ("E2", 1, "none", 0, False),
        # E3: g mod 2^20 == 0; with bias 150 the 75th bump reaches 0
        ("E3", 1, "150", TWO64 - 150 + 2 * 74, False),
        ("E3", 1, "150", TWO64 - 150 + 2 * 75, True),
        ("E3", 1, "none", 1 << 20, True),
        ("E3", 1, "none", M20 - 1, False),
        ("E3", 1, "none", 2, False),
        ("E3", 1, "none", BIT63, True),
        # E5 AS 1 with bias 150 starts at 2^64 - 148 and reaches 0 at its 37th bump
        ("E5", 2, "150", TWO64 - 148 + 4 * 37, True),
        ("E5", 2, "150", TWO64 - 148 + 4 * 36, False),
        # E6+: (nominal & ~(NAS - 1)) == 0
        ("E12", 2, "none", 1 << 19, True),
        ("E12", 2, "none", (1 << 19) + 1, True),  # AS 1's value after the wrap
        ("E12", 2, "none", (1 << 19) + 2, False),
        ("E12", 1, "none", (1 << 19) + 1, False),
        ("E12", 1, "none", 1 << 19, True),
        ("E12", 1, "none", 2 * (1 << 19), True),  # update 1,048,576 of wrap-probe-6.18
        ("E12", 1, "none", M19, False),
        ("E8", 2, "none", 1 << 18, True),
        ("E8", 2, "none", 1 << 19, True),
        ("E8", 2, "none", (1 << 18) - 2, False),
        # E12 NAS 1 with bias 150 starts at 2^19 - 150 and reaches 0 at bump 150
        ("E12", 1, "150", (1 << 19) - 150 + 150, True),
        ("E12", 1, "150", (1 << 19) - 150 + 149, False),
        ("E0", 1, "none", 0, False),
        ("E0", 1, "none", 1 << 20, False),
    ],
)
def test_wrap_test(era: str, nas: int, bias: str, g: int, fires: bool) -> None:
    assert bool(k.wrap_test(params(era, nas, bias), i64(g))) is fires


def test_e3_biased_start_is_minus_150_as_int64() -> None:
    run = spec("E3", 1, "historical")
    assert run.init_generations == (TWO64 - 150,)
    assert i64(run.init_generations[0]) == np.int64(-150)
    p = engine_params(run, 4)
    g = np.int64(-150)
    bumps = 0
    while not k.wrap_test(p, k.next_generation(p, g)):
        g = k.next_generation(p, g)
        bumps += 1
        assert bumps < 100
    assert bumps + 1 == 75  # the 75th bump zaps
    assert k.next_generation(p, g) == 0


def test_e5_as0_with_bias_never_satisfies_the_wrap_test() -> None:
    # AS 0 starts at 2^64 - 150 = 2 mod 4 and steps by 4: never 0 mod 2^20.
    p = params("E5", 2, "historical")
    start = spec("E5", 2, "historical").init_generations[0]
    assert start == TWO64 - 150
    gens = np.array([i64(start + 4 * n) for n in range(1, 2000)], dtype=np.int64)
    # the first two periods' wrap neighbourhoods: bumps 1..1999 and around 2^18 + 38
    later = np.array(
        [i64(start + 4 * n) for n in range((1 << 18) - 50, (1 << 18) + 100)], dtype=np.int64
    )
    for g in np.concatenate([gens, later]):
        assert not k.wrap_test(p, g)
    # ...while its nominal value does wrap at bump 38: 0xffffe -> 0x2
    before = k.nominal(p, i64(start + 4 * 37))
    after = k.nominal(p, i64(start + 4 * 38))
    assert (int(before), int(after)) == (M20 - 1, 2)


def test_e5_as0_without_bias_zaps_at_bump_262144() -> None:
    p = params("E5", 2, "none")
    assert k.wrap_test(p, i64(4 * 262_144))
    assert not k.wrap_test(p, i64(4 * 262_143))


def test_modern_bias_150_nas2_zaps_at_the_75th_bump_of_each_as() -> None:
    p = params("E12", 2, "150")
    for a, start in enumerate(spec("E12", 2, "150").init_generations):
        g = start
        for _ in range(74):
            g = step(p, g)
            assert not k.wrap_test(p, i64(g)), a
        g = step(p, g)
        assert k.wrap_test(p, i64(g)), a
        assert g == (1 << 19) + a


# ---- quiet_bumps never skips a wrap or a zap


def fires_or_wraps(p: np.ndarray, old: int) -> tuple[int, bool]:
    """One bump from ``old`` computed in Python from docs/model.md section 3."""
    nas = int(p[k.P_NAS])
    scheme = int(p[k.P_BUMP_SCHEME])
    if scheme == k.B_PLAIN:
        new = (old + 1) & U64
    elif scheme == k.B_ODD_EVEN:
        new = (old + 2) & U64
    elif scheme == k.B_ODD_STRIDE:
        new = (old + 2 * nas) & U64
    else:
        new = ((old & (BIT63 - 1)) + nas) & U64
    if not int(p[k.P_HAS_GEN]):
        return new, False
    offset = int(p[k.P_MMIO_OFFSET])
    mask = int(p[k.P_NOMINAL_MASK])

    def nominal(x: int) -> int:
        return (x + offset) & mask

    wrapped = nominal(new) < nominal(old)
    if int(p[k.P_WRAP_TEST]) == 1:
        zaps = nominal(new) >= int(p[k.P_WRAP_THRESHOLD])
    else:
        ignore = nas - 1 if scheme == k.B_BIT63 else 0
        zaps = nominal(new) & ~ignore == 0
    return new, wrapped or zaps


RUNS = [
    ("E1", 1, "historical"),
    ("E1", 1, "none"),
    ("E2", 1, "historical"),
    ("E2", 1, "none"),
    ("E3", 1, "historical"),
    ("E3", 1, "none"),
    ("E4", 2, "historical"),
    ("E5", 2, "historical"),
    ("E5", 2, "none"),
    ("E6", 2, "none"),
    ("E7", 2, "150"),
    ("E8", 2, "none"),
    ("E9", 2, "151"),
    ("E10", 2, "none"),
    ("E11", 1, "none"),
    ("E12", 1, "none"),
    ("E12", 2, "150"),
]


def starts_near_boundaries(p: np.ndarray, run: RunSpec) -> list[int]:
    """Generations (u64) within a few bumps of every wrap, zap threshold and biased start."""
    offset = int(p[k.P_MMIO_OFFSET])
    period = int(p[k.P_NOMINAL_MASK]) + 1
    points = set(run.init_generations)
    for base in (0, period, 5 * period, BIT63, TWO64 - period):
        for nominal_target in (0, period - 1, int(p[k.P_WRAP_THRESHOLD])):
            for d in range(-12, 13):
                points.add((base + nominal_target - offset + d) & U64)
    for g0 in run.init_generations:
        for d in range(80):
            points.add((g0 + d) & U64)
    return sorted(points)


@pytest.mark.parametrize(("era", "nas", "bias"), RUNS)
def test_quiet_bumps_never_skips_a_wrap_or_zap(era: str, nas: int, bias: str) -> None:
    run = spec(era, nas, bias)
    p = engine_params(run, 4)
    step_size = u64(k.next_generation(p, np.int64(0)))
    remaining = 40
    for start in starts_near_boundaries(p, run):
        quiet_n = quiet(p, [start] * nas, nas - 1, remaining)
        assert 0 <= quiet_n <= remaining
        g = start
        for n in range(1, quiet_n + 1):
            g, loud = fires_or_wraps(p, g)
            assert not loud, (era, bias, hex(start), n, quiet_n)
        # applying the quiet bumps at once gives the value stepping gives
        assert (start + quiet_n * step_size) & U64 == g, (era, hex(start), quiet_n)


@pytest.mark.parametrize(("era", "nas", "bias"), RUNS)
def test_quiet_bumps_far_from_the_boundary(era: str, nas: int, bias: str) -> None:
    run = spec(era, nas, bias)
    p = engine_params(run, 4)
    step_size = u64(k.next_generation(p, np.int64(0)))
    offset = int(p[k.P_MMIO_OFFSET])
    mask = int(p[k.P_NOMINAL_MASK])
    # a start whose nominal value is in the middle of the range
    start = ((mask + 1) // 2 - offset) & U64
    quiet_n = quiet(p, [start] * nas, 0, 10**12)
    assert quiet_n > 0
    end = start + quiet_n * step_size
    # no wrap in between: the nominal value grew by exactly quiet_n * step
    assert (end + offset) & mask == ((start + offset) & mask) + quiet_n * step_size
    # and none of those bumps zapped: step the last 64 of them one at a time
    g = (end - min(quiet_n, 64) * step_size) & U64
    for _ in range(min(quiet_n, 64)):
        g, loud = fires_or_wraps(p, g)
        assert not loud
    # it stops near the top (bumps landing in [4, max-3] are quiet), not far before
    assert (end + offset) & mask > mask - 4 * step_size
    assert quiet(p, [start] * nas, 0, 7) == 7


def test_quiet_bumps_e0_skips_everything() -> None:
    assert quiet(params("E0"), [U64], 0, 123_456_789) == 123_456_789


def test_quiet_bumps_refuses_an_in_progress_bit63_generation() -> None:
    p = params("E12", 2)
    gens = [BIT63 | 1000, 1001]
    assert quiet(p, gens, 0, 100) == 0
    assert quiet(p, gens, 1, 100) == 100  # 1001 + 2 * 100 = 1201, far from the top


def test_quiet_bumps_stops_before_counting_into_bit_63() -> None:
    # A modern generation 2^18 below 2^63 (nominal 2^18): counting on would set bit
    # 63, the in-progress flag, at rest, and the closed form g + k*step would then
    # differ from stepping (which clears the flag on the next bump).
    p = params("E12", 2)
    start = BIT63 - (1 << 18)
    quiet_n = quiet(p, [start, 1], 0, 10**9)
    assert quiet_n > 0
    g = start
    for _ in range(quiet_n):
        g, loud = fires_or_wraps(p, g)
        assert not loud
    assert g == start + 2 * quiet_n
    assert g < BIT63


# ---- int64 wraparound of whole replays' arithmetic


def test_int64_generation_additions_wrap_mod_2_64() -> None:
    p = params("E3", 1, "historical")
    g = np.int64(-150)
    for _ in range(75):
        g = k.next_generation(p, g)
    assert int(g) == 0
    p2 = params("E2", 1)
    top = np.int64(2**63 - 1)
    assert u64(k.next_generation(p2, top)) == BIT63
    assert u64(k.next_generation(p2, np.int64(-1))) == 0
    # the getter offset added to a generation above 2^63
    e2 = params("E2", 1, "150")
    assert u64(k.mmio_generation(e2, i64(U64 - 5))) == (U64 - 5 + M19 - 150) % (1 << 19)


# ---- checked_as0: the plain-access loop for the common settings equals the general one


@st.composite
def plain_blocks(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """State and events for one address space under E12: live RAM, MMIO outside every
    slot, dropped and empty pages; SPTEs made now, earlier, or a whole 2^19 period
    earlier (they pass the check: a benign stale hit); filled and empty vCPU caches;
    runs of plain accesses broken by a few flags updates."""
    pages_n = draw(st.integers(1, 12))
    vcpus = draw(st.integers(1, 4))
    ga = draw(st.sampled_from([0, 5, M19 - 1, M19 + 1, (1 << 40) + 3]))
    clock, floor = draw(st.integers(0, 3)), 0
    floor = draw(st.integers(0, clock))
    word = st.sampled_from(
        [
            clock << k.PAGE_EPOCH_SHIFT | k.KIND_MMIO,  # live MMIO outside every slot
            floor << k.PAGE_EPOCH_SHIFT | k.PAGE_COVER | k.KIND_RAM,  # live RAM
            k.PAGE_COVER,  # inside a slot, never faulted
            0,  # outside every slot, never faulted
            k.DROPPED | k.PAGE_COVER | k.KIND_RAM,
            (clock - 1) << k.PAGE_EPOCH_SHIFT | k.KIND_MMIO,  # zapped (dropped at clock 0)
            (floor - 1) << k.PAGE_EPOCH_SHIFT | k.PAGE_COVER | k.KIND_RAM,  # zapped RAM
        ]
    )
    made = st.sampled_from([ga, ga - 1, ga - (1 << 19), ga - 3 * (1 << 19), ga + 7])
    pages = np.zeros((1, pages_n, k.N_PG), dtype=np.int64)
    for x in range(pages_n):
        pages[0, x, k.PG_WORD] = draw(word)
        pages[0, x, k.PG_MADE] = draw(made)
    cache = np.zeros((vcpus, k.N_KFIELDS), dtype=np.int64)
    for v in range(vcpus):
        x = draw(st.integers(-1, pages_n - 1))
        cache[v, k.K_KEY] = -1 if x < 0 else x << 1  # empty as new_state leaves it, or gfn x
        cache[v, k.K_FILL_AS0] = draw(st.sampled_from([ga, ga - 1]))
    n = draw(st.integers(1, 60))
    codes = np.array(
        draw(
            st.lists(st.sampled_from([k.EV_PLAIN_AS0] * 12 + [k.OP_FLAGS]), min_size=n, max_size=n)
        ),
        dtype=np.uint8,
    )
    xs = np.array(draw(st.lists(st.integers(0, pages_n - 1), min_size=n, max_size=n)), np.uint32)
    vs = np.array(draw(st.lists(st.integers(0, vcpus - 1), min_size=n, max_size=n)), np.uint16)
    ctr = np.zeros(k.N_COUNTERS, dtype=np.int64)
    ctr[k.C_GEN] = ga
    ctr[k.C_ZAP_CLOCK], ctr[k.C_RAM_FLOOR] = clock, floor
    return codes, vs, xs, ctr, pages, cache


@settings(max_examples=300, deadline=None)
@given(block=plain_blocks())
def test_checked_loop_equals_general_path(block: tuple[np.ndarray, ...]) -> None:
    codes, vs, xs, ctr, pages, cache = block
    p = params("E12", 1, "historical")
    assert python_kernels()["checked_mask"](p, ctr) == M19  # the checked loop is taken
    # Flags updates name aux rows: one row, slot 0 over no accessed page.
    xs = np.where(codes == k.OP_FLAGS, 0, xs).astype(np.uint32)
    aux = np.zeros((1, k.N_UCOLS), dtype=np.int64)
    aux[0, k.U_REPS] = 1
    aux[0, k.U_BUMP_REPS] = 1
    dur = np.zeros((0, k.N_DFIELDS), dtype=np.int64)
    rec = np.zeros((3, 8, max(k.N_RFIELDS, k.N_WFIELDS, k.N_ZFIELDS)), dtype=np.int64)
    states = [tuple(a.copy() for a in (ctr, pages, cache, rec)) for _ in range(2)]
    k.replay_events(codes, vs, xs, np.int64(0), aux, dur, p, *states[0])
    with np.errstate(over="ignore"):
        general_only = python_kernels_with({"checked_mask": lambda params, ctr: np.int64(-1)})
        general_only["replay_events"](codes, vs, xs, np.int64(0), aux, dur, p, *states[1])
    # Only access_general names the access being replayed (C_IDENT, scratch for its
    # stale-hit records); a first fault the checked path takes leaves it as it was.
    for state in states:
        state[0][k.C_IDENT : k.C_IDENT + 4] = 0
    for compiled, general in zip(states[0], states[1], strict=True):
        np.testing.assert_array_equal(compiled, general)
