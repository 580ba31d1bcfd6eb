"""The orjson + scan fast path gives exactly what the position-tracking JSON loader gives."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from hypothesis import given, settings

from kvmgen.errors import TraceError
from kvmgen.trace import load_trace
from kvmgen.trace.json_fast import load_json_fast
from kvmgen.trace.json_loader import load_json
from tests.conftest import TRACES
from tests.property.strategies import traces
from tests.unit.test_trace_jsonl import _event_dict


def _both(text: str):
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    return load_json_fast("t.json", data, sha), load_json("t.json", data, sha)


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("path", sorted(TRACES.glob("*.yaml")), ids=lambda p: p.name)
def test_samples_as_json(path, indent):
    fast, full = _both(json.dumps(yaml.safe_load(path.read_text()), indent=indent))
    assert fast is not None and fast == full


@settings(max_examples=80)
@given(trace=traces(2))
def test_generated_traces(trace):
    vm = {
        "address_spaces": trace.vm.address_spaces,
        "vcpus": trace.vm.vcpus,
        "slots": [
            {"slot": s.slot, "as": s.address_space, "gfn": s.gfn, "pages": s.pages}
            for s in trace.vm.slots
        ],
    }
    doc = {"kvmgen": 1, "vm": vm, "events": [_event_dict(e) for e in trace.events]}
    for indent in (None, 1):
        fast, full = _both(json.dumps(doc, indent=indent))
        assert fast is not None and fast == full


HEAD = '{"kvmgen": 1, "vm": {"era": "E5", "vcpus": 2}, "events": [\n'


@pytest.mark.parametrize(
    "event",
    [
        '{"op": "access", "gpa": "0xfebf1000", "note": "a \\\\\\" quoted [brace] {x}"}',
        '{"op": "access", "gfn": "0x10", "t": 1.5, "kind": "write"}',
        '{"op": "create", "slot": 0, "gfn": 256, "pages": 16, "during": ['
        '{"op": "access", "gfn": 260, "window": "before_zap"}, '
        '{"op": "access", "gfn": 9, "window": "in_progress"}]}',
    ],
)
def test_strings_escapes_and_during(event):
    fast, full = _both(HEAD + event + "\n]}")
    assert fast is not None and fast == full


@pytest.mark.parametrize(
    "text",
    [
        HEAD + '{"op": "access", "gfn": 1, "note": "caf\\u00e9 \u00e9"}\n]}',  # non-ASCII
        '{"kvmgen": 1, "events": [], "events": [{"op": "access", "gfn": 1}]}',  # duplicate
        '{"kvmgen": 1, "events": [{"op": "access", "gfn": 1}], "vm": {"era": "E5"}}',
        HEAD + '{"op": "access", "gfn": -1}\n]}',  # invalid: the full loader words it
    ],
)
def test_unusual_documents_fall_back(text):
    data = text.encode()
    assert load_json_fast("t.json", data, hashlib.sha256(data).hexdigest()) is None


def test_errors_are_the_full_loaders(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(HEAD + '{"op": "access", "gfn": 1},\n{"op": "delete", "slot": 4}\n]}')
    with pytest.raises(TraceError) as info:
        load_trace(path)
    assert str(info.value).startswith(f"{path}:3:")
    assert "unknown slot 4" in str(info.value)
