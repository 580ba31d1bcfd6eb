"""Trace files (model.md section 2): load YAML or JSON into validated records.

``load_trace`` is the only entry point the rest of kvmgen needs; every problem with
the input, from unreadable bytes to an overlapping slot, is a :class:`TraceError`.
"""

from __future__ import annotations

import hashlib
import os

from kvmgen.errors import TraceError, UsageError
from kvmgen.trace import scanned
from kvmgen.trace.json_fast import load_json_fast
from kvmgen.trace.json_loader import load_json
from kvmgen.trace.records import (
    UPDATE_OPS,
    AccessKind,
    Event,
    Op,
    ReadProgress,
    SlotDecl,
    Trace,
    VmHeader,
    Window,
)
from kvmgen.trace.runcheck import trace_error_for_as
from kvmgen.trace.yaml_fast import load_yaml_fast
from kvmgen.trace.yaml_loader import load_yaml

__all__ = [
    "UPDATE_OPS",
    "AccessKind",
    "Event",
    "Op",
    "SlotDecl",
    "Trace",
    "TraceError",
    "VmHeader",
    "Window",
    "check_trace_for_run",
    "detect_format",
    "load_trace",
]

_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def detect_format(name: str, data: bytes, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by the file suffix, else a sniff of ``data``."""
    if fmt is not None:
        if fmt not in ("yaml", "json"):
            raise UsageError(f"unknown trace format {fmt!r}: expected yaml or json")
        return fmt
    by_suffix = _SUFFIXES.get(os.path.splitext(name)[1].lower())
    if by_suffix is not None:
        return by_suffix
    return "json" if data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{" else "yaml"


def load_trace(
    path: str | os.PathLike[str],
    *,
    data: bytes | None = None,
    fmt: str | None = None,
    progress: ReadProgress | None = None,
) -> Trace:
    """Read, parse and validate one trace file.

    With ``data`` the file is not read and ``path`` only names the input in
    messages (``"<stdin>"``, say). ``fmt`` ("yaml" or "json") overrides the
    suffix (.yaml, .yml, .json); with neither, a text starting with ``{`` is JSON.
    ``progress(done, total)`` is called now and then while a big file is read.
    """
    name = os.fspath(path)
    if data is None:
        try:
            with open(name, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise TraceError(name, f"cannot read the trace: {error.strerror or error}") from None
    kind = detect_format(name, data, fmt)
    sha256 = hashlib.sha256(data).hexdigest()
    if kind == "yaml":
        # One flow-style event per line (what kvmgen's generators write) has a strict
        # fast path; anything it does not handle, valid or not, takes the full loader.
        fast = load_yaml_fast(name, data, sha256, progress)
        if fast is not None:
            return fast
    if kind == "json" and len(data) >= scanned.SCAN_MIN_BYTES:
        # A jitted scan into columns; same fallback rule.
        fast = load_json_fast(name, data, sha256)
        if fast is not None:
            return fast
    load = load_json if kind == "json" else load_yaml
    try:
        return load(name, data, sha256)
    except RecursionError:
        raise TraceError(name, "the trace is nested too deeply to read") from None


def check_trace_for_run(trace: Trace, address_spaces: int) -> None:
    """Raise TraceError if a header slot or event names an address space the run lacks."""
    error = trace_error_for_as(trace, address_spaces)
    if error is not None:
        raise error
