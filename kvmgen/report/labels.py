"""How a run is named in every human output (tables, plots, HTML): one place."""

from __future__ import annotations

from kvmgen.model.policy import RunSpec


def era_text(spec: RunSpec) -> str:
    """``E5 (4.19)``, ``E6 (5.2) [5.1-5.2]``: the era, the kernel asked for, the variant."""
    text = spec.era.name + (f" ({spec.kernel})" if spec.kernel else "")
    return text + (f" [{spec.era.variant}]" if spec.era.variant else "")


def bias_text(spec: RunSpec) -> str:
    """``bias 150``, ``literal -150 mod 2^64``, or ``no MMIO generation`` (E0)."""
    if spec.bias is None:
        return "no MMIO generation"
    if getattr(spec, "literal", False):
        return f"literal -{spec.bias} mod 2^64"
    return f"bias {spec.bias}"


def run_label(spec: RunSpec, separator: str = ", ") -> str:
    """The era, then the policies and bias: ``E5 (4.19), historical, bias 150``."""
    return f"{era_text(spec)}{separator}{'/'.join(spec.policies)}, {bias_text(spec)}"
