"""Closed-form generation arithmetic of one run (docs/model.md sections 2 and 3).

The engine and the reference replay bump by bump; the forecast, the search's
guided bump counts and the plot timelines need the same numbers without replaying:
the generation after ``k`` bumps, the nominal truncated value, when it wraps and
whether the era's wrap test fires there. Everything here is exact integer
arithmetic on the era record and the run spec, including the bit-63 games of a
literal bias in E6 and later.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvmgen.model.eras import BumpScheme, WrapCheckTiming, WrapTest
from kvmgen.model.policy import RunSpec

U64 = (1 << 64) - 1
BIT63 = 1 << 63
LOW63 = BIT63 - 1


@dataclass(frozen=True)
class GenMath:
    """Generation arithmetic of one run: full values, nominal values, wraps and zaps."""

    spec: RunSpec

    @property
    def nas(self) -> int:
        """Address spaces of the run."""
        return self.spec.address_spaces

    @property
    def has_generation(self) -> bool:
        """False for E0, which stores no generation (and never wraps)."""
        return self.spec.era.has_mmio_generation

    @property
    def step(self) -> int:
        """How much one bump moves the full (and so the nominal) generation at rest."""
        scheme = self.spec.era.bump_scheme
        if scheme == BumpScheme.PLAIN:
            return 1
        if scheme == BumpScheme.ODD_EVEN:
            return 2
        if scheme == BumpScheme.ODD_STRIDE:
            return 2 * self.nas
        return self.nas

    @property
    def modulus(self) -> int:
        """2^W: the nominal value's range."""
        return 1 << self.spec.era.nominal_width

    @property
    def period(self) -> int:
        """Bumps of one address space between two wraps (2^W / step)."""
        return max(self.modulus // self.step, 1)

    def nominal(self, g: int) -> int:
        """The truncated generation whose wrap is reported."""
        return ((g + self.spec.mmio_offset) & U64) & self.spec.era.nominal_mask

    def mmio(self, g: int) -> int:
        """The MMIO generation the check compares."""
        return ((g + self.spec.mmio_offset) & U64) & self.spec.era.check_mask

    def stamp(self, g: int) -> int:
        """The bits an MMIO SPTE made at ``g`` keeps."""
        return self.mmio(g) & self.spec.era.stamp_mask

    def in_progress(self, g: int) -> bool:
        """Whether ``g`` reads as "update in progress" (odd in E3-E5, bit 63 from E6)."""
        scheme = self.spec.era.bump_scheme
        if scheme in (BumpScheme.ODD_EVEN, BumpScheme.ODD_STRIDE):
            return g & 1 == 1
        if scheme == BumpScheme.BIT63:
            return g & BIT63 != 0
        return False

    def shown(self, g: int) -> int:
        """The value an ``in_progress`` access sees during a bump from ``g``."""
        scheme = self.spec.era.bump_scheme
        if scheme == BumpScheme.PLAIN:
            return (g + 1) & U64
        if scheme == BumpScheme.BIT63:
            return g | BIT63
        return (g + 1) & U64

    def advance(self, g: int, k: int) -> int:
        """The full generation after ``k`` bumps from ``g``.

        In E6 and later a bump leaves ``(g & ~2^63) + NAS``, so a value that counts
        into bit 63 keeps it until the next bump (the literal-bias case).
        """
        if k <= 0:
            return g & U64
        if self.spec.era.bump_scheme != BumpScheme.BIT63:
            return (g + k * self.step) & U64
        return ((g & LOW63) + (k - 1) * self.nas) % BIT63 + self.nas

    def nominal_after(self, g: int, k: int) -> int:
        """The nominal value after ``k`` bumps from ``g`` (bit 63 lies above it)."""
        return (self.nominal(g) + k * self.step) % self.modulus

    def bumps_to_wrap(self, g: int) -> int:
        """Bumps from ``g`` until the bump on which the nominal value wraps (>= 1)."""
        top = self.modulus - 1
        return (top - self.nominal(g)) // self.step + 1

    def bumps_to_nominal(self, g: int, target: int) -> int | None:
        """The fewest bumps (>= 1) after which the nominal value is ``target``, if any."""
        diff = (target - self.nominal(g)) % self.modulus
        if diff % self.step:
            return None
        k = diff // self.step
        return k if k else self.period

    def wrap_test(self, new: int) -> bool:
        """The era's wrap-zap test on a new generation."""
        return self._fires(self.nominal(new))

    def test_runs(self, k: int, bumps_per_update: int) -> bool:
        """Whether the wrap test runs on an address space's ``k``-th bump.

        E1 tests once per ioctl, after the update's last bump; the others on every bump.
        """
        timing = self.spec.era.wrap_timing
        if timing == WrapCheckTiming.NEVER:
            return False
        if timing == WrapCheckTiming.PER_IOCTL_AFTER_PUBLISH:
            return k % bumps_per_update == 0
        return True

    def zaps_between(self, g0: int, lo: int, hi: int, bumps_per_update: int) -> list[int]:
        """Bumps ``k`` in ``(lo, hi]`` (counted from ``g0``) on which a wrap zap fires.

        Only called for ``hi`` a wrap bump: the test can fire only in the last few
        bumps before the wrap (E1/E2: nominal >= threshold) or on the wrap bump itself
        (E3 on: low bits zero), so a handful of bumps are examined, not the period.
        """
        era = self.spec.era
        if era.wrap_test == WrapTest.AT_LEAST:
            reach = (self.modulus - era.wrap_threshold) // self.step + 2
        else:
            reach = 1
        out = []
        for k in range(max(lo + 1, hi - reach), hi + 1):
            n = self.nominal_after(g0, k)
            if self.test_runs(k, bumps_per_update) and self._fires(n):
                out.append(k)
        return out

    def _fires(self, n: int) -> bool:
        era = self.spec.era
        if era.wrap_test == WrapTest.AT_LEAST:
            return n >= era.wrap_threshold
        if era.wrap_test == WrapTest.LOW_BITS_ZERO:
            ignore = self.nas - 1 if era.bump_scheme == BumpScheme.BIT63 else 0
            return n & ~ignore == 0
        return False

    def bit63_rest_bumps(self, g0: int) -> list[int]:
        """Bump ordinals after which ``g`` rests with bit 63 set (0 = from creation).

        Only a literal bias gets there in practice: at creation (``-B`` has bit 63)
        and at the bump where counting up reaches 2^63 again; the next is 2^63 bumps on.
        """
        if self.spec.era.bump_scheme != BumpScheme.BIT63:
            return []
        out = [0] if g0 & BIT63 else []
        k = -(-(BIT63 - (g0 & LOW63)) // self.nas)
        out.append(k)
        return out
