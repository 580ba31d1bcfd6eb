"""``kvmgen check``: replay traces, then hold every run to every limit.

:func:`replay_traces` turns trace files into report documents (the only step
that replays); :func:`evaluate` compares those documents with the limits and a
baseline and returns a :class:`CheckOutcome`, which every output (terminal,
``--json``, JUnit, Markdown) renders. Evaluation is pure, so it is tested on
report documents without replaying anything.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from kvmgen.errors import KvmgenError, TraceError, UsageError
from kvmgen.formatting import count, number, percent, plural
from kvmgen.gate.baseline import TraceReport, find_report
from kvmgen.gate.limits import (
    MAX,
    MAX_REGRESSION,
    Limit,
    Number,
    exceeds_max,
    exceeds_regression,
    regression_percent,
)
from kvmgen.gate.metrics import RunId, RunMetrics, index_runs, lookup, report_runs
from kvmgen.report.document import REPORT_VERSION
from kvmgen.version import __version__

CHECK_VERSION = 1
"""Version of the ``kvmgen check --json`` document (``kvmgen/schema/check.schema.json``).

Bumped, like ``REPORT_VERSION``, when a key is removed or changes meaning; adding
a key does not bump it.
"""

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"

# Per-trace baseline states.
NO_BASELINE = "none"
MATCHED = "matched"
MISSING = "missing"
CHANGED = "changed"
OTHER_VERSION = "other_version"


@dataclass(frozen=True)
class Result:
    """One evaluated check: a limit on one run, a trace's baseline, or a skipped era.

    ``check`` is ``max`` or ``max_regression`` (a limit on a run), ``baseline``
    (is the trace's baseline usable) or ``run`` (an era that could not run the trace).
    """

    trace: str
    check: str
    status: str
    message: str
    run: RunId | None = None
    metric: str | None = None
    limit: Number | None = None
    value: int | None = None
    baseline: int | None = None
    subject: str | None = None  # the era of a ``run`` result

    @property
    def name(self) -> str:
        """Test-case name: the run and the condition, e.g. ``E5 ...: harmful_stale_hits <= 0``."""
        if self.check == "baseline":
            return "baseline"
        if self.check == "run":
            return f"{self.subject}: not run"
        assert self.run is not None and self.metric is not None and self.limit is not None
        return f"{self.run.label}: {Limit(self.check, self.metric, self.limit).text}"

    def describe(self) -> str:
        """One line naming trace, run, metric, value, limit and baseline."""
        who = f"{self.trace}: {self.run.label}" if self.run else self.trace
        return f"{who}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``results`` of the check document)."""
        return {
            "trace": self.trace,
            "run": self.run.as_dict() if self.run else None,
            "check": self.check,
            "metric": self.metric,
            "limit": self.limit,
            "value": self.value,
            "baseline": self.baseline,
            "status": self.status,
            "message": self.message,
        }


@dataclass(frozen=True)
class TraceOutcome:
    """What happened to one trace: its runs, skipped eras and baseline state."""

    path: str
    sha256: str
    runs: tuple[RunId, ...]
    skipped: tuple[dict[str, Any], ...]
    baseline: str
    baseline_note: str | None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``traces`` of the check document); no timings."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "runs": [run.as_dict() for run in self.runs],
            "skipped": list(self.skipped),
            "baseline": self.baseline,
            "baseline_note": self.baseline_note,
        }


@dataclass(frozen=True)
class CheckOutcome:
    """Every result of one ``kvmgen check``."""

    limits: tuple[Limit, ...]
    traces: tuple[TraceOutcome, ...]
    results: tuple[Result, ...]
    baseline_path: str | None = None

    @property
    def failures(self) -> list[Result]:
        """The results that failed."""
        return [r for r in self.results if r.status == FAILED]

    @property
    def passed(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    def count(self, status: str) -> int:
        """How many results have ``status``."""
        return sum(1 for r in self.results if r.status == status)

    def counts_text(self) -> str:
        """``2 traces, 4 runs, 9 checks (8 limits, 1 baseline): 8 passed, 1 failed, 0 skipped``.

        A check is a limit on one run, a trace's baseline, or an era that could not
        run a trace; the kinds are named when there is more than one.
        """
        runs = sum(len(t.runs) for t in self.traces)
        kinds = [
            plural(sum(1 for r in self.results if r.metric is not None), "limit"),
            plural(sum(1 for r in self.results if r.check == "baseline"), "baseline"),
            plural(sum(1 for r in self.results if r.check == "run"), "era not run", "eras not run"),
        ]
        named = [k for k in kinds if not k.startswith("0 ")]
        detail = f" ({', '.join(named)})" if len(named) > 1 else ""
        return (
            f"{plural(len(self.traces), 'trace')}, {plural(runs, 'run')}, "
            f"{plural(len(self.results), 'check')}{detail}: {count(self.count(PASSED))} passed, "
            f"{count(self.count(FAILED))} failed, {count(self.count(SKIPPED))} skipped"
        )

    def summary(self) -> str:
        """One line: verdict and counts."""
        return f"kvmgen check {'PASSED' if self.passed else 'FAILED'}: {self.counts_text()}"

    def as_dict(self) -> dict[str, Any]:
        """The ``kvmgen check --json`` document."""
        return {
            "kvmgen_check": CHECK_VERSION,
            "generator": f"kvmgen {__version__}",
            "passed": self.passed,
            "summary": {
                "traces": len(self.traces),
                "runs": sum(len(t.runs) for t in self.traces),
                "checks": len(self.results),
                "passed": self.count(PASSED),
                "failed": self.count(FAILED),
                "skipped": self.count(SKIPPED),
            },
            "limits": [limit.as_dict() for limit in self.limits],
            "baseline": self.baseline_path,
            "traces": [t.as_dict() for t in self.traces],
            "results": [r.as_dict() for r in self.results],
        }


def _max_result(trace: str, run: RunMetrics, limit: Limit) -> Result:
    value = run.values[limit.metric]
    bad = exceeds_max(value, limit.value)
    relation = "above" if bad else "within"
    return Result(
        trace=trace,
        check=MAX,
        status=FAILED if bad else PASSED,
        message=f"{limit.metric} = {count(value)}, {relation} the max {number(limit.value)}",
        run=run.id,
        metric=limit.metric,
        limit=limit.value,
        value=value,
    )


def _regression_result(
    trace: str, run: RunMetrics, limit: Limit, base: RunMetrics | None, why_not: str | None
) -> Result:
    value = run.values[limit.metric]
    common: dict[str, Any] = {
        "trace": trace,
        "check": limit.kind,
        "run": run.id,
        "metric": limit.metric,
    }
    if base is None:
        reason = why_not or "no such run in the baseline"
        return Result(**common, status=SKIPPED, message=reason, limit=limit.value, value=value)
    old = base.values[limit.metric]
    bad = exceeds_regression(value, old, limit.value)
    pct = regression_percent(value, old)
    change = "unchanged" if value == old else "up from 0" if pct is None else percent(pct)
    relation = "above" if bad else "within"
    return Result(
        **common,
        status=FAILED if bad else PASSED,
        message=f"{limit.metric} = {count(value)} vs baseline {count(old)} ({change}), "
        f"{relation} the max regression +{number(limit.value)}%",
        limit=limit.value,
        value=value,
        baseline=old,
    )


def _baseline_state(
    path: str,
    sha256: str,
    baseline: Sequence[TraceReport] | None,
    baseline_path: str | None,
    allow_changed: bool,
    alone: bool,
) -> tuple[str, str | None, TraceReport | None, str]:
    """(state, note, the report to compare with or None, baseline result status)."""
    if baseline is None:
        return NO_BASELINE, None, None, SKIPPED
    where = f"baseline {baseline_path}" if baseline_path else "the baseline"
    match = find_report(baseline, path, sha256, alone=alone)
    if match is None:
        return MISSING, f"not in {where}: nothing to compare", None, SKIPPED
    report = match.report
    if not report.comparable:
        note = (
            f"{where} holds kvmgen report version {report.version!r} and this kvmgen "
            f"writes version {REPORT_VERSION}: not compared; save a new baseline"
        )
        return OTHER_VERSION, note, None, FAILED
    if report.sha256 != sha256:
        old, new = (report.sha256 or "?")[:12], sha256[:12]
        changed = (
            f"{where} was saved for other content of this trace (sha256 {old}..., now {new}...)"
        )
        if allow_changed:
            return CHANGED, f"{changed}; compared anyway (--allow-changed-traces)", report, PASSED
        note = f"{changed}: not compared; save a new baseline or pass --allow-changed-traces"
        return CHANGED, note, None, FAILED
    if match.by == "sha256" and report.path:
        return MATCHED, f"same content as {report.path!r} in {where}", report, PASSED
    return MATCHED, f"same trace content and report version as {where}", report, PASSED


@dataclass(frozen=True)
class TraceRun:
    """One replayed trace: the path it was given as, its report, and the replay time."""

    path: str
    document: dict[str, Any]
    seconds: float = 0.0

    @property
    def sha256(self) -> str:
        """The trace's content digest, from its report."""
        value = lookup(self.document, "trace", "sha256")
        return str(value)


@dataclass(frozen=True)
class CheckResult:
    """A finished ``kvmgen check``: the verdict and the replayed traces' reports."""

    outcome: CheckOutcome
    traces: tuple[TraceRun, ...]

    @property
    def passed(self) -> bool:
        """Whether every limit held."""
        return self.outcome.passed

    def baseline_bytes(self) -> bytes:
        """What ``--save-baseline`` writes: each trace's report with its path."""
        from kvmgen.gate.baseline import baseline_bytes

        return baseline_bytes([(run.path, run.document) for run in self.traces])


def evaluate(
    traces: Sequence[TraceRun],
    limits: Sequence[Limit],
    *,
    baseline: Sequence[TraceReport] | None = None,
    baseline_path: str | None = None,
    allow_changed_traces: bool = False,
) -> CheckOutcome:
    """Hold every run of every trace to every limit, against ``baseline`` if given.

    With a baseline, each trace also gets one ``baseline`` result: failed when the
    baseline's report is of another version or for other trace content (unless
    ``allow_changed_traces``), skipped when the trace is not in the baseline. A
    baseline that holds none of the traces is a usage error (a wrong path or
    working directory would otherwise pass with nothing compared).
    """
    alone = len(traces) == 1
    if baseline is not None and not any(
        find_report(baseline, t.path, t.sha256, alone=alone) for t in traces
    ):
        held = ", ".join(r.name for r in baseline)
        raise UsageError(
            f"baseline {baseline_path or ''}: none of the traces is in it (it holds: {held})"
        )
    outcomes: list[TraceOutcome] = []
    results: list[Result] = []
    for trace in traces:
        path, sha256 = trace.path, trace.sha256
        current = index_runs(report_runs(trace.document))
        state, note, base_report, status = _baseline_state(
            path, sha256, baseline, baseline_path, allow_changed_traces, alone
        )
        base_runs = index_runs(report_runs(base_report.document)) if base_report else {}
        why_not: str | None = None  # why a regression limit cannot be evaluated
        if state == NO_BASELINE:
            why_not = "no baseline given"
        elif state == MISSING:
            why_not = "the trace is not in the baseline"
        elif base_report is None:
            why_not = "the baseline was not compared (see this trace's baseline check)"
        extra = [run.id.label for key, run in base_runs.items() if key not in current]
        if extra and note:
            note += "; baseline runs not replayed now: " + ", ".join(extra)
        if state != NO_BASELINE:
            results.append(Result(trace=path, check="baseline", status=status, message=note or ""))
        for key, run in current.items():
            for limit in limits:
                if limit.kind == MAX:
                    results.append(_max_result(path, run, limit))
                else:
                    results.append(
                        _regression_result(path, run, limit, base_runs.get(key), why_not)
                    )
        skipped = tuple(lookup(trace.document, "skipped"))
        for entry in skipped:
            era = _era_text(entry)
            results.append(
                Result(
                    trace=path,
                    check="run",
                    status=SKIPPED,
                    message=f"{era} cannot run this trace: {entry.get('reason', '')}",
                    subject=era,
                )
            )
        outcomes.append(
            TraceOutcome(
                path=path,
                sha256=sha256,
                runs=tuple(run.id for run in current.values()),
                skipped=skipped,
                baseline=state,
                baseline_note=note,
                seconds=trace.seconds,
            )
        )
    _refuse_empty_comparison(results, baseline, baseline_path)
    return CheckOutcome(tuple(limits), tuple(outcomes), tuple(results), baseline_path)


def _era_text(skipped: dict[str, Any]) -> str:
    """``E1 (3.11)``, or the era's kernel range: a skipped era as every output names eras."""
    from kvmgen.formatting import era_text
    from kvmgen.model.eras import ERAS

    name = str(skipped.get("era", "?"))
    era = ERAS.get(name)
    return era_text(name, kernel=skipped.get("kernel"), versions=era.versions if era else "?")


def _refuse_empty_comparison(
    results: Sequence[Result], baseline: Sequence[TraceReport] | None, baseline_path: str | None
) -> None:
    """A regression gate that compared no run at all must not pass.

    That happens when the baseline was saved for other runs (another --kernel, --era
    or --bias): every regression limit is skipped, and a green result would hide it.
    Traces whose baseline check failed (changed content, other version) already fail.
    """
    regressions = [r for r in results if r.check == MAX_REGRESSION]
    baseline_failed = any(r.check == "baseline" and r.status == FAILED for r in results)
    if baseline is None or not regressions or baseline_failed:
        return
    if all(r.status == SKIPPED for r in regressions):
        held = sorted({label for report in baseline for label in _run_labels(report)})
        raise UsageError(
            f"baseline {baseline_path or ''}: none of the runs checked now is in it "
            f"(it holds: {', '.join(held) or 'no runs'}); check with the options the "
            "baseline was saved with, or save a new one"
        )


def _run_labels(report: TraceReport) -> list[str]:
    return [run.id.label for run in index_runs(report_runs(report.document)).values()]


@dataclass(frozen=True)
class ReplayRequest:
    """How to replay each trace: the run options ``replay`` and ``compare`` also take.

    ``reference``: True the reference model, False the engine, None the default
    (:func:`kvmgen.session.resolve_implementation`).
    """

    kernels: tuple[str, ...] = ()
    eras: tuple[str, ...] = ()
    biases: tuple[str, ...] = ()
    address_spaces: int | None = None
    costs: str | None = None
    fmt: str | None = None
    reference: bool | None = None
    record_limit: int | None = None
    allow_missing_source: bool = False

    @property
    def single(self) -> bool:
        """At most one kernel and one era: strict like ``replay``, not like ``compare``."""
        return (
            len(self.kernels) <= 1
            and len(self.eras) <= 1
            and not any(e.strip().lower() == "all" for e in self.eras)
        )


def replay_traces(
    paths: Sequence[str],
    request: ReplayRequest,
    progress: Callable[..., None] | None = None,
    jobs: int | None = None,
) -> list[TraceRun]:
    """Replay every trace (each path once) into its report document.

    No ``--kernel``/``--era`` uses each trace's header; one kernel and/or one era
    is strict like ``replay``; several (or ``--era all``) run like ``compare``,
    listing eras that cannot run a trace under ``skipped``. A trace no era can
    run is a usage error, and so is a Ctrl-C (exit 130, nothing written).
    ``progress(label, done, total)`` is told how each read and replay advances.

    Up to ``jobs`` traces replay at once, each in a worker process; the reports,
    and the error raised for the first bad trace in ``paths`` order, are the
    same as one by one. By default every core is used once the traces hold
    :data:`PARALLEL_MIN_BYTES` or more; smaller checks run in this process.
    Standard input (``-``) is read here, so a check that reads it runs one trace
    at a time.
    """
    from kvmgen.session import default_jobs

    if paths.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    if not request.single:
        from kvmgen.session import targets_for

        targets_for(request.kernels, request.eras)  # a usage error before any trace is read
    unique = list(dict.fromkeys(paths))
    workers = min(jobs or default_jobs(), len(unique))
    if jobs is None and _input_bytes(unique) < PARALLEL_MIN_BYTES:
        workers = 1  # starting a worker costs more than these traces take
    if workers <= 1 or "-" in unique:
        return [_replay_one(path, request, progress) for path in unique]
    return _replay_in_workers(unique, request, progress, workers)


PARALLEL_MIN_BYTES = 4 << 20
"""Input size from which a default check replays its traces in worker processes: a
worker takes ~0.5 s of CPU to start, the time a few MB of trace take to replay."""


def _input_bytes(paths: Sequence[str]) -> int:
    total = 0
    for path in paths:
        with contextlib.suppress(OSError):  # opening it reports the problem, in order
            total += os.path.getsize(path)
    return total


def _replay_one(
    path: str, request: ReplayRequest, progress: Callable[..., None] | None, jobs: int | None = None
) -> TraceRun:
    """Open, replay and report one trace."""
    from kvmgen.inputs import open_trace
    from kvmgen.model.costs import load_costs
    from kvmgen.model.policy import parse_policies
    from kvmgen.report.document import build_document
    from kvmgen.session import implementation_for, resolve_target, run_session, targets_for
    from kvmgen.stats import DEFAULT_RECORD_LIMIT

    read = partial(progress, f"reading {path}") if progress else None
    trace = open_trace(
        path, request.fmt, progress=read, allow_missing_source=request.allow_missing_source
    )
    if request.single:
        kernel = request.kernels[0] if request.kernels else None
        era = request.eras[0] if request.eras else None
        targets = [resolve_target(trace, kernel, era)]
    else:
        targets = targets_for(request.kernels, request.eras)
    start = time.perf_counter()
    session = run_session(
        trace,
        targets,
        address_spaces=request.address_spaces,
        policies=parse_policies(request.biases),
        cost_model=load_costs(request.costs) if request.costs else None,
        implementation=implementation_for(request.reference),
        record_limit=request.record_limit or DEFAULT_RECORD_LIMIT,
        skip_unrunnable=not request.single,
        progress=progress,
        jobs=jobs,
    )
    if getattr(session, "partial", False):
        raise KeyboardInterrupt
    if not session.runs:
        reasons = "; ".join(f"{s.era}: {s.reason}" for s in session.skipped)
        raise UsageError(f"{path}: no chosen era can run this trace ({reasons})")
    return TraceRun(path, build_document(session), time.perf_counter() - start)


def _replay_in_workers(
    paths: Sequence[str],
    request: ReplayRequest,
    progress: Callable[..., None] | None,
    workers: int,
) -> list[TraceRun]:
    """Replay ``paths`` in ``workers`` fresh processes (spawned: this one may hold threads).

    Each worker replays the runs of its trace one at a time: the traces already
    fill every core. A worker's error comes back as a value and is raised here
    for the first failing trace in ``paths`` order, as a serial check would; a
    worker that dies raises BrokenProcessPool. Ctrl-C stops every worker.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    label = f"replaying {len(paths)} traces"
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_ignore_interrupts,
    )
    out: list[TraceRun] = []
    try:
        futures = [pool.submit(_worker, request, path) for path in paths]
        for future in futures:
            outcome = future.result()
            if isinstance(outcome, BaseException):
                raise outcome
            out.append(outcome)
            if progress is not None:
                progress(label, len(out), len(paths))
    except BaseException:
        # Private but long-standing: the only way to stop a running worker before 3.14.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is the parent's to handle (it stops the workers)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker(request: ReplayRequest, path: str) -> TraceRun | BaseException:
    """One trace in a worker process; an error is returned, in a form that pickles."""
    try:
        return _replay_one(path, request, None, jobs=1)
    except TraceError as error:
        return _PicklableTraceError.of(error)
    except KvmgenError as error:
        return error
    except Exception:  # a bug: the parent raises it with its traceback text
        import traceback

        return RuntimeError(f"{path}: replay failed in a worker:\n{traceback.format_exc()}")


class _PicklableTraceError(TraceError):
    """A :class:`TraceError` that crosses a process boundary (its __init__ takes keywords)."""

    @classmethod
    def of(cls, error: TraceError) -> TraceError:
        fields = ("line", "column", "event", "op", "field")
        copy = cls(error.path, error.message, **{f: getattr(error, f) for f in fields})
        copy.exit_code = error.exit_code
        return copy

    def __reduce__(self) -> tuple[Any, ...]:
        fields = (self.line, self.column, self.event, self.op, self.field)
        return (_rebuild_trace_error, (self.path, self.message, *fields))


def _rebuild_trace_error(
    path: str,
    message: str,
    line: int | None,
    column: int | None,
    event: int | None,
    op: str | None,
    field: str | None,
) -> TraceError:
    return TraceError(path, message, line=line, column=column, event=event, op=op, field=field)


def check_schema() -> dict[str, Any]:
    """The JSON Schema of the ``kvmgen check --json`` document (shipped in the package)."""
    import json
    from importlib import resources

    text = resources.files("kvmgen.schema").joinpath("check.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
