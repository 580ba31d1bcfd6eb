"""One entry point for every trace input: :func:`open_trace`.

It is the one place a trace's format is chosen: a compiled trace (by its magic
bytes), JSON Lines (``.jsonl``, ``fmt="jsonl"``, or a first line that is a JSON
Lines header), else a YAML or JSON document (by suffix, else sniffed). The
source may be a path, ``"-"`` for standard input, a binary stream or bytes.
JSON Lines, and YAML and JSON documents from
:data:`~kvmgen.trace.formats.scan.STREAM_MIN_BYTES` on, are only scanned here
and read again block by block while they replay; from a stream they are first
copied to a temporary file, so memory stays bounded.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, BinaryIO, Union

from kvmgen.engine import COMPILED_MAGIC, ZIP_MAGIC
from kvmgen.errors import TraceError, UsageError
from kvmgen.trace.records import ReadProgress, Trace
from kvmgen.trace.streamed import StreamedTrace

if TYPE_CHECKING:
    from kvmgen.engine.compiled import CompiledTrace

AnyTrace = Union[Trace, StreamedTrace, "CompiledTrace"]
"""An in-memory trace, one read block by block (JSON Lines), or a compiled one.

Compiled traces are told apart by ``format == "compiled"`` so that code handling
traces need not import the engine (and numba).
"""

FORMATS = ("yaml", "json", "jsonl")
"""The text formats ``fmt`` may name; compiled traces are always recognised by their bytes."""

Source = Union[str, "os.PathLike[str]", bytes, BinaryIO]

# A compiled trace of this format, or of format 1 (refused with its own message).
_COMPILED_MAGICS = (COMPILED_MAGIC, ZIP_MAGIC)


def open_trace(
    source: Source,
    fmt: str | None = None,
    *,
    name: str | None = None,
    progress: ReadProgress | None = None,
    allow_missing_source: bool = False,
) -> AnyTrace:
    """Open a trace of any format, validated, ready to replay.

    ``source`` is a path (``"-"``: standard input), a binary stream or the bytes
    of a trace. ``fmt`` (``yaml``, ``json``, ``jsonl``) overrides the file name
    and the sniffing; ``name`` names the input in messages (default: the path,
    ``<stdin>``, or the stream's ``name``). ``progress(done, total)`` is called
    while a big input is read. A compiled trace whose source file is gone is
    refused unless ``allow_missing_source``. Every problem with the input is a
    :class:`~kvmgen.errors.TraceError` (or, for a path that does not exist, a
    :class:`~kvmgen.errors.UsageError`).
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown trace format {fmt!r}: expected {', '.join(FORMATS)}")
    if isinstance(source, str | os.PathLike) and os.fspath(source) != "-":
        return _open_path(os.fspath(source), fmt, name, progress, allow_missing_source)
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
        label = name or "<bytes>"
    elif isinstance(source, str | os.PathLike):
        import sys

        stream, label = sys.stdin.buffer, name or "<stdin>"
    else:
        stream, label = source, name or str(getattr(source, "name", "<stream>"))
    return _open_stream(stream, label, fmt, progress, allow_missing_source)


def _open_path(
    path: str,
    fmt: str | None,
    name: str | None,
    progress: ReadProgress | None,
    allow_missing_source: bool,
) -> AnyTrace:
    from kvmgen.trace.formats.jsonl import scan_jsonl

    label = name or path
    if not os.path.exists(path):
        raise UsageError(f"{label}: no such file")
    if fmt == "jsonl" or (fmt is None and path.lower().endswith(".jsonl")):
        return scan_jsonl(path, name=label, progress=progress)
    if fmt is None and is_compiled(path):
        from kvmgen.engine.compiled import load_compiled

        return load_compiled(path, allow_missing_source=allow_missing_source)
    return _document(path, label, fmt, progress)


def _document(
    path: str, label: str, fmt: str | None, progress: ReadProgress | None
) -> Trace | StreamedTrace:
    """A YAML or JSON trace in a file: streamed if it is big and streams, else read whole."""
    from kvmgen.trace.formats import load_document, scan, stream_document

    try:
        if os.path.getsize(path) >= scan.STREAM_MIN_BYTES:
            streamed = stream_document(path, label, fmt, progress)
            if streamed is not None:
                return streamed
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise TraceError(label, f"cannot read the trace: {error.strerror or error}") from None
    return load_document(label, data, fmt, progress)


def _open_stream(
    stream: BinaryIO,
    label: str,
    fmt: str | None,
    progress: ReadProgress | None,
    allow_missing_source: bool,
) -> AnyTrace:
    from kvmgen.trace.formats import load_document, scan
    from kvmgen.trace.formats.jsonl import looks_like_jsonl, scan_jsonl, spool

    head = stream.readline()
    if fmt is None and head.startswith(_COMPILED_MAGICS):
        from kvmgen.engine.compiled import load_compiled

        data = head + stream.read()
        return load_compiled(label, data=data, allow_missing_source=allow_missing_source)
    if fmt == "jsonl" or (fmt is None and looks_like_jsonl(head)):
        return scan_jsonl(spool(head, stream), name=label, progress=progress)
    head += stream.read(max(scan.STREAM_MIN_BYTES - len(head), 0))
    if len(head) < scan.STREAM_MIN_BYTES:
        return load_document(label, head, fmt, progress)
    # A big document: kept on disk, not in memory, and streamed from there.
    from kvmgen.trace.formats import detect_format

    kind = detect_format(label, head[: 1 << 12], fmt)
    return _document(spool(head, stream, "." + kind), label, kind, progress)


def is_compiled(path: str) -> bool:
    """Whether ``path`` starts like a compiled trace (of this format or the older zip one)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_COMPILED_MAGICS)
