"""Compiled traces: the engine's arrays saved once, replayed many times.

``kvmgen compile TRACE -o FILE`` writes one file: a magic string, a JSON
manifest (the header, the notes, the trace's content digest, the source's path,
SHA-256 and XXH3, a fingerprint of the array layout, where each array lies and
an XXH3 of them all), then the arrays' raw bytes, each 64-byte aligned. Loading
reads the file once and takes the arrays as views of it, no parsing. It checks
everything: a file whose source changed since (stale), whose layout or format
this kvmgen does not use, or whose bytes do not match their hash (corrupt) is
refused with one clear line, never replayed into a wrong report. XXH3 (not
SHA-256) keeps those checks far cheaper than reading the trace again, and the
source is only read again when its size or modification time changed since it
was compiled (an edit that keeps both, to the nanosecond, goes unnoticed).
The file is mapped privately rather than copied, so loading costs little more
than its checks; the event columns are checked in one jitted pass.
"""

from __future__ import annotations

import hashlib
import json
import mmap
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

COMPILED_VERSION = 4  # 4: seven bytes an event (code, vCPU, x) and the aux table
_ALIGN = 64
_LENGTH = struct.Struct("<Q")  # manifest length, after the magic; then its XXH3 (16 bytes)
_HEAD = len(COMPILED_MAGIC) + _LENGTH.size + 16
_ARRAYS = ("gfns", "ev_code", "ev_vcpu", "ev_x", "aux", "dur", "initial_cover")


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
    parts = [encoder.encode(block) for block in trace.blocks()]
    aux_base = dur_base = 0
    ev_x, aux, dur = [], [], []
    for part in parts:
        # Each block numbers its aux and during rows from 0: shift them past the earlier ones.
        x = part.ev_x.copy()
        x[(part.ev_code & k.EV_AUX) != 0] += aux_base
        rows = part.aux.copy()
        rows[:, k.U_DSTART] += dur_base
        rows[:, k.U_DEND] += dur_base
        ev_x.append(x)
        aux.append(rows)
        dur.append(part.dur)
        aux_base += len(part.aux)
        dur_base += len(part.dur)
    empty = encoder.encode(EventTable.empty(0))
    return EncodedTrace(
        gfns=encoder.gfns,
        ev_code=np.concatenate([p.ev_code for p in parts] or [empty.ev_code]),
        ev_vcpu=np.concatenate([p.ev_vcpu for p in parts] or [empty.ev_vcpu]),
        ev_x=np.concatenate(ev_x or [empty.ev_x]),
        first_index=parts[0].first_index if parts else 0,
        aux=np.concatenate(aux or [empty.aux]),
        dur=np.concatenate(dur or [empty.dur]),
        initial_cover=encoder.initial_cover,
        vcpus=encoder.vcpus,
    )


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
        "first_index": enc.first_index,
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


def _source(trace: Trace | StreamedTrace) -> dict[str, str | int | None]:
    """The source: its absolute path (None from a stream), the path as given, its hashes.

    The absolute path lets a replay from another directory still find the source
    for the stale check; SHA-256 is of the bytes read, XXH3 is what the stale
    check compares when the source's size or modification time (also kept)
    changed since.
    """
    if not os.path.isfile(trace.path):
        return dict(path=None, given=trace.path, sha256=trace.sha256, xxh3=None, **_NO_STAT)
    before = os.stat(trace.path)
    sha, fast = _hash_file(trace.path, hashlib.sha256(), xxhash.xxh3_128())
    if sha != trace.sha256 or _stat_of(os.stat(trace.path)) != _stat_of(before):
        raise TraceError(trace.path, "the trace changed while it was being compiled")
    return {
        "path": os.path.abspath(trace.path),
        "given": trace.path,
        "sha256": trace.sha256,
        "xxh3": fast,
        **_stat_of(before),
    }


_NO_STAT: dict[str, int | None] = {"size": None, "mtime_ns": None}


def _stat_of(stat: os.stat_result) -> dict[str, int | None]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


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
    enc = EncodedTrace(
        vcpus=int(manifest["vcpus"]), first_index=int(manifest["first_index"]), **arrays
    )
    return CompiledTrace(
        path=path,
        vm=_vm_from_json(manifest["vm"]),
        digest=manifest["digest"],
        event_count=int(manifest["events"]),
        encoded=enc,
        space_uses={int(a): SpaceUse.from_list(v) for a, v in manifest["space_uses"].items()},
        notes={int(i): note for i, note in manifest["notes"].items()},
        source_path=manifest["source"]["path"] or manifest["source"]["given"],
        source_sha256=manifest["source"]["sha256"],
    )


def load_compiled(
    path: str,
    *,
    check_source: bool = True,
    allow_missing_source: bool = False,
    data: bytes | None = None,
) -> CompiledTrace:
    """Load a compiled trace, refusing stale, foreign, corrupt or orphaned files.

    Every manifest field and every array is checked before any array is used; a
    file whose source is gone is refused unless ``allow_missing_source`` (one
    compiled from a stream has no source to check). With ``data`` (a compiled
    trace read from standard input, say) the file is not read and ``path`` only
    names the input in messages.
    """

    def corrupt(why: str) -> TraceError:
        return TraceError(path, f"corrupt compiled trace ({why}): compile it again")

    # A writable buffer: the arrays are views of it, typed like any other array.
    raw = bytearray(data) if data is not None else _read_writable(path)
    if raw[: len(ZIP_MAGIC)] == ZIP_MAGIC:
        raise TraceError(path, _other_format(1))
    if raw[: len(COMPILED_MAGIC)] != COMPILED_MAGIC or len(raw) < _HEAD:
        raise corrupt("not a kvmgen compiled trace")
    (length,) = _LENGTH.unpack_from(raw, len(COMPILED_MAGIC))
    if _HEAD + length > len(raw):
        raise corrupt("the manifest runs past the end of the file")
    text = bytes(raw[_HEAD : _HEAD + length])
    if xxhash.xxh3_128_digest(text) != raw[_HEAD - 16 : _HEAD]:
        raise corrupt("the manifest does not match its recorded hash")
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError):
        raise corrupt("the manifest is not JSON") from None
    found = manifest.get("kvmgen_compiled") if isinstance(manifest, dict) else None
    if found != COMPILED_VERSION:
        if not isinstance(manifest, dict) or "kvmgen_compiled" not in manifest:
            raise corrupt("the manifest has no kvmgen_compiled version")
        raise TraceError(path, _other_format(found))
    if manifest.get("layout") != layout_fingerprint():
        raise TraceError(
            path,
            f"compiled by {manifest.get('generator')} for another engine layout: "
            "compile the trace again",
        )
    region = memoryview(raw)[min(_aligned(_HEAD + length), len(raw)) :]
    try:
        check_manifest(manifest, len(region))
    except ManifestError as error:
        raise corrupt(str(error)) from None
    if xxhash.xxh3_128_hexdigest(region) != manifest["arrays_xxh3"]:
        raise corrupt("the arrays do not match their recorded hash")
    arrays = {}
    for name, dtype, shape, offset, size in manifest["arrays"]:
        kind = np.dtype(dtype)
        flat = np.frombuffer(region, dtype=kind, count=size // kind.itemsize, offset=offset)
        arrays[name] = flat.reshape(shape)
    try:
        check_arrays(arrays, manifest)
    except ManifestError as error:
        raise corrupt(str(error)) from None
    if check_source:
        _check_source(path, manifest["source"], allow_missing_source)
    return _from_parts(path, manifest, arrays)


def _check_source(path: str, source: dict[str, Any], allow_missing: bool) -> None:
    """Refuse a stale file (its source changed) or, unless allowed, an orphan (source gone)."""
    where = source["path"]
    if where is None:
        return  # compiled from a stream: there is no file to compare with
    given = source["given"]
    if not os.path.isfile(where):
        if allow_missing:
            return
        raise TraceError(
            path,
            f"the source of this compiled trace is gone ({given}, at {where}): compile it "
            "again, or pass --allow-missing-source to replay it unchecked",
        )
    if _stat_of(os.stat(where)) == {key: source[key] for key in _NO_STAT}:
        return  # the same size and modification time: not read again
    if _hash_file(where, xxhash.xxh3_128()) != [source["xxh3"]]:
        raise TraceError(
            path,
            f"stale compiled trace: {given} changed since it was compiled "
            f"(kvmgen compile {given} -o {path})",
        )


class ManifestError(ValueError):
    """A manifest field (or an array it describes) is not what this kvmgen wrote."""


# Every array: its dtype, its number of dimensions and, for 2-D tables, its columns.
ARRAY_SPEC: dict[str, tuple[str, int, int | None]] = {
    "gfns": ("<i8", 1, None),
    "ev_code": ("|u1", 1, None),
    "ev_vcpu": ("<u2", 1, None),
    "ev_x": ("<u4", 1, None),
    "aux": ("<i8", 2, k.N_UCOLS),
    "dur": ("<i8", 2, k.N_DFIELDS),
    "initial_cover": ("|i1", 2, None),
}


def _field(manifest: dict[str, Any], name: str, kinds: Any, prefix: str = "") -> Any:
    if name not in manifest:
        raise ManifestError(f"manifest field {prefix}{name} is missing")
    value = manifest[name]
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
        raise ManifestError(f"manifest field {prefix}{name} has the wrong type")
    return value


def _count(manifest: dict[str, Any], name: str, low: int = 0, prefix: str = "") -> int:
    value: int = _field(manifest, name, int, prefix)
    if value < low:
        raise ManifestError(f"manifest field {prefix}{name} is {value}, below {low}")
    return value


def _optional(value: Any, kinds: Any, name: str) -> None:
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise ManifestError(f"manifest field {name} has the wrong type")


def check_manifest(manifest: dict[str, Any], region_size: int) -> None:
    """Check every manifest field (its hash matched); ManifestError names the first bad one."""
    for name in ("generator", "layout", "digest", "arrays_xxh3"):
        _field(manifest, name, str)
    _count(manifest, "events")
    _count(manifest, "first_index")
    _count(manifest, "vcpus", 1)
    source = _field(manifest, "source", dict)
    for key in ("path", "given", "sha256", "xxh3"):
        if key not in source:
            raise ManifestError(f"manifest field source.{key} is missing")
        _optional(source[key], str, f"source.{key}")
    for key in _NO_STAT:
        if key not in source:
            raise ManifestError(f"manifest field source.{key} is missing")
        _optional(source[key], int, f"source.{key}")
    if source["path"] is not None and source["xxh3"] is None:
        raise ManifestError("manifest field source.xxh3 is missing for a file source")
    vm = _field(manifest, "vm", dict)
    for key, kinds in (("kernel", str), ("era", str), ("address_spaces", int), ("vcpus", int)):
        if key not in vm:
            raise ManifestError(f"manifest field vm.{key} is missing")
        _optional(vm[key], kinds, f"vm.{key}")
    if vm["address_spaces"] not in (None, 1, 2):
        raise ManifestError("manifest field vm.address_spaces is not 1 or 2")
    _count(vm, "line", prefix="vm.")
    slots = _field(vm, "slots", list, "vm.")
    for i, row in enumerate(slots):
        if not (
            isinstance(row, list)
            and len(row) == 6
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in row)
            and row[1] in (0, 1)
        ):
            raise ManifestError(f"manifest field vm.slots[{i}] is not a slot")
    notes = _field(manifest, "notes", dict)
    for key, note in notes.items():
        if not key.isdigit() or not isinstance(note, str):
            raise ManifestError(f"manifest field notes[{key!r}] is not an event note")
    uses = _field(manifest, "space_uses", dict)
    for key, use in uses.items():
        try:
            if key not in ("0", "1"):
                raise ValueError(key)
            SpaceUse.from_list(use)
        except (TypeError, ValueError):
            raise ManifestError(f"manifest field space_uses[{key!r}] is not a use") from None
    _check_layout(_field(manifest, "arrays", list), region_size)


def _check_layout(layout: list[Any], region_size: int) -> None:
    seen: set[str] = set()
    for entry in layout:
        if not (isinstance(entry, list) and len(entry) == 5 and isinstance(entry[0], str)):
            raise ManifestError("manifest field arrays holds an entry that is not an array")
        name, dtype, shape, offset, size = entry
        if name not in ARRAY_SPEC or name in seen:
            raise ManifestError(f"manifest field arrays names {name!r} unexpectedly")
        seen.add(name)
        want, ndim, columns = ARRAY_SPEC[name]
        if dtype != want:
            raise ManifestError(f"array {name} has dtype {dtype!r}, not {want!r}")
        if not (
            isinstance(shape, list)
            and len(shape) == ndim
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
        ):
            raise ManifestError(f"array {name} has a wrong shape {shape!r}")
        if columns is not None and shape[1] != columns:
            raise ManifestError(f"array {name} has {shape[1]} columns, not {columns}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, size)):
            raise ManifestError(f"array {name} has a wrong offset or size")
        if size != int(np.prod(shape)) * np.dtype(want).itemsize:
            raise ManifestError(f"array {name}: its size does not fit its shape")
        if offset < 0 or offset % _ALIGN or offset + size > region_size:
            raise ManifestError(f"array {name} lies outside the file (offset {offset})")
    missing = sorted(set(ARRAY_SPEC) - seen)
    if missing:
        raise ManifestError(f"array {missing[0]} is missing")


_BAD_EVENT = {
    k.BAD_OP: "array ev_code holds an unknown op",
    k.BAD_NO_AUX: "array ev_code: an update without its aux row",
    k.BAD_VCPU: "array ev_vcpu names no vCPU",
    k.BAD_GFN: "array ev_x: an access outside the gfns",
    k.BAD_AUX_ROW: "array ev_x: a row outside the aux table",
}


def check_arrays(arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Check that the arrays hold what the engine may index with (it does no bounds checks)."""
    events = manifest["events"]
    top = [arrays[n] for n in ("ev_code", "ev_vcpu", "ev_x")]
    if {len(a) for a in top} != {events}:
        raise ManifestError(f"the event arrays do not all hold the {events:,} events")
    gfns, aux, dur = arrays["gfns"], arrays["aux"], arrays["dur"]
    cover = arrays["initial_cover"]
    if cover.shape != (2, max(len(gfns), 1)):
        raise ManifestError("array initial_cover does not match the gfn universe")
    code, x = arrays["ev_code"], arrays["ev_x"]
    vcpus = manifest["vcpus"]

    def bad(mask: Any, what: str) -> None:
        if mask.any():
            raise ManifestError(f"{what} (first at row {int(np.argmax(mask))})")

    row, reason = k.check_events(
        code, arrays["ev_vcpu"], x, np.int64(len(gfns)), np.int64(len(aux)), np.int64(vcpus)
    )
    if reason:
        raise ManifestError(f"{_BAD_EVENT[reason]} (first at row {row})")
    if len(aux):
        bad(aux[:, k.U_REPS] < 1, "array aux holds a repeat below 1")
        bad(
            (aux[:, k.U_GID] < 0) | (aux[:, k.U_GID] >= max(len(gfns), 1)),
            "array aux: a gfn outside",
        )
        spans = aux[:, [k.U_LO, k.U_HI, k.U_OLO, k.U_OHI]]
        bad(((spans < 0) | (spans > len(gfns))).any(axis=1), "array aux: a range outside the gfns")
        during = aux[:, [k.U_DSTART, k.U_DEND]]
        bad(
            (during[:, 0] < 0) | (during[:, 1] < during[:, 0]) | (during[:, 1] > len(dur)),
            "array aux: during rows outside the table",
        )
    if len(dur):
        bad((dur[:, k.D_AS] < 0) | (dur[:, k.D_AS] > 1), "array dur names no address space")
        bad(
            (dur[:, k.D_VCPU] < 0) | (dur[:, k.D_VCPU] >= vcpus),
            "array dur names no vCPU",
        )
        bad((dur[:, k.D_GID] < 0) | (dur[:, k.D_GID] >= len(gfns)), "array dur: a gfn outside")
        bad(dur[:, k.D_REP] < 1, "array dur holds a repeat below 1")


def _read_writable(path: str) -> bytearray | mmap.mmap:
    """The file's bytes as a writable buffer the arrays can be views of.

    A private mapping where the system has one: the pages come from the page
    cache, read ahead at once, and are never copied unless written (kvmgen never
    writes them; its outputs replace a file by renaming, never in place). Else,
    and for an empty file, a copy.
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size and hasattr(mmap, "MAP_PRIVATE"):
                flags = mmap.MAP_PRIVATE
                prot = mmap.PROT_READ | mmap.PROT_WRITE
                return mmap.mmap(handle.fileno(), size, flags=flags, prot=prot)
            raw = bytearray(size)
            handle.readinto(raw)
    except OSError as error:
        raise TraceError(path, f"cannot read the compiled trace: {error.strerror}") from None
    return raw


def _other_format(found: object) -> str:
    return (
        f"compiled trace format {found!r} is not the one this kvmgen reads "
        f"({COMPILED_VERSION}): compile the trace again"
    )
