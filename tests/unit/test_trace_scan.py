"""Every event kind read by the jitted scan into columns, and big JSON/YAML documents streamed.

A streamed document (forced here with a threshold of 0, and small blocks so that
events straddle them) must give the full loader's trace, digest and first uses,
or the full loader's error message, whatever the bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import kvmgen.trace.formats.json_fast as json_fast
import kvmgen.trace.formats.yaml_fast as yaml_fast
from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.checks import trace_uses
from kvmgen.trace.digest import content_digest
from kvmgen.trace.formats import load_document, scan
from kvmgen.trace.records import Op, Trace
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import table_of
from tests.conftest import TRACES
from tests.property.mutation import mutated
from tests.property.strategies import traces
from tests.unit.test_trace_jsonl import _event_dict, vm_dict

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
EXPECTED: dict[str, str] = yaml.safe_load((BAD / "_expected.yaml").read_text("utf-8"))


@pytest.fixture
def streamed(monkeypatch):
    """Every JSON and YAML file streamed and scanned, in blocks of a few dozen bytes."""
    monkeypatch.setattr(scan, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(scan, "SCAN_MIN_BYTES", 0)
    monkeypatch.setattr(json_fast, "CHUNK_BYTES", 53)
    monkeypatch.setattr(yaml_fast, "CHUNK_BYTES", 61)


_WORDS = {"op", "kind", "window"}


def _flow(value: object, key: str = "") -> str:
    """A value in YAML flow style (lists included), as kvmgen's writers put it."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v, k)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item, key) for item in value) + "]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return hex(value) if value > 9 else str(value)
    if isinstance(value, str) and key not in _WORDS:
        return json.dumps(value)
    return str(value)


def as_yaml(trace: Trace) -> str:
    head = ["kvmgen: 1", "vm:", f"  era: {trace.vm.era or 'E5'}"]
    if trace.vm.vcpus:
        head.append(f"  vcpus: {trace.vm.vcpus}")
    if trace.vm.address_spaces:
        head.append(f"  address_spaces: {trace.vm.address_spaces}")
    if trace.vm.slots:
        head.append("  slots:")
        head += [
            f"    - {{slot: {s.slot}, as: {s.address_space}, gfn: {s.gfn}, pages: {s.pages}}}"
            for s in trace.vm.slots
        ]
    head.append("events:" if trace.events else "events: []")
    return "\n".join(head + [f"  - {_flow(_event_dict(e))}" for e in trace.events]) + "\n"


def as_json(trace: Trace, indent: int | None = None) -> str:
    doc = {"kvmgen": 1, "vm": vm_dict(trace), "events": [_event_dict(e) for e in trace.events]}
    return json.dumps(doc, indent=indent)


def _outcome(trace: object) -> object:
    """What reading gave: the trace in memory (a streamed one read through) or the message."""
    if isinstance(trace, StreamedTrace):
        return trace.materialize()
    return trace


def _read(path: Path) -> object:
    try:
        return _outcome(open_trace(path))
    except TraceError as error:
        assert "\n" not in str(error)
        return str(error)


def _full(path: Path) -> object:
    try:
        return load_document(str(path), path.read_bytes())
    except TraceError as error:
        return str(error)


# --- the scan reads every kind of event ----------------------------------------------

EVERY_KIND = [
    {"op": "create", "slot": 0, "gfn": 256, "pages": 16, "flags": 1, "note": "ram", "t": 0.5},
    {"op": "flags", "slot": 0, "repeat": 3},
    {"op": "flags", "slot": 0, "flags": 0, "t": 12345.678901},
    {"op": "bump", "as": 1, "count": 1000000},
    {"op": "access", "gfn": 260, "vcpu": 1, "kind": "write", "repeat": 5},
    {"op": "access", "gpa": 1064960, "t": 1.5e-3},
    {
        "op": "move",
        "slot": 0,
        "gfn": 512,
        "during": [
            {"op": "access", "gfn": 515, "window": "before_zap", "vcpu": 1, "note": ""},
            {"op": "access", "gfn": 260, "window": "in_progress", "t": -2},
            {"op": "access", "gfn": 5, "window": "before_zap", "kind": "write"},
        ],
    },
    {"op": "create", "slot": 7, "as": 1, "gfn": 0, "pages": 1, "during": []},
    {"op": "delete", "slot": 7, "as": 1, "note": "gone"},
    {"op": "access", "gfn": 1099511627775, "as": 1, "repeat": 4611686018427387904},
]
HEAD = {"kvmgen": 1, "vm": {"era": "E5", "vcpus": 2}}


def _every_kind(fmt: str) -> bytes:
    if fmt == "yaml":
        lines = ["kvmgen: 1", "vm: {era: E5, vcpus: 2}", "events:"]
        lines += [f"  - {_flow(event)}" for event in EVERY_KIND]
        return ("\n".join(lines) + "\n").encode()
    if fmt == "jsonl":
        return ("\n".join(json.dumps(e) for e in [HEAD, *EVERY_KIND]) + "\n").encode()
    return json.dumps({**HEAD, "events": EVERY_KIND}, indent=1).encode()


def _scanned(fmt: str, data: bytes) -> scan.ScanTables:
    """One scan of a whole trace's events, as the loaders run it."""
    if fmt == "yaml":
        body = data[data.index(b"events:\n") + 8 :]
        return yaml_fast._scan(body, data[: -len(body)].count(b"\n") + 1, 0, -1)
    if fmt == "jsonl":
        from kvmgen.trace.formats.jsonl import _scan

        return _scan(data[data.index(b"\n") + 1 :], 2, 0, None)
    where = json_fast._find_list("t.json", data)
    assert isinstance(where, json_fast._List)
    body = data[where.offset + 1 :]
    found, status = json_fast._scan(
        body, where.line, where.line_start - (where.offset + 1), 0, True, True, None
    )
    assert status == found.sk.OK
    return found


@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl"])
def test_every_event_kind_is_read_into_columns(fmt):
    found = _scanned(fmt, _every_kind(fmt))
    table, others = found.read(2)
    assert others == []  # no Python event: updates, bumps, repeats, during, t, notes alike
    assert table.top_rows().shape[0] == len(EVERY_KIND)
    assert table.sub.tolist().count(-1) == len(EVERY_KIND)


@pytest.mark.parametrize("fmt", ["yaml", "json", "jsonl"])
def test_every_event_kind_reads_as_the_full_loader_reads_it(fmt, tmp_path, streamed):
    data = _every_kind(fmt)
    path = tmp_path / f"t.{fmt}"
    path.write_bytes(data)
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps({**HEAD, "events": EVERY_KIND}))
    got, want = open_trace(path), load_document(str(reference), reference.read_bytes())
    assert isinstance(got, StreamedTrace)
    strip = [(e.line, e.column) for e in want.events]
    events = got.materialize().events
    if fmt != "jsonl":  # JSON Lines positions are lines
        assert [(e.line, e.column) for e in events] != strip  # their own positions...
    assert [e.op for e in events] == [e.op for e in want.events]
    assert got.content_digest() == content_digest(want.vm, table_of(want))  # ...same content
    assert events[6].during[0].window.name == "IN_PROGRESS"  # execution order


def test_json_integer_strings_are_read_by_the_scan():
    # kvmgen's importers write JSON gfns and pages as "0x..." strings.
    data = json.dumps(
        {**HEAD, "events": [{"op": "access", "gfn": "0xfebf1"}, {"op": "access", "gpa": "4096"}]}
    ).encode()
    table, others = _scanned("json", data).read(2)
    assert others == [] and table.gfn.tolist() == [0xFEBF1, 1]


@pytest.mark.parametrize(
    "event",
    [
        '{"op": "access", "gfn": "0x"}',
        '{"op": "access", "gfn": "012"}',
        '{"op": "access", "gfn": "-1"}',
        '{"op": "access", "gfn": 1, "t": "1.5"}',
        '{"op": "access", "gfn": 1, "note": "a\\nb"}',
        '{"op": "access", "gfn": 1, "t": 1.234567890123456}',
        '{"op": "access", "gfn": 1, "t": 1e23}',
        '{"op": "access", "gfn": 1, "gfn": 2}',
        '{"op": "access", "gfn": 1, "vcpu": 2}',
        '{"op": "create", "slot": 0, "gfn": 1, "pages": 1, "repeat": 2}',
        '{"op": "flags", "slot": 0, "repeat": 2, "during": []}',
        '{"op": "access", "gfn": 1, "gpa": 4096}',
        '{"op": "bump", "count": 0}',
        '{"op": "create", "slot": 0, "gfn": 1099511627775, "pages": 2}',
        '{"op": "create", "slot": 0, "gfn": 1, "pages": 1, "during": [{"op": "access", "gfn": 1}]}',
    ],
)
def test_what_the_scan_does_not_vouch_for_goes_to_the_validator(event):
    data = ('{"kvmgen": 1, "vm": {"vcpus": 2}, "events": [' + event + "]}").encode()
    table, others = _scanned("json", data).read(2)
    assert len(table) == 0 and [other.index for other in others] == [0]


# --- streamed documents ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_fixtures_streamed_give_the_same_message(name, tmp_path, streamed):
    path = tmp_path / name
    path.write_bytes((BAD / name).read_bytes())
    assert _read(path) == EXPECTED[name].replace(name, str(path), 1)


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_samples_streamed_equal_the_full_loader(path, fmt, tmp_path, streamed):
    text = path.read_text()
    if fmt == "json":
        text = json.dumps(yaml.safe_load(text), indent=1)
    file = tmp_path / f"t.{fmt}"
    file.write_text(text)
    opened = open_trace(file)
    whole = load_document(str(file), file.read_bytes())
    if "observations" in text or "  - op:" in text:
        assert isinstance(opened, Trace)  # read in memory, as the full loader reads it
        assert opened == whole
        return
    assert isinstance(opened, StreamedTrace)
    assert opened.materialize() == whole
    assert opened.content_digest() == content_digest(whole.vm, table_of(whole))
    assert opened.space_uses == trace_uses(whole)
    assert opened.notes == table_of(whole).event_notes()
    assert opened.event_count == len(whole.events)


@settings(max_examples=60)
@given(trace=traces(2), indent=st.sampled_from([None, 1]))
def test_generated_traces_streamed_equal_the_full_loader(tmp_path_factory, trace, indent):
    folder = tmp_path_factory.mktemp("g")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "STREAM_MIN_BYTES", 0)
        patch.setattr(json_fast, "CHUNK_BYTES", 97)
        patch.setattr(yaml_fast, "CHUNK_BYTES", 89)
        for suffix, text in (("json", as_json(trace, indent)), ("yaml", as_yaml(trace))):
            file = folder / f"t.{suffix}"
            file.write_text(text)
            opened = open_trace(file)
            whole = load_document(str(file), file.read_bytes())
            if not trace.events and suffix == "yaml":
                assert opened == whole  # "events: []" is not the layout streamed
                continue
            assert isinstance(opened, StreamedTrace)
            assert opened.materialize() == whole
            assert opened.space_uses == trace_uses(whole)


_JSON_SYMBOLS = [*'{}[],:" 0123456789-.eE\n', '"op"', '"access"', '"gfn"', '"during"', '"slot"']
_YAML_SYMBOLS = [*"{}[],:#'\" -0123456789xX\t\n\u00e9", "op", "access", "gfn", "during", "slot"]


def _mutation_base(fmt: str) -> str:
    events = [
        {"op": "create", "slot": 0, "gfn": 0, "pages": 8, "note": "ram"},
        {"op": "access", "gfn": 3, "vcpu": 1, "t": 1.25},
        {"op": "move", "slot": 0, "gfn": 16},
        {"op": "flags", "slot": 0, "during": [{"op": "access", "gfn": 17, "window": "before_zap"}]},
        {"op": "bump", "count": 2},
        {"op": "delete", "slot": 0},
    ]
    if fmt == "json":
        return json.dumps(
            {"kvmgen": 1, "vm": {"era": "E5", "vcpus": 2}, "events": events}, indent=1
        )
    return "kvmgen: 1\nvm: {era: E5, vcpus: 2}\nevents:\n" + "".join(
        f"  - {_flow(e)}\n" for e in events
    )


@settings(max_examples=400)
@given(data=st.data(), fmt=st.sampled_from(["json", "yaml"]))
def test_mutated_documents_stream_to_the_full_loaders_trace_or_message(tmp_path_factory, data, fmt):
    symbols = _JSON_SYMBOLS if fmt == "json" else _YAML_SYMBOLS
    text = mutated(data, _mutation_base(fmt), symbols)
    path = tmp_path_factory.mktemp("m") / f"t.{fmt}"
    path.write_bytes(text.encode())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "STREAM_MIN_BYTES", 0)
        patch.setattr(json_fast, "CHUNK_BYTES", 41)
        patch.setattr(yaml_fast, "CHUNK_BYTES", 37)
        got = _read(path)
    assert got == _full(path)


_UPDATES = st.lists(
    st.tuples(
        st.sampled_from(["create", "delete", "move", "flags"]),
        st.integers(0, 1),  # address space
        st.integers(0, 3),  # slot
        st.integers(0, 40),  # gfn
        st.integers(1, 12),  # pages
    ),
    max_size=30,
)


@settings(max_examples=200)
@given(updates=_UPDATES, compiled=st.booleans())
def test_layout_over_columns_fails_where_the_validator_does(tmp_path_factory, updates, compiled):
    """The layout kernel, compiled or run as Python (few updates), as the validator's layout."""
    events = []
    for op, a, slot, gfn, pages in updates:
        event: dict[str, object] = {"op": op, "slot": slot, "as": a}
        if op in ("create", "move"):
            event["gfn"] = gfn
        if op == "create":
            event["pages"] = pages
        events.append(event)
    path = tmp_path_factory.mktemp("l") / "t.json"
    path.write_text(json.dumps({"kvmgen": 1, "events": events}, indent=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scan, "STREAM_MIN_BYTES", 0)
        patch.setattr(scan, "PYTHON_UPDATES", 0 if compiled else 1 << 62)
        patch.setattr(json_fast, "CHUNK_BYTES", 64)
        got = _read(path)
    assert got == _full(path)
    if isinstance(got, Trace):  # a move's pages come from the layout
        assert [e.pages for e in got.events if e.op == Op.MOVE] == [
            e.pages for e in load_document(str(path), path.read_bytes()).events if e.op == Op.MOVE
        ]


_NUMBERS = st.text(alphabet="0123456789.-+eE", min_size=1, max_size=24) | st.from_regex(
    r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,16})?([eE][-+]?[0-9]{1,3})?", fullmatch=True
)


@settings(max_examples=500)
@given(texts=st.lists(_NUMBERS, min_size=1, max_size=8), yaml_syntax=st.booleans())
def test_times_read_as_float_reads_them_compiled_or_not(texts, yaml_syntax):
    from kvmgen.trace.formats import scan_kernels as sk

    data = " ".join(texts).encode()
    ends = np.cumsum([len(t) + 1 for t in texts]) - 1
    starts = ends - [len(t) for t in texts]
    got = []
    for run in (sk.times, scan.as_python(sk.times)):
        values, read = np.zeros(len(texts)), np.zeros(len(texts), dtype=np.bool_)
        buf = np.frombuffer(data, dtype=np.uint8) if run is sk.times else data
        run(buf, starts, ends, int(yaml_syntax), values, read)
        got.append((values.tolist(), read.tolist()))
    assert got[0] == got[1]
    for text, value, read in zip(texts, *got[0], strict=True):
        if read:  # exactly what the loaders make of it: an integer's float, else float()
            whole = text.lstrip("-").isdigit()
            expected = float(int(text)) if whole else float(text)
            assert value == expected and np.signbit(value) == np.signbit(expected), text
            assert not yaml_syntax or "e" not in text.lower()


def test_a_big_document_on_a_stream_is_spooled_and_streamed(monkeypatch):
    monkeypatch.setattr(scan, "STREAM_MIN_BYTES", 64)
    data = _every_kind("yaml")
    opened = open_trace(io.BytesIO(data), name="<stdin>")
    assert isinstance(opened, StreamedTrace)
    assert opened.sha256 == hashlib.sha256(data).hexdigest()
    assert opened.materialize() == load_document("<stdin>", data)


def test_documents_the_scan_does_not_stream_are_read_whole(tmp_path, streamed):
    # Observations are checked against the events, and a mapping after the events
    # list is an unusual layout: both are read in memory, as before.
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"kvmgen": 1, "events": [], "vm": {"era": "E5"}}))
    assert isinstance(open_trace(path), Trace)
    path = tmp_path / "t.yaml"
    path.write_text("kvmgen: 1\nevents:\n  - op: bump\n    count: 1\n")
    assert isinstance(open_trace(path), Trace)


def test_each_scan_kernel_is_compiled_once(tmp_path, streamed):
    """Flags go in typed, not as literals: no kernel is specialised twice."""
    from kvmgen.trace.formats import scan_kernels

    for fmt in ("yaml", "json", "jsonl"):
        path = tmp_path / f"t.{fmt}"
        path.write_bytes(_every_kind(fmt))
        _outcome(open_trace(path))
    compiled = {
        name: len(fn.overloads)
        for name, fn in vars(scan_kernels).items()
        if hasattr(fn, "overloads") and fn.overloads
    }
    assert compiled and set(compiled.values()) == {1}, {
        name: [str(sig) for sig in fn.overloads]
        for name, fn in vars(scan_kernels).items()
        if hasattr(fn, "overloads") and len(fn.overloads) > 1
    }


def test_lines_of_bare_values_fit_the_scan_tables(tmp_path):
    # Two bytes a line: far more other events than objects.
    path = tmp_path / "n.jsonl"
    path.write_text('{"kvmgen": 1}\n' + "1\n" * 5000)
    with pytest.raises(TraceError, match=r"n\.jsonl:2: event 0: expected an event mapping, got 1"):
        _outcome(open_trace(path))


@pytest.mark.parametrize("name", ["qemu-boot-smm.yaml", "churn-delete-move.yaml"])
def test_streamed_documents_give_the_same_report_bytes(run_cli, tmp_path, name, monkeypatch):
    source = TRACES / name
    as_json = tmp_path / "t.json"
    as_json.write_text(json.dumps(yaml.safe_load(source.read_text()), indent=1))
    as_yaml = tmp_path / "t.yaml"
    as_yaml.write_text(as_yaml_text(source))
    expected = run_cli("replay", str(source), "--json", "-").stdout
    monkeypatch.setattr(scan, "STREAM_MIN_BYTES", 0)
    monkeypatch.setattr(json_fast, "CHUNK_BYTES", 512)
    monkeypatch.setattr(yaml_fast, "CHUNK_BYTES", 512)
    assert isinstance(open_trace(as_json), StreamedTrace)
    assert isinstance(open_trace(as_yaml), StreamedTrace)
    reports = [
        run_cli("replay", str(as_json), "--json", "-").stdout,
        run_cli("replay", str(as_yaml), "--json", "-").stdout,
        run_cli("replay", "-", "--json", "-", input=as_json.read_bytes()).stdout,
        run_cli("replay", "-", "--json", "-", input=as_yaml.read_bytes()).stdout,
    ]
    compiled = tmp_path / "t.kvmc"
    assert run_cli("compile", str(as_yaml), "-o", str(compiled)).exit_code == 0
    reports.append(run_cli("replay", str(compiled), "--json", "-").stdout)
    assert set(reports) == {expected}


def as_yaml_text(path: Path) -> str:
    """A sample trace with its events one flow mapping a line (the layout streamed)."""
    doc = yaml.safe_load(path.read_text())
    head = [f"kvmgen: {doc['kvmgen']}", f"vm: {json.dumps(doc['vm'])}", "events:"]
    return "\n".join(head + [f"  - {_flow(event)}" for event in doc["events"]]) + "\n"


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.yaml")), ids=lambda p: p.name)
def test_in_memory_reads_in_blocks_equal_the_full_loader(path, monkeypatch):
    from kvmgen.trace.formats.json_full import load_json
    from kvmgen.trace.formats.yaml_full import load_yaml

    monkeypatch.setattr(json_fast, "CHUNK_BYTES", 97)
    monkeypatch.setattr(yaml_fast, "CHUNK_BYTES", 89)
    monkeypatch.setattr(scan, "SCAN_MIN_BYTES", 0)
    text = path.read_text()
    as_json = json.dumps(yaml.safe_load(text), indent=1).encode()
    fast = json_fast.load_json_fast("t.json", as_json, "")
    assert fast is not None and fast == load_json("t.json", as_json, "")
    flow = as_yaml_text(path).encode()
    fast = yaml_fast.load_yaml_fast("t.yaml", flow, "")
    assert fast is not None and fast == load_yaml("t.yaml", flow, "")


def test_tables_of_blocks_concatenate_to_the_whole():
    from kvmgen.trace.table import EventTable, concat

    trace = load_document("t.json", json.dumps({**HEAD, "events": EVERY_KIND}).encode())
    events = list(trace.events)
    parts = [EventTable.from_events(events[a:b]) for a, b in ((0, 3), (3, 3), (3, 7), (7, 10))]
    whole = concat(parts)
    assert whole.records() == EventTable.from_events(events).records()
    assert whole.event_notes() == table_of(trace).event_notes()
