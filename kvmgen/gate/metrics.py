"""Per-run metrics and run identity, read from a report document's ``runs`` entries.

The metric names are those of :data:`kvmgen.report.document.DELTA_METRICS` and
mean what :func:`kvmgen.report.document.metrics` computes from a live run; here
they are read back from the JSON form (:func:`kvmgen.report.document.run_dict`),
so a baseline file and a fresh replay give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kvmgen.report.document import DELTA_METRICS

METRICS: tuple[str, ...] = DELTA_METRICS
"""Every metric a limit can name, in report order."""

# Where each metric lives in a run dict; a tuple of paths is summed.
_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "wrap_zaps": (("zaps", "wrap"),),
    "memslot_flush_zaps": (("zaps", "memslot_flush"),),
    "sptes_dropped": tuple(
        ("zaps", "dropped", kind, what)
        for kind in ("wrap", "memslot_flush")
        for what in ("ram", "mmio")
    ),
    "ram_refaults": (("accesses", "ram_refault"),),
    "mmio_refaults": (("accesses", "mmio_refault"),),
    "mmio_slow_paths": (("accesses", "mmio_slow_path"),),
    "wraps": (("wraps_total",),),
    "undetected_wraps": (("wraps_undetected",),),
    "harmful_stale_hits": (("stale_hits", "harmful"),),
    "benign_stale_hits": (("stale_hits", "benign"),),
    "invalidation_cycles": (("costs", "invalidation"),),
    "total_cycles": (("costs", "total"),),
}


class ReportFormatError(ValueError):
    """A report document lacks a key kvmgen needs, or holds the wrong type there."""


def lookup(document: Mapping[str, Any], *path: str) -> Any:
    """``document[path[0]][path[1]]...``, or :class:`ReportFormatError` naming the dotted key."""
    node: Any = document
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            raise ReportFormatError(f"missing key {'.'.join(path[: depth + 1])!r}")
        node = node[key]
    return node


def _count(run: Mapping[str, Any], path: tuple[str, ...]) -> int:
    value = lookup(run, *path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportFormatError(f"{'.'.join(path)}: expected an integer, got {value!r}")
    return value


def run_metrics(run: Mapping[str, Any]) -> dict[str, int]:
    """Every metric of one report run, keyed as in :data:`METRICS`."""
    return {name: sum(_count(run, path) for path in _PATHS[name]) for name in METRICS}


@dataclass(frozen=True)
class RunId:
    """Which run of a trace this is: era, kernel, address spaces and bias.

    Two runs are the same run (:attr:`key`) when they agree on era, era variant,
    kernel, address-space count and bias; the policy names are only for display,
    since ``--bias 150`` and ``historical`` on E5 replay the same thing.
    """

    era: str
    era_variant: str | None
    kernel: str | None
    address_spaces: int
    bias: int | None
    policies: tuple[str, ...]

    @classmethod
    def from_run(cls, run: Mapping[str, Any]) -> RunId:
        """Read the identity fields of a report run."""
        era = lookup(run, "era")
        policies = lookup(run, "policies")
        if not isinstance(era, str) or not isinstance(policies, list):
            raise ReportFormatError("era/policies: expected a string and a list")
        return cls(
            era=era,
            era_variant=lookup(run, "era_variant"),
            kernel=lookup(run, "kernel"),
            address_spaces=_count(run, ("address_spaces",)),
            bias=lookup(run, "bias"),
            policies=tuple(str(p) for p in policies),
        )

    @property
    def key(self) -> tuple[object, ...]:
        """What a baseline run is matched on."""
        return (self.era, self.era_variant, self.kernel, self.address_spaces, self.bias)

    @property
    def label(self) -> str:
        """The run label every output uses, e.g. ``E5 (4.19), historical, bias 150``.

        Read back from a report, it is the label the live run had
        (:attr:`kvmgen.model.policy.RunSpec.label`): the era's kernel range and
        default address-space count come from the era registry.
        """
        from kvmgen.formatting import run_label
        from kvmgen.model.eras import ERAS
        from kvmgen.model.policy import LITERAL_PREFIX, Policy, literal_applies

        era = ERAS.get(self.era)
        # A literal policy gets a run of its own only where it differs (E6 on).
        literal = (
            era is not None
            and bool(self.policies)
            and all(p.startswith(LITERAL_PREFIX) for p in self.policies)
            and literal_applies(era, Policy(self.policies[0], self.bias, literal=True))
        )
        return run_label(
            self.era,
            kernel=self.kernel,
            versions=era.versions if era else "?",
            variant=self.era_variant,
            policies=self.policies,
            bias=self.bias,
            literal=literal,
            address_spaces=self.address_spaces,
            default_address_spaces=era.default_address_spaces if era else self.address_spaces,
        )

    def as_dict(self) -> dict[str, Any]:
        """The identity as JSON-ready data."""
        return {
            "era": self.era,
            "era_variant": self.era_variant,
            "kernel": self.kernel,
            "address_spaces": self.address_spaces,
            "bias": self.bias,
            "policies": list(self.policies),
        }


@dataclass(frozen=True)
class RunMetrics:
    """One run of a report: who it is and its metrics."""

    id: RunId
    values: dict[str, int]


def report_runs(document: Mapping[str, Any]) -> list[RunMetrics]:
    """Every run of a report document with its metrics, in report order."""
    runs = lookup(document, "runs")
    if not isinstance(runs, list):
        raise ReportFormatError("runs: expected a list")
    out = []
    for index, run in enumerate(runs):
        try:
            out.append(RunMetrics(RunId.from_run(run), run_metrics(run)))
        except ReportFormatError as exc:
            raise ReportFormatError(f"runs[{index}]: {exc}") from None
    return out


def index_runs(runs: Iterable[RunMetrics]) -> dict[tuple[object, ...], RunMetrics]:
    """Runs by :attr:`RunId.key`; a repeated key (``--era E5,E5``) gets an occurrence suffix."""
    out: dict[tuple[object, ...], RunMetrics] = {}
    seen: dict[tuple[object, ...], int] = {}
    for run in runs:
        n = seen.get(run.id.key, 0)
        seen[run.id.key] = n + 1
        out[(*run.id.key, n)] = run
    return out
