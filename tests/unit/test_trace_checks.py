"""One address-space check, one message, whatever format the trace was read from."""

from __future__ import annotations

import re

import pytest

from kvmgen.engine.compiled import compile_trace, load_compiled
from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.checks import check_trace_spaces

EVENTS = [
    '{"op": "create", "slot": 0, "gfn": 0, "pages": 1}',
    '{"op": "access", "gfn": 9}',
    '{"op": "flags", "slot": 0, "during": [{"op": "access", "gfn": 9, "window": "before_zap"},'
    ' {"op": "access", "gfn": 9, "as": 1, "window": "in_progress"}]}',
    '{"op": "bump", "as": 1, "count": 2}',
]


def _write_all(tmp_path):
    yaml_text = "kvmgen: 1\nevents:\n" + "".join(f"  - {e}\n" for e in EVENTS)
    json_text = '{"kvmgen": 1, "events": [\n' + ",\n".join(EVENTS) + "\n]}\n"
    jsonl_text = '{"kvmgen": 1}\n' + "".join(e + "\n" for e in EVENTS)
    paths = {}
    for suffix, text in (("yaml", yaml_text), ("json", json_text), ("jsonl", jsonl_text)):
        path = tmp_path / f"t.{suffix}"
        path.write_text(text)
        paths[suffix] = path
    compiled = tmp_path / "t.kvmc"
    compile_trace(open_trace(paths["yaml"]), str(compiled))
    paths["compiled"] = compiled
    return paths


def _message(trace) -> str:
    with pytest.raises(TraceError) as caught:
        check_trace_spaces(trace, 1)
    # Positions differ by format (JSON Lines has lines, no columns); the words do not.
    return re.sub(r"^[^:]+(:\d+)+: ", "", str(caught.value))


def test_every_format_words_the_error_alike(tmp_path) -> None:
    paths = _write_all(tmp_path)
    traces = {name: open_trace(path) for name, path in paths.items()}
    traces["compiled"] = load_compiled(str(paths["compiled"]))
    messages = {name: _message(trace) for name, trace in traces.items()}
    expected = (
        "event 2 (flags): during[1].as: address space 1 does not exist in this run, "
        "which has only address space 0"
    )
    assert messages == dict.fromkeys(traces, expected)
    for trace in traces.values():
        check_trace_spaces(trace, 2)


def test_a_header_slot_comes_first(tmp_path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(
        '{"kvmgen": 1, "vm": {"slots": [{"slot": 0, "as": 1, "gfn": 0, "pages": 1}]}}\n'
        '{"op": "bump", "as": 1, "count": 1}\n'
    )
    assert _message(open_trace(path)) == (
        "vm.slots[0].as: address space 1 does not exist in this run, which has only address space 0"
    )
