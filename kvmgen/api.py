"""kvmgen as a library: everything the command line does, as functions returning reports.

Open a trace of any format from a path, a stream or bytes, then replay it::

    import kvmgen

    trace = kvmgen.open_trace("traces/seed-stale-gen0.yaml")
    session = kvmgen.replay(trace, kernel="4.1")
    for run in session.runs:
        print(run.spec.label, run.result.stale_harmful, run.result.wraps_total)

Every function that takes a ``trace`` also takes a path (or a stream, or bytes)
and opens it with :func:`open_trace`. Eras are chosen by ``kernel`` (a mainline
version string) or ``era`` (``E0``..``E12``), else by the trace header; biases are
policy strings (``historical``, ``none``, an integer, ``literal:B``) or
:class:`~kvmgen.model.policy.Policy` objects. Problems with the input raise
:class:`~kvmgen.errors.KvmgenError` subclasses, whose message is one line.
See ``docs/api.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Union

from kvmgen.errors import UsageError
from kvmgen.inputs import AnyTrace, open_trace
from kvmgen.model.costs import CostModel, load_costs
from kvmgen.model.policy import (
    Policy,
    check_address_spaces,
    parse_policies,
    resolve_runs,
    with_literal_companions,
)
from kvmgen.model.versions import era_for_version, lookup_era
from kvmgen.session import (
    RunOutcome,
    Session,
    Target,
    implementation_for,
    resolve_target,
    run_session,
    targets_for,
)
from kvmgen.stats import DEFAULT_RECORD_LIMIT
from kvmgen.trace.records import Trace
from kvmgen.trace.streamed import StreamedTrace

if TYPE_CHECKING:
    from kvmgen.analysis.forecast import Forecast
    from kvmgen.analysis.search_report import SearchReport
    from kvmgen.analysis.sweep import Sweep
    from kvmgen.gate.check import CheckResult
    from kvmgen.importers.imports import Imported
    from kvmgen.probe.compare import RunComparison
    from kvmgen.probe.run import ProbeRun
    from kvmgen.record import Recording

__all__ = [
    "RunOutcome",
    "Session",
    "check",
    "compare",
    "event_records",
    "forecast",
    "html_report",
    "import_log",
    "observed",
    "open_trace",
    "probe_kernel",
    "record_vmm",
    "replay",
    "report_document",
    "search",
    "sweep",
]

TraceLike = Union[AnyTrace, str, "os.PathLike[str]", bytes, BinaryIO]
"""A trace already opened, or anything :func:`open_trace` opens."""
Biases = Iterable[str | Policy] | str | None
Costs = Union[CostModel, str, "os.PathLike[str]", None]
Progress = Callable[[str, int, int], None]


def _opened(
    trace: TraceLike,
    fmt: str | None = None,
    progress: Progress | None = None,
    allow_missing_source: bool = False,
) -> AnyTrace:
    if isinstance(trace, Trace | StreamedTrace) or getattr(trace, "format", None) == "compiled":
        return trace  # type: ignore[return-value]
    read = None
    if progress is not None:
        label = os.path.basename(os.fspath(trace)) if isinstance(trace, str | os.PathLike) else ""
        read = lambda done, total: progress(f"reading {label or 'trace'}", done, total)  # noqa: E731
    return open_trace(
        trace,  # type: ignore[arg-type]
        fmt,
        progress=read,
        allow_missing_source=allow_missing_source,
    )


def _in_memory(trace: AnyTrace, command: str) -> Trace:
    """The trace as records: a streamed one is read whole, a compiled one refused."""
    if isinstance(trace, Trace):
        return trace
    if isinstance(trace, StreamedTrace):
        return trace.materialize()
    raise UsageError(f"{trace.path}: {command} needs the source trace, not a compiled one")


def _policies(biases: Biases) -> list[Policy] | None:
    """Parsed policies; a ``literal:B`` brings ``none`` and ``B`` along (reports compare them)."""
    parsed = parse_policies([biases] if isinstance(biases, str) else biases)
    return with_literal_companions(parsed) if parsed else None


def _costs(costs: Costs) -> CostModel | None:
    if costs is None or isinstance(costs, CostModel):
        return costs
    return load_costs(os.fspath(costs))


def _names(values: Iterable[str] | str | None) -> list[str]:
    """``"4.19,6.18"``, ``["4.19", "6.18"]`` or None -> ``["4.19", "6.18"]``."""
    items = [values] if isinstance(values, str) else list(values or ())
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def replay(
    trace: TraceLike,
    *,
    kernel: str | None = None,
    era: str | None = None,
    biases: Biases = None,
    address_spaces: int | None = None,
    costs: Costs = None,
    reference: bool | None = None,
    record_limit: int = DEFAULT_RECORD_LIMIT,
    fmt: str | None = None,
    progress: Progress | None = None,
    allow_missing_source: bool = False,
) -> Session:
    """Replay ``trace`` under one era, with each bias policy (default: historical and none).

    ``reference``: True replays with the plain-Python reference model, False
    with the numba engine; None (the default) picks the reference model for a
    small in-memory trace (:data:`kvmgen.session.REFERENCE_MAX_WORK`), where it
    is faster than loading the engine, and the engine otherwise. Both give the
    same results. ``progress(label, done, total)`` is told
    how reading and replaying advance. A Ctrl-C (or SIGTERM, see
    :mod:`kvmgen.signals`) between two blocks of events returns a session marked
    ``partial``. ``allow_missing_source`` replays a compiled trace whose source is gone.
    """
    opened = _opened(trace, fmt, progress, allow_missing_source)
    return _session(
        opened,
        [resolve_target(opened, kernel, era)],
        biases=biases,
        address_spaces=address_spaces,
        costs=costs,
        reference=reference,
        record_limit=record_limit,
        skip_unrunnable=False,
        progress=progress,
    )


def compare(
    trace: TraceLike,
    *,
    kernels: Iterable[str] | str | None = None,
    eras: Iterable[str] | str | None = None,
    biases: Biases = None,
    address_spaces: int | None = None,
    costs: Costs = None,
    reference: bool | None = None,
    record_limit: int = DEFAULT_RECORD_LIMIT,
    fmt: str | None = None,
    progress: Progress | None = None,
    allow_missing_source: bool = False,
) -> Session:
    """Replay ``trace`` under several eras (``eras="all"`` for every one) and policies.

    Eras that cannot run the trace (an SMM trace on a one-address-space era) are
    listed in ``session.skipped`` instead of failing.
    """
    chosen = targets_for(_names(kernels), _names(eras))
    return _session(
        _opened(trace, fmt, progress, allow_missing_source),
        chosen,
        biases=biases,
        address_spaces=address_spaces,
        costs=costs,
        reference=reference,
        record_limit=record_limit,
        skip_unrunnable=True,
        progress=progress,
    )


def _session(
    trace: AnyTrace,
    targets: Sequence[Target],
    *,
    biases: Biases,
    address_spaces: int | None,
    costs: Costs,
    reference: bool | None,
    record_limit: int,
    skip_unrunnable: bool,
    progress: Progress | None,
) -> Session:
    return run_session(
        trace,
        targets,
        address_spaces=address_spaces,
        policies=_policies(biases),
        cost_model=_costs(costs),
        implementation=implementation_for(reference),
        record_limit=record_limit,
        skip_unrunnable=skip_unrunnable,
        progress=progress,
    )


def observed(session: Session) -> list[RunComparison]:
    """What the kernel reported vs what the model says, per compared run.

    Empty when the trace carries no observations (traces from ``kvmgen import
    tracefs``, ``kvmgen record`` and ``kvmgen probe`` do).
    """
    from kvmgen.probe.report import compare_session

    if session.partial:
        return []
    return compare_session(session)


def report_document(session: Session, comparisons: Sequence[Any] = ()) -> dict[str, Any]:
    """The versioned JSON report of a session (``kvmgen schema``), as a dict."""
    from kvmgen.report.document import build_document

    return build_document(session, observed=comparisons)


def event_records(session: Session) -> list[dict[str, Any]]:
    """One record per zap, wrap and stale hit of every run, each with its ``why``."""
    from kvmgen.report.explain import event_records as records

    notes = session.notes()
    return [record for run in session.runs for record in records(run, notes)]


def check(
    traces: Sequence[str],
    *,
    max: Mapping[str, float] | None = None,
    max_regression: Mapping[str, float] | None = None,
    baseline: str | None = None,
    allow_changed_traces: bool = False,
    kernels: Iterable[str] | str | None = None,
    eras: Iterable[str] | str | None = None,
    biases: Biases = None,
    address_spaces: int | None = None,
    costs: str | None = None,
    fmt: str | None = None,
    reference: bool | None = None,
    record_limit: int | None = None,
    progress: Progress | None = None,
    allow_missing_source: bool = False,
    jobs: int | None = None,
) -> CheckResult:
    """Replay trace files and hold every run to limits, as ``kvmgen check`` does.

    ``max`` maps a metric to the highest value allowed; ``max_regression`` maps a
    metric (or ``all``) to the largest growth in percent over the same run in the
    ``baseline`` file. The result's ``outcome.passed`` says whether every limit
    held; ``result.baseline_bytes()`` is what ``--save-baseline`` writes.
    ``jobs`` traces replay at once, each in its own process (default: every
    core; 1: one by one in this process); the result is the same either way.
    """
    from kvmgen.gate.baseline import read_reports
    from kvmgen.gate.check import CheckResult, ReplayRequest, evaluate, replay_traces
    from kvmgen.gate.limits import MAX, MAX_REGRESSION, limits_from_mapping, merge_limits

    limits = merge_limits(
        (
            limits_from_mapping(max or {}, MAX, "max"),
            limits_from_mapping(max_regression or {}, MAX_REGRESSION, "max_regression"),
        )
    )
    request = ReplayRequest(
        kernels=tuple(_names(kernels)),
        eras=tuple(_names(eras)),
        biases=tuple(p.name if isinstance(p, Policy) else p for p in _policy_texts(biases)),
        address_spaces=address_spaces,
        costs=costs,
        fmt=fmt,
        reference=reference,
        record_limit=record_limit,
        allow_missing_source=allow_missing_source,
    )
    reports = read_reports(baseline) if baseline else None
    runs = replay_traces(list(traces), request, progress, jobs)
    outcome = evaluate(
        runs,
        limits,
        baseline=reports,
        baseline_path=baseline,
        allow_changed_traces=allow_changed_traces,
    )
    return CheckResult(outcome, tuple(runs))


def _policy_texts(biases: Biases) -> list[str | Policy]:
    return [biases] if isinstance(biases, str) else list(biases or ())


def _run_specs(
    target: Target, address_spaces: int | None, policies: Sequence[Policy], header: int | None
) -> list[Any]:
    era = target.era
    count = address_spaces or header or era.default_address_spaces
    check_address_spaces(era, count, target.choice)
    return resolve_runs(era, count, list(policies), target.choice)


def _targets(
    trace: AnyTrace | None, kernels: Iterable[str] | str | None, eras: Iterable[str] | str | None
) -> list[Target]:
    kernel_names, era_names = _names(kernels), _names(eras)
    if kernel_names or era_names:
        return targets_for(kernel_names, era_names)
    if trace is None:
        raise UsageError(
            "give --kernel VERSION or --era E0..E12 (or a trace whose header names one)"
        )
    return [resolve_target(trace, None, None)]


def forecast(
    *,
    rate: str | None = None,
    trace: TraceLike | None = None,
    kernels: Iterable[str] | str | None = None,
    eras: Iterable[str] | str | None = None,
    biases: Biases = None,
    address_spaces: int | None = None,
    op: str = "flags",
    fmt: str | None = None,
) -> Forecast:
    """When each address space's truncated generation wraps, and whether it is noticed.

    From ``rate`` (``"30/s"``, ``"2000/min"``: each address space receives that
    many updates of ``op``), or from a ``trace`` whose events carry ``t``
    timestamps (its measured bump rates). Exactly one of the two.
    """
    from kvmgen.analysis.forecast import parse_rate, rate_forecast, trace_forecast, trace_rates
    from kvmgen.model.policy import DEFAULT_POLICIES, parse_policy

    if (rate is None) == (trace is None):
        raise UsageError("forecast needs exactly one of --rate RATE or a timestamped TRACE")
    opened = _in_memory(_opened(trace, fmt), "forecast") if trace is not None else None
    measured = trace_rates(opened) if opened is not None else None
    per_second = parse_rate(rate) if rate is not None else None
    policies = _policies(biases) or [parse_policy(p) for p in DEFAULT_POLICIES]
    header = opened.vm.address_spaces if opened is not None else None
    specs = [
        spec
        for target in _targets(opened, kernels, eras)
        for spec in _run_specs(target, address_spaces, policies, header)
    ]
    if opened is not None and measured is not None:
        return trace_forecast(measured, opened.path, specs)
    assert rate is not None and per_second is not None
    return rate_forecast(rate, per_second, op, specs)


def search(
    *,
    goal: str,
    kernel: str | None = None,
    era: str | None = None,
    bias: str | Policy = "historical",
    address_spaces: int | None = None,
    max_events: int = 4,
    race: bool = True,
    max_during: int = 1,
    via: str = "any",
    vcpus: int = 2,
    gfns: int = 2,
    budget: int = 200_000,
    time_limit: float | None = None,
    seed: int = 0,
    trace_path: str | None = None,
) -> SearchReport:
    """The shortest trace reaching ``goal`` (harmful, benign, undetected-wrap) in one run.

    Exhaustive within the bound while it fits ``budget``, then a seeded random
    search of sub-alphabets. ``report.outcome.found`` says whether one was found;
    ``report.yaml`` is the trace, already replayed to the goal. ``trace_path`` is
    where the caller will write it: ``report.replay_command`` names that file
    (standard input, ``-``, without one).
    """
    from kvmgen.analysis.search import SearchConfig
    from kvmgen.analysis.search_report import run_search

    if (kernel is None) == (era is None):
        raise UsageError("search needs exactly one of --kernel VERSION or --era E0..E12")
    if kernel is not None:
        choice = era_for_version(kernel)
        target = Target(choice.era, choice)
    else:
        target = Target(lookup_era(str(era)))
    policies = _policies([bias])
    assert policies is not None
    (spec,) = _run_specs(target, address_spaces, policies, None)
    config = SearchConfig(
        goal=goal,
        max_events=max_events,
        race=race,
        max_during=max_during,
        vcpus=vcpus,
        gfns=gfns,
        budget=budget,
        seed=seed,
        time_limit=time_limit,
        source=via,
    )
    return run_search(spec, config, kernel=kernel, trace_path=trace_path)


def sweep(
    trace: TraceLike,
    *,
    kernel: str | None = None,
    era: str | None = None,
    bias: str | None = None,
    width: str | None = None,
    address_spaces: int | None = None,
    costs: Costs = None,
    fmt: str | None = None,
) -> Sweep:
    """Replay ``trace`` across a range of biases or generation widths.

    ``bias`` is ``START:STOP[:STEP]`` (``literal:START:STOP[:STEP]`` for the literal
    hack); with ``width`` (``12:20``) it is instead the one policy to run.
    """
    from kvmgen.analysis.sweep import sweep_trace

    if width is None and bias is None:
        raise UsageError("sweep needs --bias START:STOP[:STEP] or --width START:STOP")
    opened = _in_memory(_opened(trace, fmt), "sweep")
    target = resolve_target(opened, kernel, era)
    nas = address_spaces or opened.vm.address_spaces or target.era.default_address_spaces
    check_address_spaces(target.era, nas, target.choice)
    return sweep_trace(opened, target, nas, bias=bias, width=width, cost_model=_costs(costs))


def html_report(
    trace: TraceLike,
    *,
    kernels: Iterable[str] | str | None = None,
    eras: Iterable[str] | str | None = None,
    biases: Biases = None,
    address_spaces: int | None = None,
    costs: Costs = None,
    fmt: str | None = None,
    command: str | None = None,
) -> tuple[str, Session]:
    """One self-contained HTML page for ``trace`` (tables, timeline plot, reasons).

    Returns the page and the session it shows; ``command`` is printed on the page.
    """
    from kvmgen.analysis.html_report import render_html

    opened = _opened(trace, fmt)
    kernel_names, era_names = _names(kernels), _names(eras)
    several = len(kernel_names) + len(era_names) > 1 or "all" in [e.lower() for e in era_names]
    session = _session(
        opened,
        _targets(opened, kernel_names, era_names),
        biases=biases,
        address_spaces=address_spaces,
        costs=costs,
        reference=False,
        record_limit=DEFAULT_RECORD_LIMIT,
        skip_unrunnable=several,
        progress=None,
    )
    return render_html(session, command=command), session


def _log_source(
    source: str | os.PathLike[str] | bytes | Iterable[str],
) -> tuple[str, bytes | list[str]]:
    """A log's name and content: a path is read as bytes, lines are kept as lines."""
    if isinstance(source, bytes):
        return "<bytes>", source
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            with open(name, "rb") as handle:
                return name, handle.read()
        except OSError as error:
            raise UsageError(f"{name}: cannot read: {error.strerror or error}") from None
    return "<lines>", [line.rstrip("\r\n") for line in source]


def import_log(
    kind: str,
    source: str | os.PathLike[str] | bytes | Iterable[str],
    *,
    qemu: str | os.PathLike[str] | None = None,
    strace: str | os.PathLike[str] | None = None,
    vm: str | None = None,
    kernel: str | None = None,
    address_spaces: int | None = None,
    first_sight: str = "auto",
    offset_s: float | None = None,
    from_vm_start: bool | None = None,
    zaps_enabled: bool = False,
    zap_window_s: float = 0.1,
    name: str | None = None,
) -> Imported:
    """``kvmgen import KIND``: a QEMU log, an strace log or kernel trace text as a trace.

    ``kind`` is ``qemu``, ``strace`` or ``tracefs``; ``source`` a path, the log's
    bytes or its lines (``name`` then names them in messages). For ``tracefs``,
    ``qemu`` or ``strace`` names the log that gives the updates. The
    :class:`~kvmgen.importers.imports.Imported` it returns has the header, events,
    observations and summary; :meth:`~kvmgen.importers.imports.Imported.trace` opens it.
    The options are those of ``kvmgen import KIND --help``.
    """
    from kvmgen.importers.imports import from_qemu, from_strace, from_tracefs

    read_name, content = _log_source(source)
    name = name or read_name
    if kind == "qemu":
        return from_qemu(
            name, content, kernel=kernel, first_sight=first_sight, address_spaces=address_spaces
        )
    if kind == "strace":
        return from_strace(
            name,
            content,
            vm=vm,
            kernel=kernel,
            first_sight=first_sight,
            address_spaces=address_spaces,
        )
    if kind == "tracefs":
        return from_tracefs(
            name,
            content,
            qemu=_log_source(qemu) if qemu is not None else None,
            strace=_log_source(strace) if strace is not None else None,
            vm=vm,
            offset_ns=None if offset_s is None else round(offset_s * 1e9),
            kernel=kernel,
            address_spaces=address_spaces,
            from_vm_start=from_vm_start,
            first_sight=first_sight,
            zaps_enabled=zaps_enabled,
            zap_window_ns=round(zap_window_s * 1e9),
        )
    raise UsageError(f"import kind {kind!r}: expected qemu, strace or tracefs")


def record_vmm(
    command: Sequence[str] = (),
    *,
    pid: int | None = None,
    duration: float | None = None,
    vm: str | None = None,
    first_sight: str = "auto",
    tracefs: str | None = None,
    raw_dir: str | None = None,
) -> Recording:
    """``kvmgen record``: run (``command``) or attach to (``pid``) a VMM and record it.

    Needs strace; root and tracefs for the kernel's side. Returns a
    :class:`~kvmgen.record.Recording`, whose ``imported`` is the trace.
    """
    from kvmgen.record import RecordOptions
    from kvmgen.record import record as run_record

    return run_record(
        RecordOptions(
            command=list(command),
            pid=pid,
            duration=duration,
            tracefs=tracefs,
            raw_dir=raw_dir,
            vm=vm,
            first_sight=first_sight,
        )
    )


def probe_kernel(
    trace: TraceLike | None = None,
    *,
    full: bool = False,
    accesses: str = "auto",
    tracefs: str | None = None,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> ProbeRun:
    """``kvmgen probe``: perform memslot updates on this host's kernel and compare.

    Without ``trace``, the built-in workload (``full``: past the first wrap); with
    one, its updates in order, repeats expanded (:mod:`kvmgen.probe.plan` says what
    a fresh VM cannot perform; ``account`` on the result lists it), and its guest
    accesses from a minimal guest when ``accesses`` is ``on`` (``auto``: where the
    host has MMIO caching). Needs root,
    ``/dev/kvm`` and tracefs. The result's ``comparisons`` and ``failed`` are the
    observed-vs-modelled verdict on this host's era; ``interrupted`` is set when
    Ctrl-C or SIGTERM stopped it between two updates.
    """
    from kvmgen.probe.run import ProbeOptions, capture_run, compare_probe

    opened: Trace | None = None
    if trace is not None:
        loaded = _opened(trace, fmt)
        if loaded.format == "compiled":
            raise UsageError(
                f"kvmgen probe: {loaded.path} is a compiled trace: give the trace it was "
                "compiled from (YAML, JSON or JSON Lines)"
            )
        in_memory = loaded.materialize() if isinstance(loaded, StreamedTrace) else loaded
        assert isinstance(in_memory, Trace)
        opened = in_memory
    step: Callable[[int, int], None] | None = None
    if progress is not None:
        report = progress

        def step(done: int, total: int) -> None:
            report("probing", done, total)

    options = ProbeOptions(full=full, tracefs=tracefs, trace=opened, accesses=accesses)
    run = capture_run(options, step)
    return compare_probe(run)
