"""Compiled traces: the engine's arrays saved once, replayed many times.

``kvmgen compile TRACE -o FILE`` writes one file: a magic string, a JSON
manifest (the header, the notes, the trace's content digest, the source's path,
SHA-256 and XXH3, a fingerprint of the array layout, where each array lies and
an XXH3 of them all), then the arrays' raw bytes, each 64-byte aligned. Loading
reads the file once and takes the arrays as views of it, no parsing. It checks
everything: a file whose source changed since (stale), whose layout or format
this kvmgen does not use, or whose bytes do not match their hash (corrupt) is
refused with one clear line, never replayed into a wrong report. XXH3 (not
SHA-256) keeps those checks far cheaper than reading the trace again.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import xxhash

from kvmgen.engine import COMPILED_MAGIC, ZIP_MAGIC
from kvmgen.engine import kernels as k
from kvmgen.engine.encode import EncodedTrace, encode, streamed_encoder
from kvmgen.errors import TraceError
from kvmgen.trace.checks import SpaceUse, trace_uses
from kvmgen.trace.digest import content_digest
from kvmgen.trace.records import SlotDecl, Trace, VmHeader
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import EventTable, table_of
from kvmgen.version import __version__

COMPILED_VERSION = 3
_ALIGN = 64
_LENGTH = struct.Struct("<Q")  # manifest length, after the magic; then its XXH3 (16 bytes)
_HEAD = len(COMPILED_MAGIC) + _LENGTH.size + 16
_ARRAYS = (
    "gfns",
    "ev_op",
    "ev_as",
    "ev_vcpu",
    "ev_x",
    "ev_rep",
    "ev_index",
    "upd",
    "dur",
    "initial_cover",
)


def layout_fingerprint() -> str:
    """Identifies the kernels' array layout; a compiled file is only valid for its own."""
    names = sorted(n for n in dir(k) if n.isupper() and isinstance(getattr(k, n), int))
    text = ",".join(f"{n}={getattr(k, n)}" for n in names)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class CompiledTrace:
    """A compiled trace, ready for the engine (no events in memory)."""

    path: str
    vm: VmHeader
    digest: str
    event_count: int
    encoded: EncodedTrace
    space_uses: dict[int, SpaceUse]
    notes: dict[int, str] = field(default_factory=dict)
    source_path: str = ""
    source_sha256: str = ""
    format: str = "compiled"

    @property
    def max_address_space(self) -> int:
        """The largest address space any event names."""
        return max(self.space_uses, default=0)

    def content_digest(self) -> str:
        """The source trace's content digest, recorded when it was compiled."""
        return self.digest


def _vm_json(vm: VmHeader) -> dict[str, Any]:
    return {
        "kernel": vm.kernel,
        "era": vm.era,
        "address_spaces": vm.address_spaces,
        "vcpus": vm.vcpus,
        "line": vm.line,
        "slots": [[s.slot, s.address_space, s.gfn, s.pages, s.flags, s.line] for s in vm.slots],
    }


def _vm_from_json(data: dict[str, Any]) -> VmHeader:
    return VmHeader(
        kernel=data["kernel"],
        era=data["era"],
        address_spaces=data["address_spaces"],
        vcpus=data["vcpus"],
        line=data["line"],
        slots=tuple(SlotDecl(*row) for row in data["slots"]),
    )


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _encode_streamed(trace: StreamedTrace) -> EncodedTrace:
    encoder = streamed_encoder(trace)
    gfns = encoder.gfns
    parts = [encoder.encode(block) for block in trace.blocks()]
    upd_base = dur_base = 0
    ev_x, upd, dur = [], [], []
    for part in parts:
        x = part.ev_x.copy()
        is_update = (part.ev_op != k.OP_ACCESS) & (part.ev_op != k.OP_BUMP)
        x[is_update] += upd_base
        rows = part.upd.copy()
        rows[:, k.U_DSTART] += dur_base
        rows[:, k.U_DEND] += dur_base
        ev_x.append(x)
        upd.append(rows)
        dur.append(part.dur)
        upd_base += len(part.upd)
        dur_base += len(part.dur)
    empty = encoder.encode(EventTable.empty(0))
    joined = EncodedTrace(
        gfns=gfns,
        ev_op=np.concatenate([p.ev_op for p in parts] or [empty.ev_op]),
        ev_as=np.concatenate([p.ev_as for p in parts] or [empty.ev_as]),
        ev_vcpu=np.concatenate([p.ev_vcpu for p in parts] or [empty.ev_vcpu]),
        ev_x=np.concatenate(ev_x or [empty.ev_x]),
        ev_rep=np.concatenate([p.ev_rep for p in parts] or [empty.ev_rep]),
        ev_index=np.concatenate([p.ev_index for p in parts] or [empty.ev_index]),
        upd=np.concatenate(upd or [empty.upd]),
        dur=np.concatenate(dur or [empty.dur]),
        initial_cover=encoder.initial_cover,
        vcpus=encoder.vcpus,
    )
    return joined


def compile_trace(
    trace: Trace | StreamedTrace, out: str | IO[bytes], *, name: str | None = None
) -> CompiledTrace:
    """Encode ``trace`` and write it to ``out``: a path (``-``: standard output) or a stream.

    Returns what a later load of the written bytes gives. A path is written
    through :func:`kvmgen.output.open_output` (never over the trace itself,
    committed only once whole); ``name`` names a stream in messages.
    """
    if isinstance(out, str):
        from kvmgen.output import STDOUT, open_output

        with open_output(out, inputs=[trace.path]) as handle:
            return compile_trace(trace, handle, name="<stdout>" if out == STDOUT else out)
    if isinstance(trace, StreamedTrace):
        enc, uses = _encode_streamed(trace), trace.space_uses
        notes, count = dict(trace.notes), trace.event_count
        digest = trace.content_digest()
    else:
        table = table_of(trace)
        enc, uses = encode(trace), trace_uses(trace)
        notes = table.event_notes()
        count = len(trace.events)
        digest = content_digest(trace.vm, table)
    arrays = {name: np.ascontiguousarray(getattr(enc, name)) for name in _ARRAYS}
    layout: list[list[Any]] = []
    offset = 0
    for name, array in arrays.items():
        layout.append([name, array.dtype.str, list(array.shape), offset, array.nbytes])
        offset = _aligned(offset + array.nbytes)
    region = bytearray(offset)
    for name, array in arrays.items():
        at = next(entry[3] for entry in layout if entry[0] == name)
        region[at : at + array.nbytes] = array.tobytes()
    manifest = {
        "kvmgen_compiled": COMPILED_VERSION,
        "generator": f"kvmgen {__version__}",
        "layout": layout_fingerprint(),
        "source": _source(trace),
        "digest": digest,
        "events": count,
        "vcpus": enc.vcpus,
        "vm": _vm_json(trace.vm),
        "notes": {str(i): note for i, note in notes.items()},
        "space_uses": {str(a): use.as_list() for a, use in uses.items()},
        "arrays": layout,
        "arrays_xxh3": xxhash.xxh3_128_hexdigest(region),
    }
    text = json.dumps(manifest).encode()
    head = COMPILED_MAGIC + _LENGTH.pack(len(text)) + xxhash.xxh3_128_digest(text) + text
    out.write(head.ljust(_aligned(len(head)), b"\0"))
    out.write(region)
    return _from_parts(name or str(getattr(out, "name", "<stream>")), manifest, arrays)


def _source(trace: Trace | StreamedTrace) -> dict[str, str | None]:
    """The source's path, SHA-256 (of the bytes read) and XXH3 (for the stale check)."""
    fast = None
    if os.path.isfile(trace.path):
        sha, fast = _hash_file(trace.path, hashlib.sha256(), xxhash.xxh3_128())
        if sha != trace.sha256:
            raise TraceError(trace.path, "the trace changed while it was being compiled")
    return {"path": trace.path, "sha256": trace.sha256, "xxh3": fast}


def _hash_file(path: str, *hashers: Any) -> list[str]:
    """Each hasher's hex digest of the file at ``path``, all fed in one read."""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            for hasher in hashers:
                hasher.update(chunk)
    return [hasher.hexdigest() for hasher in hashers]


def _from_parts(
    path: str, manifest: dict[str, Any], arrays: dict[str, np.ndarray]
) -> CompiledTrace:
    enc = EncodedTrace(vcpus=int(manifest["vcpus"]), **arrays)
    return CompiledTrace(
        path=path,
        vm=_vm_from_json(manifest["vm"]),
        digest=manifest["digest"],
        event_count=int(manifest["events"]),
        encoded=enc,
        space_uses={int(a): SpaceUse.from_list(v) for a, v in manifest["space_uses"].items()},
        notes={int(i): note for i, note in manifest["notes"].items()},
        source_path=manifest["source"]["path"],
        source_sha256=manifest["source"]["sha256"],
    )


def load_compiled(
    path: str, *, check_source: bool = True, data: bytes | None = None
) -> CompiledTrace:
    """Load a compiled trace, refusing stale, foreign or corrupt files.

    With ``data`` (a compiled trace read from standard input, say) the file is
    not read and ``path`` only names the input in messages.
    """

    def corrupt(why: str) -> TraceError:
        return TraceError(path, f"corrupt compiled trace ({why}): compile it again")

    # A writable buffer: the arrays are views of it, typed like any other array.
    raw = bytearray(data) if data is not None else _read_writable(path)
    if raw.startswith(ZIP_MAGIC):
        raise TraceError(path, _other_format(1))
    if not raw.startswith(COMPILED_MAGIC) or len(raw) < _HEAD:
        raise corrupt("not a kvmgen compiled trace")
    (length,) = _LENGTH.unpack_from(raw, len(COMPILED_MAGIC))
    text = bytes(raw[_HEAD : _HEAD + length])
    if xxhash.xxh3_128_digest(text) != raw[_HEAD - 16 : _HEAD]:
        raise corrupt("the manifest does not match its recorded hash")
    manifest = json.loads(text)
    found = manifest.get("kvmgen_compiled") if isinstance(manifest, dict) else None
    if found != COMPILED_VERSION:
        raise TraceError(path, _other_format(found))
    if manifest.get("layout") != layout_fingerprint():
        raise TraceError(
            path,
            f"compiled by {manifest.get('generator')} for another engine layout: "
            "compile the trace again",
        )
    region = memoryview(raw)[_aligned(_HEAD + length) :]
    if xxhash.xxh3_128_hexdigest(region) != manifest["arrays_xxh3"]:
        raise corrupt("the arrays do not match their recorded hash")
    arrays = {}
    for name, dtype, shape, offset, size in manifest["arrays"]:
        kind = np.dtype(dtype)
        flat = np.frombuffer(region, dtype=kind, count=size // kind.itemsize, offset=offset)
        arrays[name] = flat.reshape(shape)
    source = manifest["source"]
    source_changed = (
        check_source
        and source["xxh3"] is not None
        and os.path.isfile(source["path"])
        and _hash_file(source["path"], xxhash.xxh3_128()) != [source["xxh3"]]
    )
    if source_changed:
        raise TraceError(
            path,
            f"stale compiled trace: {source['path']} changed since it was compiled "
            f"(kvmgen compile {source['path']} -o {path})",
        )
    return _from_parts(path, manifest, arrays)


def _read_writable(path: str) -> bytearray:
    try:
        with open(path, "rb") as handle:
            raw = bytearray(os.fstat(handle.fileno()).st_size)
            handle.readinto(raw)
    except OSError as error:
        raise TraceError(path, f"cannot read the compiled trace: {error.strerror}") from None
    return raw


def _other_format(found: object) -> str:
    return (
        f"compiled trace format {found!r} is not the one this kvmgen reads "
        f"({COMPILED_VERSION}): compile the trace again"
    )
