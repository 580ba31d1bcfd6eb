"""JSON Lines traces: same events and reports as format v1, errors with lines, streaming."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.report.document import build_document
from kvmgen.session import resolve_target, run_session
from kvmgen.trace.checks import check_trace_spaces as check_streamed_for_run
from kvmgen.trace.formats.jsonl import looks_like_jsonl, scan_jsonl
from kvmgen.trace.records import Event, Op, Trace
from kvmgen.trace.table import table_of
from tests.conftest import TRACES
from tests.property.strategies import runs, traces

pytestmark = pytest.mark.usefixtures("warm_engine")
SAMPLES = sorted(TRACES.glob("*.yaml"))


def yaml_to_jsonl(path: Path, out: Path) -> Path:
    doc = yaml.safe_load(path.read_text())
    lines = [json.dumps({"kvmgen": 1, **({"vm": doc["vm"]} if "vm" in doc else {})})]
    lines += [json.dumps(event) for event in doc["events"]]
    out.write_text("\n".join(lines) + "\n")
    return out


def _event_dict(e: Event) -> dict:
    out: dict = {"op": e.op.name.lower()}
    if e.op != Op.BUMP and e.op != Op.ACCESS:
        out["slot"] = e.slot
    if e.address_space:
        out["as"] = e.address_space
    if e.op in (Op.CREATE, Op.MOVE, Op.ACCESS):
        out["gfn"] = e.gfn
    if e.op == Op.CREATE:
        out["pages"] = e.pages
    if e.op in (Op.CREATE, Op.FLAGS) and e.flags is not None:
        out["flags"] = e.flags
    if e.op == Op.ACCESS:
        out.update(vcpu=e.vcpu, kind=e.kind.name.lower())
    if e.op == Op.BUMP:
        out["count"] = e.repeat
    elif e.repeat != 1:
        out["repeat"] = e.repeat
    if e.during:
        out["during"] = [
            {**_event_dict(d), "window": d.window.name.lower()}
            for d in sorted(e.during, key=lambda d: d.sub)
        ]
    return out


def vm_dict(trace: Trace) -> dict:
    """The header of a generated trace as format-v1 data."""
    return {
        "address_spaces": trace.vm.address_spaces,
        "vcpus": trace.vm.vcpus,
        "slots": [
            {"slot": s.slot, "as": s.address_space, "gfn": s.gfn, "pages": s.pages}
            for s in trace.vm.slots
        ],
    }


def trace_to_jsonl(trace: Trace, out: Path) -> Path:
    lines = [json.dumps({"kvmgen": 1, "vm": vm_dict(trace)})]
    lines += [json.dumps(_event_dict(e)) for e in trace.events]
    out.write_text("\n".join(lines) + "\n")
    return out


def _strip(events):
    """Events without source positions (and a move's pages, which loaders fill in)."""
    return [
        replace(
            e,
            line=0,
            column=0,
            pages=0 if e.op == Op.MOVE else e.pages,
            during=tuple(replace(d, line=0, column=0) for d in e.during),
        )
        for e in events
    ]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_as_jsonl_gives_the_same_runs(path, tmp_path):
    streamed = scan_jsonl(str(yaml_to_jsonl(path, tmp_path / "t.jsonl")))
    in_memory = open_trace(path)
    a = run_session(streamed, [resolve_target(streamed, None, None)])
    b = run_session(in_memory, [resolve_target(in_memory, None, None)])
    assert build_document(a)["runs"] == build_document(b)["runs"]
    assert _strip(streamed.materialize().events) == _strip(in_memory.events)


@settings(max_examples=60)
@given(spec=runs(), data=traces(2))
def test_streamed_equals_in_memory_on_generated_traces(tmp_path_factory, spec, data):
    path = trace_to_jsonl(data, tmp_path_factory.mktemp("g") / "t.jsonl")
    streamed = scan_jsonl(str(path))
    assert _strip(streamed.materialize().events) == _strip(data.events)
    if spec.address_spaces == 2:
        from kvmgen.engine.replay import replay_engine, replay_streamed

        (got,) = replay_streamed(streamed, [spec])
        assert got == replay_engine(data, spec)


@pytest.mark.parametrize("chunk", [16, 97, 1 << 22])
@pytest.mark.parametrize("layout", ["plain", "crlf", "blank-lines", "no-final-newline"])
def test_blocks_and_line_layouts(tmp_path, monkeypatch, chunk, layout):
    import kvmgen.trace.formats.jsonl as jsonl

    monkeypatch.setattr(jsonl, "CHUNK_BYTES", chunk)
    source = TRACES / "churn-delete-move.yaml"
    text = yaml_to_jsonl(source, tmp_path / "t.jsonl").read_text()
    if layout == "crlf":
        text = text.replace("\n", "\r\n")
    elif layout == "blank-lines":
        text = "\n \n" + text.replace("\n", "\n\t\n")
    elif layout == "no-final-newline":
        text = text.rstrip("\n")
    path = tmp_path / "l.jsonl"
    path.write_text(text)
    streamed = scan_jsonl(str(path))
    in_memory = open_trace(source)
    assert _strip(streamed.materialize().events) == _strip(in_memory.events)
    assert streamed.content_digest() == in_memory_digest(in_memory)
    assert streamed.notes == table_of(in_memory).event_notes()


def in_memory_digest(trace):
    from kvmgen.trace.digest import content_digest

    return content_digest(trace.vm, table_of(trace))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"op": "access", "gfn": 1, "gfn": 2}', "gfn: duplicate key 'gfn'"),
        ('{"op": "access", "gfn": 1, "vcpu": 2}', "vcpu: vcpu 2 does not exist"),
        (
            '{"op": "create", "slot": 0, "gfn": 9, "pages": 1, "during": '
            '[{"op": "access", "gfn": 9, "window": "in_progress", "gfn": 3}]}',
            "duplicate key 'gfn'",
        ),
        ('{"op": "access", "gfn": 01}', "not valid JSON"),
        ("[1, 2]", "expected an event mapping"),
        ("5", "event 1: expected an event mapping, got 5"),
        ("null", "expected an event mapping"),
    ],
)
def test_line_errors_from_the_scan(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kvmgen": 1, "vm": {"vcpus": 2}}\n{"op": "access", "gfn": 1}\n' + line + "\n")
    with pytest.raises(TraceError) as info:
        scan_jsonl(str(path)).materialize()
    assert str(info.value).startswith(f"{path}:3")
    assert message in str(info.value)


def test_bad_event_names_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kvmgen": 1}\n{"op": "access", "gfn": 1}\n\n{"op": "access", "gfn": -4}\n')
    streamed = scan_jsonl(str(path))
    with pytest.raises(TraceError) as info:
        streamed.materialize()
    assert str(info.value).startswith(f"{path}:4: event 1 (access): gfn: ")


def test_syntax_error_names_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"kvmgen": 1}\n{"op": "access", "gfn": 1\n')
    with pytest.raises(TraceError, match=r"bad\.jsonl:2: not valid JSON"):
        scan_jsonl(str(path)).materialize()


def test_header_rules(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"kvmgen": 1, "events": []}\n')
    with pytest.raises(TraceError, match="no events key"):
        scan_jsonl(str(path))
    path.write_text('{"kvmgen": 2}\n')
    with pytest.raises(TraceError, match="unsupported format version 2"):
        scan_jsonl(str(path))
    path.write_text("\n\n")
    with pytest.raises(TraceError, match="empty trace"):
        scan_jsonl(str(path))
    path.write_text('[{"kvmgen": 1}]\n')
    with pytest.raises(TraceError, match=r"h\.jsonl:1: expected the header object .* got a list"):
        scan_jsonl(str(path))


def test_address_space_check_names_first_event(tmp_path):
    path = tmp_path / "as.jsonl"
    path.write_text(
        '{"kvmgen": 1}\n{"op": "access", "gfn": 1}\n{"op": "bump", "as": 1, "count": 2}\n'
    )
    streamed = scan_jsonl(str(path))
    check_streamed_for_run(streamed, 2)
    with pytest.raises(TraceError, match=r"as\.jsonl:3: event 1 \(bump\): as: address space 1"):
        check_streamed_for_run(streamed, 1)


def test_sniffing():
    assert looks_like_jsonl(b'{"kvmgen": 1, "vm": {"era": "E5"}}\n')
    assert not looks_like_jsonl(b'{"kvmgen": 1, "events": [\n')
    assert not looks_like_jsonl(b"kvmgen: 1\n")


def test_interrupt_gives_a_partial_session(tmp_path):
    streamed = scan_jsonl(str(yaml_to_jsonl(TRACES / "vga-dirty-log.yaml", tmp_path / "v.jsonl")))

    def stop(label, done, total):
        raise KeyboardInterrupt

    session = run_session(streamed, [resolve_target(streamed, None, None)], progress=stop)
    assert session.partial
    assert all(run.result.partial for run in session.runs)
    doc = build_document(session)
    assert doc["partial"] is True
    assert doc["runs"][0]["events_replayed"] == streamed.event_count  # one block: all of it


def test_interrupt_in_memory_stops_after_the_first_run():
    trace = open_trace(TRACES / "vga-dirty-log.yaml")
    calls = []

    def stop(label, done, total):
        calls.append(label)
        raise KeyboardInterrupt

    target = resolve_target(trace, None, None)
    session = run_session(trace, [target], progress=stop, implementation="engine", jobs=1)
    assert session.partial and len(session.runs) == 1 and len(calls) == 1


def test_scan_progress_counts_bytes(tmp_path, monkeypatch):
    import kvmgen.trace.formats.jsonl as jsonl

    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 256)
    path = yaml_to_jsonl(TRACES / "qemu-boot-smm.yaml", tmp_path / "q.jsonl")
    seen: list[tuple[int, int]] = []
    scan_jsonl(str(path), progress=lambda done, total: seen.append((done, total)))
    size = path.stat().st_size
    assert len(seen) > 3 and seen[-1] == (size, size)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


_JSONL_SYMBOLS = [*'{}[],:" 0123456789-.e\n\r\t', '"op"', '"access"', '"gfn"', '"vcpu"']


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_lines_read_as_their_json_document_would(tmp_path_factory, data):
    """A JSON Lines file that reads gives the events of its lines as one JSON document."""
    from tests.property.mutation import mutated

    lines = [
        '{"op": "create", "slot": 0, "gfn": 0, "pages": 8, "note": "ram"}',
        '{"op": "access", "gfn": 3, "vcpu": 1}',
        '{"op": "delete", "slot": 0, "during": '
        '[{"op": "access", "gfn": 3, "window": "before_zap"}]}',
        '{"op": "access", "gfn": 5, "kind": "write", "repeat": 2}',
    ]
    header = '{"kvmgen": 1, "vm": {"era": "E5", "vcpus": 2}}\n'
    body = mutated(data, "\n".join(lines) + "\n", _JSONL_SYMBOLS)
    path = tmp_path_factory.mktemp("m") / "t.jsonl"
    path.write_text(header + body)
    try:
        streamed = scan_jsonl(str(path)).materialize()
    except TraceError as error:
        assert "\n" not in str(error)
        return
    events = [line for line in body.split("\n") if line.strip()]
    document = header.rstrip("\n")[:-1] + ', "events": [' + ",".join(events) + "]}"
    whole = open_trace(document.encode(), name="t.json")
    assert _strip(streamed.events) == _strip(whole.events)


# --- parity with YAML and JSON: the same input gets the same verdict and wording ----


def _verdicts(tmp_path, event: str, *, bom: bool = False) -> dict[str, str]:
    """The error (or "ok") for one event read as YAML, JSON and JSON Lines."""
    mark = b"\xef\xbb\xbf" if bom else b""
    texts = {
        "yaml": mark + f"kvmgen: 1\nevents:\n  - {event}\n".encode(),
        "json": mark + f'{{"kvmgen": 1, "events": [\n{event}\n]}}\n'.encode(),
        "jsonl": mark + f'{{"kvmgen": 1}}\n{event}\n'.encode(),
    }
    out = {}
    for suffix, data in texts.items():
        path = tmp_path / f"p.{suffix}"
        path.write_bytes(data.replace(b"@", b"\xff"))
        try:
            trace = open_trace(path)
            if suffix == "jsonl":
                trace.materialize()
            out[suffix] = "ok"
        except TraceError as error:
            out[suffix] = str(error).split(": ", 1)[1]  # drop the path and position
    return out


def test_a_byte_order_mark_is_accepted_everywhere(tmp_path):
    assert set(_verdicts(tmp_path, '{"op": "access", "gfn": 1}', bom=True).values()) == {"ok"}


def test_invalid_utf8_is_worded_alike(tmp_path):
    found = _verdicts(tmp_path, '{"op": "access", "gfn": 1, "note": "@"}')
    assert all("invalid UTF-8 (byte 0xff at offset" in v for v in found.values()), found
    assert all(v.endswith("a trace must be UTF-8 text") for v in found.values()), found


def test_two_to_the_64_is_shown_as_an_integer(tmp_path):
    found = _verdicts(tmp_path, '{"op": "access", "gfn": 18446744073709551616}')
    assert set(found.values()) == {
        "event 0 (access): gfn: expected an integer 0..2^40-1, got 18446744073709551616 "
        "(0x10000000000000000)"
    }, found


@pytest.mark.parametrize("text", ['"+1"', '"-1"', '" 1"', '"01"'])
def test_only_decimal_or_hex_strings_are_integers(tmp_path, text):
    found = _verdicts(tmp_path, f'{{"op": "access", "gfn": {text}}}')
    assert len(set(found.values())) == 1 and "expected an integer" in found["jsonl"], found
