"""The ``kvmgen`` click group, shared option helpers, and ``main``.

Commands live in sibling modules (one per family) and register on ``cli``;
heavy modules (numba, numpy, rich, the engine) are imported inside the commands
that need them, so ``kvmgen --help`` and ``kvmgen eras`` start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import click

from kvmgen import __version__
from kvmgen.engine import COMPILED_MAGIC, ZIP_MAGIC
from kvmgen.errors import ExitCode, KvmgenError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from kvmgen.runner import Session

FAIL_ON = ("harmful", "stale", "undetected-wrap", "disagree")
# A compiled trace of this format, or of format 1 (refused with its own message).
_COMPILED_MAGICS = (COMPILED_MAGIC, ZIP_MAGIC)


def make_console(stderr: bool = False) -> Console:
    """A rich console; piped output gets a fixed wide width instead of 80 columns."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output and CI logs: wide enough that tables never truncate cells.
        console = Console(stderr=stderr, highlight=False, soft_wrap=False, width=160)
    return console


def split_values(values: Sequence[str]) -> list[str]:
    """Accept both ``--bias a --bias b`` and ``--bias a,b``."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def load_input(path: str, fmt: str | None, progress: Any = None) -> Any:
    """Load a trace from a path, or from standard input for ``-``.

    A JSON Lines trace (``.jsonl`` or ``--format jsonl``, or sniffed on stdin) is
    only scanned here and read again block by block while it replays; on stdin it
    is first copied to a temporary file, so memory stays bounded either way.
    ``progress`` is a :func:`progress_callback` bar (or None) for long reads.
    """
    from kvmgen.trace import load_trace
    from kvmgen.trace.jsonl import looks_like_jsonl, scan_jsonl, spool

    name = "<stdin>" if path == "-" else path
    read = partial(progress, f"reading {os.path.basename(name)}") if progress else None
    if path == "-":
        head = sys.stdin.buffer.readline()
        if fmt is None and head.startswith(_COMPILED_MAGICS):
            from kvmgen.engine.compiled import load_compiled

            return load_compiled(name, data=head + sys.stdin.buffer.read())
        if fmt == "jsonl" or (fmt is None and looks_like_jsonl(head)):
            return scan_jsonl(spool(head, sys.stdin.buffer), name=name, progress=read)
        return load_trace(name, data=head + sys.stdin.buffer.read(), fmt=fmt, progress=read)
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if fmt == "jsonl" or (fmt is None and path.lower().endswith(".jsonl")):
        return scan_jsonl(path, progress=read)
    if fmt is None and is_compiled(path):
        from kvmgen.engine.compiled import load_compiled

        return load_compiled(path)
    return load_trace(path, fmt=fmt, progress=read)


def is_compiled(path: str) -> bool:
    """Whether ``path`` starts like a compiled trace (of this format or the older zip one)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return head.startswith(_COMPILED_MAGICS)


def progress_callback(quiet: bool) -> Any:
    """A rich progress bar on stderr for long reads and replays, or None.

    Called as ``update(label, done, total)``, one bar per label. None when
    stderr is not a terminal, when ``CI`` is set, or with ``--quiet``: logs and
    pipes get no control sequences.
    """
    if quiet or os.environ.get("CI") or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    bar = Progress(
        "{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=make_console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done)
        if all(bar.tasks[t].finished for t in tasks.values()):
            bar.stop()

    return update


@contextmanager
def compile_notice(enabled: bool) -> Iterator[None]:
    """While active, say once on stderr when numba starts compiling kvmgen's kernels.

    That happens on the first run after an install or upgrade and takes seconds
    with nothing else to show; loading them from numba's cache does not count.
    """
    if not enabled:
        yield
        return
    from numba.core import event

    class FirstCompile(event.Listener):
        said = False

        def on_start(self, ev: event.Event) -> None:
            if not self.said:
                self.said = True
                click.echo(
                    "kvmgen: compiling the numba kernels (first run after an install; "
                    "cached afterwards)",
                    err=True,
                )

        def on_end(self, ev: event.Event) -> None:
            pass

    with event.install_listener("numba:compile", FirstCompile()):
        yield


def write_output(target: str, data: bytes) -> None:
    """Write bytes to a file, or to standard output for ``-``."""
    if target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    with open(target, "wb") as handle:
        handle.write(data)


def emit_reports(
    session: Session,
    *,
    json_path: str | None,
    events_path: str | None,
    matrix: bool,
    quiet: bool,
    observed: Sequence[Any] = (),
) -> None:
    """Write machine outputs and, unless stdout carries one of them, the human report.

    ``observed``: observed-vs-modelled comparisons for the JSON report.
    """
    from kvmgen.report.document import build_document
    from kvmgen.report.explain import event_records
    from kvmgen.report.json_report import dumps, dumps_line
    from kvmgen.report.table import render

    if json_path:
        write_output(json_path, dumps(build_document(session, observed=observed)))
    if events_path:
        notes = session.notes()
        lines = b"".join(
            dumps_line(rec) for run in session.runs for rec in event_records(run, notes)
        )
        write_output(events_path, lines)
    if quiet:
        return
    to_stderr = "-" in (json_path, events_path)
    render(session, make_console(stderr=to_stderr), matrix=matrix)


def gate_exit_code(session: Session, fail_on: Sequence[str]) -> int:
    """Exit status for ``--fail-on``: 1 if any run trips a requested gate."""
    failed = []
    for run in session.runs:
        r = run.result
        label = f"{run.spec.era.name} {'/'.join(run.spec.policies)}"
        if "harmful" in fail_on and r.stale_harmful:
            failed.append(f"{label}: {r.stale_harmful} harmful stale hits")
        if "stale" in fail_on and (r.stale_harmful or r.stale_benign):
            failed.append(f"{label}: {r.stale_harmful + r.stale_benign} stale hits")
        if "undetected-wrap" in fail_on and r.wraps_undetected:
            failed.append(f"{label}: {r.wraps_undetected} undetected wraps")
    for line in failed:
        click.echo(f"kvmgen: gate failed: {line}", err=True)
    return ExitCode.GATE_FAILED if failed else ExitCode.OK


def common_options(func: Any) -> Any:
    """The options ``replay`` and ``compare`` share."""
    from kvmgen.cli.options import address_spaces_option, biases_option, costs_option

    options = [
        biases_option(),
        address_spaces_option(),
        costs_option(),
        click.option("--json", "json_path", metavar="PATH|-", help="Write the JSON report."),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["yaml", "json", "jsonl"]),
            help="Trace format [default: from the file name, else sniffed].",
        ),
        click.option(
            "--reference",
            is_flag=True,
            help="Replay with the plain-Python reference model instead of the engine.",
        ),
        click.option(
            "--record-limit",
            type=click.IntRange(1, 10**7),
            default=10_000,
            show_default=True,
            help="Wrap, zap and stale-hit records kept per run.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="No human report."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_session(
    trace_path: str,
    fmt: str | None,
    targets_fn: Any,
    *,
    biases: Sequence[str],
    address_spaces: int | None,
    costs_path: str | None,
    reference: bool,
    record_limit: int,
    compare: bool,
    quiet: bool = False,
) -> Session:
    """Load the trace, resolve targets and policies from options, and replay."""
    from kvmgen.model.costs import load_costs
    from kvmgen.model.policy import parse_policy
    from kvmgen.runner import run_session

    policies = [parse_policy(b) for b in split_values(biases)] or None
    cost_model = load_costs(costs_path) if costs_path else None
    progress = progress_callback(quiet)
    with compile_notice(progress is not None):
        trace = load_input(trace_path, fmt, progress)
        return run_session(
            trace,
            targets_fn(trace),
            address_spaces=address_spaces,
            policies=policies,
            cost_model=cost_model,
            implementation="reference" if reference else "engine",
            record_limit=record_limit,
            skip_unrunnable=compare,
            progress=progress,
        )


def interrupted_exit(session: Session) -> int | None:
    """Exit 130 with a note when Ctrl-C cut the session short; None otherwise."""
    if not session.partial:
        return None
    done = session.runs[-1].result.events_replayed if session.runs else 0
    click.echo(
        f"kvmgen: interrupted after {done:,} of {session.event_count():,} events; "
        "any report written is marked partial",
        err=True,
    )
    return ExitCode.INTERRUPTED


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvmgen")
def cli() -> None:
    """Replay memslot/MMIO traces through a bit-exact model of KVM's MMIO generation.

    Every report shows the era's historical bias and no bias side by side.
    Exit codes: 0 ran and no gate failed, 1 a --fail-on gate failed,
    2 usage or input error.
    """


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    from kvmgen.cli import commands  # noqa: F401  (registers the commands on ``cli``)

    try:
        code = cli.main(
            args=list(argv) if argv is not None else None, prog_name="kvmgen", standalone_mode=False
        )
    except KvmgenError as exc:
        click.echo(f"kvmgen: error: {exc}", err=True)
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except click.Abort:
        click.echo("kvmgen: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except KeyboardInterrupt:
        click.echo("kvmgen: interrupted", err=True)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    return int(code or 0)
