"""Every core, same bytes: parallel checks and runs give what one-by-one gives.

Also the default choice of implementation: a small trace replays on the
reference model (no numba), with the same report as ``--engine``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from kvmgen.engine.encode import encode
from kvmgen.engine.replay import replay_encoded, replay_streamed
from kvmgen.inputs import open_trace
from kvmgen.report.document import build_document
from kvmgen.session import REFERENCE_MAX_WORK, resolve_implementation, run_session, targets_for
from kvmgen.trace.formats.jsonl import scan_jsonl
from tests.conftest import ROOT, TRACES
from tests.unit.test_trace_jsonl import yaml_to_jsonl

pytestmark = pytest.mark.usefixtures("warm_engine")

ALL_TRACES = sorted(str(p.relative_to(ROOT)) for p in TRACES.glob("*.yaml"))
LIMIT = ("--max", "harmful_stale_hits=1000000")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A scratch directory holding a ``traces`` link (outputs land here)."""
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("targets", [(), ("--era", "E5,E12")], ids=["headers", "two-eras"])
def test_check_in_worker_processes_writes_the_same_bytes(run_cli, workdir, targets):
    outputs = {}
    for jobs in ("1", "2"):
        result = run_cli(
            "check", *ALL_TRACES, *LIMIT, *targets, "--json", "-", "--markdown", f"m{jobs}.md",
            "--save-baseline", f"b{jobs}.json", "-j", jobs, "-q",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        outputs[jobs] = (
            result.stdout,
            (workdir / f"m{jobs}.md").read_bytes(),
            (workdir / f"b{jobs}.json").read_bytes(),
        )
    assert outputs["1"] == outputs["2"]


def test_check_in_worker_processes_reports_the_first_bad_trace_in_order(run_cli, workdir):
    (workdir / "late.yaml").write_text("kvmgen: 1\nevents:\n  - {op: access}\n")
    (workdir / "early.yaml").write_text("kvmgen: 1\nevents:\n  - {op: nope}\n")
    paths = [ALL_TRACES[0], "early.yaml", ALL_TRACES[1], "late.yaml"]
    errors = set()
    for jobs in ("1", "2"):
        result = run_cli("check", *paths, *LIMIT, "-j", jobs, "-q")
        assert result.exit_code == 2
        errors.add(result.stderr)
    (error,) = errors
    assert "early.yaml" in error and "late.yaml" not in error


def test_the_runs_of_a_trace_in_threads_match_one_by_one():
    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    targets = targets_for([], ["all"])
    documents = [
        build_document(
            run_session(trace, targets, implementation="engine", jobs=jobs, skip_unrunnable=True)
        )
        for jobs in (1, 4)
    ]
    assert documents[0] == documents[1]
    assert len(documents[0]["runs"]) > 4


def test_a_streamed_trace_replays_its_runs_in_threads_alike(tmp_path):
    jsonl = yaml_to_jsonl(TRACES / "churn-delete-move.yaml", tmp_path / "c.jsonl")
    specs = run_session(
        open_trace(jsonl), targets_for([], ["E2", "E5"]), implementation="engine", jobs=1
    ).runs
    one, many = (
        replay_streamed(scan_jsonl(str(jsonl)), [r.spec for r in specs], jobs=jobs)
        for jobs in (1, 3)
    )
    assert one == many


def test_a_stopped_run_ends_partial_before_its_next_block():
    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    (run,) = run_session(trace, targets_for([], ["E5"]), implementation="engine", jobs=1).runs[:1]
    stop = threading.Event()
    stop.set()
    result = replay_encoded(encode(trace), run.spec, stop=stop)
    assert result.partial and result.events_replayed == 0


def test_a_small_trace_replays_on_the_reference_model_with_the_same_report(run_cli):
    trace = open_trace(TRACES / "qemu-boot-smm.yaml")
    assert resolve_implementation("auto", trace, 2) == "reference"
    assert resolve_implementation("auto", trace, REFERENCE_MAX_WORK) == "engine"
    assert resolve_implementation("engine", trace, 1) == "engine"
    chosen = run_cli("replay", "traces/qemu-boot-smm.yaml", "--json", "-")
    engine = run_cli("replay", "traces/qemu-boot-smm.yaml", "--json", "-", "--engine")
    assert chosen.exit_code == engine.exit_code == 0
    assert chosen.stdout == engine.stdout
    code = (
        "import sys\n"
        "from kvmgen import api\n"
        "api.replay('traces/qemu-boot-smm.yaml')\n"
        "assert 'numba' not in sys.modules, 'numba was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_huge_repeat_goes_to_the_engine():
    trace = open_trace(TRACES / "wrap-probe-6.18.yaml")
    assert resolve_implementation("auto", trace, 1) == "engine"
