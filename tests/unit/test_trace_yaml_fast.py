"""The one-event-per-line YAML fast path gives exactly what the full loader gives.

Every test runs twice: lines read in Python (small files) and lines classified
by the jitted scan (files from 256 kB on; forced here with a threshold of 0).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.formats.yaml_fast import load_yaml_fast
from kvmgen.trace.formats.yaml_full import load_yaml
from kvmgen.trace.records import Trace
from tests.conftest import TRACES
from tests.property.mutation import check_fast_agrees_or_falls_back, mutated
from tests.property.strategies import traces
from tests.unit.test_trace_jsonl import _event_dict


@pytest.fixture(autouse=True, params=["python", "scan"])
def line_reader(request, monkeypatch):
    import kvmgen.trace.formats.yaml_fast as yaml_fast

    threshold = 0 if request.param == "scan" else 1 << 62
    monkeypatch.setattr(yaml_fast.scanned, "SCAN_MIN_BYTES", threshold)
    return request.param


def _both(text: str) -> tuple[Trace | None, Trace]:
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    return load_yaml_fast("t.yaml", data, sha), load_yaml("t.yaml", data, sha)


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, int) and not isinstance(value, bool):
        return hex(value) if value > 255 else str(value)
    return str(value)


def _as_flow_yaml(trace: Trace) -> str:
    head = ["kvmgen: 1", "vm:", f"  vcpus: {trace.vm.vcpus}"]
    if trace.vm.address_spaces:
        head.append(f"  address_spaces: {trace.vm.address_spaces}")
    if trace.vm.slots:
        head.append("  slots:")
        head += [
            f"    - {{slot: {s.slot}, as: {s.address_space}, gfn: {s.gfn}, pages: {s.pages}}}"
            for s in trace.vm.slots
        ]
    head.append("events:")
    return "\n".join(head + [f"  - {_flow(_event_dict(e))}" for e in trace.events]) + "\n"


@pytest.mark.parametrize("path", sorted(TRACES.glob("*.yaml")), ids=lambda p: p.name)
def test_samples_fast_path_or_fallback(path):
    fast, full = _both(path.read_text())
    assert fast is None or fast == full


def test_wrap_probe_sample_takes_the_fast_path():
    fast, full = _both((TRACES / "wrap-probe-6.18.yaml").read_text())
    assert fast is not None and fast == full


@settings(max_examples=80)
@given(trace=traces(2))
def test_generated_flow_traces_load_identically(trace):
    if any(e.during for e in trace.events) or not trace.events:
        return
    fast, full = _both(_as_flow_yaml(trace))
    assert fast is not None
    assert fast == full


HEAD = "kvmgen: 1\nvm: {era: E5, vcpus: 2}\nevents:\n"


@pytest.mark.parametrize(
    "line",
    [
        '  - {op: access, gpa: "0xfebf1000", vcpu: 1, kind: write, note: "a, b: c"}',
        "  - {op: access, gfn: 0x10, t: 12.5, note: dirty logging on}",
        "  - {op: create, slot: 0, gfn: 0x100, pages: 16, note: 42}",
        "  - {op: bump, as: 1, count: 3}",
        "  - {op: access, gfn: 5, repeat: 7}   ",
        "  - {kind: read, gfn: 1099511627775, as: 1, repeat: 4611686018427387904, op: access}",
        "  - {op: access, gfn: 0x10, note: caf\u00e9}",
    ],
)
def test_quoted_notes_times_and_other_ops(line):
    fast, full = _both(HEAD + line + "\n")
    assert fast is not None and fast == full


@pytest.mark.parametrize(
    "line",
    [
        "  - {op: access, gfn: 0x10}  # trailing comment",
        "  - {op: access, gfn: 010}",
        "  - {op: access, gfn: yes}",
        "  - {op: access, gfn: 1, gfn: 2}",
        "  - op: access\n    gfn: 3",
        "  - {op: access, gfn: &a 3}",
        "  - {op: access, gfn: 'x'}",
        "  - {op: access, gfn: 1}\r",
        "\t- {op: access, gfn: 1}",
        "# a comment before any event\n  - {op: access, gfn: 1}",
        "  - {op: access, gfn: 1}\n    - {op: access, gfn: 2}",
        "  - {op: access, gfn: 1,}",
        "  - {op: access, gfn: 1} x",
    ],
)
def test_unusual_lines_fall_back(line):
    data = (HEAD + line + "\n").encode()
    assert load_yaml_fast("t.yaml", data, hashlib.sha256(data).hexdigest()) is None


@pytest.mark.parametrize(
    "line",
    [
        "  - {op: access, gfn: -1}",
        "  - {op: access, gfn: 0x10, vcpu: 2}",
        "  - {op: delete, slot: 4}",
        "  - {op: acces, gfn: 1}",
        "  - {op: access, gfn: 1, bogus: 1}",
    ],
)
def test_errors_are_the_full_loaders(tmp_path, line):
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + "  - {op: access, gfn: 1}\n" + line + "\n")
    with pytest.raises(TraceError) as via_load:
        open_trace(path)
    data = path.read_bytes()
    with pytest.raises(TraceError) as via_full:
        load_yaml(str(path), data, hashlib.sha256(data).hexdigest())
    assert str(via_load.value) == str(via_full.value)
    assert ":5:" in str(via_load.value)


@pytest.mark.parametrize(
    "line",
    [
        "  - {op: access, gfn: 5, repeat: 7}\t",
        "  - { op: access,gfn: 0X1f ,  vcpu: 1 , kind: write }",
        "  - {op: access, gfn : 5}",
        "  - {op: access, gfn: +5}",
        "  - {op: access, gfn: 5\t}",
        "  - {op: access, gfn:  5}",
        "  - {op: access, gfn: 0x}",
        "  - {op: access, gfn: 99999999999999999999}",
        "  - {op: access, gfn: 0xfffffffffffffffffff}",
        "  - {op: access, gfn: 1099511627776}",
        "  - {op: access, gfn: 1, vcpu: 2}",
        "  - {op: access, gfn: 1, kind: Write}",
        "  - {op: Access, gfn: 1}",
        "  - {op: access}",
        "  - {}",
    ],
)
def test_edge_spellings_agree_or_fall_back(line):
    """Whatever the reader, the fast path gives the full loader's trace or nothing."""
    data = (HEAD + line + "\n").encode()
    sha = hashlib.sha256(data).hexdigest()
    fast = load_yaml_fast("t.yaml", data, sha)
    if fast is not None:
        assert fast == load_yaml("t.yaml", data, sha)


@given(st.lists(st.integers(0, 4095), min_size=1, max_size=30))
def test_integer_spellings(values):
    lines = [f"  - {{op: access, gfn: {v if i % 2 else hex(v)}}}" for i, v in enumerate(values)]
    fast, full = _both(HEAD + "\n".join(lines) + "\n")
    assert fast is not None and fast == full


def test_progress_reaches_the_end(tmp_path, line_reader):
    lines = ["kvmgen: 1", "vm: {era: E5}", "events:"]
    lines += [f"  - {{op: access, gfn: {i}}}" for i in range(70_000)]
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    seen: list[tuple[int, int]] = []
    trace = open_trace(path, progress=lambda done, total: seen.append((done, total)))
    assert len(trace.events) == 70_000
    # Lines read in Python report every 65,536 lines; the scan is one quick step.
    assert len(seen) >= (2 if line_reader == "python" else 1)
    assert seen[-1][0] == seen[-1][1]
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


_SYMBOLS = [
    *"{}[],:#'\" -0123456789xX\t\r\n\u00e9\u00a0\u2028",
    "op",
    "access",
    "gfn",
    "0x1f",
    "vcpu",
    "kind",
]


@settings(max_examples=300)
@given(data=st.data())
def test_mutated_lines_agree_or_fall_back(data):
    lines = [
        "  - {op: create, slot: 0, gfn: 0, pages: 8, note: ram}",
        "  - {op: access, gfn: 3, vcpu: 1}",
        "  - {op: access, gfn: 0x5, kind: write, repeat: 2}",
        "  - {op: flags, slot: 0}",
        "  - {op: access, gfn: 4}",
    ]
    text = mutated(data, HEAD + "\n".join(lines) + "\n", _SYMBOLS, start=len(HEAD))
    check_fast_agrees_or_falls_back(load_yaml_fast, load_yaml, "t.yaml", text)


def test_events_key_on_the_last_line_falls_back(tmp_path):
    # A big header and "events:" with no newline after it: nothing to scan.
    text = "kvmgen: 1\nvm: {era: E5}\n" + "# padding\n" * 30_000 + "events:"
    data = text.encode()
    assert load_yaml_fast("t.yaml", data, hashlib.sha256(data).hexdigest()) is None
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(TraceError, match="events"):
        open_trace(path)
