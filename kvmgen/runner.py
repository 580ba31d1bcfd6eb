"""The library entry points behind ``kvmgen replay`` and ``kvmgen compare``.

Everything the CLI does is callable from here: resolve eras and policies, check
the trace against each run, replay (numba engine or reference model), price.
The engine module is imported on first use so that importing kvmgen stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kvmgen.errors import KvmgenError, UsageError
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
from kvmgen.trace import check_trace_for_run
from kvmgen.trace.records import Trace

Replayer = Callable[..., ReplayResult]


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
    """All runs of one trace, in the order requested."""

    trace: Trace
    cost_model: CostModel
    runs: tuple[RunOutcome, ...]
    skipped: tuple[Skipped, ...] = field(default=())


def resolve_target(trace: Trace, kernel: str | None, era: str | None) -> Target:
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


def _engine() -> Replayer:
    from kvmgen.engine.replay import replay_engine

    return replay_engine


def _reference() -> Replayer:
    from kvmgen.model.reference import replay_reference

    return replay_reference


REPLAYERS: dict[str, Callable[[], Replayer]] = {"engine": _engine, "reference": _reference}


def plan_runs(
    trace: Trace,
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
    check_trace_for_run(trace, nas)
    return resolve_runs(era, nas, list(policies), target.choice)


def run_session(
    trace: Trace,
    targets: Sequence[Target],
    *,
    address_spaces: int | None = None,
    policies: Sequence[Policy] | None = None,
    cost_model: CostModel | None = None,
    implementation: str = "engine",
    record_limit: int = DEFAULT_RECORD_LIMIT,
    skip_unrunnable: bool = False,
) -> Session:
    """Replay ``trace`` for every target and policy.

    With ``skip_unrunnable`` (``compare``), a target whose address-space count
    cannot hold the trace is listed in ``skipped`` instead of failing the session.
    """
    policies = list(policies or [parse_policy(p) for p in DEFAULT_POLICIES])
    model = cost_model or CostModel()
    replayer = REPLAYERS[implementation]()
    runs: list[RunOutcome] = []
    skipped: list[Skipped] = []
    for target in targets:
        try:
            specs = plan_runs(
                trace, target, address_spaces, policies, header_is_hint=skip_unrunnable
            )
        except KvmgenError as exc:
            if not skip_unrunnable:
                raise
            kernel = target.choice.kernel if target.choice else None
            skipped.append(Skipped(target.era.name, kernel, str(exc)))
            continue
        for spec in specs:
            result = replayer(trace, spec, record_limit=record_limit)
            runs.append(RunOutcome(spec, result, run_costs(model, spec.era, result)))
    return Session(trace, model, tuple(runs), tuple(skipped))
