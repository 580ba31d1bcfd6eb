"""What ``replay`` and ``compare`` call into: ``--plot`` and the literal-bias section.

Kept here so the command modules change by a few lines only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def prepare(biases: Sequence[str], plot_path: str | None) -> tuple[str, ...]:
    """Check ``--plot``'s suffix before any replay; add ``none`` and ``B`` beside ``literal:B``."""
    from kvmgen.analysis.literal import with_companions

    if plot_path:
        from kvmgen.analysis.plot import plot_format

        plot_format(plot_path)
    return with_companions(biases)


def finish(session: Any, *, plot_path: str | None, quiet: bool, to_stderr: bool) -> None:
    """Draw the timeline and print the literal-bias windows after the usual report."""
    if plot_path:
        from kvmgen.analysis.plot import plot_session

        plot_session(session, plot_path)
    if not quiet and any(run.spec.literal for run in session.runs):
        from kvmgen.analysis.literal import render
        from kvmgen.cli.app import make_console

        render(session, make_console(stderr=to_stderr))
