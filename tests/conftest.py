"""Shared fixtures: CLI runner, hypothesis profiles, warmed kernels."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "traces"

# JIT compile (first call) takes seconds, so no per-example deadline; CI runs are
# derandomized so a failure reproduces from the log alone.
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150
)
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=150,
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=2000
)
settings.load_profile(
    os.environ.get("KVMGEN_HYPOTHESIS", "ci" if os.environ.get("CI") else "default")
)


@pytest.fixture(scope="session")
def warm_engine() -> None:
    """Compile (or load from cache) every kernel once per session."""
    from kvmgen.engine import replay
    from kvmgen.engine.replay import replay_engine
    from kvmgen.model.eras import ERAS
    from kvmgen.model.policy import parse_policy, resolve_runs
    from kvmgen.trace.records import Event, Op, Trace, VmHeader

    trace = Trace(
        path="warm",
        format="yaml",
        version=1,
        vm=VmHeader(),
        events=(
            Event(index=0, op=Op.CREATE, slot=0, gfn=0, pages=1),
            Event(index=1, op=Op.ACCESS, gfn=5),
        ),
    )
    spec = resolve_runs(ERAS["E5"], 2, [parse_policy("none")])[0]
    with pytest.MonkeyPatch.context() as patch:
        # A trace this small would replay as Python (replay.PYTHON_WORK): compile.
        patch.setattr(replay, "PYTHON_WORK", -1)
        replay_engine(trace, spec)


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """Run ``kvmgen ARGS...`` in-process; exceptions propagate (never swallowed)."""
    from kvmgen.cli import main

    def run(*args: str, input: str | bytes | None = None) -> Result:
        runner = CliRunner()
        result = runner.invoke(_wrapped(main), list(args), input=input, catch_exceptions=False)
        return result

    return run


def _wrapped(main: Callable[..., int]) -> object:
    import click

    @click.command(
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "help_option_names": [],
        }
    )
    @click.pass_context
    def entry(ctx: click.Context) -> None:
        ctx.exit(main(ctx.args))

    return entry
