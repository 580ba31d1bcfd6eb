"""kvmgen benchmarks: ratios measured in one run on this machine (``make bench``).

Not a test: it times things and reports ratios against baselines measured in the
same process run, never absolute thresholds. Inputs are generated here; sizes are
arguments. Writes ``bench/results/latest.json``.

    python bench/run.py [--accesses 10000000] [--reference-events 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ingest  # noqa: E402  (bench/ingest.py: the ingest rows of issue 15)

from kvmgen.engine import kernels as k  # noqa: E402
from kvmgen.engine.encode import EncodedTrace, encode  # noqa: E402
from kvmgen.engine.replay import new_state, replay_engine, run_block, to_result  # noqa: E402
from kvmgen.model.eras import ERAS  # noqa: E402
from kvmgen.model.policy import parse_policy, resolve_runs  # noqa: E402
from kvmgen.reference.replay import replay_reference  # noqa: E402
from kvmgen.trace.records import Event, Op, SlotDecl, Trace, VmHeader  # noqa: E402

GFNS = 4096  # distinct accessed pages; half of them RAM, half MMIO
VCPUS = 4
UPDATE_EVERY = 1000  # one dirty-log toggle per 1000 accesses


def synthetic_events(n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    """A guest that mostly accesses a 4096-page working set while QEMU toggles dirty logging."""
    rng = np.random.default_rng(seed)
    op = np.full(n, k.OP_ACCESS, dtype=np.int8)
    op[UPDATE_EVERY - 1 :: UPDATE_EVERY] = k.OP_FLAGS
    gid = rng.integers(0, GFNS, n, dtype=np.int64)
    vcpu = rng.integers(0, VCPUS, n).astype(np.int16)
    return op, gid, vcpu


def encoded(n: int, ram_share: float = 0.5) -> EncodedTrace:
    """Kernel arrays for ``n`` synthetic events, built directly (10M records would not fit).

    ``ram_share`` of the working set lies in slot 0 (RAM); the rest is MMIO.
    """
    op, gid, vcpu = synthetic_events(n)
    is_update = op == k.OP_FLAGS
    n_upd = int(is_update.sum())
    upd = np.zeros((n_upd, k.N_UCOLS), dtype=np.int64)
    upd[:, k.U_BUMP_REPS] = 1
    ev_x = gid.copy()
    ev_x[is_update] = np.arange(n_upd)
    cover = np.zeros((2, GFNS), dtype=np.int8)
    cover[0, : int(GFNS * ram_share)] = 1  # slot 0 covers the start of the working set
    return EncodedTrace(
        gfns=np.arange(GFNS, dtype=np.int64),
        ev_op=op,
        ev_as=np.zeros(n, dtype=np.int8),
        ev_vcpu=vcpu,
        ev_x=ev_x,
        ev_rep=np.ones(n, dtype=np.int64),
        ev_index=np.arange(n, dtype=np.int64),
        upd=upd,
        dur=np.zeros((0, k.N_DFIELDS), dtype=np.int64),
        initial_cover=cover,
        vcpus=VCPUS,
    )


def as_trace(n: int) -> Trace:
    """The same workload as Python records, for the reference model and encode()."""
    op, gid, vcpu = synthetic_events(n)
    events = []
    for i in range(n):
        if op[i] == k.OP_FLAGS:
            events.append(Event(index=i, op=Op.FLAGS, slot=0))
        else:
            events.append(Event(index=i, op=Op.ACCESS, gfn=int(gid[i]), vcpu=int(vcpu[i])))
    vm = VmHeader(vcpus=VCPUS, slots=(SlotDecl(slot=0, address_space=0, gfn=0, pages=GFNS // 2),))
    return Trace(path="<bench>", format="yaml", version=1, vm=vm, events=tuple(events))


@njit(cache=True)
def memory_floor(ev_op, ev_as, ev_vcpu, ev_x, ev_rep, ev_index):  # type: ignore[no-untyped-def]
    """Read every input column once: the least any replay of these arrays must cost."""
    total = 0
    for i in range(ev_op.shape[0]):
        total += ev_op[i] + ev_as[i] + ev_vcpu[i] + ev_x[i] + ev_rep[i] + ev_index[i]
    return total


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def wall(cmd: list[str], repeat: int = 5, env: dict[str, str] | None = None) -> float:
    """Median wall time of a command, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_engine(n: int, spec) -> dict[str, float]:  # type: ignore[no-untyped-def]
    enc = encoded(n)
    warm = encoded(2000)
    run_block(warm, new_state(warm, spec, 100))
    memory_floor(enc.ev_op, enc.ev_as, enc.ev_vcpu, enc.ev_x, enc.ev_rep, enc.ev_index)

    def engine() -> None:
        state = new_state(enc, spec, 10_000)
        run_block(enc, state)
        to_result(enc, spec, state)

    t_engine = best_of(engine)
    t_floor = best_of(
        lambda: memory_floor(enc.ev_op, enc.ev_as, enc.ev_vcpu, enc.ev_x, enc.ev_rep, enc.ev_index)
    )
    # The same events with every accessed page RAM, or every one MMIO: the 50/50 mix
    # above is the worst case for branch prediction, these show the two paths alone.
    shares = {}
    for name, share in (("all_ram", 1.0), ("all_mmio", 0.0)):
        variant = encoded(n, share)

        def run(variant: EncodedTrace = variant) -> None:
            run_block(variant, new_state(variant, spec, 10_000))

        shares[f"engine_vs_floor_{name}"] = best_of(run) / t_floor
    return {
        "events": n,
        "engine_seconds": t_engine,
        "engine_events_per_s": n / t_engine,
        "floor_seconds": t_floor,
        "engine_vs_floor": t_engine / t_floor,
        **shares,
    }


def bench_reference(n: int, spec) -> dict[str, float]:  # type: ignore[no-untyped-def]
    trace = as_trace(n)
    start = time.perf_counter()
    ref = replay_reference(trace, spec)
    t_ref = time.perf_counter() - start
    enc_start = time.perf_counter()
    eng = replay_engine(trace, spec)
    t_eng_total = time.perf_counter() - enc_start
    assert ref == eng, "engine and reference disagree on the benchmark trace"
    # A fresh copy each time: a trace keeps its column form once built.
    t_encode = best_of(lambda: encode(dataclasses.replace(trace, _table=None)))
    enc = encode(trace)
    t_kernel = best_of(lambda: run_block(enc, new_state(enc, spec, 10_000)))
    return {
        "events": n,
        "reference_seconds": t_ref,
        "reference_events_per_s": n / t_ref,
        "engine_with_encode_seconds": t_eng_total,
        "engine_speedup_over_reference": t_ref / t_eng_total,
        "encode_seconds": t_encode,
        "kernel_seconds": t_kernel,
        "kernel_speedup_over_reference": t_ref / t_kernel,
    }


def bench_startup() -> dict[str, float]:
    py = sys.executable
    sample = str(ROOT / "traces" / "smm-cache-as0.yaml")
    code = (
        "import time; t=time.perf_counter();"
        "from kvmgen.session import run_session, resolve_target;"
        "from kvmgen.inputs import open_trace as load_trace;"
        f"tr=load_trace({sample!r});"
        "run_session(tr,[resolve_target(tr,None,None)]);"
        "print(time.perf_counter()-t)"
    )
    scan = (
        "import time; t=time.perf_counter();"
        "from kvmgen.trace.formats.json_fast import load_json_fast;"
        'load_json_fast(\'x\', b\'{"kvmgen": 1, "events": [{"op": "access", "gfn": 1}]}\', \'\');'
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold = subprocess.run(
            [py, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        )
        scan_cold = subprocess.run(
            [py, "-c", scan], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        )
        scan_warm = subprocess.run(
            [py, "-c", scan], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        )
        warm = subprocess.run(
            [py, "-c", code], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        )
        cached_cli = wall([py, "-m", "kvmgen", "replay", sample, "-q"], env=env)
    help_s = wall([py, "-m", "kvmgen", "--help"])
    pass_s = wall([py, "-c", "pass"])
    numba_s = wall([py, "-c", "import numba"])
    return {
        "first_call_compile_seconds": float(cold.stdout.strip()),
        "cached_first_call_seconds": float(warm.stdout.strip()),
        "json_scan_first_call_compile_seconds": float(scan_cold.stdout.strip()),
        "json_scan_cached_first_call_seconds": float(scan_warm.stdout.strip()),
        "cached_cli_replay_seconds": cached_cli,
        "help_seconds": help_s,
        "python_pass_seconds": pass_s,
        "help_vs_python_pass": help_s / pass_s,
        "import_numba_seconds": numba_s,
    }


def write_flow_yaml(path: Path, n: int) -> None:
    """``n`` events, one flow-style mapping per line (the layout kvmgen's tools write)."""
    op, gid, vcpu = synthetic_events(n)
    lines = ["kvmgen: 1", "vm:", '  kernel: "4.19"', f"  vcpus: {VCPUS}", "events:"]
    lines.append(f"  - {{op: create, slot: 0, gfn: 0x0, pages: {GFNS // 2:#x}}}")
    for i in range(n):
        if op[i] == k.OP_FLAGS:
            lines.append("  - {op: flags, slot: 0}")
        else:
            lines.append(f"  - {{op: access, gfn: {int(gid[i]):#x}, vcpu: {int(vcpu[i])}}}")
    path.write_text("\n".join(lines) + "\n")


def write_json_and_jsonl(json_path: Path | None, jsonl_path: Path | None, n: int) -> None:
    """The same workload as one JSON document and/or as JSON Lines."""
    import orjson

    op, gid, vcpu = synthetic_events(n)
    header = {"kvmgen": 1, "vm": {"kernel": "4.19", "vcpus": VCPUS}}
    first = {"op": "create", "slot": 0, "gfn": 0, "pages": GFNS // 2}
    flags = b'{"op":"flags","slot":0}'
    rows = [orjson.dumps(first)]
    rows += [
        flags if op[i] == k.OP_FLAGS else b'{"op":"access","gfn":%d,"vcpu":%d}' % (gid[i], vcpu[i])
        for i in range(n)
    ]
    if jsonl_path is not None:
        with open(jsonl_path, "wb") as out:
            out.write(orjson.dumps(header) + b"\n")
            for start in range(0, len(rows), 1 << 16):
                out.write(b"\n".join(rows[start : start + (1 << 16)]) + b"\n")
    if json_path is not None:
        body = orjson.dumps(header)[:-1] + b',"events":[\n' + b",\n".join(rows) + b"\n]}"
        json_path.write_bytes(body)


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    """Best-of-3 CPU seconds of this process (the machine is shared; CPU time is steadier)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def bench_ingest(yaml_events: int, json_events: int, work: Path) -> dict[str, float]:
    import orjson
    import yaml

    from kvmgen.engine.compiled import compile_trace, load_compiled
    from kvmgen.inputs import open_trace as load_trace

    ypath = work / "trace.yaml"
    write_flow_yaml(ypath, yaml_events)
    start = time.process_time()
    with open(ypath) as handle:
        yaml.load(handle, Loader=yaml.CSafeLoader)
    t_csafe = time.process_time() - start
    t_fast = cpu(lambda: load_trace(ypath))
    compiled = work / "trace.kvmc"
    compile_trace(load_trace(ypath), str(compiled))
    t_compiled = cpu(lambda: load_compiled(str(compiled)))
    jpath = work / "trace.json"
    write_json_and_jsonl(jpath, None, json_events)
    data = jpath.read_bytes()
    t_orjson = cpu(lambda: orjson.loads(data))
    t_json = cpu(lambda: load_trace(jpath))
    t_json_encode = cpu(lambda: encode(load_trace(jpath)))
    return {
        "yaml_events": yaml_events,
        "yaml_csafeloader_cpu_s": t_csafe,
        "yaml_kvmgen_cpu_s": t_fast,
        "yaml_speedup_over_csafeloader": t_csafe / t_fast,
        "compiled_load_cpu_s": t_compiled,
        "compiled_speedup_over_yaml": t_fast / t_compiled,
        "json_events": json_events,
        "json_orjson_loads_cpu_s": t_orjson,
        "json_kvmgen_cpu_s": t_json,
        "json_vs_orjson_loads": t_json / t_orjson,
        "json_load_and_encode_cpu_s": t_json_encode,
    }


def bench_jsonl_rss(events: int, work: Path) -> dict[str, float]:
    """Peak RSS and wall time of ``kvmgen replay`` on a JSON Lines trace, in a fresh process."""
    path = work / "trace.jsonl"
    write_json_and_jsonl(None, path, events)
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter();"
        f"subprocess.run([sys.executable, '-m', 'kvmgen', 'replay', {str(path)!r}, '-q'],"
        " check=True);"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CI": "1"},
    )
    seconds, rss_kb = out.stdout.split()
    path.unlink()
    return {
        "jsonl_events": events,
        "jsonl_replay_two_runs_seconds": float(seconds),
        "jsonl_replay_events_per_s": events / float(seconds),
        "jsonl_peak_rss_mb": int(rss_kb) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accesses", type=int, default=10_000_000)
    parser.add_argument("--reference-events", type=int, default=200_000)
    parser.add_argument("--yaml-events", type=int, default=200_000)
    parser.add_argument("--json-events", type=int, default=1_000_000)
    parser.add_argument("--jsonl-events", type=int, default=10_000_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    (spec,) = resolve_runs(ERAS["E5"], 2, [parse_policy("historical")])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "engine": bench_engine(args.accesses, spec),
            "reference": bench_reference(args.reference_events, spec),
            "ingest": bench_ingest(args.yaml_events, args.json_events, work),
            "jsonl": bench_jsonl_rss(args.jsonl_events, work),
            "startup": bench_startup(),
            "ingest_columnar": ingest.run(work),
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    for group, values in results.items():
        print(f"[{group}]")
        for key, value in values.items():
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"  {key:34} {shown}")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
