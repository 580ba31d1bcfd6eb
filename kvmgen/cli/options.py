"""Option declarations several commands share, declared once.

Each function returns a click decorator; ``help`` lets a command say what its own
default is (the trace header, the era, ...) without redeclaring the option.
Options that take several values accept them repeated or comma-separated and
hand the command one flat tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

Decorator = Callable[[Any], Any]

BIAS_HELP = (
    "historical, none, an integer B, or literal:B; repeat or comma-separate "
    "[default: historical and none, side by side]."
)
TRACE_FORMATS = ("yaml", "json", "jsonl")


def split_option(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[str, ...]:
    """``--x a --x b`` and ``--x a,b`` both give ``("a", "b")``."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def kernels_option(help: str = "Kernel versions, comma-separated or repeated.") -> Decorator:
    """``--kernel`` taken several times (or comma-separated)."""
    return click.option("--kernel", "kernels", multiple=True, callback=split_option, help=help)


def eras_option(help: str = "Eras E0..E12, comma-separated or repeated; 'all'.") -> Decorator:
    """``--era`` taken several times (or comma-separated), ``all`` for every era."""
    return click.option("--era", "eras", multiple=True, callback=split_option, help=help)


def biases_option(help: str = BIAS_HELP) -> Decorator:
    """``--bias`` policies: historical, none, B, literal:B."""
    return click.option(
        "--bias", "biases", multiple=True, callback=split_option, metavar="POLICY", help=help
    )


def address_spaces_option(
    help: str = "Memslot address spaces (1 or 2) [default: trace header, else era].",
) -> Decorator:
    """``--address-spaces 1|2``."""
    return click.option("--address-spaces", type=click.IntRange(1, 2), default=None, help=help)


def costs_option(help: str = "YAML file overriding unit costs (see `kvmgen costs`).") -> Decorator:
    """``--costs FILE.yaml``."""
    return click.option(
        "--costs", "costs_path", type=click.Path(exists=True, dir_okay=False), help=help
    )


def json_option(help: str = "Write the JSON report.") -> Decorator:
    """``--json PATH|-``."""
    return click.option("--json", "json_path", metavar="PATH|-", help=help)


def format_option(
    formats: Sequence[str] = TRACE_FORMATS,
    help: str = "Trace format [default: from the file name, else sniffed].",
) -> Decorator:
    """``--format`` of the trace read."""
    return click.option("--format", "fmt", type=click.Choice(list(formats)), help=help)


def quiet_option(help: str = "No human report.") -> Decorator:
    """``-q/--quiet``."""
    return click.option("-q", "--quiet", is_flag=True, help=help)


def reference_option() -> Decorator:
    """``--reference/--engine``: which implementation replays (default: chosen by size)."""
    return click.option(
        "--reference/--engine",
        default=None,
        help="Replay with the plain-Python reference model, or with the numba engine. "
        "Default: the reference model for a small trace (at most 50,000 accesses and "
        "bumps over all runs), which gives the same report without loading the engine; "
        "the engine for anything larger, JSON Lines and compiled traces. A block of "
        "the engine's with little work (a few events, however many repeats) runs the "
        "engine's code uncompiled, with the same result, rather than compile it first.",
    )


def jobs_option(help: str) -> Decorator:
    """``-j/--jobs N``: how many at once (default: every core)."""
    return click.option("-j", "--jobs", type=click.IntRange(1, None), default=None, help=help)


def record_limit_option(default: int | None = 10_000, help: str | None = None) -> Decorator:
    """``--record-limit N``."""
    return click.option(
        "--record-limit",
        type=click.IntRange(1, 10**7),
        default=default,
        show_default=default is not None,
        help=help or "Wrap, zap and stale-hit records kept per run.",
    )


def allow_missing_source_option() -> Decorator:
    """``--allow-missing-source``: replay a compiled trace whose source file is gone."""
    return click.option(
        "--allow-missing-source",
        is_flag=True,
        help="Replay a compiled trace even when its source file is gone (no stale check).",
    )


def plot_option() -> Decorator:
    """``--plot FILE.svg|.png``."""
    return click.option(
        "--plot",
        "plot_path",
        metavar="FILE.svg|.png",
        help="Draw the generation timeline of every run, one panel each (.svg or .png).",
    )


def apply(func: Any, *decorators: Decorator) -> Any:
    """Apply option decorators in the order listed (first listed = first in --help)."""
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def run_options(func: Any) -> Any:
    """The options ``replay`` and ``compare`` share."""
    return apply(
        func,
        biases_option(),
        address_spaces_option(),
        costs_option(),
        json_option(),
        format_option(),
        reference_option(),
        record_limit_option(),
        allow_missing_source_option(),
        quiet_option(),
    )


def trace_output_options(func: Any) -> Any:
    """``-o/--output``, ``--format`` and ``-q`` for every command that writes a trace."""
    return apply(
        func,
        click.option(
            "-o",
            "--output",
            default="-",
            show_default=True,
            metavar="OUT|-",
            help="Where to write the trace.",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["yaml", "json", "jsonl"]),
            help="Output format [default: from OUT's suffix .json/.jsonl, else yaml]. JSON "
            "puts one event per line; JSON Lines (a header line, then events) streams.",
        ),
        quiet_option("No summary on stderr."),
    )
