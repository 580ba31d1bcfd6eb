"""Compiled traces: same report bytes as the source, stale and corrupt files refused."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from kvmgen.engine.compiled import compile_trace, load_compiled
from kvmgen.errors import TraceError
from kvmgen.inputs import open_trace
from kvmgen.trace.formats.jsonl import scan_jsonl
from tests.conftest import TRACES
from tests.unit.test_trace_jsonl import yaml_to_jsonl

pytestmark = pytest.mark.usefixtures("warm_engine")


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "seed.yaml"
    shutil.copy(TRACES / "seed-stale-gen0.yaml", path)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in TRACES.glob("*.yaml")))
def test_compiled_report_is_byte_identical(run_cli, tmp_path, name):
    out = tmp_path / "t.kvmc"
    assert run_cli("compile", str(TRACES / name), "-o", str(out)).exit_code == 0
    compiled = run_cli("replay", str(out), "--json", "-").stdout
    original = run_cli("replay", str(TRACES / name), "--json", "-").stdout
    assert compiled == original


def test_compiling_jsonl_matches_compiling_yaml(tmp_path):
    jsonl = yaml_to_jsonl(TRACES / "churn-delete-move.yaml", tmp_path / "c.jsonl")
    a = compile_trace(scan_jsonl(str(jsonl)), str(tmp_path / "a.kvmc"))
    b = compile_trace(open_trace(TRACES / "churn-delete-move.yaml"), str(tmp_path / "b.kvmc"))
    assert a.digest == b.digest and a.event_count == b.event_count
    for name in ("ev_code", "ev_vcpu", "ev_x", "aux", "dur", "gfns", "initial_cover"):
        assert np.array_equal(getattr(a.encoded, name), getattr(b.encoded, name)), name
    assert a.encoded.first_index == b.encoded.first_index == 0


def test_stale_source_is_refused(source, tmp_path):
    out = str(tmp_path / "s.kvmc")
    compile_trace(open_trace(source), out)
    load_compiled(out)
    source.write_text(source.read_text().replace("repeat: 262142", "repeat: 262141"))
    with pytest.raises(TraceError, match=r"stale compiled trace: .*seed\.yaml changed"):
        load_compiled(out)


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_corrupt_arrays_are_refused(source, tmp_path):
    out = tmp_path / "c.kvmc"
    compile_trace(open_trace(source), str(out))
    _flip(out, out.stat().st_size - 1 - 8 * 3)  # one bit of the last array
    with pytest.raises(TraceError, match=r"corrupt compiled trace \(the arrays do not match"):
        load_compiled(str(out))


def test_corrupt_manifest_is_refused(source, tmp_path):
    out = tmp_path / "m.kvmc"
    compile_trace(open_trace(source), str(out))
    data = out.read_bytes()
    # A digit of the event count flipped (x ^ 1 is a digit again): still valid JSON,
    # only the hash can tell.
    at = data.index(b'"events": ') + len(b'"events": ')
    assert data[at : at + 1].isdigit()
    _flip(out, at)
    with pytest.raises(TraceError, match="the manifest does not match"):
        load_compiled(str(out))


@pytest.mark.parametrize("cut", [0.5, 0.0])
def test_damaged_file_is_refused(source, tmp_path, cut):
    out = tmp_path / "d.kvmc"
    compile_trace(open_trace(source), str(out))
    data = out.read_bytes()
    out.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(TraceError, match="corrupt compiled trace"):
        load_compiled(str(out))


def test_other_layout_and_older_format_are_refused(source, tmp_path):
    from kvmgen.engine import compiled

    out = tmp_path / "l.kvmc"
    real = compiled.layout_fingerprint
    compiled.layout_fingerprint = lambda: "0" * 16
    try:
        compile_trace(open_trace(source), str(out))
    finally:
        compiled.layout_fingerprint = real
    with pytest.raises(TraceError, match="another engine layout"):
        load_compiled(str(out))
    old = tmp_path / "old.kvmc"
    with zipfile.ZipFile(old, "w") as archive:
        archive.writestr("manifest.npy", b"")
    with pytest.raises(
        TraceError,
        match=rf"compiled trace format 1 is not the one .* \({compiled.COMPILED_VERSION}\)",
    ):
        load_compiled(str(old))


def test_arrays_are_writable_views_of_the_file(source, tmp_path):
    out = tmp_path / "v.kvmc"
    written = compile_trace(open_trace(source), str(out))
    loaded = load_compiled(str(out))
    for name in ("ev_code", "ev_vcpu", "ev_x", "aux", "dur", "gfns", "initial_cover"):
        a, b = getattr(written.encoded, name), getattr(loaded.encoded, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert b.flags.writeable and b.flags.aligned


def test_cli_errors_and_reference_refusal(run_cli, source, tmp_path):
    out = tmp_path / "r.kvmc"
    assert run_cli("compile", str(source), "-o", str(out)).exit_code == 0
    refused = run_cli("replay", str(out), "--reference")
    assert refused.exit_code == 2 and "needs the source trace" in refused.stderr
    again = run_cli("compile", str(out), "-o", str(tmp_path / "x.kvmc"))
    assert again.exit_code == 2 and "already a compiled trace" in again.stderr


def test_compile_to_stdout_and_replay_from_stdin(run_cli, source):
    written = run_cli("compile", str(source), "-o", "-")
    assert written.exit_code == 0 and "to standard output" in written.stderr
    assert written.stdout_bytes.startswith(b"KVMGENC")
    from_stdin = run_cli("replay", "-", "--json", "-", input=written.stdout_bytes)
    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert from_stdin.stdout == run_cli("replay", str(source), "--json", "-").stdout


def test_source_is_kept_by_absolute_path(source, tmp_path, monkeypatch, run_cli):
    """Compiled from a relative path, replayed from elsewhere: the stale check still runs."""
    monkeypatch.chdir(source.parent)
    out = tmp_path / "rel.kvmc"
    compiled = compile_trace(open_trace("seed.yaml"), str(out))
    assert compiled.source_path == str(source)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    load_compiled(str(out))
    source.write_text(source.read_text() + "# changed\n")
    with pytest.raises(TraceError, match=r"stale compiled trace: seed\.yaml changed"):
        load_compiled(str(out))


def test_a_missing_source_is_an_error_unless_allowed(source, tmp_path, run_cli):
    out = tmp_path / "orphan.kvmc"
    compile_trace(open_trace(source), str(out))
    source.unlink()
    with pytest.raises(TraceError, match=r"the source of this compiled trace is gone"):
        load_compiled(str(out))
    assert load_compiled(str(out), allow_missing_source=True).event_count == 7
    refused = run_cli("replay", str(out), "-q")
    assert refused.exit_code == 2 and "--allow-missing-source" in refused.stderr
    assert run_cli("replay", str(out), "-q", "--allow-missing-source").exit_code == 0
    check = ["check", str(out), "--max", "wraps=9", "-q"]
    assert run_cli(*check).exit_code == 2
    assert run_cli(*check, "--allow-missing-source").exit_code == 0


def test_compiled_from_a_stream_has_no_source_to_check(source, tmp_path):
    out = tmp_path / "stream.kvmc"
    with open(source, "rb") as handle:
        compile_trace(open_trace(handle, name="<stdin>"), str(out))
    assert load_compiled(str(out)).source_path == "<stdin>"
