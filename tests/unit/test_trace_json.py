"""JSON trace loading: exact records and positions, strict syntax, parity with YAML."""

from __future__ import annotations

import dataclasses
import json

import pytest

from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace import Event, Op, Window
from kvmgen.trace.formats.json_full import parse_json
from kvmgen.trace.tree import Map, key_pos, value_pos

PRETTY = """\
{
  "kvmgen": 1,
  "vm": {"kernel": "4.10", "vcpus": 2,
         "slots": [{"slot": 3, "gfn": "0xfd000", "pages": 4096}]},
  "events": [
    {"op": "create", "slot": 0, "gfn": "0x0", "pages": "0xc0000", "t": 0.5},
    {"op": "access", "gpa": "0xfebf1000", "vcpu": 1, "kind": "write", "note": "hi"},
    {
      "op": "flags",
      "slot": 0,
      "during": [
        {"op": "access", "gfn": 5, "window": "before_zap"},
        {"op": "access", "gfn": 6, "window": "in_progress", "as": 1}
      ]
    },
    {"op": "bump", "count": 2}
  ]
}
"""


def load(text: str, name: str = "t.json"):
    return open_trace(text.encode(), name=name)


def error(text: str, name: str = "t.json") -> str:
    with pytest.raises(TraceError) as caught:
        load(text, name)
    return str(caught.value)


def one_event(body: str) -> str:
    return '{"kvmgen": 1, "events": [' + body + "]}"


def test_pretty_trace_records_and_lines() -> None:
    trace = load(PRETTY)
    assert trace.format == "json"
    assert trace.vm.kernel == "4.10"
    assert trace.vm.line == 3
    assert trace.vm.slots[0].line == 4
    assert trace.vm.slots[0].gfn == 0xFD000
    assert trace.events[0] == Event(
        index=0, op=Op.CREATE, line=6, column=5, slot=0, gfn=0, pages=0xC0000, flags=0, t=0.5
    )
    assert trace.events[1] == Event(
        index=1, op=Op.ACCESS, line=7, column=5, gfn=0xFEBF1, vcpu=1, kind=1, note="hi"
    )
    flags = trace.events[2]
    assert (flags.line, flags.column, flags.flags, flags.repeat) == (8, 5, None, 1)
    assert flags.during == (
        Event(
            index=2, op=Op.ACCESS, line=13, column=9, sub=1, address_space=1, gfn=6,
            window=Window.IN_PROGRESS,
        ),
        Event(index=2, op=Op.ACCESS, line=12, column=9, sub=0, gfn=5, window=Window.BEFORE_ZAP),
    )  # fmt: skip
    assert trace.events[3] == Event(index=3, op=Op.BUMP, line=16, column=5, repeat=2)
    assert (trace.max_address_space, trace.max_vcpu) == (1, 1)


def test_compact_trace_columns() -> None:
    text = one_event('{"op": "access", "gfn": 1}, {"op": "access", "gfn": 2}')
    first, second = load(text).events
    assert (first.line, first.column) == (1, text.index("{", 1) + 1)
    assert (second.line, second.column) == (1, text.rindex("{") + 1)


def test_same_trace_in_yaml_and_json_gives_the_same_events() -> None:
    from_json = load(PRETTY)
    data = json.loads(PRETTY)
    lines = ["kvmgen: 1", f"vm: {json.dumps(data['vm'])}", "events:"]
    lines += [f"  - {json.dumps(event)}" for event in data["events"]]
    from_yaml = open_trace(("\n".join(lines) + "\n").encode(), name="t.yaml")

    def strip(event: Event) -> Event:
        during = tuple(strip(sub) for sub in event.during)
        return dataclasses.replace(event, line=0, column=0, during=during)

    assert [strip(e) for e in from_json.events] == [strip(e) for e in from_yaml.events]
    assert dataclasses.replace(from_json.vm, line=0, slots=()) == dataclasses.replace(
        from_yaml.vm, line=0, slots=()
    )


def test_located_tree_positions() -> None:
    root, pos = parse_json("t.json", b'\n  {"a": [1, {"b": "x"}],\n   "c": null}')
    assert pos == (2, 3)
    assert isinstance(root, Map)
    assert key_pos(root, "c") == (3, 4)
    assert value_pos(root, "c") == (3, 9)
    assert value_pos(root["a"][1], "b") == (2, 19)


def test_escaped_strings_and_unicode() -> None:
    trace = load(one_event(r'{"op": "access", "gfn": 1, "note": "caf\u00e9 \"x\" \ud83d\ude00"}'))
    assert trace.events[0].note == 'café "x" \U0001f600'


def test_numbers_may_be_written_as_strings_in_json() -> None:
    ev = load(one_event('{"op": "bump", "as": "1", "count": "0x10"}')).events[0]
    assert (ev.address_space, ev.repeat) == (1, 16)


def test_kernel_must_be_a_json_string() -> None:
    message = error('{"kvmgen": 1, "vm": {"kernel": 5.10}, "events": []}')
    assert message.startswith("t.json:1:32: vm.kernel: expected a version string")
    assert message.endswith("got 5.1 (a float)")


def test_note_must_be_a_json_string() -> None:
    assert error(one_event('{"op": "access", "gfn": 1, "note": true}')).endswith(
        "note: expected a string, got true"
    )


def test_float_t_and_integer_t() -> None:
    ev = load(
        one_event('{"op": "bump", "count": 1, "t": 2}, {"op": "bump", "count": 1, "t": 1e-3}')
    )
    assert [e.t for e in ev.events] == [2.0, 0.001]


def test_t_too_large_for_a_float() -> None:
    assert error(one_event('{"op": "bump", "count": 1, "t": 1e999}')).endswith(
        "t: expected a finite number, got inf (a float)"
    )


def test_empty_json_text() -> None:
    assert error(" \n") == (
        "t.json:1:1: empty trace: expected a mapping with the keys kvmgen, vm and events"
    )


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ('{"kvmgen": 1,', "1:14", "expected a key in double quotes, got the end of the input"),
        ('{"kvmgen": 1 "events": []}', "1:14", "expected ',' or '}' after a member, got '\"'"),
        ('{"kvmgen": tru}', "1:12", "expected a value, got 't'"),
        ('{"kvmgen": 1, "events": [], }', "1:29", "trailing comma before '}'"),
        ('{"kvmgen": -}', "1:12", "invalid number starting '-}'"),
        ('{"kvmgen": 1} x', "1:15", "extra data after the JSON document"),
        ('{"kvmgen": "\\x"}', "1:13", "invalid \\escape"),
        ('{"kvmgen": "abc', "1:12", "unterminated string"),
        ('{"kvmgen": 1, "events": [Infinity]}', "1:26", "expected a value, got 'I'"),
        (
            '{"kvmgen": 1, // note\n "events": []}',
            "1:15",
            "expected a key in double quotes, got '/'",
        ),
    ],
)
def test_syntax_errors(text: str, where: str, reason: str) -> None:
    assert error(text) == f"t.json:{where}: JSON syntax error: {reason}"


def test_error_lines_in_a_long_pretty_file() -> None:
    body = ",\n".join(f'    {{"op": "access", "gfn": {i}}}' for i in range(500))
    text = (
        '{\n  "kvmgen": 1,\n  "events": [\n' + body + ',\n    {"op": "access", "gfn": -1}\n  ]\n}\n'
    )
    assert error(text) == (
        "t.json:504:29: event 500 (access): gfn: expected an integer 0..2^40-1, got -1"
    )


def test_deep_nesting_does_not_recurse() -> None:
    depth = 50_000
    text = '{"kvmgen": 1, "events": [{"op": "access", "gfn": ' + "[" * depth + "]" * depth + "}]}"
    assert error(text).endswith("gfn: expected an integer, got a list")


def test_format_from_suffix_overrides_sniffing() -> None:
    text = "{kvmgen: 1, events: []}"  # YAML flow mapping, not JSON
    assert open_trace(text.encode(), name="t.yaml").format == "yaml"
    assert error(text).startswith("t.json:1:2: JSON syntax error")
