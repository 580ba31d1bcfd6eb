"""How a run is named in every human output (tables, plots, HTML): one place.

The text itself is :func:`kvmgen.formatting.run_label`; these take a run spec.
"""

from __future__ import annotations

from kvmgen import formatting
from kvmgen.model.policy import RunSpec


def era_text(spec: RunSpec) -> str:
    """``E5 (4.19)``, ``E7 (5.4-5.7)``, ``E6 (5.2) [5.1-5.2]``: era, kernels, variant."""
    era = spec.era
    return formatting.era_text(
        era.name, kernel=spec.kernel, versions=era.versions, variant=era.variant
    )


def bias_text(spec: RunSpec) -> str:
    """``bias 150``, ``bias -150 mod 2^64`` (literal), or ``no MMIO generation`` (E0)."""
    return formatting.bias_text(spec.bias, literal=spec.literal)


def policy_text(spec: RunSpec) -> str:
    """``historical/none, bias 0``: the policies of the run and the bias they mean."""
    return formatting.policy_text(spec.policies, spec.bias, literal=spec.literal)


def run_label(spec: RunSpec, separator: str = ", ") -> str:
    """The era, then the policies and bias: ``E5 (4.19), historical, bias 150``."""
    return spec.describe(separator)
