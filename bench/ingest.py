"""Ingest benchmarks (issue 15, ingest half): ratios measured in one run on this machine.

Called from ``bench/run.py``; also runnable alone::

    python bench/ingest.py [--records 1000000] [--events 10000000]

Rows, each against a baseline measured in the same run, every command a fresh
``kvmgen replay`` process timed by its own CPU (user + sys) and peak RSS,
the runs interleaved, the best of several kept (the machine is shared):

- an update record vs an access record, end to end through ``kvmgen replay``
  (JSON Lines, ``--records`` of each): CPU per record, the slope between a
  trace of 1,000 records and one of ``--records`` (so loading kernels and
  starting Python count for neither); target <= 3x. The same ratio for reading
  alone (open and validate, no replay) shows what ingest costs apart from the
  engine.
- a ``--events`` single-document JSON and YAML trace: peak RSS (target <= 600
  MB each) and CPU against the same trace as JSON Lines (target <= 1.5x);
  orjson parsing the JSON document is shown for scale.
- the scan kernels compiled on a fresh numba cache, per format: CPU seconds
  to read a trace of that format, against ``python -c "import numba"``.

No assertion: the numbers and targets are reported, never checked here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GFNS = 8192  # accessed pages; the first half RAM (one slot), as issue 15's mix
VCPUS = 4
UPDATE_EVERY = 1000
# Slot 0 holds the RAM half of the accessed pages; 1 and 2 are for the updates row.
SLOTS = ((0, 0, GFNS // 2), (1, 1 << 20, 16), (2, 1 << 21, 16))
HEADER = {
    "kvmgen": 1,
    "vm": {
        "kernel": "4.19",
        "vcpus": VCPUS,
        "slots": [{"slot": s, "gfn": g, "pages": p} for s, g, p in SLOTS],
    },
}
_UPDATES = (
    b'{"op":"flags","slot":0}',
    b'{"op":"flags","slot":0,"flags":1}',
    b'{"op":"move","slot":1,"gfn":%d}' % ((1 << 20) + 64),
    b'{"op":"move","slot":1,"gfn":%d}' % (1 << 20),
    b'{"op":"delete","slot":2}',
    b'{"op":"create","slot":2,"gfn":%d,"pages":16}' % (1 << 21),
)


def _header_line() -> bytes:
    return json.dumps(HEADER).encode() + b"\n"


_BLOCK = 1 << 16  # lines written at a time


def _gfns(n: int, seed: int = 15) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, GFNS, n)


def _access_lines(start: int, stop: int, gfns: np.ndarray) -> list[bytes]:
    return [
        b'{"op":"access","gfn":%d,"vcpu":%d}' % (g, i % VCPUS)
        for i, g in zip(range(start, stop), gfns[start:stop].tolist(), strict=True)
    ]


def write_jsonl(path: Path, lines: Sequence[bytes]) -> Path:
    """A JSON Lines trace of the header above and ``lines``."""
    with open(path, "wb") as out:
        out.write(_header_line())
        for start in range(0, len(lines), _BLOCK):
            out.write(b"\n".join(lines[start : start + _BLOCK]) + b"\n")
    return path


def write_mix(folder: Path, n: int) -> dict[str, Path]:
    """The engine rows' mix: accesses with one flags toggle in every 1,000, in three syntaxes.

    Written a block of lines at a time, so that this process stays small.
    """
    gfns = _gfns(n)
    paths = {fmt: folder / f"mix.{fmt}" for fmt in ("jsonl", "json", "yaml")}
    with (
        open(paths["jsonl"], "wb") as jsonl,
        open(paths["json"], "wb") as doc,
        open(paths["yaml"], "wb") as flow,
    ):
        jsonl.write(_header_line())
        doc.write(_header_line()[:-2] + b', "events": [\n')
        flow.write(b'kvmgen: 1\nvm:\n  kernel: "4.19"\n  vcpus: %d\n  slots:\n' % VCPUS)
        for s, g, p in SLOTS:
            flow.write(b"    - {slot: %d, gfn: %d, pages: %d}\n" % (s, g, p))
        flow.write(b"events:\n")
        for start in range(0, n, _BLOCK):
            lines = _access_lines(start, min(start + _BLOCK, n), gfns)
            for i in range(-start % UPDATE_EVERY + UPDATE_EVERY - 1, len(lines), UPDATE_EVERY):
                lines[i] = _UPDATES[0]
            jsonl.write(b"\n".join(lines) + b"\n")
            doc.write(b",\n".join(lines) + (b",\n" if start + _BLOCK < n else b"\n"))
            flow.write(b"".join(b"  - " + _as_flow(line) + b"\n" for line in lines))
        doc.write(b"]}\n")
    return paths


def _as_flow(line: bytes) -> bytes:
    """A JSON event line of the mix as a YAML flow mapping (bare keys and words)."""
    return line.replace(b'"', b"").replace(b":", b": ").replace(b",", b", ")


# Runs a command and prints its exit code, CPU seconds and peak RSS (kB). A small
# process of its own starts it: Linux counts in a child's peak RSS its parent's
# memory at the fork, and this one's is far below any kvmgen run.
_LAUNCH = (
    "import os, subprocess, sys;"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
    "_, status, u = os.wait4(p.pid, 0);"
    "print(os.waitstatus_to_exitcode(status), u.ru_utime + u.ru_stime, u.ru_maxrss)"
)


class Child:
    """One command run in a fresh process: its CPU seconds and peak RSS."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None) -> None:
        out = subprocess.run(
            [sys.executable, "-c", _LAUNCH, *cmd],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        code, cpu, rss_kb = out.stdout.split()
        if int(code) != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed")
        self.cpu = float(cpu)
        self.rss_mb = int(rss_kb) / 1024


def best_children(commands: dict[str, list[str]], repeat: int) -> dict[str, Child]:
    """Each command run ``repeat`` times, interleaved; the run with the least CPU of each."""
    best: dict[str, Child] = {}
    for _ in range(repeat):
        for label, cmd in commands.items():
            run = Child(cmd)
            if label not in best or run.cpu < best[label].cpu:
                best[label] = run
    return best


def _kvmgen(*args: str) -> list[str]:
    return [sys.executable, "-m", "kvmgen", *args]


def _replay_compiled(path: Path) -> list[str]:
    """``kvmgen replay PATH -q`` on the compiled engine, a small trace too.

    A block of little work replays as Python (``replay.PYTHON_WORK``): the small
    traces the slopes subtract would then not cost what the big ones do per run.
    """
    code = (
        "import sys; from kvmgen.engine import replay; replay.PYTHON_WORK = -1;"
        "from kvmgen.cli import main; raise SystemExit(main(['replay', sys.argv[1], '-q']))"
    )
    return [sys.executable, "-c", code, str(path)]


def _read_only(path: Path) -> list[str]:
    """Open and validate every event, no replay: ingest alone."""
    code = (
        "import sys; from kvmgen.inputs import open_trace; t = open_trace(sys.argv[1]);"
        "[None for _ in t.blocks()] if hasattr(t, 'blocks') else None"
    )
    return [sys.executable, "-c", code, str(path)]


def update_vs_access(folder: Path, records: int, repeat: int = 3) -> dict[str, float]:
    """CPU per record of updates and of accesses, replayed and read (the slope over size)."""
    small = 1000
    updates = [_UPDATES[i % len(_UPDATES)] for i in range(records)]
    accesses = _access_lines(0, records, _gfns(records))
    files = {
        "access": write_jsonl(folder / "access.jsonl", accesses),
        "access small": write_jsonl(folder / "access-small.jsonl", accesses[:small]),
        "update": write_jsonl(folder / "update.jsonl", updates),
        "update small": write_jsonl(folder / "update-small.jsonl", updates[:small]),
    }
    commands = {f"replay {k}": _replay_compiled(p) for k, p in files.items()}
    commands |= {f"read {k}": _read_only(p) for k, p in files.items()}
    best = best_children(commands, repeat)

    def per_record(mode: str, kind: str) -> float:
        return (best[f"{mode} {kind}"].cpu - best[f"{mode} {kind} small"].cpu) / (records - small)

    out: dict[str, float] = {"records": records}
    for mode in ("replay", "read"):
        access, update = per_record(mode, "access"), per_record(mode, "update")
        out[f"{mode}_access_us_per_record"] = access * 1e6
        out[f"{mode}_update_us_per_record"] = update * 1e6
        out[f"{mode}_update_vs_access"] = update / access
    out["target_replay_update_vs_access"] = 3.0
    return out


def documents(folder: Path, events: int, repeat: int = 2) -> dict[str, float]:
    """Peak RSS and CPU of replaying one trace as JSON, YAML and JSON Lines."""
    paths = write_mix(folder, events)
    commands = {fmt: _kvmgen("replay", str(path), "-q") for fmt, path in paths.items()}
    best = best_children(commands, repeat)
    # orjson reading the same JSON document into Python objects, for scale.
    code = "import orjson, sys; orjson.loads(open(sys.argv[1], 'rb').read())"
    load = min(Child([sys.executable, "-c", code, str(paths["json"])]).cpu for _ in range(repeat))
    start = min(Child([sys.executable, "-c", "import orjson"]).cpu for _ in range(repeat))
    orjson_cpu = load - start
    out: dict[str, float] = {"events": events}
    for fmt in ("jsonl", "json", "yaml"):
        out[f"{fmt}_replay_cpu_s"] = best[fmt].cpu
        out[f"{fmt}_peak_rss_mb"] = best[fmt].rss_mb
    for fmt in ("json", "yaml"):
        out[f"{fmt}_cpu_vs_jsonl"] = best[fmt].cpu / best["jsonl"].cpu
    out["json_replay_vs_orjson_loads"] = best["json"].cpu / orjson_cpu
    out["orjson_loads_cpu_s"] = orjson_cpu
    out["target_peak_rss_mb"] = 600.0
    out["target_cpu_vs_jsonl"] = 1.5
    for path in paths.values():
        path.unlink()
    return out


def fresh_compile(folder: Path, events: int = 20_000, repeat: int = 3) -> dict[str, float]:
    """CPU seconds to read a first trace of each format on an empty numba cache.

    The traces are above the scan threshold, so each reading compiles what its
    syntax needs (with this mix: the scan; its 20 updates are checked without
    compiling). Seconds are above ``import numba, kvmgen.inputs``; formats are
    interleaved and the least of ``repeat`` runs kept.
    """
    paths = write_mix(folder, events)
    pad = b"\n" * (1 << 18)  # at least this big, a file is scanned
    for path in paths.values():
        path.write_bytes(path.read_bytes() + pad)
    code = "import numba, kvmgen.inputs as i, sys; t = i.open_trace(sys.argv[1]);"
    code += "[None for _ in t.blocks()] if hasattr(t, 'blocks') else None"
    fresh: dict[str, float] = {}
    cached: dict[str, float] = {}
    for _ in range(repeat):
        for fmt, path in paths.items():
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "NUMBA_CACHE_DIR": cache}
                first = Child([sys.executable, "-c", code, str(path)], env).cpu
                again = Child([sys.executable, "-c", code, str(path)], env).cpu
            fresh[fmt] = min(fresh.get(fmt, first), first)
            cached[fmt] = min(cached.get(fmt, again), again)
    numba = min(Child([sys.executable, "-c", "import numba"]).cpu for _ in range(repeat))
    base = min(
        Child([sys.executable, "-c", "import numba, kvmgen.inputs"]).cpu for _ in range(repeat)
    )
    out: dict[str, float] = {}
    for fmt in paths:
        out[f"{fmt}_fresh_cache_s"] = fresh[fmt] - base
        out[f"{fmt}_cached_s"] = cached[fmt] - base
        out[f"{fmt}_fresh_vs_import_numba"] = (fresh[fmt] - base) / numba
    out["import_numba_s"] = numba
    return out


def run(work: Path, records: int = 1_000_000, events: int = 10_000_000) -> dict[str, float]:
    """Every ingest row, in one run, inputs written under ``work``."""
    results: dict[str, float] = {}
    steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
        ("", lambda: update_vs_access(work, records)),
        ("docs_", lambda: documents(work, events)),
        ("compile_", lambda: fresh_compile(work)),
    ]
    for prefix, step in steps:
        results |= {prefix + key: value for key, value in step().items()}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(Path(tmp), args.records, args.events)
    for key, value in results.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:36} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
