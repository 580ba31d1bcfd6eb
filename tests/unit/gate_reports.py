"""Hand-made report documents for the gate tests: every metric set explicitly."""

from __future__ import annotations

from typing import Any

from kvmgen.gate.metrics import METRICS
from kvmgen.report.document import REPORT_VERSION

SHA_A = "a" * 64
SHA_B = "b" * 64


def make_run(
    era: str = "E5",
    *,
    kernel: str | None = "4.19",
    bias: int | None = 150,
    policies: tuple[str, ...] = ("historical",),
    address_spaces: int = 2,
    variant: str | None = None,
    **values: int,
) -> dict[str, Any]:
    """A run dict with the identity given and every metric 0 unless set in ``values``."""
    unknown = set(values) - set(METRICS)
    assert not unknown, unknown
    v = dict.fromkeys(METRICS, 0) | values
    return {
        "era": era,
        "era_variant": variant,
        "kernel": kernel,
        "address_spaces": address_spaces,
        "policies": list(policies),
        "bias": bias,
        "wraps_total": v["wraps"],
        "wraps_undetected": v["undetected_wraps"],
        "zaps": {
            "wrap": v["wrap_zaps"],
            "memslot_flush": v["memslot_flush_zaps"],
            "dropped": {
                "wrap": {"ram": v["sptes_dropped"], "mmio": 0},
                "memslot_flush": {"ram": 0, "mmio": 0},
            },
        },
        "accesses": {
            "ram_refault": v["ram_refaults"],
            "mmio_refault": v["mmio_refaults"],
            "mmio_slow_path": v["mmio_slow_paths"],
        },
        "stale_hits": {"harmful": v["harmful_stale_hits"], "benign": v["benign_stale_hits"]},
        "costs": {"invalidation": v["invalidation_cycles"], "total": v["total_cycles"]},
    }


def make_report(
    runs: list[dict[str, Any]],
    *,
    sha: str = SHA_A,
    version: int = REPORT_VERSION,
    skipped: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A report document around ``runs``."""
    return {
        "kvmgen_report": version,
        "trace": {"sha256": sha, "events": 1},
        "runs": runs,
        "skipped": skipped or [],
    }
