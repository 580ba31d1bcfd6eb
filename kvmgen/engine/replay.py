"""The one Python wrapper around the kernels: RunSpec + encoded trace in, ReplayResult out."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kvmgen.engine import kernels as k
from kvmgen.engine.encode import EncodedTrace, encode, streamed_encoder
from kvmgen.model.policy import U64, RunSpec
from kvmgen.stats import DEFAULT_RECORD_LIMIT, ReplayResult, StaleHit, WrapEvent, ZapEvent
from kvmgen.trace.records import Trace
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import EventTable

I64 = NDArray[np.int64]
_SCOPE_NAMES = {k.Z_ALL: "all_sptes", k.Z_MMIO: "mmio_sptes", k.Z_SLOT_RAM: "slot_ram_sptes"}
_RACE_NAMES = {k.WIN_NONE: None, k.WIN_IN_PROGRESS: "in_progress", k.WIN_BEFORE_ZAP: "before_zap"}


def engine_params(spec: RunSpec, record_limit: int) -> I64:
    """Flatten an era and run into the kernels' parameter vector."""
    era = spec.era
    p = np.zeros(k.N_PARAMS, dtype=np.int64)
    p[k.P_NAS] = spec.address_spaces
    p[k.P_HAS_GEN] = int(era.has_mmio_generation)
    p[k.P_BUMP_SCHEME] = int(era.bump_scheme)
    p[k.P_MMIO_OFFSET] = spec.mmio_offset
    p[k.P_CHECK_MASK] = era.check_mask
    p[k.P_STAMP_MASK] = era.stamp_mask
    p[k.P_NOMINAL_MASK] = era.nominal_mask
    p[k.P_WRAP_TEST] = int(era.wrap_test)
    p[k.P_WRAP_THRESHOLD] = era.wrap_threshold
    p[k.P_WRAP_TIMING] = int(era.wrap_timing)
    p[k.P_WRAP_SCOPE] = int(era.wrap_zap_scope)
    p[k.P_FLUSH_SCOPE] = int(era.flush_scope)
    p[k.P_CREATE_FLUSH_SCOPE] = int(era.create_flush_scope)
    p[k.P_INPROG_VIEW] = int(era.in_progress_view)
    p[k.P_CACHE_HAS_GEN] = int(era.cache_has_generation)
    p[k.P_CACHE_SKIPS_INPROG] = int(era.cache_skips_in_progress)
    p[k.P_RECORD_LIMIT] = record_limit
    return p


def _signed(value: int) -> int:
    """A u64 as the int64 bit pattern the kernels hold."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class EngineState:
    """Everything a replay carries from one block of events to the next (kernels.py layout)."""

    params: I64
    ctr: I64
    pages: I64
    cache: I64
    rec: I64

    def arrays(self) -> tuple[I64, I64, I64, I64, I64]:
        """The state arrays in the order the kernels take them."""
        return self.params, self.ctr, self.pages, self.cache, self.rec


def new_state(enc: EncodedTrace, spec: RunSpec, record_limit: int) -> EngineState:
    """Fresh state for a run: generations at their start, header slots in place."""
    nas = spec.address_spaces
    ctr = np.zeros(k.N_COUNTERS, dtype=np.int64)
    for a, g in enumerate(spec.init_generations):
        ctr[k.C_GEN + a] = _signed(g)
    gfns = enc.initial_cover.shape[1]
    pages = np.zeros((nas, gfns, k.N_PG), dtype=np.int64)
    pages[:, :, k.PG_WORD] = enc.initial_cover[:nas] * k.PAGE_COVER
    cache = np.zeros((max(enc.vcpus, 1), k.N_KFIELDS), dtype=np.int64)
    cache[:, k.K_KEY] = -1
    width = max(k.N_RFIELDS, k.N_WFIELDS, k.N_ZFIELDS)
    return EngineState(
        params=engine_params(spec, record_limit),
        ctr=ctr,
        pages=pages,
        cache=cache,
        rec=np.zeros((3, record_limit, width), dtype=np.int64),
    )


BLOCK_EVENTS = 1 << 20
"""Events per kernel call: the granularity of progress updates and of Ctrl-C."""

Progress = Callable[[int], None]
"""Called after each block with the number of events replayed so far."""


PYTHON_WORK = 10_000
"""The most work (:func:`python_work`) a block may take to be replayed as Python.

The kernels' own code, run uncompiled, takes up to ~16 us a step (an MMIO access
that misses every fast path; a RAM access ~3 us), so at most ~0.2 s here; from
an empty numba cache, compiling the engine costs ~8 s (``make bench``). A trace
of a few events with huge repeats (whole generation periods of bumps) is too
much for the reference model but a few dozen steps for the engine's code, which
skips quiet bumps: it replays at once instead of waiting for the compiler.
"""


@cache
def python_kernels() -> dict[str, Any]:
    """Every kernel of kernels.py as its plain Python function, calling the others as Python.

    numba keeps each kernel's Python function (``py_func``), but its globals are
    the module's, where the other kernels are numba dispatchers: calling one would
    compile it. Each copy here looks its callees up in a namespace of copies.
    """
    return python_kernels_with({})


def python_kernels_with(overrides: dict[str, Any]) -> dict[str, Any]:
    """:func:`python_kernels` with some names (constants or kernels) replaced, for tests.

    Every kernel of the copy sees the replacements, e.g. a ``checked_mask``
    that always refuses, to replay through the general path only.
    """
    namespace = dict(vars(k))
    for name, value in vars(k).items():
        py_func = getattr(value, "py_func", None)
        if py_func is not None:
            namespace[name] = types.FunctionType(
                py_func.__code__, namespace, name, py_func.__defaults__, py_func.__closure__
            )
    namespace.update(overrides)
    return namespace


def python_work(enc: EncodedTrace, params: I64, limit: int) -> int:
    """A bound on the steps replaying ``enc`` takes, counted up to ``limit + 1``.

    One per event and ``during`` access; per update, the gfn indices its ranges
    cover (set_layout and slot zaps walk them); per repeated event, 8 full bumps
    per generation period its repeats could cross (quiet_bumps skips the rest:
    only bumps within 4 of a wrap are taken one by one). Capped, never overflows.
    """
    cap = max(limit, 0) + 1
    work = len(enc) + len(enc.dur)
    if work >= cap:
        return cap
    aux = enc.aux[enc.ev_x[(enc.ev_code & k.EV_AUX) != 0]]
    spans = aux[:, k.U_HI] - aux[:, k.U_LO] + aux[:, k.U_OHI] - aux[:, k.U_OLO]
    work += int(np.minimum(spans, cap).sum())
    if params[k.P_HAS_GEN] == 1 and len(aux):
        step = int(python_kernels()["next_generation"](params, np.int64(0)))
        period = max((int(params[k.P_NOMINAL_MASK]) + 1) // max(step, 1), 1)
        periods = np.minimum(aux[:, k.U_REPS] // period + 1, cap)
        work += 8 * int(periods.sum())
    return min(work, cap)


def run_block(enc: EncodedTrace, state: EngineState) -> None:
    """Replay every event of ``enc`` into ``state``.

    A block of little work (:data:`PYTHON_WORK`) runs the kernels as Python, with
    numpy's int64 scalars wrapping as the compiled code's do (no overflow warning).
    """
    args = (
        enc.ev_code,
        enc.ev_vcpu,
        enc.ev_x,
        np.int64(enc.first_index),
        enc.aux,
        enc.dur,
        *state.arrays(),
    )
    if python_work(enc, state.params, PYTHON_WORK) <= PYTHON_WORK:
        with np.errstate(over="ignore"):
            python_kernels()["replay_events"](*args)
    else:
        k.replay_events(*args)


def _u64(value: np.int64) -> int:
    return int(value) & U64


def _stale_hits(enc: EncodedTrace, spec: RunSpec, state: EngineState) -> tuple[StaleHit, ...]:
    has_gen = spec.era.has_mmio_generation
    kept = min(int(state.ctr[k.C_STALE_RECORDS]), state.rec.shape[1])
    hits = []
    for row in state.rec[k.REC_STALE, :kept]:
        from_cache = row[k.R_SOURCE] == 1
        hits.append(
            StaleHit(
                update=int(row[k.R_UPDATE]),
                event=int(row[k.R_EVENT]),
                sub=int(row[k.R_SUB]),
                address_space=int(row[k.R_AS]),
                gfn=int(enc.gfns[row[k.R_GID]]),
                vcpu=int(row[k.R_VCPU]),
                source="vcpu_cache" if from_cache else "spte",
                kind="harmful" if row[k.R_KIND] == 0 else "benign",
                race=_RACE_NAMES[int(row[k.R_RACE])],
                count=int(row[k.R_COUNT]),
                spte_generation=_u64(row[k.R_SPTE_MADE]),
                spte_stored=_u64(row[k.R_SPTE_STORED]) if has_gen else None,
                cache_address_space=int(row[k.R_CACHE_AS]) if from_cache else None,
                cache_generation=_u64(row[k.R_CACHE_GEN]) if from_cache else None,
                cache_as0_generation=_u64(row[k.R_CACHE_AS0]) if from_cache else None,
                current_generation=_u64(row[k.R_CUR_GEN]),
                current_mmio_generation=_u64(row[k.R_CUR_MMIO]) if has_gen else None,
            )
        )
    return tuple(hits)


def to_result(
    enc: EncodedTrace, spec: RunSpec, state: EngineState, *, partial: bool = False
) -> ReplayResult:
    """Read the counters and records out of ``state``."""
    ctr = state.ctr
    nas = spec.address_spaces
    limit = state.rec.shape[1]
    wraps = tuple(
        WrapEvent(
            address_space=int(r[k.W_AS]),
            update=int(r[k.W_UPDATE]),
            bump=int(r[k.W_BUMP]),
            detected=bool(r[k.W_DETECTED]),
            before=int(r[k.W_BEFORE]),
            after=int(r[k.W_AFTER]),
        )
        for r in state.rec[k.REC_WRAP, : min(int(ctr[k.C_WRAP_RECORDS]), limit)]
    )
    zaps = tuple(
        ZapEvent(
            kind="wrap" if r[k.ZR_KIND] == 0 else "memslot_flush",
            scope=_SCOPE_NAMES[int(r[k.ZR_SCOPE])],
            address_space=int(r[k.ZR_AS]),
            update=int(r[k.ZR_UPDATE]),
            bump=int(r[k.ZR_BUMP]),
            dropped_ram=int(r[k.ZR_RAM]),
            dropped_mmio=int(r[k.ZR_MMIO]),
        )
        for r in state.rec[k.REC_ZAP, : min(int(ctr[k.C_ZAP_RECORDS]), limit)]
    )
    return ReplayResult(
        updates=int(ctr[k.C_UPDATES]),
        bumps=tuple(int(ctr[k.C_BUMPS + a]) for a in range(nas)),
        final_generation=tuple(_u64(ctr[k.C_GEN + a]) for a in range(nas)),
        accesses=tuple(int(ctr[k.C_OUTCOME + i]) for i in range(k.N_OUTCOMES)),
        wrap_zaps=int(ctr[k.C_WRAP_ZAPS]),
        flush_zaps=int(ctr[k.C_FLUSH_ZAPS]),
        dropped_wrap_ram=int(ctr[k.C_DROP_WRAP_RAM]),
        dropped_wrap_mmio=int(ctr[k.C_DROP_WRAP_MMIO]),
        dropped_flush_ram=int(ctr[k.C_DROP_FLUSH_RAM]),
        dropped_flush_mmio=int(ctr[k.C_DROP_FLUSH_MMIO]),
        wraps_total=int(ctr[k.C_WRAPS]),
        wraps_undetected=int(ctr[k.C_WRAPS_UNDETECTED]),
        stale_harmful=int(ctr[k.C_HARMFUL]),
        stale_benign=int(ctr[k.C_BENIGN]),
        stale_records=int(ctr[k.C_STALE_RECORDS]),
        wraps=wraps,
        zap_events=zaps,
        stale_hits=_stale_hits(enc, spec, state),
        record_limit=limit,
        events_replayed=int(ctr[k.C_EVENTS]),
        partial=partial,
    )


def run_blocks(
    blocks: Iterable[EncodedTrace],
    state: EngineState,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> bool:
    """Replay blocks in order; return False if Ctrl-C (or ``stop``) stopped it between two.

    A kernel call cannot be interrupted, so the interrupt is honoured once the
    current block returns: the state then holds exactly the events replayed.
    ``stop`` is how a run in another thread is told (only the main thread sees Ctrl-C).
    """
    try:
        for enc in blocks:
            if stop is not None and stop.is_set():
                return False
            run_block(enc, state)
            if progress is not None:
                progress(int(state.ctr[k.C_EVENTS]))
    except KeyboardInterrupt:
        return False
    return True


def _split(enc: EncodedTrace, size: int) -> Iterator[EncodedTrace]:
    for start in range(0, max(len(enc), 1), size):
        yield enc.block(start, min(start + size, len(enc)))


def replay_engine(
    trace: Trace,
    spec: RunSpec,
    *,
    record_limit: int = DEFAULT_RECORD_LIMIT,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay an in-memory ``trace`` under ``spec`` with the jitted engine."""
    return replay_encoded(encode(trace), spec, record_limit=record_limit, progress=progress)


def replay_encoded(
    enc: EncodedTrace,
    spec: RunSpec,
    *,
    record_limit: int = DEFAULT_RECORD_LIMIT,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> ReplayResult:
    """Replay already-encoded arrays (a whole trace, or a compiled one) under ``spec``."""
    state = new_state(enc, spec, record_limit)
    complete = run_blocks(_split(enc, BLOCK_EVENTS), state, progress, stop)
    return to_result(enc, spec, state, partial=not complete)


def replay_streamed(
    trace: StreamedTrace,
    specs: Sequence[RunSpec],
    *,
    record_limit: int = DEFAULT_RECORD_LIMIT,
    progress: Progress | None = None,
    jobs: int = 1,
    stop: threading.Event | None = None,
) -> list[ReplayResult]:
    """Replay a JSON Lines trace under every spec in one pass, block by block.

    Each block is read, validated and encoded once and then replayed into every
    run's state, up to ``jobs`` runs at once (the kernels release the GIL), so
    memory stays bounded and the file is read once for all runs. Ctrl-C (or
    ``stop``) ends every run after the same block.
    """
    encoder = streamed_encoder(trace)
    first = encoder.encode(EventTable.empty(0))
    states = [new_state(first, spec, record_limit) for spec in specs]
    complete = True
    pool = ThreadPoolExecutor(min(jobs, len(states))) if jobs > 1 and len(states) > 1 else None
    try:
        for block in trace.blocks():
            if stop is not None and stop.is_set():
                complete = False
                break
            enc = encoder.encode(block)
            if pool is None:
                for state in states:
                    run_block(enc, state)
            else:
                for done in [pool.submit(run_block, enc, state) for state in states]:
                    done.result()
            if progress is not None and states:
                progress(int(states[0].ctr[k.C_EVENTS]))
    except KeyboardInterrupt:
        complete = False
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return [
        to_result(first, spec, state, partial=not complete)
        for spec, state in zip(specs, states, strict=True)
    ]
