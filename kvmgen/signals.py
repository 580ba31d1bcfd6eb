"""SIGTERM handled like Ctrl-C: long work stops between two blocks and reports what it did.

CI runners send SIGTERM on cancel or timeout. Under :func:`sigterm_as_interrupt` it raises
:class:`Terminated`, a :class:`KeyboardInterrupt`, exactly where Ctrl-C would,
so every loop that stops cleanly on Ctrl-C (replay, probe, record) does so on
SIGTERM too; :func:`interrupted_code` then tells 143 from 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from kvmgen.errors import ExitCode


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`sigterm_as_interrupt` sets)."""


_received: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While active, SIGTERM raises :class:`Terminated` in the main thread.

    The previous handler comes back afterwards (the CLI may run inside a test
    process); outside the main thread Python cannot set handlers, and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupted_code() -> ExitCode:
    """143 if SIGTERM stopped the work, else 130 (Ctrl-C)."""
    return ExitCode.TERMINATED if _received else ExitCode.INTERRUPTED


def interruption() -> str:
    """How to name what stopped the work in messages."""
    return "terminated (SIGTERM)" if _received else "interrupted"


class Deferred:
    """Whether Ctrl-C or SIGTERM arrived while :func:`deferred_interrupts` held them."""

    def __init__(self) -> None:
        self.requested = False

    def __bool__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Deferred]:
    """While active, Ctrl-C and SIGTERM only set a flag, checked between two steps.

    For work whose steps must not be cut in half: the probe writes a marker and then
    makes the ioctl it announces, and a capture with one without the other would
    disagree with the model for no reason of the kernel's. Outside the main thread
    nothing changes.
    """
    flag = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def note(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            _received.append(signum)
        flag.requested = True

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
