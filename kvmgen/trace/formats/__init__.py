"""The syntaxes a trace can be written in, each read into the same validated records.

One module per syntax, with a full loader (every input, exact messages) and a
fast path for big files where it pays (it hands anything unusual to the full
loader, so results and messages never depend on the path taken):

- YAML: :mod:`~kvmgen.trace.formats.yaml_full`, :mod:`~kvmgen.trace.formats.yaml_fast`;
- JSON: :mod:`~kvmgen.trace.formats.json_full`, :mod:`~kvmgen.trace.formats.json_fast`;
- JSON Lines, streamed block by block: :mod:`~kvmgen.trace.formats.jsonl`;
- the jitted byte scans the fast paths share: :mod:`~kvmgen.trace.formats.scan`
  (Python side: field and layout rules over columns) and
  :mod:`~kvmgen.trace.formats.scan_kernels` (numba).

:func:`load_document` reads a whole YAML or JSON document held in memory;
:func:`stream_document` reads a big one block by block, as JSON Lines is read.
The one entry point for every format and source is :func:`kvmgen.inputs.open_trace`.
"""

from __future__ import annotations

import hashlib
import os

from kvmgen.errors import TraceError, UsageError
from kvmgen.trace.formats import scan
from kvmgen.trace.formats.json_fast import load_json_fast, stream_json
from kvmgen.trace.formats.json_full import load_json
from kvmgen.trace.formats.yaml_fast import load_yaml_fast, stream_yaml
from kvmgen.trace.formats.yaml_full import load_yaml
from kvmgen.trace.records import ReadProgress, Trace
from kvmgen.trace.streamed import StreamedTrace

DOCUMENT_FORMATS = ("yaml", "json")
_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def detect_format(name: str, data: bytes, fmt: str | None = None) -> str:
    """``fmt`` if given, else the format named by the file suffix, else a sniff of ``data``."""
    if fmt is not None:
        if fmt not in DOCUMENT_FORMATS:
            raise UsageError(f"unknown trace format {fmt!r}: expected yaml or json")
        return fmt
    by_suffix = _SUFFIXES.get(os.path.splitext(name)[1].lower())
    if by_suffix is not None:
        return by_suffix
    return "json" if data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"{" else "yaml"


def load_document(
    name: str, data: bytes, fmt: str | None = None, progress: ReadProgress | None = None
) -> Trace:
    """Parse and validate one YAML or JSON trace held in ``data`` (``name`` names it).

    ``fmt`` ("yaml" or "json") overrides the suffix (.yaml, .yml, .json); with
    neither, a text starting with ``{`` is JSON. ``progress(done, total)`` is
    called now and then while a big document is read.
    """
    kind = detect_format(name, data, fmt)
    sha256 = hashlib.sha256(data).hexdigest()
    if kind == "yaml":
        # One flow-style event per line (what kvmgen's generators write) has a strict
        # fast path; anything it does not handle, valid or not, takes the full loader.
        fast = load_yaml_fast(name, data, sha256, progress)
        if fast is not None:
            return fast
    if kind == "json" and len(data) >= scan.SCAN_MIN_BYTES:
        # A jitted scan into columns; same fallback rule.
        fast = load_json_fast(name, data, sha256)
        if fast is not None:
            return fast
    load = load_json if kind == "json" else load_yaml
    try:
        return load(name, data, sha256)
    except RecursionError:
        raise TraceError(name, "the trace is nested too deeply to read") from None


def stream_document(
    file: str, name: str, fmt: str | None = None, progress: ReadProgress | None = None
) -> StreamedTrace | None:
    """A big YAML or JSON trace in ``file``, to be read block by block; None to read it whole.

    Streamed when the jitted scan reads the document's layout (a flow-style
    event per line in YAML; any layout of JSON without observations or a
    mapping after the events); else None, and the caller loads it in memory,
    which also words any error the first pass would not vouch for. ``name``
    names the input in messages; ``progress(bytes read, size)`` as it is read.
    """
    with open(file, "rb") as handle:
        head = handle.read(1 << 12)
    kind = detect_format(name, head, fmt)
    stream = stream_json if kind == "json" else stream_yaml
    return stream(file, name, progress)
