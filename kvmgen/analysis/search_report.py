"""What ``kvmgen search`` prints: the trace found as YAML with its evidence, or a plain
statement that none exists within the bound, and the same as JSON.

The YAML is checked before it is printed: it is loaded back through the trace
loader and replayed by the engine, and must show the claimed hit.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from kvmgen.analysis.search import SearchConfig, Searcher, SearchOutcome
from kvmgen.analysis.tracegen import to_yaml
from kvmgen.formatting import count, plural, seconds
from kvmgen.model.policy import RunSpec
from kvmgen.report.explain import stale_reason, wrap_reason
from kvmgen.stats import ReplayResult


@dataclass(frozen=True)
class SearchReport:
    """A finished search with its printable trace and evidence."""

    outcome: SearchOutcome
    kernel: str | None
    yaml: str | None
    evidence: str | None
    replay_command: str | None
    summary: tuple[str, ...]


def _policy_arg(spec: RunSpec) -> str:
    """A --bias value that gives this run again."""
    if spec.literal:
        return f"literal:{spec.bias}"
    if spec.bias is None:
        return "none"
    return "none" if spec.bias == 0 else str(spec.bias)


def _target_arg(spec: RunSpec, kernel: str | None) -> str:
    return f"--kernel {kernel}" if kernel else f"--era {spec.era.name}"


def evidence_of(outcome: SearchOutcome, result: ReplayResult) -> str:
    """The first record that shows the goal, explained."""
    config, era = outcome.config, outcome.spec.era
    if config.goal == "undetected-wrap":
        wrap = next(w for w in result.wraps if not w.detected)
        return f"update {count(wrap.update)}, AS {wrap.address_space}: UNDETECTED wrap. " + (
            wrap_reason(wrap, era, outcome.spec)
        )
    hit = next(
        h for h in result.stale_hits if h.kind == config.goal and config.source in ("any", h.source)
    )
    race = f", race: {hit.race}" if hit.race else ", no race window"
    return (
        f"event {count(hit.event)}{'' if hit.sub < 0 else f' (during {hit.sub})'}: "
        f"{hit.kind} stale hit from {hit.source}{race}. {stale_reason(hit, era)}"
    )


def _bound_text(outcome: SearchOutcome) -> str:
    """What was searched: the bound, what was covered exhaustively, and how fast."""
    config, stats = outcome.config, outcome.stats
    alphabet = f"{plural(config.gfns, 'frame')}, {plural(config.vcpus, 'vCPU')}, " + (
        "no racing accesses"
        if not config.race or not config.stale
        else f"up to {plural(config.max_during, 'racing access', 'racing accesses')} per update"
    )
    parts = [f"traces of at most {plural(config.max_events, 'event')} over {alphabet}"]
    if stats.random_lengths:
        lo, hi = stats.random_lengths
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        parts.append(
            f"{plural(stats.random_evaluated, 'candidate')} of {span} events "
            "from random sub-alphabets"
        )
    parts.append(
        f"{plural(stats.evaluated, 'candidate')} replayed in {seconds(stats.seconds)} "
        f"({count(round(stats.rate))} per second, {count(round(stats.engine_rate))} per second "
        "in the engine)"
    )
    return "; ".join(parts)


def _shorter_text(through: int) -> str:
    """``no trace of 1-2 events reaches it``: what the exhaustive phase rules out."""
    if through <= 0:
        return ""
    span = "1 event" if through == 1 else f"1-{through} events"
    return (
        f": no trace of {span} reaches it (every candidate the model's necessary "
        "conditions allow was replayed; docs/analysis.md)"
    )


def replay_command(spec: RunSpec, kernel: str | None, goal: str, trace_path: str | None) -> str:
    """The ``kvmgen replay`` line that shows the trace found: of ``trace_path``, or of
    standard input (``-``) when the trace is printed there."""
    gate = {"harmful": "harmful", "benign": "stale", "undetected-wrap": "undetected-wrap"}
    source = shlex.quote(trace_path) if trace_path else "-"
    return (
        f"kvmgen replay {source} {_target_arg(spec, kernel)} --bias {_policy_arg(spec)} "
        f"--address-spaces {spec.address_spaces} --fail-on {gate[goal]}"
    )


def run_search(
    spec: RunSpec,
    config: SearchConfig,
    *,
    kernel: str | None = None,
    trace_path: str | None = None,
) -> SearchReport:
    """Search, then build and verify the printable trace.

    ``trace_path`` is where the trace will be written (``-o``): the replay command
    names it; without one it reads standard input, where the trace is printed.
    """
    from kvmgen.analysis.tracegen import to_trace
    from kvmgen.engine.replay import replay_engine

    # Compile (or load) the kernels before the clock starts.
    replay_engine(to_trace((), spec.address_spaces), spec, record_limit=1)
    outcome = Searcher(spec, config).run()
    stats = outcome.stats
    goal = {
        "harmful": "a harmful stale hit",
        "benign": "a benign stale hit",
        "undetected-wrap": "an undetected wrap",
    }[config.goal]
    if config.source != "any":
        goal += f" from {'an SPTE check' if config.source == 'spte' else 'a vCPU MMIO cache'}"
    head = f"kvmgen search: {goal} in {spec.label}"
    bound = plural(config.max_events, "event")
    if not outcome.found:
        why = {
            "budget": "the budget ran out",
            "time": "the time limit ran out",
            "sub-alphabets": "the random phase found no new sub-alphabet to search",
        }.get(stats.stopped_by or "", "the search stopped")
        complete = stats.exhaustive_through >= config.max_events
        through = stats.exhaustive_through
        verdict = (
            f"NONE: no trace of at most {bound} reaches {goal} (every candidate the "
            "model's necessary conditions allow was replayed)"
            if complete
            else f"none found: {why} before every trace of at most {bound} was tried "
            f"(all of at most {plural(through, 'event')} were); more --budget or "
            "--time-limit may find one"
        )
        summary: tuple[str, ...] = (head, verdict, f"searched: {_bound_text(outcome)}")
        return SearchReport(outcome, kernel, None, None, None, summary)
    assert outcome.steps is not None
    result = replay_engine(to_trace(outcome.steps, spec.address_spaces), spec)
    evidence = evidence_of(outcome, result)
    size = f"{plural(len(outcome.steps), 'event')} ({plural(outcome.updates, 'update')})"
    if outcome.method == "exhaustive":
        found = f"found: {size}, the shortest within the bound"
    else:
        found = f"found: {size} by a random search of sub-alphabets, not proven shortest"
    found += _shorter_text(stats.exhaustive_through)
    command = replay_command(spec, kernel, config.goal, trace_path)
    how = "exits 1: the gate sees it"
    if trace_path is None:
        how = "with this output on its standard input; " + how
    summary = (
        head,
        found,
        f"evidence: {evidence}",
        f"replay: {command}  ({how})",
        f"searched: {_bound_text(outcome)}",
    )
    era_name = None if kernel else spec.era.name
    text = to_yaml(
        outcome.steps, spec.address_spaces, kernel=kernel, era=era_name, comments=summary
    )
    _verify(text, spec, outcome)
    return SearchReport(outcome, kernel, text, evidence, command, summary)


def _verify(text: str, spec: RunSpec, outcome: SearchOutcome) -> None:
    """Load the printed YAML back and replay it: it must show the goal."""
    from kvmgen.engine.replay import replay_engine
    from kvmgen.trace.formats import load_document

    trace = load_document("<search>", text.encode(), "yaml")
    result = replay_engine(trace, spec)
    if not Searcher(spec, outcome.config, evaluate=lambda _: result).reached(result):
        raise RuntimeError("kvmgen search: the printed trace does not replay to the goal (a bug)")


def describe(report: SearchReport) -> list[str]:
    """The summary lines (printed as ``#`` comments)."""
    return list(report.summary)


def outcome_dict(report: SearchReport) -> dict[str, Any]:
    """The search result as JSON-ready data."""
    outcome, stats, config, spec = (
        report.outcome,
        report.outcome.stats,
        report.outcome.config,
        report.outcome.spec,
    )
    return {
        "kvmgen_search": 1,
        "era": spec.era.name,
        "era_variant": spec.era.variant,
        "kernel": report.kernel,
        "address_spaces": spec.address_spaces,
        "policies": list(spec.policies),
        "bias": spec.bias,
        "literal": spec.literal,
        "goal": config.goal,
        "via": config.source,
        "race": config.race,
        "bound": {
            "max_events": config.max_events,
            "max_during": config.max_during,
            "vcpus": config.vcpus,
            "gfns": config.gfns,
            "budget": config.budget,
            "seed": config.seed,
        },
        "found": outcome.found,
        "method": outcome.method,
        "events": len(outcome.steps) if outcome.steps else None,
        "updates": outcome.updates if outcome.found else None,
        "trace_yaml": report.yaml,
        "evidence": report.evidence,
        "replay": report.replay_command,
        "exhaustive_through": stats.exhaustive_through,
        "random_candidates": stats.random_evaluated,
        "candidates": stats.evaluated,
        "seconds": round(stats.seconds, 3),
        "candidates_per_second": round(stats.rate, 1),
        "engine_candidates_per_second": round(stats.engine_rate, 1),
        "stopped_by": stats.stopped_by,
        "summary": list(report.summary),
    }
