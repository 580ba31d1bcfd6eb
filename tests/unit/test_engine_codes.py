"""The engine's integer codes are copies of the model's enums: each one is pinned here.

numba's cache notices edits to kernels.py only, so the kernels keep their own
constants; these tests fail the moment a model enum and its kernel copy differ.
"""

from __future__ import annotations

import pytest

from kvmgen.engine import kernels as k
from kvmgen.model.eras import BumpScheme, InProgressView, WrapCheckTiming, WrapTest, ZapScope
from kvmgen.stats import OUTCOMES
from kvmgen.trace.records import Op, Window

PINNED = [
    (
        ZapScope,
        "Z_",
        {
            "NOTHING": "NOTHING",
            "ALL_SPTES": "ALL",
            "MMIO_SPTES": "MMIO",
            "SLOT_RAM_SPTES": "SLOT_RAM",
        },
    ),
    (
        BumpScheme,
        "B_",
        {"PLAIN": "PLAIN", "ODD_EVEN": "ODD_EVEN", "ODD_STRIDE": "ODD_STRIDE", "BIT63": "BIT63"},
    ),
    (
        WrapCheckTiming,
        "T_",
        {
            "NEVER": "NEVER",
            "PER_IOCTL_AFTER_PUBLISH": "PER_IOCTL",
            "PER_BUMP_AFTER_PUBLISH": "AFTER",
            "PER_BUMP_BEFORE_PUBLISH": "BEFORE",
        },
    ),
    (
        InProgressView,
        "V_",
        {
            "OLD_LAYOUT_NEW_GEN": "OLD_LAYOUT",
            "NEW_LAYOUT_ODD_GEN": "ODD",
            "NEW_LAYOUT_BIT63": "BIT63",
        },
    ),
    (WrapTest, "WT_", {"NONE": "NONE", "AT_LEAST": "AT_LEAST", "LOW_BITS_ZERO": "LOW_BITS_ZERO"}),
    (Op, "OP_", {name: name for name in Op.__members__}),
    (Window, "WIN_", {name: name for name in Window.__members__}),
]


@pytest.mark.parametrize(
    ("enum", "prefix", "names"), PINNED, ids=lambda p: getattr(p, "__name__", "")
)
def test_every_enum_member_has_its_kernel_code(enum, prefix, names) -> None:
    assert set(names) == set(enum.__members__), f"{enum.__name__} gained or lost a member"
    for member, short in names.items():
        assert getattr(k, prefix + short) == enum[member].value, f"{prefix}{short} != {member}"


def test_outcome_offsets_follow_stats_order() -> None:
    offsets = [
        k.O_RAM_FAULT,
        k.O_RAM_REFAULT,
        k.O_RAM_ACCESS,
        k.O_MMIO_SLOW,
        k.O_MMIO_FAST,
        k.O_MMIO_REFAULT,
        k.O_CACHE_HIT,
    ]
    assert offsets == list(range(len(OUTCOMES)))
    assert len(OUTCOMES) == k.N_OUTCOMES
    assert OUTCOMES == (
        "ram_fault",
        "ram_refault",
        "ram_access",
        "mmio_slow_path",
        "mmio_fast_path",
        "mmio_refault",
        "cache_hit",
    )


def test_counter_slots_fit_in_the_counter_array() -> None:
    assert k.C_OUTCOME + k.N_OUTCOMES <= k.C_WRAP_ZAPS
    assert k.C_IDENT + 4 <= k.N_COUNTERS
    assert k.C_LAST + k.N_RFIELDS <= k.C_IDENT
