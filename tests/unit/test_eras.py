"""The era registry (kvmgen/model/eras.py) against model.md section 1 and kernel-semantics.md 9.

Every expected value is read off the spec's summary table, not off the registry.
"""

from __future__ import annotations

import dataclasses
from itertools import pairwise

import pytest

from kvmgen.model.eras import (
    E6_SLOT_FLUSH,
    ERAS,
    BumpScheme,
    Era,
    InitScheme,
    InProgressView,
    WrapCheckTiming,
    WrapTest,
    ZapScope,
    ZapStyle,
)

NAMES = [f"E{i}" for i in range(13)]

M18 = (1 << 18) - 1
M19 = (1 << 19) - 1
M20 = (1 << 20) - 1

# era -> (nominal width, check mask, stamp mask): kernel-semantics.md section 9,
# "MMIO gen width (stored)".
WIDTHS: dict[str, tuple[int, int, int]] = {
    "E0": (0, 0, 0),
    "E1": (19, M19, M19),
    "E2": (19, M19, M19),
    "E3": (20, M20, M20 - 1),  # bit 0 (the in-progress bit) is not stored
    "E4": (20, M20, M20 - 1),
    "E5": (20, M20, M20 - 1),
    "E6": (19, M19, (1 << 10) - 1),  # encoding bug: 10 effective bits
    "E7": (19, M19, (1 << 10) - 1),
    "E8": (18, M18, (1 << 9) - 1),  # 9 effective bits
    "E9": (18, M18, M18),
    "E10": (19, M19, M19),
    "E11": (19, M19, M19),
    "E12": (19, M19, M19),
}

# era -> versions text (kernel-semantics.md section 9, model.md section 1 boundaries)
VERSIONS = {
    "E0": "up to 3.10",
    "E1": "3.11",
    "E2": "3.12-3.17",
    "E3": "3.18-4.1",
    "E4": "4.2-4.10",
    "E5": "4.11-5.0",
    "E6": "5.1-5.3",
    "E7": "5.4-5.5",
    "E8": "5.6-5.9",
    "E9": "5.10-5.12",
    "E10": "5.13-5.16",
    "E11": "5.17-6.7",
    "E12": "6.8+",
}

# NAS: 1 up to 4.1, 2 from 4.2 (SMM); from 6.2 (inside E11) and in E12 a VM may have 1.
NAS: dict[str, tuple[int, frozenset[int]]] = {
    **{name: (1, frozenset({1})) for name in ("E0", "E1", "E2", "E3")},
    **{name: (2, frozenset({2})) for name in ("E4", "E5", "E6", "E7", "E8", "E9", "E10")},
    "E11": (2, frozenset({1, 2})),
    "E12": (2, frozenset({1, 2})),
}


def test_registry_holds_e0_to_e12_in_order() -> None:
    assert list(ERAS) == NAMES
    assert [era.name for era in ERAS.values()] == NAMES


def test_names_are_unique_and_keys_match() -> None:
    names = [era.name for era in ERAS.values()]
    assert len(set(names)) == len(names) == 13
    for key, era in ERAS.items():
        assert key == era.name
        assert isinstance(era, Era)


def test_version_ranges_are_contiguous_and_chronological() -> None:
    eras = list(ERAS.values())
    assert eras[0].first == (0, 0)
    assert eras[-1].last is None
    for before, after in pairwise(eras):
        assert before.last is not None
        assert before.first <= before.last < after.first
        # the next era starts at the next minor release of the same major, or x.0
        major, minor = before.last
        assert after.first in {(major, minor + 1), (major + 1, 0)}


@pytest.mark.parametrize("name", NAMES)
def test_widths_and_masks(name: str) -> None:
    era = ERAS[name]
    width, check, stamp = WIDTHS[name]
    assert era.nominal_width == width
    assert era.nominal_mask == ((1 << width) - 1 if width else 0)
    assert era.check_mask == check
    assert era.stamp_mask == stamp


@pytest.mark.parametrize("name", NAMES)
def test_stamp_mask_is_a_subset_of_check_mask(name: str) -> None:
    era = ERAS[name]
    assert era.stamp_mask & ~era.check_mask == 0
    assert era.check_mask & ~era.nominal_mask == 0


@pytest.mark.parametrize("name", ["E3", "E4", "E5"])
def test_odd_eras_do_not_store_bit_0(name: str) -> None:
    era = ERAS[name]
    assert era.stamp_mask & 1 == 0
    assert era.stamp_mask | 1 == era.check_mask
    assert bin(era.stamp_mask).count("1") == 19


@pytest.mark.parametrize(("name", "stored"), [("E6", 10), ("E7", 10), ("E8", 9)])
def test_encoding_bug_eras_store_few_bits(name: str, stored: int) -> None:
    era = ERAS[name]
    assert era.stamp_mask == (1 << stored) - 1
    assert era.stamp_mask != era.check_mask


@pytest.mark.parametrize("name", NAMES)
def test_address_space_rules(name: str) -> None:
    era = ERAS[name]
    default, allowed = NAS[name]
    assert era.default_address_spaces == default
    assert era.allowed_address_spaces == allowed
    assert era.default_address_spaces in era.allowed_address_spaces


@pytest.mark.parametrize("name", NAMES)
def test_historical_bias_is_150_exactly_in_e1_to_e5(name: str) -> None:
    expected = 150 if name in {"E1", "E2", "E3", "E4", "E5"} else 0
    assert ERAS[name].historical_bias == expected


def test_e0_has_no_mmio_generation() -> None:
    e0 = ERAS["E0"]
    assert not e0.has_mmio_generation
    assert e0.wrap_test == WrapTest.NONE
    assert e0.wrap_timing == WrapCheckTiming.NEVER
    assert e0.create_flush_scope == ZapScope.MMIO_SPTES
    assert not e0.cache_has_generation
    assert all(ERAS[n].has_mmio_generation for n in NAMES[1:])
    assert all(ERAS[n].create_flush_scope == ZapScope.NOTHING for n in NAMES[1:])


def test_bias_placement_and_bump_schemes() -> None:
    # E1/E2: bias in the getter, +1 per bump; E3/E4: -B, odd/even; E5: 2*as-B, +1/+3;
    # E6+: (as-B) mod 2^W, bit 63.
    for name in ("E1", "E2"):
        era = ERAS[name]
        assert era.bias_in_getter
        assert era.init_scheme == InitScheme.ZERO
        assert era.bump_scheme == BumpScheme.PLAIN
    for name in ("E3", "E4"):
        assert ERAS[name].init_scheme == InitScheme.MINUS_BIAS
        assert ERAS[name].bump_scheme == BumpScheme.ODD_EVEN
    assert ERAS["E5"].init_scheme == InitScheme.TWICE_AS_MINUS_BIAS
    assert ERAS["E5"].bump_scheme == BumpScheme.ODD_STRIDE
    for name in NAMES[6:]:
        era = ERAS[name]
        assert era.init_scheme == InitScheme.AS_MINUS_BIAS_TRUNCATED
        assert era.bump_scheme == BumpScheme.BIT63
        assert not era.bias_in_getter
    assert [n for n in NAMES if ERAS[n].bias_in_getter] == ["E1", "E2"]


def test_wrap_tests_and_timing() -> None:
    assert ERAS["E1"].wrap_test == WrapTest.AT_LEAST
    assert ERAS["E1"].wrap_threshold == 0x7FFFE
    assert ERAS["E1"].wrap_timing == WrapCheckTiming.PER_IOCTL_AFTER_PUBLISH
    assert ERAS["E2"].wrap_test == WrapTest.AT_LEAST
    assert ERAS["E2"].wrap_threshold == 0x7FFFF
    for name in ("E2", "E3", "E4", "E5"):
        assert ERAS[name].wrap_timing == WrapCheckTiming.PER_BUMP_AFTER_PUBLISH
    for name in NAMES[3:]:
        assert ERAS[name].wrap_test == WrapTest.LOW_BITS_ZERO
    for name in NAMES[6:]:
        assert ERAS[name].wrap_timing == WrapCheckTiming.PER_BUMP_BEFORE_PUBLISH


def test_in_progress_views_and_cache_rules() -> None:
    for name in ("E0", "E1", "E2"):
        assert ERAS[name].in_progress_view == InProgressView.OLD_LAYOUT_NEW_GEN
        assert not ERAS[name].cache_has_generation
    for name in ("E3", "E4", "E5"):
        assert ERAS[name].in_progress_view == InProgressView.NEW_LAYOUT_ODD_GEN
        assert ERAS[name].cache_has_generation
        assert not ERAS[name].cache_skips_in_progress
    for name in NAMES[6:]:
        assert ERAS[name].in_progress_view == InProgressView.NEW_LAYOUT_BIT63
        assert ERAS[name].cache_has_generation
        assert ERAS[name].cache_skips_in_progress


def test_zap_scopes() -> None:
    # E6 drops the MMIO SPTEs of every address space by a list walk; E1-E5 and E7+
    # use fast invalidation of everything (model.md section 3, "Zaps").
    assert ERAS["E6"].wrap_zap_scope == ZapScope.MMIO_SPTES
    assert ERAS["E6"].wrap_zap_style == ZapStyle.WALK
    for name in NAMES[1:]:
        if name != "E6":
            assert ERAS[name].wrap_zap_scope == ZapScope.ALL_SPTES
            assert ERAS[name].wrap_zap_style == ZapStyle.FAST
    # the memslot flush is whole-MMU everywhere in the registry (5.1/5.2 are the variant)
    for name in NAMES:
        assert ERAS[name].flush_scope == ZapScope.ALL_SPTES
    assert ERAS["E0"].flush_style == ZapStyle.WALK


def test_e6_slot_flush_variant_differs_only_in_variant_and_flush() -> None:
    plain = ERAS["E6"]
    assert plain.variant is None
    assert E6_SLOT_FLUSH.name == "E6"
    assert E6_SLOT_FLUSH.variant == "5.1-5.2"
    assert E6_SLOT_FLUSH.flush_scope == ZapScope.SLOT_RAM_SPTES
    assert E6_SLOT_FLUSH.flush_style == ZapStyle.WALK
    differing = {
        f.name
        for f in dataclasses.fields(Era)
        if getattr(plain, f.name) != getattr(E6_SLOT_FLUSH, f.name)
    }
    assert differing == {"variant", "flush_scope", "flush_style"}
    assert E6_SLOT_FLUSH not in ERAS.values()


@pytest.mark.parametrize("name", NAMES)
def test_versions_text(name: str) -> None:
    assert ERAS[name].versions == VERSIONS[name]


def test_eras_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ERAS["E5"].historical_bias = 0  # type: ignore[misc]
