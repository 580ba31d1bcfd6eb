"""``kvmgen compile``: turn a trace into the engine's arrays once, replay it many times."""

from __future__ import annotations

import sys

import click

from kvmgen.cli.options import format_option
from kvmgen.errors import ExitCode, UsageError
from kvmgen.output import STDOUT


@click.command("compile")
@click.argument("trace", metavar="TRACE")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    metavar="FILE",
    help="Where to write the compiled trace (the engine's arrays, raw, with hashes); "
    "- for standard output (not a terminal).",
)
@format_option()
def compile_command(trace: str, out: str, fmt: str | None) -> int:
    """Compile TRACE (YAML, JSON, JSON Lines; - for stdin) for fast repeated replays.

    The file records the source's SHA-256: replaying it after the source changed is
    refused as stale, and a damaged file is refused as corrupt.
    """
    from kvmgen.engine.compiled import compile_trace
    from kvmgen.inputs import open_trace
    from kvmgen.output import preflight
    from kvmgen.trace.records import Trace
    from kvmgen.trace.streamed import StreamedTrace

    if out == STDOUT and sys.stdout.isatty():
        raise UsageError("not writing a compiled trace to a terminal: use -o FILE or a pipe")
    preflight(out, "-o", [trace])
    loaded = open_trace(trace, fmt)
    if not isinstance(loaded, Trace | StreamedTrace):
        raise UsageError(f"{trace}: already a compiled trace")
    compiled = compile_trace(loaded, out)
    click.echo(
        f"compiled {compiled.event_count:,} events of {trace} to "
        f"{'standard output' if out == STDOUT else out} "
        f"(digest {compiled.digest[:16]})",
        err=True,
    )
    return ExitCode.OK
