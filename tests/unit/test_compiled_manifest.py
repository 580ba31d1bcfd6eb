"""A compiled file whose hashes match but whose content is wrong is refused, never replayed.

Each case rewrites one manifest field (or one array value) and recomputes every
hash, as a careless tool or a crafted file would: the load must end in one
"corrupt compiled trace" error naming what is wrong, never a traceback.
"""

from __future__ import annotations

import copy
import json
import shutil
import struct

import numpy as np
import pytest
import xxhash

from kvmgen.engine import COMPILED_MAGIC
from kvmgen.engine.compiled import _ALIGN, compile_trace, load_compiled
from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from tests.conftest import TRACES

pytestmark = pytest.mark.usefixtures("warm_engine")

_HEAD = len(COMPILED_MAGIC) + 8 + 16


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _split(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack_from("<Q", data, len(COMPILED_MAGIC))
    manifest = json.loads(data[_HEAD : _HEAD + length])
    return manifest, data[_aligned(_HEAD + length) :]


def _join(manifest: dict | bytes, region: bytes) -> bytes:
    text = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    head = COMPILED_MAGIC + struct.pack("<Q", len(text)) + xxhash.xxh3_128_digest(text) + text
    return head.ljust(_aligned(len(head)), b"\0") + region


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> bytes:
    directory = tmp_path_factory.mktemp("compiled")
    source = directory / "churn.yaml"
    shutil.copy(TRACES / "churn-delete-move.yaml", source)
    out = directory / "churn.kvmc"
    compile_trace(open_trace(source), str(out))
    return out.read_bytes()


def _refused(tmp_path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.kvmc"
    path.write_bytes(data)
    with pytest.raises(TraceError, match=match) as caught:
        load_compiled(str(path))
    assert "\n" not in str(caught.value)


def _set(path: str, value):
    def change(manifest: dict) -> None:
        keys = path.split(".")
        target = manifest
        for key in keys[:-1]:
            target = target[key]
        if value is _DROP:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return change


_DROP = object()

FIELDS = {
    "events missing": (_set("events", _DROP), "manifest field events is missing"),
    "events a string": (_set("events", "7"), "manifest field events has the wrong type"),
    "events negative": (_set("events", -1), "manifest field events is -1"),
    "vcpus zero": (_set("vcpus", 0), "manifest field vcpus is 0"),
    "digest missing": (_set("digest", _DROP), "manifest field digest is missing"),
    "generator a number": (_set("generator", 3), "manifest field generator"),
    "arrays_xxh3 missing": (_set("arrays_xxh3", _DROP), "manifest field arrays_xxh3"),
    "source missing": (_set("source", _DROP), "manifest field source is missing"),
    "source.path a number": (_set("source.path", 5), "manifest field source.path"),
    "source.given missing": (_set("source.given", _DROP), "manifest field source.given"),
    "source.xxh3 missing": (_set("source.xxh3", None), "source.xxh3 is missing"),
    "vm a list": (_set("vm", []), "manifest field vm has the wrong type"),
    "vm.kernel a number": (_set("vm.kernel", 4), "manifest field vm.kernel"),
    "vm.address_spaces 3": (_set("vm.address_spaces", 3), "vm.address_spaces is not 1 or 2"),
    "vm.slots a bad row": (_set("vm.slots", [[1, 2]]), r"vm.slots\[0\] is not a slot"),
    "vm.line missing": (_set("vm.line", _DROP), "manifest field vm.line is missing"),
    "notes a bad key": (_set("notes", {"x": "n"}), "notes"),
    "notes a number": (_set("notes", {"1": 5}), "notes"),
    "space_uses bad": (_set("space_uses", {"0": [1, 2]}), "space_uses"),
    "space_uses as 7": (
        _set("space_uses", {"7": [[1, 0, 0], "as", 0, 0, 0, "access"]}),
        "space_uses",
    ),
    "arrays missing": (_set("arrays", _DROP), "manifest field arrays is missing"),
}


@pytest.mark.parametrize("case", FIELDS)
def test_each_manifest_field_is_checked(tmp_path, compiled, case) -> None:
    change, match = FIELDS[case]
    manifest, region = _split(compiled)
    change(manifest)
    _refused(tmp_path, _join(manifest, region), rf"corrupt compiled trace \(.*{match}")


def _array_entry(manifest: dict, name: str) -> list:
    return next(entry for entry in manifest["arrays"] if entry[0] == name)


ARRAYS = {
    "an array missing": (lambda m: m["arrays"].pop(), r"array \w+ is missing"),
    "an array twice": (lambda m: m["arrays"].append(copy.deepcopy(m["arrays"][0])), "unexpectedly"),
    "an unknown array": (lambda m: _array_entry(m, "gfns").__setitem__(0, "evil"), "unexpectedly"),
    "a wrong dtype": (lambda m: _array_entry(m, "ev_code").__setitem__(1, "<i8"), "dtype"),
    "a wrong shape": (lambda m: _array_entry(m, "aux").__setitem__(2, [1]), "shape"),
    "wrong columns": (lambda m: _array_entry(m, "aux").__setitem__(2, [1, 3]), "columns"),
    "a size off its shape": (lambda m: _array_entry(m, "ev_x").__setitem__(4, 9), "size"),
    "an offset past the end": (
        lambda m: _array_entry(m, "gfns").__setitem__(3, 1 << 40),
        "outside the file",
    ),
    "an unaligned offset": (
        lambda m: _array_entry(m, "gfns").__setitem__(3, 8),
        "outside the file",
    ),
    "a negative offset": (
        lambda m: _array_entry(m, "gfns").__setitem__(3, -64),
        "outside the file",
    ),
    "not a list": (lambda m: m["arrays"].__setitem__(0, "gfns"), "not an array"),
}


@pytest.mark.parametrize("case", ARRAYS)
def test_each_array_description_is_checked(tmp_path, compiled, case) -> None:
    change, match = ARRAYS[case]
    manifest, region = _split(compiled)
    change(manifest)
    _refused(tmp_path, _join(manifest, region), rf"corrupt compiled trace \(.*{match}")


def test_a_manifest_that_is_not_json(tmp_path, compiled) -> None:
    _, region = _split(compiled)
    _refused(tmp_path, _join(b"{not json", region), "the manifest is not JSON")
    _refused(tmp_path, _join(b"[1, 2]", region), "no kvmgen_compiled version")


def _with_value(compiled: bytes, name: str, row: int, value: int, column: int | None = None):
    manifest, region = _split(compiled)
    _, dtype, shape, offset, size = _array_entry(manifest, name)
    data = bytearray(region)
    array = np.frombuffer(
        data, dtype=np.dtype(dtype), count=size // np.dtype(dtype).itemsize, offset=offset
    ).reshape(shape)
    if column is None:
        array[row] = value
    else:
        array[row, column] = value
    manifest["arrays_xxh3"] = xxhash.xxh3_128_hexdigest(bytes(data))
    return _join(manifest, bytes(data))


VALUES = {
    "an unknown op": ("ev_code", 0, 6 | 16, None, "unknown op"),
    "an unknown code bit": ("ev_code", 0, 0 | 16 | 64, None, "unknown op"),
    "an update without aux": ("ev_code", 0, 0, None, "without its aux row"),
    "a vCPU past the count": ("ev_vcpu", 0, 999, None, "no vCPU"),
    "a gfn index past the end": ("ev_x", 3, 10**6, None, "an access outside the gfns"),
    "an aux row past the end": ("ev_x", 0, 10**6, None, "outside the aux table"),
    "a zero repeat": ("aux", 0, 0, 7, "repeat below 1"),
    "a range past the gfns": ("aux", 0, 10**6, 1, "range outside the gfns"),
}


@pytest.mark.parametrize("case", VALUES)
def test_array_values_the_engine_indexes_with_are_checked(tmp_path, compiled, case) -> None:
    name, row, value, column, match = VALUES[case]
    data = _with_value(compiled, name, row, value, column)
    _refused(tmp_path, data, rf"corrupt compiled trace \(.*{match}")


def test_a_format_3_file_is_refused_in_one_line(tmp_path, compiled) -> None:
    manifest, region = _split(compiled)
    manifest["kvmgen_compiled"] = 3
    _refused(tmp_path, _join(manifest, region), r"compiled trace format 3 is not the one .* \(4\)")


def test_the_unchanged_file_loads(tmp_path, compiled) -> None:
    path = tmp_path / "good.kvmc"
    path.write_bytes(_join(*_split(compiled)))
    assert load_compiled(str(path)).event_count > 0
