"""Compiled traces: same report bytes as the source, stale and corrupt files refused."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from kvmgen.engine.compiled import compile_trace, load_compiled
from kvmgen.errors import TraceError
from kvmgen.trace import load_trace
from kvmgen.trace.jsonl import scan_jsonl
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
    b = compile_trace(load_trace(TRACES / "churn-delete-move.yaml"), str(tmp_path / "b.kvmc"))
    assert a.digest == b.digest and a.event_count == b.event_count
    for name in ("ev_op", "ev_x", "ev_rep", "upd", "dur", "gfns", "initial_cover"):
        assert np.array_equal(getattr(a.encoded, name), getattr(b.encoded, name)), name


def test_stale_source_is_refused(source, tmp_path):
    out = str(tmp_path / "s.kvmc")
    compile_trace(load_trace(source), out)
    load_compiled(out)
    source.write_text(source.read_text().replace("repeat: 262142", "repeat: 262141"))
    with pytest.raises(TraceError, match=r"stale compiled trace: .*seed\.yaml changed"):
        load_compiled(out)


def test_corrupt_arrays_are_refused(source, tmp_path):
    out = tmp_path / "c.kvmc"
    compile_trace(load_trace(source), str(out))
    # Rewrite one array with a changed value but a valid zip: only the hash can tell.
    with np.load(out) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["ev_rep"] = arrays["ev_rep"].copy()
    arrays["ev_rep"][3] += 1
    with open(out, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(TraceError, match=r"corrupt compiled trace .*SHA-256"):
        load_compiled(str(out))


def test_damaged_file_is_refused(source, tmp_path):
    out = tmp_path / "d.kvmc"
    compile_trace(load_trace(source), str(out))
    data = bytearray(out.read_bytes())
    out.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(TraceError, match="corrupt compiled trace"):
        load_compiled(str(out))


def test_other_layout_is_refused(source, tmp_path):
    out = tmp_path / "l.kvmc"
    compile_trace(load_trace(source), str(out))
    with np.load(out) as archive:
        arrays = {name: archive[name] for name in archive.files}
    manifest = json.loads(arrays["manifest"].tobytes())
    manifest["layout"] = "0" * 16
    arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    with open(out, "wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(TraceError, match="another engine layout"):
        load_compiled(str(out))
    assert zipfile.is_zipfile(out)


def test_cli_errors_and_reference_refusal(run_cli, source, tmp_path):
    out = tmp_path / "r.kvmc"
    assert run_cli("compile", str(source), "-o", str(out)).exit_code == 0
    refused = run_cli("replay", str(out), "--reference")
    assert refused.exit_code == 2 and "needs the source trace" in refused.stderr
    again = run_cli("compile", str(out), "-o", str(tmp_path / "x.kvmc"))
    assert again.exit_code == 2 and "already a compiled trace" in again.stderr
