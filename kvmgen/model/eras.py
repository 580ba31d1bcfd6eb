"""The kernel eras E0 to E12 as data: one frozen record each, one registry.

Every behaviour that differs between kernels is a field here, so the engine
and the reference model branch on values, never on era names. Field meanings
and evidence are in ``docs/model.md``; the per-era facts come from
``kernel-semantics.md`` sections 3, 4 and 9.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum


class BumpScheme(IntEnum):
    """How one memslot install changes the full 64-bit generation of its address space."""

    PLAIN = 0  # +1, no in-progress state (E0-E2)
    ODD_EVEN = 1  # +1 (odd: in progress), publish, +1 (E3, E4)
    ODD_STRIDE = 2  # +1 (odd), publish, +(2*NAS - 1) (E5)
    BIT63 = 3  # set bit 63, publish, clear it and add NAS (E6+)


class InitScheme(IntEnum):
    """Where each address space's generation starts for bias ``B`` (model.md section 1)."""

    ZERO = 0  # 0; E1/E2 put the bias into the MMIO-generation getter instead
    MINUS_BIAS = 1  # -B mod 2^64 (E3, E4)
    TWICE_AS_MINUS_BIAS = 2  # 2*as - B mod 2^64 (E5)
    AS_MINUS_BIAS_TRUNCATED = 3  # (as - B) mod 2^W (E6+: keeps bit 63 clear)


class WrapTest(IntEnum):
    """The kernel's test that decides a wrap zap, applied to the new generation."""

    NONE = 0  # E0: no MMIO generation
    AT_LEAST = 1  # truncated value >= threshold (E1: 0x7FFFE, E2: 0x7FFFF)
    LOW_BITS_ZERO = 2  # (truncated value & ~ignore) == 0 (E3-E5: ignore 0; E6+: NAS-1)


class WrapCheckTiming(IntEnum):
    """When the wrap test runs relative to the bump that makes the generation visible."""

    NEVER = 0
    PER_IOCTL_AFTER_PUBLISH = 1  # E1: once per KVM_SET_USER_MEMORY_REGION, after commit
    PER_BUMP_AFTER_PUBLISH = 2  # E2-E5: kvm_arch_memslots_updated after install
    PER_BUMP_BEFORE_PUBLISH = 3  # E6+: inside the in-progress window


class InProgressView(IntEnum):
    """What an ``in_progress`` access in the updated address space sees (model.md section 2)."""

    OLD_LAYOUT_NEW_GEN = 0  # E0-E2: the race ee3d1570b586 fixed
    NEW_LAYOUT_ODD_GEN = 1  # E3-E5
    NEW_LAYOUT_BIT63 = 2  # E6+


class ZapScope(IntEnum):
    """What a zap drops."""

    NOTHING = 0
    ALL_SPTES = 1  # every SPTE of every address space (fast invalidation, zap-all)
    MMIO_SPTES = 2  # every MMIO SPTE of every address space
    SLOT_RAM_SPTES = 3  # the RAM SPTEs of the slot's old range in its address space


class ZapStyle(IntEnum):
    """How a zap walks the MMU: decides its per-dropped-SPTE cost."""

    FAST = 0  # obsolete-generation invalidation (mmu_valid_gen)
    WALK = 1  # list walk zapping page by page


@dataclass(frozen=True)
class Era:
    """One kernel era: every parameter of the MMIO-generation scheme that kvmgen models."""

    name: str
    first: tuple[int, int]
    last: tuple[int, int] | None
    summary: str
    has_mmio_generation: bool
    default_address_spaces: int
    allowed_address_spaces: frozenset[int]
    historical_bias: int
    init_scheme: InitScheme
    bump_scheme: BumpScheme
    bias_in_getter: bool
    # Width of the "nominal" truncated generation, whose wrap kvmgen reports.
    nominal_width: int
    # Bits of the current generation the check compares, and bits that survive
    # in the SPTE (smaller than check_mask in E3-E8: bit 0 dropped, or the
    # E6-E8 encoding bug).
    check_mask: int
    stamp_mask: int
    wrap_test: WrapTest
    wrap_threshold: int
    wrap_timing: WrapCheckTiming
    wrap_zap_scope: ZapScope
    wrap_zap_style: ZapStyle
    flush_scope: ZapScope
    flush_style: ZapStyle
    # E0 drops every MMIO SPTE after a create or move is published.
    create_flush_scope: ZapScope
    create_flush_style: ZapStyle
    in_progress_view: InProgressView
    cache_has_generation: bool
    cache_skips_in_progress: bool
    variant: str | None = None
    evidence: str = ""

    @property
    def versions(self) -> str:
        """The mainline versions the era covers, as text."""
        first = f"{self.first[0]}.{self.first[1]}"
        if self.first == (0, 0) and self.last is not None:
            return f"up to {self.last[0]}.{self.last[1]}"
        if self.last is None:
            return f"{first}+"
        last = f"{self.last[0]}.{self.last[1]}"
        return first if last == first else f"{first}-{last}"

    @property
    def nominal_mask(self) -> int:
        """Mask of the nominal truncated generation."""
        return (1 << self.nominal_width) - 1 if self.nominal_width else 0


_M19 = (1 << 19) - 1
_M18 = (1 << 18) - 1
_M20 = (1 << 20) - 1

# Each era is the one before it plus what the kernel changed: reading the chain top
# to bottom is reading the history (kernel-semantics.md section 3).
_E0 = Era(
    name="E0",
    first=(0, 0),
    last=(3, 10),
    summary="no MMIO generation; create/move drop every MMIO SPTE",
    has_mmio_generation=False,
    default_address_spaces=1,
    allowed_address_spaces=frozenset({1}),
    historical_bias=0,
    init_scheme=InitScheme.ZERO,
    bump_scheme=BumpScheme.PLAIN,
    bias_in_getter=False,
    nominal_width=0,
    check_mask=0,
    stamp_mask=0,
    wrap_test=WrapTest.NONE,
    wrap_threshold=0,
    wrap_timing=WrapCheckTiming.NEVER,
    wrap_zap_scope=ZapScope.NOTHING,
    wrap_zap_style=ZapStyle.WALK,
    flush_scope=ZapScope.ALL_SPTES,
    flush_style=ZapStyle.WALK,
    create_flush_scope=ZapScope.MMIO_SPTES,
    create_flush_style=ZapStyle.WALK,
    in_progress_view=InProgressView.OLD_LAYOUT_NEW_GEN,
    cache_has_generation=False,
    cache_skips_in_progress=False,
    evidence="kernel-semantics.md 3/E0: v3.10.65 kvm_mmu_zap_mmio_sptes on CREATE/MOVE",
)
_E1 = replace(
    _E0,
    name="E1",
    first=(3, 11),
    last=(3, 11),
    summary="19-bit gen, -150 bias in the getter, wrap check once per ioctl (>= MAX-1)",
    has_mmio_generation=True,
    historical_bias=150,
    bias_in_getter=True,
    nominal_width=19,
    check_mask=_M19,
    stamp_mask=_M19,
    wrap_test=WrapTest.AT_LEAST,
    wrap_threshold=_M19 - 1,
    wrap_timing=WrapCheckTiming.PER_IOCTL_AFTER_PUBLISH,
    wrap_zap_scope=ZapScope.ALL_SPTES,
    wrap_zap_style=ZapStyle.FAST,
    flush_style=ZapStyle.FAST,
    create_flush_scope=ZapScope.NOTHING,
    create_flush_style=ZapStyle.FAST,
    evidence="f8f559422b6c, 69c9ea93eaea; code v3.11",
)
_E2 = replace(
    _E1,
    name="E2",
    first=(3, 12),
    last=(3, 17),
    summary="as E1, wrap check after every bump (== MAX)",
    wrap_threshold=_M19,
    wrap_timing=WrapCheckTiming.PER_BUMP_AFTER_PUBLISH,
    evidence="e59dbe09f8e6; code v3.13.10-v3.17",
)
_E3 = replace(
    _E2,
    name="E3",
    first=(3, 18),
    last=(4, 1),
    summary="bias moved to init (-150), odd = in progress, 20-bit value, bit 0 not stored",
    init_scheme=InitScheme.MINUS_BIAS,
    bump_scheme=BumpScheme.ODD_EVEN,
    bias_in_getter=False,
    nominal_width=20,
    check_mask=_M20,
    stamp_mask=_M20 & ~1,
    wrap_test=WrapTest.LOW_BITS_ZERO,
    wrap_threshold=0,
    in_progress_view=InProgressView.NEW_LAYOUT_ODD_GEN,
    cache_has_generation=True,
    evidence="00f034a12fdd, ee3d1570b586, 56f17dd3fbc4; code v3.18.30",
)
_E4 = replace(
    _E3,
    name="E4",
    first=(4, 2),
    last=(4, 10),
    summary="two address spaces (SMM) walking identical sequences from -150",
    default_address_spaces=2,
    allowed_address_spaces=frozenset({2}),
    evidence="f481b069e674, 699023e23965; code v4.2.8-v4.10.1",
)
_E5 = replace(
    _E4,
    name="E5",
    first=(4, 11),
    last=(5, 0),
    summary="per-AS generations 2*as-150, +4 per bump: AS 0 never zaps with the bias",
    init_scheme=InitScheme.TWICE_AS_MINUS_BIAS,
    bump_scheme=BumpScheme.ODD_STRIDE,
    evidence="4bd518f1598d; code v4.11-v5.0.1",
)
_E6 = replace(
    _E5,
    name="E6",
    first=(5, 1),
    last=(5, 3),
    summary="bit-63 in-progress flag, zap before publish, encoding bug (10 bits stored), "
    "MMIO-only list-walk zap",
    historical_bias=0,
    init_scheme=InitScheme.AS_MINUS_BIAS_TRUNCATED,
    bump_scheme=BumpScheme.BIT63,
    nominal_width=19,
    check_mask=_M19,
    stamp_mask=(1 << 10) - 1,
    wrap_timing=WrapCheckTiming.PER_BUMP_BEFORE_PUBLISH,
    wrap_zap_scope=ZapScope.MMIO_SPTES,
    wrap_zap_style=ZapStyle.WALK,
    in_progress_view=InProgressView.NEW_LAYOUT_BIT63,
    cache_skips_in_progress=True,
    evidence="0e32958ec449, 164bf7e56c5a, cae7ed3c2cb0; code v5.2.1, v5.3",
)
_E7 = replace(
    _E6,
    name="E7",
    first=(5, 4),
    last=(5, 5),
    summary="as E6 with kvm_mmu_zap_all_fast for the wrap zap",
    wrap_zap_scope=ZapScope.ALL_SPTES,
    wrap_zap_style=ZapStyle.FAST,
    evidence="92f58b5c0181, 6eeb4ef049e7; code v5.4",
)
_E8 = replace(
    _E7,
    name="E8",
    first=(5, 6),
    last=(5, 9),
    summary="18-bit generation, still mis-encoded (9 bits stored)",
    nominal_width=18,
    check_mask=_M18,
    stamp_mask=(1 << 9) - 1,
    evidence="56871d444bc4; code v5.6.4, v5.8.1",
)
_E9 = replace(
    _E8,
    name="E9",
    first=(5, 10),
    last=(5, 12),
    summary="18-bit generation, encoded correctly",
    stamp_mask=_M18,
    evidence="34c0f6f2695a; code v5.10-v5.12.9",
)
_E10 = replace(
    _E9,
    name="E10",
    first=(5, 13),
    last=(5, 16),
    summary="19-bit generation (SPTE bits 3-10 and 52-62)",
    nominal_width=19,
    check_mask=_M19,
    stamp_mask=_M19,
    evidence="8120337a4c55, edea7c4fc215; code v5.14-rc5, v5.15.55",
)
_E11 = replace(
    _E10,
    name="E11",
    first=(5, 17),
    last=(6, 7),
    summary="kvm_swap_active_memslots; 1 address space possible from 6.2 (no SMM)",
    allowed_address_spaces=frozenset({1, 2}),
    evidence="a54d806688fe; code v5.17-rc5, v6.1, v6.4.4",
)
_E12 = replace(
    _E11,
    name="E12",
    first=(6, 8),
    last=None,
    summary="per-VM address-space count (1 for private-memory VMs)",
    evidence="eed52e434bc3; code v6.8, v6.12; observed on 6.18.44",
)

ERAS: dict[str, Era] = {
    era.name: era for era in (_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12)
}
"""The registry: era name -> era, in chronological order."""

# 5.1 and 5.2 flush only the deleted/moved slot's RAM SPTEs; 5.3 (and --era E6)
# flushes the whole MMU (kernel-semantics.md section 12).
E6_SLOT_FLUSH = replace(
    ERAS["E6"],
    variant="5.1-5.2",
    flush_scope=ZapScope.SLOT_RAM_SPTES,
    flush_style=ZapStyle.WALK,
)
