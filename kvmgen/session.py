"""A session: every run of one trace, planned, replayed and priced.

Resolve eras and policies, check the trace against each run, replay (numba
engine or reference model), price. :mod:`kvmgen.api` is the documented face of
this module; the engine is imported on first use so that importing kvmgen stays
cheap.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial

from kvmgen.errors import KvmgenError, UsageError
from kvmgen.formatting import plural
from kvmgen.inputs import AnyTrace
from kvmgen.model.costs import CostBreakdown, CostModel, run_costs
from kvmgen.model.eras import ERAS, Era
from kvmgen.model.policy import (
    DEFAULT_POLICIES,
    Policy,
    RunSpec,
    check_address_spaces,
    parse_policy,
    resolve_runs,
)
from kvmgen.model.versions import KernelChoice, era_for_version, lookup_era
from kvmgen.stats import DEFAULT_RECORD_LIMIT, ReplayResult
from kvmgen.trace.checks import check_trace_spaces
from kvmgen.trace.digest import content_digest
from kvmgen.trace.records import Trace
from kvmgen.trace.streamed import StreamedTrace
from kvmgen.trace.table import table_of


def _compiled(trace: AnyTrace) -> bool:
    return trace.format == "compiled"


@dataclass(frozen=True)
class Target:
    """One era to run, with the kernel version that chose it (if any)."""

    era: Era
    choice: KernelChoice | None = None


@dataclass(frozen=True)
class RunOutcome:
    """One run: what was asked, what happened, what it cost."""

    spec: RunSpec
    result: ReplayResult
    costs: CostBreakdown


@dataclass(frozen=True)
class Skipped:
    """A target that cannot run this trace, and why."""

    era: str
    kernel: str | None
    reason: str


@dataclass(frozen=True)
class Session:
    """All runs of one trace, in the order requested.

    ``partial`` is set when Ctrl-C stopped a run: that run is the last one, marked
    partial with the events it replayed, and the runs after it were not started.
    """

    trace: AnyTrace
    cost_model: CostModel
    runs: tuple[RunOutcome, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    partial: bool = False

    def event_count(self) -> int:
        """Top-level events in the trace."""
        return event_count(self.trace)

    def digest(self) -> str:
        """The trace's content digest: the same whatever format it was read from."""
        if isinstance(self.trace, Trace):
            return content_digest(self.trace.vm, table_of(self.trace))
        return self.trace.content_digest()

    def gate_failures(self, fail_on: Sequence[str]) -> list[str]:
        """One line per run that trips a requested ``--fail-on`` gate (``disagree`` aside)."""
        failed = []
        for run in self.runs:
            r = run.result
            label = run.spec.label
            if "harmful" in fail_on and r.stale_harmful:
                failed.append(f"{label}: {plural(r.stale_harmful, 'harmful stale hit')}")
            if "stale" in fail_on and (r.stale_harmful or r.stale_benign):
                failed.append(f"{label}: {plural(r.stale_harmful + r.stale_benign, 'stale hit')}")
            if "undetected-wrap" in fail_on and r.wraps_undetected:
                failed.append(f"{label}: {plural(r.wraps_undetected, 'undetected wrap')}")
        return failed

    def notes(self) -> dict[int, str]:
        """Event index -> the event's ``note``, for per-event output."""
        if isinstance(self.trace, Trace):
            return table_of(self.trace).event_notes()
        return dict(self.trace.notes)


def event_count(trace: AnyTrace) -> int:
    """Top-level events in ``trace``."""
    if isinstance(trace, Trace):
        return len(trace.events)
    return trace.event_count


def resolve_target(trace: AnyTrace, kernel: str | None, era: str | None) -> Target:
    """Pick the era from the command line, falling back to the trace header."""
    kernel = kernel or (None if era else trace.vm.kernel)
    era = era or (None if kernel else trace.vm.era)
    if kernel is None and era is None:
        raise UsageError(
            f"{trace.path}: no kernel era: give --kernel VERSION or --era E0..E12, "
            "or set vm.kernel / vm.era in the trace"
        )
    if kernel is None:
        return Target(lookup_era(str(era)))
    choice = era_for_version(kernel)
    if era is not None and lookup_era(era).name != choice.era.name:
        raise UsageError(f"kernel {kernel} is era {choice.era.name}, not {era.upper()}")
    return Target(choice.era, choice)


def targets_for(kernels: Sequence[str], eras: Sequence[str]) -> list[Target]:
    """Targets for ``compare``: each kernel, then each era (``all`` = every era)."""
    out = [Target(era_for_version(k).era, era_for_version(k)) for k in kernels]
    for name in eras:
        if name.strip().lower() == "all":
            out.extend(Target(era) for era in ERAS.values())
        else:
            out.append(Target(lookup_era(name)))
    if not out:
        raise UsageError("compare needs --kernel V1,V2,... or --era E1,E2,... (or --era all)")
    return out


REFERENCE_MAX_WORK = 50_000
"""The most accesses and bumps (repetitions counted, summed over every run) that the
default replays with the reference model: it does ~250,000 a second, less than
loading the engine costs (``make bench``), and gives the same reports."""

IMPLEMENTATIONS = ("auto", "engine", "reference")


def implementation_for(reference: bool | None) -> str:
    """``--reference`` (True), ``--engine`` (False) or neither (None) as an implementation."""
    return "auto" if reference is None else "reference" if reference else "engine"


def resolve_implementation(implementation: str, trace: AnyTrace, runs: int) -> str:
    """``auto``: the reference model for a small in-memory trace, else the engine."""
    if implementation != "auto":
        return implementation
    if not isinstance(trace, Trace) or len(trace.events) * runs > REFERENCE_MAX_WORK:
        return "engine"
    repeats = table_of(trace).repeat
    if int(repeats.max(initial=0)) > REFERENCE_MAX_WORK:
        return "engine"  # one huge repeat; summing could overflow
    return "reference" if int(repeats.sum()) * runs <= REFERENCE_MAX_WORK else "engine"


def default_jobs() -> int:
    """Every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _engine_runs(
    trace: AnyTrace,
    specs: Sequence[RunSpec],
    *,
    record_limit: int,
    progress: Callable[..., None] | None,
    total: int,
    jobs: int,
) -> list[ReplayResult]:
    """Every run of ``trace`` on the engine, ``jobs`` at a time (the kernels release the GIL).

    A JSON Lines trace is read once for all runs. Results come in ``specs`` order
    whatever finished first; on Ctrl-C every run stops at its next block, and the
    runs after the first one stopped are dropped (as if never started).
    """
    from kvmgen.engine.encode import encode
    from kvmgen.engine.replay import replay_encoded, replay_streamed

    stop = threading.Event()
    if isinstance(trace, StreamedTrace):
        label = plural(len(specs), "run")
        tick = partial(progress, label, total=total) if progress else None
        return replay_streamed(
            trace, specs, record_limit=record_limit, progress=tick, jobs=jobs, stop=stop
        )
    if _compiled(trace):
        enc = trace.encoded  # type: ignore[union-attr]
    else:
        assert isinstance(trace, Trace)
        enc = encode(trace)  # era-independent: one encoding serves every run

    if jobs <= 1 or len(specs) <= 1:
        results = []
        for spec in specs:
            tick = partial(progress, spec.label, total=total) if progress else None
            results.append(
                replay_encoded(enc, spec, record_limit=record_limit, progress=tick, stop=stop)
            )
            if results[-1].partial:
                break
        return results
    # Worker threads replay; this (main) thread reports progress, so that Ctrl-C,
    # SIGTERM and a progress callback's exceptions all arrive here, in run order.
    replayed = [0] * len(specs)

    def run(i: int) -> ReplayResult:
        def count(events: int) -> None:
            replayed[i] = events

        return replay_encoded(enc, specs[i], record_limit=record_limit, progress=count, stop=stop)

    pool = ThreadPoolExecutor(min(jobs, len(specs)))
    futures = [pool.submit(run, i) for i in range(len(specs))]
    reported = [False] * len(specs)  # a run counts as whole once its end was reported
    try:
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.1)
            for i, future in enumerate(futures):
                if reported[i] or (i > 0 and not reported[i - 1]):
                    continue
                ended = future.done()
                if progress is not None:
                    progress(specs[i].label, replayed[i], total=total)
                reported[i] = ended
        results = [future.result() for future in futures]
    except KeyboardInterrupt:
        stop.set()
        results = _gather(futures)
        # As one by one: the first run whose end was not reported stopped, partial.
        last = reported.index(False) if False in reported else len(results) - 1
        results[last] = replace(results[last], partial=True)
        return results[: last + 1]
    finally:
        # Not waiting (every run has returned): a signal then would escape the wait.
        pool.shutdown(wait=False)
    last = next((i for i, r in enumerate(results) if r.partial), len(results) - 1)
    return results[: last + 1]


def _gather(futures: Sequence[Future[ReplayResult]]) -> list[ReplayResult]:
    """Every result, once the runs stopped: a second Ctrl-C (or SIGTERM) only waits longer."""
    while True:
        try:
            return [future.result() for future in futures]
        except KeyboardInterrupt:
            continue


def _reference_runs(
    trace: AnyTrace, specs: Sequence[RunSpec], *, record_limit: int
) -> list[ReplayResult]:
    from kvmgen.reference.replay import replay_reference

    # The oracle is for checking, not for scale: it takes the trace in memory.
    if _compiled(trace):
        raise UsageError(
            f"{trace.path}: --reference needs the source trace; a compiled trace holds "
            "only the engine's arrays"
        )
    if isinstance(trace, StreamedTrace):
        trace = trace.materialize()
    assert isinstance(trace, Trace)
    return [replay_reference(trace, spec, record_limit=record_limit) for spec in specs]


Replayer = Callable[..., ReplayResult]
"""``replay(trace, spec, record_limit=...)``: one run of one trace."""


def _engine() -> Replayer:
    def replay(
        trace: AnyTrace, spec: RunSpec, record_limit: int = DEFAULT_RECORD_LIMIT
    ) -> ReplayResult:
        runs = _engine_runs(
            trace, [spec], record_limit=record_limit, progress=None, total=0, jobs=1
        )
        return runs[0]

    return replay


def _reference() -> Replayer:
    def replay(
        trace: AnyTrace, spec: RunSpec, record_limit: int = DEFAULT_RECORD_LIMIT
    ) -> ReplayResult:
        return _reference_runs(trace, [spec], record_limit=record_limit)[0]

    return replay


REPLAYERS: dict[str, Callable[[], Replayer]] = {"engine": _engine, "reference": _reference}
"""One run at a time, on a chosen implementation (for tools that replay a run again)."""


def plan_runs(
    trace: AnyTrace,
    target: Target,
    address_spaces: int | None,
    policies: Sequence[Policy],
    *,
    header_is_hint: bool = False,
) -> list[RunSpec]:
    """The distinct runs of ``target``, validated against the trace.

    With ``header_is_hint`` (``compare`` over eras), a header address-space count
    that the era cannot have gives way to the era's default.
    """
    era = target.era
    nas = address_spaces or trace.vm.address_spaces or era.default_address_spaces
    if header_is_hint and not address_spaces and nas not in era.allowed_address_spaces:
        nas = era.default_address_spaces
    check_address_spaces(era, nas, target.choice)
    check_trace_spaces(trace, nas)
    return resolve_runs(era, nas, list(policies), target.choice)


def plan_session(
    trace: AnyTrace,
    targets: Sequence[Target],
    address_spaces: int | None,
    policies: Sequence[Policy],
    skip_unrunnable: bool,
) -> tuple[list[RunSpec], list[Skipped]]:
    """Every run the targets ask for; unrunnable targets fail, or are skipped for compare."""
    specs: list[RunSpec] = []
    skipped: list[Skipped] = []
    for target in targets:
        try:
            specs.extend(
                plan_runs(trace, target, address_spaces, policies, header_is_hint=skip_unrunnable)
            )
        except KvmgenError as exc:
            if not skip_unrunnable:
                raise
            kernel = target.choice.kernel if target.choice else None
            skipped.append(Skipped(target.era.name, kernel, str(exc)))
    return specs, skipped


def run_session(
    trace: AnyTrace,
    targets: Sequence[Target],
    *,
    address_spaces: int | None = None,
    policies: Sequence[Policy] | None = None,
    cost_model: CostModel | None = None,
    implementation: str = "auto",
    record_limit: int = DEFAULT_RECORD_LIMIT,
    skip_unrunnable: bool = False,
    progress: Callable[..., None] | None = None,
    jobs: int | None = None,
) -> Session:
    """Replay ``trace`` for every target and policy.

    With ``skip_unrunnable`` (``compare``), a target whose address-space count
    cannot hold the trace is listed in ``skipped`` instead of failing the session.
    ``progress(label, events_done, total=events_total)`` is called as runs advance.
    ``implementation`` is ``engine``, ``reference`` or ``auto`` (see
    :func:`resolve_implementation`); the engine replays up to ``jobs`` runs at
    once (default: every core), with the same results as one by one. A JSON
    Lines trace is replayed under all runs in one pass over the file.
    """
    policies = list(policies or [parse_policy(p) for p in DEFAULT_POLICIES])
    model = cost_model or CostModel()
    specs, skipped = plan_session(trace, targets, address_spaces, policies, skip_unrunnable)
    chosen = resolve_implementation(implementation, trace, len(specs))
    if chosen == "reference":
        results = _reference_runs(trace, specs, record_limit=record_limit)
    else:
        results = _engine_runs(
            trace,
            specs,
            record_limit=record_limit,
            progress=progress,
            total=event_count(trace),
            jobs=jobs or default_jobs(),
        )
    runs = tuple(
        RunOutcome(spec, result, run_costs(model, spec.era, result))
        for spec, result in zip(specs, results, strict=False)
    )
    return Session(trace, model, runs, tuple(skipped), partial=any(r.partial for r in results))
