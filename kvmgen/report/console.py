"""The terminal side of every output: consoles, progress bars, the first-compile notice.

Below the CLI so that every part of kvmgen that renders (reports, the gate, the
probe, analyses) gets its console the same way; rich and numba are imported
only when used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

Progress = Callable[[str, int, int], None]
"""``update(label, done, total)``: one bar per label."""


FILE_WIDTH = 120
"""Columns of output written to a file or a pipe when ``COLUMNS`` is not set.

Fixed, so a saved report or a CI log has the same line breaks on every machine;
wide enough that the usual tables print whole (README, "Output width").
"""


def make_console(stderr: bool = False) -> Console:
    """A rich console as wide as the terminal (``COLUMNS`` wins), or :data:`FILE_WIDTH`
    columns when writing to a file or a pipe."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, soft_wrap=False, width=FILE_WIDTH)
    return console


def progress_callback(quiet: bool) -> Progress | None:
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
                print(
                    "kvmgen: compiling the numba kernels (first run after an install; "
                    "cached afterwards)",
                    file=sys.stderr,
                    flush=True,
                )

        def on_end(self, ev: event.Event) -> None:
            pass

    with event.install_listener("numba:compile", FirstCompile()):
        yield
