"""Hand-computed cases for the plain-Python reference model (docs/model.md).

Every expected number below is worked out from the document, not from running
the model; the comments show the arithmetic. Traces are built directly from
:mod:`kvmgen.trace.records` objects.
"""

from __future__ import annotations

import dataclasses

import pytest

from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, Era
from kvmgen.model.policy import RunSpec, parse_policy, resolve_runs
from kvmgen.reference.replay import replay_reference
from kvmgen.stats import OUTCOMES, ReplayResult, StaleHit, WrapEvent, ZapEvent
from kvmgen.trace.records import Event, Op, SlotDecl, Trace, VmHeader, Window

M19 = (1 << 19) - 1
M20 = (1 << 20) - 1
U64 = (1 << 64) - 1
BIT63 = 1 << 63
GETTER_OFFSET = (1 << 19) - 1 - 150  # the E1/E2 getter constant for bias 150


def spec_for(era: str | Era, nas: int, policy: str) -> RunSpec:
    record = ERAS[era] if isinstance(era, str) else era
    (spec,) = resolve_runs(record, nas, [parse_policy(policy)])
    return spec


def acc(
    gfn: int, *, a: int = 0, v: int = 0, repeat: int = 1, window: Window = Window.NONE
) -> Event:
    return Event(
        index=0, op=Op.ACCESS, address_space=a, gfn=gfn, vcpu=v, repeat=repeat, window=window
    )


def create(slot: int, gfn: int, pages: int, *, a: int = 0, during: tuple[Event, ...] = ()) -> Event:
    return Event(
        index=0, op=Op.CREATE, address_space=a, slot=slot, gfn=gfn, pages=pages, during=during
    )


def flags(
    slot: int,
    *,
    a: int = 0,
    value: int | None = None,
    repeat: int = 1,
    during: tuple[Event, ...] = (),
) -> Event:
    return Event(
        index=0, op=Op.FLAGS, address_space=a, slot=slot, flags=value, repeat=repeat, during=during
    )


def delete(slot: int, *, a: int = 0, during: tuple[Event, ...] = ()) -> Event:
    return Event(index=0, op=Op.DELETE, address_space=a, slot=slot, during=during)


def move(slot: int, gfn: int, *, a: int = 0, during: tuple[Event, ...] = ()) -> Event:
    return Event(index=0, op=Op.MOVE, address_space=a, slot=slot, gfn=gfn, during=during)


def bump(count: int, *, a: int = 0) -> Event:
    return Event(index=0, op=Op.BUMP, address_space=a, repeat=count)


def make_trace(*events: Event, slots: tuple[SlotDecl, ...] = ()) -> Trace:
    """Number events as a validated trace would: index, sub, ``during`` in execution order."""
    numbered = []
    for i, ev in enumerate(events):
        subs = [dataclasses.replace(d, index=i, sub=j) for j, d in enumerate(ev.during)]
        ordered = [d for d in subs if d.window == Window.IN_PROGRESS]
        ordered += [d for d in subs if d.window == Window.BEFORE_ZAP]
        numbered.append(dataclasses.replace(ev, index=i, during=tuple(ordered)))
    return Trace(
        path="<test>", format="yaml", version=1, vm=VmHeader(slots=slots), events=tuple(numbered)
    )


def run(
    era: str | Era,
    nas: int,
    policy: str,
    *events: Event,
    slots: tuple[SlotDecl, ...] = (),
    record_limit: int = 10_000,
) -> ReplayResult:
    trace = make_trace(*events, slots=slots)
    result = replay_reference(trace, spec_for(era, nas, policy), record_limit=record_limit)
    assert result.events_replayed == len(events)
    assert result.partial is False
    return result


def outcomes(result: ReplayResult) -> dict[str, int]:
    return {k: n for k, n in result.access_counts().items() if n}


def wrap_updates(result: ReplayResult) -> list[tuple[int, int, bool]]:
    return [(w.address_space, w.update, w.detected) for w in result.wraps]


def wrap_zap_updates(result: ReplayResult) -> list[tuple[int, int]]:
    return [(z.address_space, z.update) for z in result.zap_events if z.kind == "wrap"]


def hit(**fields: object) -> StaleHit:
    base: dict[str, object] = {
        "sub": -1,
        "address_space": 0,
        "vcpu": 0,
        "race": None,
        "count": 1,
        "cache_address_space": None,
        "cache_generation": None,
        "cache_as0_generation": None,
    }
    base.update(fields)
    return StaleHit(**base)  # type: ignore[arg-type]


def flags_only(updates: int) -> tuple[Event, Event]:
    """1 create then ``updates - 1`` toggling flags updates of that slot."""
    return create(0, 0, 16), flags(0, repeat=updates - 1)


# --- model.md section 6: wrap positions ---------------------------------------


def test_e12_nas1_no_bias_full_trace() -> None:
    # NAS 1, init 0, +1 per bump: the low 19 bits are 0 at bumps 2^19 and 2^20.
    r = run("E12", 1, "none", *flags_only(1_100_000))
    assert r.updates == 1_100_000
    assert r.bumps == (1_100_000,)
    assert r.final_generation == (1_100_000,)
    assert r.zap_events == (
        ZapEvent("wrap", "all_sptes", 0, 524_288, 524_288, 0, 0),
        ZapEvent("wrap", "all_sptes", 0, 1_048_576, 1_048_576, 0, 0),
    )
    assert r.wraps == (
        WrapEvent(0, 524_288, 524_288, True, M19, 0),
        WrapEvent(0, 1_048_576, 1_048_576, True, M19, 0),
    )
    assert (r.wrap_zaps, r.flush_zaps, r.wraps_total, r.wraps_undetected) == (2, 0, 2, 0)
    assert r.accesses == (0,) * len(OUTCOMES)
    assert r.stale_hits == () and r.stale_records == 0


def test_e12_nas1_no_bias_via_bump_event() -> None:
    # Bumps 2..524287 come from a raw bump event; the wrap lands on the next update.
    r = run("E12", 1, "none", create(0, 0, 16), bump(524_286), flags(0, repeat=3))
    assert r.updates == 4
    assert r.wraps == (WrapEvent(0, 2, 524_288, True, M19, 0),)
    assert wrap_zap_updates(r) == [(0, 2)]
    # A wrap inside a bump event carries the last update ordinal before it.
    r = run("E12", 1, "none", create(0, 0, 16), bump(524_288))
    assert [(w.update, w.bump) for w in r.wraps] == [(1, 524_288)]
    assert r.final_generation == (524_288 + 1,)


def test_e12_nas1_bias_150_first_wrap_at_update_150() -> None:
    # init (0 - 150) mod 2^19 = 524138; 150 bumps reach 2^19.
    r = run("E12", 1, "150", *flags_only(300))
    assert r.wraps == (WrapEvent(0, 150, 150, True, M19, 0),)
    assert wrap_zap_updates(r) == [(0, 150)]
    assert r.final_generation == (524_138 + 300,)
    r = run("E12", 1, "150", create(0, 0, 16), bump(149))
    assert [(w.update, w.bump) for w in r.wraps] == [(1, 150)]


def test_e5_historical_as1_zaps_at_37_as0_silent_at_38() -> None:
    # AS 1 starts at 2^64 - 148 (low 20 bits 2^20 - 148), +4 per bump: 0 at bump 37.
    # AS 0 starts at 2^64 - 150: 2^20 - 2 after 37 bumps, 2 after 38; never 0.
    events = (
        create(0, 0, 16, a=1),
        flags(0, a=1, repeat=39),
        create(0, 0, 16, a=0),
        flags(0, a=0, repeat=39),
    )
    r = run("E5", 2, "historical", *events)
    assert r.bumps == (40, 40)
    assert r.wraps == (
        WrapEvent(1, 37, 37, True, M20 - 3, 0),
        WrapEvent(0, 40 + 38, 38, False, M20 - 1, 2),
    )
    assert r.zap_events == (ZapEvent("wrap", "all_sptes", 1, 37, 37, 0, 0),)
    assert (r.wraps_total, r.wraps_undetected) == (2, 1)
    assert r.final_generation == ((-150 + 160) & U64, (-148 + 160) & U64)


def test_e3_historical_first_wrap_zap_at_update_75() -> None:
    # init 2^64 - 150, +2 per bump: low 20 bits are 0 after 75 bumps.
    r = run("E3", 1, "historical", *flags_only(200))
    assert wrap_zap_updates(r) == [(0, 75)]
    assert r.wraps == (WrapEvent(0, 75, 75, True, M20 - 1, 0),)


def test_e2_bias_150_zap_at_150_wrap_at_151() -> None:
    # mmio(g) = (g + 524137) mod 2^19 reaches 0x7FFFF at g = 150, 0 at g = 151.
    r = run("E2", 1, "150", *flags_only(300))
    assert r.zap_events == (ZapEvent("wrap", "all_sptes", 0, 150, 150, 0, 0),)
    assert r.wraps == (WrapEvent(0, 151, 151, True, M19, 0),)


def test_e1_bias_150_zaps_at_149_and_150_wrap_at_151() -> None:
    r = run("E1", 1, "150", *flags_only(300))
    assert wrap_zap_updates(r) == [(0, 149), (0, 150)]
    assert r.wraps == (WrapEvent(0, 151, 151, True, M19, 0),)
    assert r.wrap_zaps == 2


def test_e1_per_ioctl_test_skips_the_invalid_bump() -> None:
    # create = bump 1, flags = bumps 2..147, delete (update 148) = bumps 148 and 149:
    # only bump 149 (mmio 0x7FFFE) is tested. The raw bumps 150 (0x7FFFF) and 151 (wrap)
    # are each their own ioctl.
    events = (create(0, 0, 16), flags(0, repeat=146), delete(0), bump(2))
    r = run("E1", 1, "historical", *events)
    assert r.zap_events == (
        ZapEvent("memslot_flush", "all_sptes", 0, 148, 148, 0, 0),
        ZapEvent("wrap", "all_sptes", 0, 148, 149, 0, 0),
        ZapEvent("wrap", "all_sptes", 0, 148, 150, 0, 0),
    )
    assert r.wraps == (WrapEvent(0, 148, 151, True, M19, 0),)
    # E2 tests every bump, so only 0x7FFFF (bump 150) zaps.
    r = run("E2", 1, "historical", *events)
    assert [(z.kind, z.bump) for z in r.zap_events] == [("memslot_flush", 148), ("wrap", 150)]


def test_e1_wrap_detected_by_an_older_zap_of_the_same_period() -> None:
    # The E1 wrap at bump 151 comes one ioctl after the last zap: still detected.
    r = run("E1", 1, "historical", create(0, 0, 16), bump(149), flags(0))
    assert [(z.bump, z.update) for z in r.zap_events] == [(149, 1), (150, 1)]
    assert r.wraps == (WrapEvent(0, 2, 151, True, M19, 0),)


# --- the seed's case -------------------------------------------------------------

# (era, NAS, AS 0 bumps until the nominal value is 0 again, nominal value one bump
# earlier): 2^20/2 bumps in E3/E4 (+2), 2^20/4 in E5 (+4), 2^19/2 in E10 (+2).
SEED_CASES = [
    ("E3", 1, 2**19, M20 - 1),
    ("E4", 2, 2**19, M20 - 1),
    ("E5", 2, 2**18, M20 - 3),
    ("E10", 2, 2**18, M19 - 1),
]


@pytest.mark.parametrize(("era", "nas", "bumps", "before"), SEED_CASES)
def test_seed_case_stale_generation_zero(era: str, nas: int, bumps: int, before: int) -> None:
    x = 0x100
    events = (
        acc(x),  # MMIO SPTE stamped with generation 0
        bump(bumps - 1),
        create(0, x, 1, during=(acc(x, v=1, window=Window.BEFORE_ZAP),)),
    )
    r = run(era, nas, "none", *events)
    assert r.wraps == (WrapEvent(0, 1, bumps, True, before, 0),)
    assert wrap_zap_updates(r) == [(0, 1)]
    # Either way the wrap zap drops the MMIO SPTE stamped at generation 0.
    assert (r.dropped_wrap_ram, r.dropped_wrap_mmio) == (0, 1)
    if era == "E10":
        # The zap ran before publication: the SPTE is gone, the access refaults RAM.
        assert outcomes(r) == {"mmio_slow_path": 1, "ram_refault": 1}
        assert r.stale_hits == () and r.stale_records == 0
        return
    now = 2 * bumps if era != "E5" else 4 * bumps  # = 2^20: low 20 bits 0
    assert now == 1 << 20
    assert outcomes(r) == {"mmio_slow_path": 1, "mmio_fast_path": 1}
    assert r.stale_hits == (
        hit(
            update=1,
            event=2,
            sub=0,
            gfn=x,
            vcpu=1,
            source="spte",
            kind="harmful",
            race="before_zap",
            spte_generation=0,
            spte_stored=0,
            current_generation=now,
            current_mmio_generation=0,
        ),
    )
    assert (r.stale_harmful, r.stale_benign, r.stale_records) == (1, 0, 1)


# --- encoding bug ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("era", "limit", "broken"),
    [("E6", 1024, True), ("E7", 1024, True), ("E8", 512, True), ("E9", 512, False)],
)
def test_encoding_bug_checks_fail_past_limit(era: str, limit: int, broken: bool) -> None:
    # AS 0 walks 0, 2, 4, ...; vCPU 0 alternates X and Y so its cache never answers for X.
    x, y = 0x500, 0x600
    probe = (acc(x), acc(y), acc(x))
    r = run(era, 2, "none", bump(limit // 2 - 1), *probe)
    # g = limit - 2: both SPTEs stamped with it, the re-access passes the check.
    assert outcomes(r) == {"mmio_slow_path": 2, "mmio_fast_path": 1}
    r = run(era, 2, "none", bump(limit // 2 - 1), *probe, bump(1), *probe)
    # g = limit: X and Y fail (stamped limit - 2), re-stamped; then X again.
    if broken:  # stored = limit & (limit - 1) = 0 != limit
        assert outcomes(r) == {"mmio_slow_path": 2, "mmio_fast_path": 1, "mmio_refault": 3}
    else:
        assert outcomes(r) == {"mmio_slow_path": 2, "mmio_fast_path": 2, "mmio_refault": 2}
    assert r.stale_records == 0


# --- races and the vCPU cache ----------------------------------------------------


def test_e2_harmful_stale_hit_via_vcpu_cache_without_race() -> None:
    x = 0x10
    events = (acc(x), create(0, x, 1), acc(x), acc(x, v=1), acc(x))
    r = run("E2", 1, "historical", *events)
    # vCPU 1 has no cache: the check compares mmio(1) with mmio(0), fails, and the
    # slow path installs RAM; vCPU 0 then finds the RAM SPTE.
    assert outcomes(r) == {
        "mmio_slow_path": 1,
        "cache_hit": 1,
        "mmio_refault": 1,
        "ram_access": 1,
    }
    assert r.stale_hits == (
        hit(
            update=1,
            event=2,
            gfn=x,
            source="vcpu_cache",
            kind="harmful",
            spte_generation=0,
            spte_stored=GETTER_OFFSET,
            cache_address_space=0,
            cache_generation=0,
            cache_as0_generation=0,
            current_generation=1,
            current_mmio_generation=GETTER_OFFSET + 1,
        ),
    )


@pytest.mark.parametrize("era", ["E1", "E2"])
def test_e1_e2_in_progress_race_on_create(era: str) -> None:
    # Old layout, new generation: the MMIO SPTE is stamped with g = 1 and stays valid.
    x = 0x10
    events = (
        create(0, x, 1, during=(acc(x, window=Window.IN_PROGRESS),)),
        acc(x, v=1),
        acc(x),
    )
    r = run(era, 1, "historical", *events)
    assert outcomes(r) == {"mmio_slow_path": 1, "mmio_fast_path": 1, "cache_hit": 1}
    common = {
        "update": 1,
        "gfn": x,
        "kind": "harmful",
        "spte_generation": 1,
        "spte_stored": GETTER_OFFSET + 1,
        "current_generation": 1,
        "current_mmio_generation": GETTER_OFFSET + 1,
    }
    assert r.stale_hits == (
        hit(event=1, vcpu=1, source="spte", **common),
        hit(
            event=2,
            source="vcpu_cache",
            cache_address_space=0,
            cache_generation=1,
            cache_as0_generation=1,
            **common,
        ),
    )


def test_e3_in_progress_sees_new_layout() -> None:
    x = 0x10
    events = (create(0, x, 1, during=(acc(x, window=Window.IN_PROGRESS),)), acc(x, v=1))
    r = run("E3", 1, "none", *events)
    assert outcomes(r) == {"ram_fault": 1, "ram_access": 1}
    # An unmapped gfn during the odd window is stamped odd & ~1 = 0 and cached at g = 1.
    events = (create(0, 0, 1, during=(acc(x, window=Window.IN_PROGRESS),)), acc(x))
    r = run("E3", 1, "none", *events)
    assert outcomes(r) == {"mmio_slow_path": 1, "mmio_refault": 1}


@pytest.mark.parametrize(
    ("era", "nas", "second"),
    [
        ("E2", 1, "cache_hit"),
        ("E3", 1, "cache_hit"),
        ("E6", 2, "mmio_refault"),
        ("E12", 1, "mmio_refault"),
    ],
)
def test_cache_fill_while_as0_in_progress(era: str, nas: int, second: str) -> None:
    # Two in_progress accesses to an unmapped gfn: E0-E5 cache the first one (E3-E5 at
    # the odd value), E6+ do not, and the bit-63 generation then fails the check.
    x = 0x10
    during = (acc(x, window=Window.IN_PROGRESS), acc(x, window=Window.IN_PROGRESS))
    r = run(era, nas, "none", create(0, 0, 1, during=during))
    assert outcomes(r) == {"mmio_slow_path": 1, second: 1}
    assert r.stale_records == 0


def test_e10_other_address_space_at_rest_during_as0_update() -> None:
    # AS 1 is at rest, so its check passes; AS 0 is in progress, so nothing is cached.
    x = 0x10
    during = (acc(x, a=1, window=Window.IN_PROGRESS), acc(x, a=1, window=Window.IN_PROGRESS))
    r = run("E10", 2, "none", create(0, 0, 1, during=during))
    assert outcomes(r) == {"mmio_slow_path": 1, "mmio_fast_path": 1}


def test_e4_cache_ignores_address_space_benign() -> None:
    # vCPU 0 fills its cache in AS 0, then accesses the same gfn in AS 1, where an
    # MMIO SPTE exists: the cache answers (it matches AS 0's generation only) and
    # the hit is benign because fill_as differs.
    x = 0x700
    events = (acc(x, a=1, v=1), acc(x, repeat=3), acc(x, a=1, repeat=3))
    r = run("E4", 2, "none", *events)
    assert outcomes(r) == {"mmio_slow_path": 2, "cache_hit": 5}
    assert r.stale_hits == (
        hit(
            update=0,
            event=2,
            address_space=1,
            gfn=x,
            source="vcpu_cache",
            kind="benign",
            count=3,
            spte_generation=0,
            spte_stored=0,
            cache_address_space=0,
            cache_generation=0,
            cache_as0_generation=0,
            current_generation=0,
            current_mmio_generation=0,
        ),
    )
    assert (r.stale_benign, r.stale_records) == (3, 1)


def test_e10_in_progress_access_on_wrapping_bump_survives_zap() -> None:
    # AS 0: 0, 2, ...; after 262143 bumps g = 0x7FFFE. The flags update's bump zaps
    # (new = 2^19) before its in_progress access, which stamps 0x7FFFE and is not
    # cached (AS 0 in progress). 262143 bumps later g = 2^20 - 2: the check passes.
    x = 0x1000
    slots = (SlotDecl(slot=0, address_space=0, gfn=0, pages=16),)
    events = (
        bump(262_143),
        flags(0, during=(acc(x, window=Window.IN_PROGRESS),)),
        bump(262_142),
        create(1, x, 1),
        acc(x),
    )
    r = run("E10", 2, "none", *events, slots=slots)
    assert r.zap_events == (ZapEvent("wrap", "all_sptes", 0, 1, 262_144, 0, 0),)
    assert r.wraps == (WrapEvent(0, 1, 262_144, True, M19 - 1, 0),)
    assert outcomes(r) == {"mmio_slow_path": 1, "mmio_fast_path": 1}
    assert r.final_generation == ((1 << 20) - 2, 1)
    assert r.stale_hits == (
        hit(
            update=2,
            event=4,
            gfn=x,
            source="spte",
            kind="harmful",
            spte_generation=BIT63 | 0x7FFFE,
            spte_stored=0x7FFFE,
            current_generation=(1 << 20) - 2,
            current_mmio_generation=0x7FFFE,
        ),
    )


# --- zaps, flushes, refaults --------------------------------------------------------

FLUSH_SLOTS = (
    SlotDecl(slot=0, address_space=0, gfn=0, pages=16),
    SlotDecl(slot=1, address_space=0, gfn=0x100, pages=16),
    SlotDecl(slot=0, address_space=1, gfn=0, pages=16),
)
FLUSH_EVENTS = (
    acc(1),
    acc(2),
    acc(0x101),
    acc(0x500),
    acc(3, a=1),
    acc(0x600, a=1, v=1),
    delete(1),
    acc(1),
    acc(1),
    acc(0x101),
    acc(3, a=1),
)


def test_memslot_flush_whole_mmu() -> None:
    r = run("E10", 2, "none", *FLUSH_EVENTS, slots=FLUSH_SLOTS)
    assert r.zap_events == (ZapEvent("memslot_flush", "all_sptes", 0, 1, 1, 4, 2),)
    assert (r.flush_zaps, r.dropped_flush_ram, r.dropped_flush_mmio) == (1, 4, 2)
    assert r.bumps == (2, 0)
    assert outcomes(r) == {
        "ram_fault": 4,
        "mmio_slow_path": 3,  # 0x500, 0x600, then 0x101 once its slot is gone
        "ram_refault": 2,  # (0, 1) and (1, 3)
        "ram_access": 1,
    }


def test_memslot_flush_slot_ram_only_e6_5_1() -> None:
    r = run(E6_SLOT_FLUSH, 2, "none", *FLUSH_EVENTS, slots=FLUSH_SLOTS)
    assert r.zap_events == (ZapEvent("memslot_flush", "slot_ram_sptes", 0, 1, 1, 1, 0),)
    assert outcomes(r) == {"ram_fault": 4, "mmio_slow_path": 3, "ram_access": 3}


def test_ram_refault_after_wrap_zap() -> None:
    # E3 historical zaps at bump 75 (update 75) and drops everything.
    events = (create(0, 0, 16), acc(1), acc(0x80), flags(0, repeat=74), acc(1), acc(1), acc(0x80))
    r = run("E3", 1, "historical", *events)
    assert r.zap_events == (ZapEvent("wrap", "all_sptes", 0, 75, 75, 1, 1),)
    assert (r.dropped_wrap_ram, r.dropped_wrap_mmio) == (1, 1)
    assert outcomes(r) == {
        "ram_fault": 1,
        "mmio_slow_path": 2,
        "ram_refault": 1,
        "ram_access": 1,
    }


def test_e6_wrap_zap_drops_only_mmio() -> None:
    # Bias 150 in E6: AS 0 starts at 2^19 - 150, +2: 0 at bump 75.
    events = (create(0, 0, 16), acc(1), acc(0x80), flags(0, repeat=74), acc(1), acc(0x80))
    r = run("E6", 2, "150", *events)
    assert r.zap_events == (ZapEvent("wrap", "mmio_sptes", 0, 75, 75, 0, 1),)
    assert outcomes(r) == {"ram_fault": 1, "mmio_slow_path": 2, "ram_access": 1}


def test_e0_create_move_delete_flushes() -> None:
    events = (
        acc(0x500),
        acc(1),
        create(0, 0, 16),  # E0 MMIO drop: both MMIO SPTEs
        acc(1),  # dropped by that zap: a refault
        acc(0x500),
        move(0, 0x100),  # whole-MMU flush (1 RAM, 1 MMIO), then MMIO drop (nothing)
        delete(0),  # whole-MMU flush (nothing left)
    )
    r = run("E0", 1, "none", *events)
    assert r.zap_events == (
        ZapEvent("memslot_flush", "mmio_sptes", 0, 1, 1, 0, 2),
        ZapEvent("memslot_flush", "all_sptes", 0, 2, 2, 1, 1),
        ZapEvent("memslot_flush", "mmio_sptes", 0, 2, 3, 0, 0),
        ZapEvent("memslot_flush", "all_sptes", 0, 3, 4, 0, 0),
    )
    assert (r.flush_zaps, r.wrap_zaps, r.wraps_total) == (4, 0, 0)
    assert (r.dropped_flush_ram, r.dropped_flush_mmio) == (1, 3)
    assert r.bumps == (5,) and r.final_generation == (5,)
    assert outcomes(r) == {"mmio_slow_path": 3, "ram_refault": 1}


def test_e0_before_zap_stale_hits_have_no_stored_generation() -> None:
    # The MMIO SPTE survives until the create's MMIO drop, which runs after before_zap.
    x = 0x10
    during = (acc(x, window=Window.BEFORE_ZAP), acc(x, v=1, window=Window.BEFORE_ZAP))
    r = run("E0", 1, "none", acc(x), create(0, x, 1, during=during), acc(x))
    assert outcomes(r) == {
        "mmio_slow_path": 1,
        "cache_hit": 1,
        "mmio_fast_path": 1,
        "ram_refault": 1,
    }
    common = {
        "update": 1,
        "event": 1,
        "gfn": x,
        "kind": "harmful",
        "race": "before_zap",
        "spte_generation": 0,
        "spte_stored": None,
        "current_generation": 1,
        "current_mmio_generation": None,
    }
    assert r.stale_hits == (
        hit(
            sub=0,
            source="vcpu_cache",
            cache_address_space=0,
            cache_generation=0,
            cache_as0_generation=0,
            **common,
        ),
        hit(sub=1, vcpu=1, source="spte", **common),
    )
    assert r.zap_events == (ZapEvent("memslot_flush", "mmio_sptes", 0, 1, 1, 0, 1),)


def test_e0_in_progress_sees_old_layout() -> None:
    x = 0x10
    r = run("E0", 1, "none", create(0, x, 1, during=(acc(x, window=Window.IN_PROGRESS),)), acc(x))
    # The window access installs MMIO (no slot yet); the MMIO drop then removes it.
    assert outcomes(r) == {"mmio_slow_path": 1, "ram_refault": 1}


def test_unbumped_updates_are_numbered_and_run_during_as_plain() -> None:
    # E2: the cache has no generation, so vCPU 0's cache answers for x throughout.
    x = 0x10
    slots = (SlotDecl(slot=0, address_space=0, gfn=0, pages=4),)
    events = (
        acc(x),
        create(1, x, 1),  # update 1
        flags(0, value=0, during=(acc(x, window=Window.BEFORE_ZAP),)),  # update 2: 0 bumps
        flags(0, value=1, repeat=3),  # updates 3-5: 1 bump, then nothing to change
        move(0, 0, during=(acc(x, window=Window.IN_PROGRESS),)),  # update 6: 0 bumps
        flags(0, repeat=2),  # updates 7-8
        acc(x),
    )
    r = run("E2", 1, "historical", *events, slots=slots)
    assert r.updates == 8
    assert r.bumps == (4,)
    assert r.final_generation == (4,)
    assert outcomes(r) == {"mmio_slow_path": 1, "cache_hit": 3}
    assert [(h.update, h.event, h.sub, h.race) for h in r.stale_hits] == [
        (2, 2, 0, "before_zap"),
        (6, 4, 0, "in_progress"),
        (8, 6, -1, None),
    ]


# --- records ---------------------------------------------------------------------------


def _race_events() -> tuple[Event, ...]:
    x = 0x10
    return (
        create(0, x, 1, during=(acc(x, window=Window.IN_PROGRESS),)),
        acc(x, v=1, repeat=3),  # check passes (spte), then two cache hits (vcpu_cache)
        acc(x, repeat=2),  # vCPU 0's cache, filled in the race: a new event, a new record
        create(1, 0x100, 16),
        flags(1, repeat=160),  # E1 bias 150: zaps at updates 149 and 150, wrap at 151
    )


def test_record_merging_with_repeat() -> None:
    r = run("E1", 1, "historical", *_race_events())
    assert [(h.event, h.vcpu, h.source, h.count) for h in r.stale_hits] == [
        (1, 1, "spte", 1),
        (1, 1, "vcpu_cache", 2),
        (2, 0, "vcpu_cache", 2),
    ]
    assert (r.stale_harmful, r.stale_benign, r.stale_records) == (5, 0, 3)
    assert wrap_zap_updates(r) == [(0, 149), (0, 150)]
    assert wrap_updates(r) == [(0, 151, True)]


@pytest.mark.parametrize("limit", [1, 2])
def test_record_limit_truncates_lists_not_totals(limit: int) -> None:
    full = run("E1", 1, "historical", *_race_events())
    r = run("E1", 1, "historical", *_race_events(), record_limit=limit)
    assert r.stale_hits == full.stale_hits[:limit]
    assert r.zap_events == full.zap_events[:limit]
    assert r.wraps == full.wraps[:limit]
    assert r.record_limit == limit
    assert (r.stale_records, r.stale_harmful, r.wrap_zaps, r.wraps_total) == (3, 5, 2, 1)
    assert r.accesses == full.accesses


def test_merging_needs_the_same_event() -> None:
    x = 0x10
    events = (acc(x), create(0, x, 1), acc(x), acc(x))
    r = run("E2", 1, "historical", *events)
    assert [(h.event, h.count) for h in r.stale_hits] == [(2, 1), (3, 1)]
    r = run("E2", 1, "historical", acc(x), create(0, x, 1), acc(x, repeat=5))
    assert [(h.event, h.count) for h in r.stale_hits] == [(2, 5)]
    assert (r.stale_harmful, r.stale_records) == (5, 1)
