"""The jitted JSON scan gives exactly what the position-tracking JSON loader gives, or nothing."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.formats.json_fast import load_json_fast
from kvmgen.trace.formats.json_full import load_json
from kvmgen.trace.table import TableEvents
from tests.conftest import TRACES
from tests.property.mutation import check_fast_agrees_or_falls_back, mutated
from tests.property.strategies import traces
from tests.unit.test_trace_jsonl import _event_dict, vm_dict


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
    doc = {"kvmgen": 1, "vm": vm_dict(trace), "events": [_event_dict(e) for e in trace.events]}
    for indent in (None, 1):
        fast, full = _both(json.dumps(doc, indent=indent))
        assert fast is not None and fast == full


HEAD = '{"kvmgen": 1, "vm": {"era": "E5", "vcpus": 2}, "events": [\n'


@pytest.mark.parametrize(
    "event",
    [
        '{"op": "access", "gpa": "0xfebf1000", "note": "a \\\\\\" quoted [brace] {x}"}',
        '{"op": "access", "gfn": "0x10", "t": 1.5, "kind": "write"}',
        '{"op": "acc\\u0065ss", "gfn": 1}',
        '{"op": "access", "gfn": 1099511627775}',
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
        HEAD + '{"op": "access", "gfn": 1, "gfn": 2}\n]}',  # duplicate key in an access
        HEAD + '{"op": "access", "gfn": 01}\n]}',  # not JSON
        HEAD + '{"op": "access", "gfn": 1.0}\n]}',
        HEAD + '{"op": "access", "gfn": 12345678901234567890123}\n]}',
        HEAD + '{"op": "access", "gfn": 1, "vcpu": 2}\n]}',  # the header has 2 vCPUs
        HEAD + '{"op": "access", "gfn": 1, "speed": 2}\n]}',
        HEAD + '{"op": "access", "gfn": 1},\n]}',  # trailing comma
        HEAD + '{"op": "access", "gfn": 1}\n]} x',
        HEAD + '{"op": "create", "slot": 0, "gfn": 0, "pages": 1, "during": ['
        '{"op": "access", "gfn": 0, "window": "in_progress", "window": "before_zap"}]}\n]}',
        HEAD + '{"op": "create", "slot": 0, "gfn": 0, "pages": 1, "slot": 0}\n]}',
        HEAD + "[" * 100 + "]" * 100 + "\n]}",
        '{"kvmgen": 1, "events": {"op": "access", "gfn": 1}}',
        '[{"kvmgen": 1, "events": []}]',
    ],
)
def test_unusual_documents_fall_back(text):
    data = text.encode()
    assert load_json_fast("t.json", data, hashlib.sha256(data).hexdigest()) is None


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\n\t "])
def test_whitespace_and_layout(newline):
    events = [
        '{"op": "create", "slot": 0, "gfn": 0, "pages": 16}',
        '{ "gfn" :3 ,"op":"access" , "kind": "write", "repeat": 7, "as": 0, "vcpu": 1 }',
        '{"op":\n"access",\n"gfn": 4}',
        '{"op": "flags", "slot": 0}',
    ]
    text = HEAD + ("," + newline).join(events) + newline + "]}" + newline
    fast, full = _both(text.replace("\n", newline))
    assert fast is not None and fast == full


_SYMBOLS = [*'{}[],:" 0123456789-.e\n', '"op"', '"access"', '"gfn"', '"during"']


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_documents_agree_or_fall_back(data):
    doc = {
        "kvmgen": 1,
        "vm": {"vcpus": 2},
        "events": [
            {"op": "create", "slot": 0, "gfn": 0, "pages": 8, "note": "ram"},
            {"op": "access", "gfn": 3, "vcpu": 1},
            {
                "op": "delete",
                "slot": 0,
                "during": [{"op": "access", "gfn": 3, "window": "in_progress"}],
            },
            {"op": "access", "gfn": 5, "kind": "write", "repeat": 2},
        ],
    }
    text = json.dumps(doc, indent=data.draw(st.sampled_from([None, 1])))
    text = mutated(data, text, _SYMBOLS)
    check_fast_agrees_or_falls_back(load_json_fast, load_json, "t.json", text)


def test_big_documents_take_the_scan(tmp_path, monkeypatch):
    import kvmgen.trace

    path = tmp_path / "t.json"
    text = json.dumps(yaml.safe_load((TRACES / "churn-delete-move.yaml").read_text()))
    path.write_text(text)
    assert type(open_trace(path).events) is tuple
    monkeypatch.setattr(kvmgen.trace.formats.scan, "SCAN_MIN_BYTES", 0)
    scanned = open_trace(path)
    assert type(scanned.events) is TableEvents
    assert scanned == load_json(str(path), text.encode(), scanned.sha256)


def test_errors_are_the_full_loaders(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(HEAD + '{"op": "access", "gfn": 1},\n{"op": "delete", "slot": 4}\n]}')
    with pytest.raises(TraceError) as info:
        open_trace(path)
    assert str(info.value).startswith(f"{path}:3:")
    assert "unknown slot 4" in str(info.value)
