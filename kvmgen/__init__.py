"""kvmgen: replay memslot-update and guest-access traces through a bit-exact model of KVM's
MMIO-generation scheme, era by era, with and without the historical bias.

The library's functions (:mod:`kvmgen.api`) are available from this package::

    import kvmgen

    session = kvmgen.replay("traces/seed-stale-gen0.yaml", kernel="4.1")

They are loaded on first use, so importing kvmgen (and ``kvmgen --help``) stays
cheap; numba is imported only when the engine first runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kvmgen.version import __version__

if TYPE_CHECKING:
    from kvmgen.api import (
        check,
        compare,
        event_records,
        forecast,
        html_report,
        import_log,
        observed,
        open_trace,
        probe_kernel,
        record_vmm,
        replay,
        report_document,
        search,
        sweep,
    )

__all__ = [
    "__version__",
    "check",
    "compare",
    "event_records",
    "forecast",
    "html_report",
    "import_log",
    "observed",
    "open_trace",
    "probe_kernel",
    "record_vmm",
    "replay",
    "report_document",
    "search",
    "sweep",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from kvmgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'kvmgen' has no attribute {name!r}")
