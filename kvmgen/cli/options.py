"""Option declarations several commands share, declared once.

Each function returns a click decorator; ``help`` lets a command say what its own
default is (the trace header, the era, ...) without redeclaring the option.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

Decorator = Callable[[Any], Any]

BIAS_HELP = (
    "historical, none, an integer B, or literal:B; repeat or comma-separate "
    "[default: historical and none, side by side]."
)


def kernels_option(help: str = "Kernel versions, comma-separated or repeated.") -> Decorator:
    """``--kernel`` taken several times (or comma-separated)."""
    return click.option("--kernel", "kernels", multiple=True, help=help)


def eras_option(help: str = "Eras E0..E12, comma-separated or repeated; 'all'.") -> Decorator:
    """``--era`` taken several times (or comma-separated), ``all`` for every era."""
    return click.option("--era", "eras", multiple=True, help=help)


def biases_option(help: str = BIAS_HELP) -> Decorator:
    """``--bias`` policies: historical, none, B, literal:B."""
    return click.option("--bias", "biases", multiple=True, metavar="POLICY", help=help)


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
