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
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import ingest  # noqa: E402  (bench/ingest.py: the ingest rows of issue 15)
from bench.importers import bench_importers  # noqa: E402
from kvmgen.engine import kernels as k  # noqa: E402
from kvmgen.engine.encode import EncodedTrace, Encoder, encode  # noqa: E402
from kvmgen.engine.replay import (  # noqa: E402
    PYTHON_WORK,
    new_state,
    replay_engine,
    run_block,
    to_result,
)
from kvmgen.model.eras import ERAS  # noqa: E402
from kvmgen.model.policy import RunSpec, parse_policy, resolve_runs  # noqa: E402
from kvmgen.reference.replay import replay_reference  # noqa: E402
from kvmgen.session import default_jobs  # noqa: E402
from kvmgen.stats import ReplayResult  # noqa: E402
from kvmgen.trace.records import Event, Op, SlotDecl, Trace, VmHeader  # noqa: E402
from kvmgen.trace.table import EventTable  # noqa: E402

GFNS = 4096  # distinct accessed pages of the reference/ingest rows; half of them RAM
VCPUS = 4
UPDATE_EVERY = 1000  # one dirty-log toggle per 1000 accesses

# The engine rows' mix (issue 15): 8,192 gfns, the first 4,096 RAM (one slot), 4 vCPUs
# in turn, one flags update per 1,000 events, era E12, one address space.
MIX_GFNS = 8192
MIX_RAM = 4096
C_SOURCE = ROOT / "bench" / "access_rule.c"


def synthetic_events(n: int, seed: int = 1) -> tuple[np.ndarray, ...]:
    """A guest that mostly accesses a 4096-page working set while QEMU toggles dirty logging."""
    rng = np.random.default_rng(seed)
    op = np.full(n, k.OP_ACCESS, dtype=np.int8)
    op[UPDATE_EVERY - 1 :: UPDATE_EVERY] = k.OP_FLAGS
    gid = rng.integers(0, GFNS, n, dtype=np.int64)
    vcpu = rng.integers(0, VCPUS, n).astype(np.int16)
    return op, gid, vcpu


def mix_table(n: int, seed: int = 1) -> EventTable:
    """The engine rows' mix as the columns a loader hands the encoder."""
    rng = np.random.default_rng(seed)
    table = EventTable.empty(n)
    table.index[:] = np.arange(n)
    table.op[UPDATE_EVERY - 1 :: UPDATE_EVERY] = Op.FLAGS
    updates = table.op == Op.FLAGS
    table.gfn[:] = rng.integers(0, MIX_GFNS, n)
    table.gfn[updates] = -1
    table.slot[updates] = 0
    table.vcpu[:] = np.arange(n) % VCPUS
    table.vcpu[updates] = 0
    return table


def mix_encoded(table: EventTable, ram_gfns: int) -> EncodedTrace:
    """The mix encoded by the engine's own encoder, its slot covering ``ram_gfns`` pages."""
    slots = (SlotDecl(slot=0, address_space=0, gfn=0, pages=ram_gfns),)
    return Encoder(np.arange(MIX_GFNS, dtype=np.int64), slots, VCPUS).encode(table)


def c_loop(table: EventTable, ram_gfns: int, binary: Path, work: Path) -> tuple[float, list[int]]:
    """The C loop's best CPU seconds over 3 loops, and its outcome counts."""
    path = work / "mix.bin"
    kinds = np.where(table.op == Op.FLAGS, 255, table.vcpu).astype(np.uint8)
    ram = (np.arange(MIX_GFNS) < ram_gfns).astype(np.uint8)
    with open(path, "wb") as out:
        out.write(np.int64(len(table)).tobytes())
        out.write(kinds.tobytes())
        out.write(table.gfn.astype(np.int32).tobytes())
        out.write(np.int64(MIX_GFNS).tobytes())
        out.write(ram.tobytes())
    done = subprocess.run([str(binary), str(path), "3"], check=True, capture_output=True)
    seconds, *counts = done.stdout.split()
    return float(seconds), [int(c) for c in counts]


def build_c_loop(work: Path) -> Path | None:
    """bench/access_rule.c built with ``cc -O2``, or None (with a line) when there is no cc."""
    cc = shutil.which("cc")
    if cc is None:
        print("bench: no cc on this machine: the C-loop rows are skipped", file=sys.stderr)
        return None
    binary = work / "access_rule"
    subprocess.run([cc, "-O2", "-o", str(binary), str(C_SOURCE)], check=True)
    return binary


def engine_counts(result: ReplayResult) -> list[int]:
    """The engine's outcomes in the C loop's order."""
    a = result.accesses
    return [
        a[k.O_RAM_FAULT] + a[k.O_RAM_REFAULT],
        a[k.O_RAM_ACCESS],
        a[k.O_MMIO_SLOW],
        a[k.O_MMIO_FAST],
        a[k.O_MMIO_REFAULT],
        a[k.O_CACHE_HIT],
        result.updates,
    ]


def mix_spec() -> RunSpec:
    """E12, one address space, historical bias: the engine rows' run."""
    (spec,) = resolve_runs(ERAS["E12"], 1, [parse_policy("historical")])
    return spec


def bench_engine(n: int, binary: Path | None, work: Path) -> dict[str, float]:
    """The engine alone vs the C loop on the mix: 50/50, all-RAM and all-MMIO."""
    spec = mix_spec()
    table = mix_table(n)
    out: dict[str, float] = {"events": n}
    # Compile before timing: more events than a block replayed as Python may hold.
    warm = mix_encoded(mix_table(PYTHON_WORK + 1), MIX_RAM)
    run_block(warm, new_state(warm, spec, 100))
    for name, ram_gfns in (("mix", MIX_RAM), ("all_ram", MIX_GFNS), ("all_mmio", 0)):
        enc = mix_encoded(table, ram_gfns)

        def engine(enc: EncodedTrace = enc) -> ReplayResult:
            state = new_state(enc, spec, 10_000)
            run_block(enc, state)
            return to_result(enc, spec, state)

        t_engine = t_c = float("inf")
        # Interleaved rounds, the best of each kept. A run takes 15-80 ms, which this
        # machine's noise moves by up to half: 15 rounds, each giving both sides three
        # tries (the C loop times three loops per call).
        for _ in range(15):
            for _ in range(3):
                t_engine = min(t_engine, cpu(engine))
            if binary is not None:
                seconds, counts = c_loop(table, ram_gfns, binary, work)
                t_c = min(t_c, seconds)
        out[f"engine_{name}_cpu_s"] = t_engine
        out[f"engine_{name}_ns_per_event"] = t_engine / n * 1e9
        if binary is None:
            continue
        if counts != engine_counts(engine()):
            raise SystemExit(f"bench: the C loop and the engine disagree on {name}")
        out[f"c_loop_{name}_cpu_s"] = t_c
        out[f"engine_vs_c_{name}"] = t_c / t_engine
    return out


def child_cpu(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """CPU seconds (user + system) of one run of ``cmd`` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write_mix_jsonl(path: Path, table: EventTable, ram_gfns: int) -> None:
    """The mix as a JSON Lines trace whose header declares its era and slot."""
    slot = {"slot": 0, "gfn": 0, "pages": ram_gfns}
    header = {"kvmgen": 1, "vm": {"era": "E12", "address_spaces": 1, "vcpus": VCPUS}}
    header["vm"]["slots"] = [slot]  # type: ignore[index]
    flags = b'{"op":"flags","slot":0}'
    with open(path, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for start in range(0, len(table), 1 << 16):
            rows = range(start, min(start + (1 << 16), len(table)))
            ops, gfns, vcpus = (
                c[rows.start : rows.stop].tolist() for c in (table.op, table.gfn, table.vcpu)
            )
            lines = [
                flags if op == Op.FLAGS else b'{"op":"access","gfn":%d,"vcpu":%d}' % (gfn, vcpu)
                for op, gfn, vcpu in zip(ops, gfns, vcpus, strict=True)
            ]
            out.write(b"\n".join(lines) + b"\n")


def bench_compiled(n: int, binary: Path | None, work: Path) -> dict[str, float]:
    """``kvmgen replay`` of the compiled mix, one run, end to end, vs the C loop.

    Marginal CPU: ``kvmgen replay`` (load, checks, replay, report) of the
    10M-event compiled trace less that of a 1,000-event one.
    """
    compile_cmd = [sys.executable, "-m", "kvmgen", "compile"]
    table = mix_table(n)
    paths = {}
    for name, rows in (("big", n), ("small", 1000)):
        source = work / f"mix-{name}.jsonl"
        write_mix_jsonl(source, mix_table(rows) if rows != n else table, MIX_RAM)
        paths[name] = work / f"mix-{name}.kvmc"
        subprocess.run(
            [*compile_cmd, str(source), "-o", str(paths[name])],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
    # In one fresh process, the CLI's own entry point, big and small interleaved:
    # interpreter start-up and imports are the same for both and would only add
    # their noise (~0.1 s on this shared machine) to a ~0.1 s difference.
    code = (
        "import sys, time\n"
        "from kvmgen.cli import main\n"
        "from kvmgen.engine import replay\n"
        "replay.PYTHON_WORK = -1  # the small trace too: both on the compiled engine\n"
        "def run(path):\n"
        "    start = time.process_time()\n"
        "    main(['replay', path, '--bias', 'historical', '-q'])\n"
        "    return time.process_time() - start\n"
        f"big, small = {str(paths['big'])!r}, {str(paths['small'])!r}\n"
        "run(small); run(big)\n"
        "times = [(run(big), run(small)) for _ in range(5)]\n"
        "print(min(t[0] for t in times), min(t[1] for t in times))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    big, small = (float(v) for v in done.stdout.split())
    marginal = big - small
    out = {
        "events": n,
        "compiled_file_bytes_per_event": paths["big"].stat().st_size / n,
        "replay_compiled_cpu_s": big,
        "replay_compiled_small_cpu_s": small,
        "replay_compiled_marginal_cpu_s": marginal,
    }
    if binary is not None:
        t_c, _ = c_loop(table, MIX_RAM, binary, work)
        out["c_loop_mix_cpu_s"] = t_c
        out["compiled_marginal_vs_c"] = t_c / marginal
    return out


def as_trace(n: int) -> Trace:
    """The reference rows' workload as Python records, for the reference model and encode()."""
    op, gid, vcpu = synthetic_events(n)
    events = []
    for i in range(n):
        if op[i] == k.OP_FLAGS:
            events.append(Event(index=i, op=Op.FLAGS, slot=0))
        else:
            events.append(Event(index=i, op=Op.ACCESS, gfn=int(gid[i]), vcpu=int(vcpu[i])))
    vm = VmHeader(vcpus=VCPUS, slots=(SlotDecl(slot=0, address_space=0, gfn=0, pages=GFNS // 2),))
    return Trace(path="<bench>", format="yaml", version=1, vm=vm, events=tuple(events))


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
    """Start-up CPU: warm and fresh numba caches, against ``python -c "import numba"``."""
    py = sys.executable
    kvmgen = [py, "-m", "kvmgen"]
    sample = "traces/qemu-boot-smm.yaml"
    traces = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "traces").glob("*.yaml"))
    check = [*kvmgen, "check", *traces, "--max", "harmful_stale_hits=1000000", "-q"]
    scan = (
        "from kvmgen.trace.formats.json_fast import load_json_fast;"
        'load_json_fast(\'x\', b\'{"kvmgen": 1, "events": [{"op": "access", "gfn": 1}]}\', \'\')'
    )
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(name: str) -> dict[str, str]:
            """An empty numba cache, as on a new CI runner."""
            return {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / name)}

        out["fresh_replay_sample_cpu_s"] = child_cpu([*kvmgen, "replay", sample, "-q"], fresh("a"))
        start = time.perf_counter()
        out["fresh_check_traces_cpu_s"] = child_cpu(check, fresh("b"))
        out["fresh_check_traces_wall_s"] = time.perf_counter() - start
        # The sample is small enough to replay as Python (replay.PYTHON_WORK): this row
        # times compiling the engine, so it forces the compiled kernels.
        compiled = (
            "import sys; from kvmgen.engine import replay; replay.PYTHON_WORK = -1;"
            "from kvmgen.cli import main; raise SystemExit(main(sys.argv[1:]))"
        )
        engine = [py, "-c", compiled, "replay", sample, "-q", "--engine"]
        out["fresh_engine_compile_cpu_s"] = child_cpu(engine, fresh("c"))
        out["fresh_json_scan_compile_cpu_s"] = child_cpu([py, "-c", scan], fresh("d"))
        warm = fresh("c")  # compiled above
        replay = numba = engine_warm = float("inf")
        for _ in range(5):  # interleaved, best of each
            replay = min(replay, child_cpu([*kvmgen, "replay", sample, "-q"], warm))
            numba = min(numba, child_cpu([py, "-c", "import numba"], warm))
            engine_warm = min(engine_warm, child_cpu(engine, warm))
    out["warm_replay_sample_cpu_s"] = replay
    out["warm_replay_sample_engine_cpu_s"] = engine_warm
    out["import_numba_cpu_s"] = numba
    out["warm_replay_vs_import_numba"] = replay / numba
    out["warm_engine_replay_vs_import_numba"] = engine_warm / numba
    help_s = wall([*kvmgen, "--help"])
    pass_s = wall([py, "-c", "pass"])
    out["help_vs_python_pass"] = help_s / pass_s
    return out


def bench_parallel_check(events: int, work: Path) -> dict[str, float]:
    """``kvmgen check`` of 8 big JSON Lines traces: CPU time over wall time, every core."""
    paths = []
    for i in range(8):
        path = work / f"check-{i}.jsonl"
        write_mix_jsonl(path, mix_table(events, seed=i + 2), MIX_RAM)
        paths.append(str(path))
    check = [sys.executable, "-m", "kvmgen", "check", *paths, "--max", "wraps=1000", "-q"]
    child_cpu(check)  # warm every cache
    best = 0.0
    cpu_s = wall_s = 0.0
    for _ in range(2):
        start = time.perf_counter()
        cpu = child_cpu(check)
        took = time.perf_counter() - start
        if cpu / took > best:
            best, cpu_s, wall_s = cpu / took, cpu, took
    return {
        "traces": 8,
        "events_per_trace": events,
        "cores": default_jobs(),
        "check_cpu_s": cpu_s,
        "check_wall_s": wall_s,
        "check_cpu_over_wall": best,
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
    parser.add_argument("--check-events", type=int, default=1_000_000)
    parser.add_argument("--import-lines", type=int, default=1_000_000)
    parser.add_argument(
        "--only", action="append", default=[], help="Run only these groups (repeatable)."
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    (spec,) = resolve_runs(ERAS["E5"], 2, [parse_policy("historical")])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = build_c_loop(work)
        groups = {
            "engine": lambda: bench_engine(args.accesses, binary, work),
            "compiled": lambda: bench_compiled(args.accesses, binary, work),
            "reference": lambda: bench_reference(args.reference_events, spec),
            "ingest": lambda: bench_ingest(args.yaml_events, args.json_events, work),
            "jsonl": lambda: bench_jsonl_rss(args.jsonl_events, work),
            "startup": bench_startup,
            "check": lambda: bench_parallel_check(args.check_events, work),
            "ingest_columnar": lambda: ingest.run(work),
            "importers": lambda: bench_importers(args.import_lines, work),
        }
        results: dict[str, dict[str, float]] = {
            "machine": {"cpus": os.cpu_count() or 1, "python": sys.version.split()[0]}  # type: ignore[dict-item]
        }
        for name, run in groups.items():
            if not args.only or name in args.only:
                results[name] = run()
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
