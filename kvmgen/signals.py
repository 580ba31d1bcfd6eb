"""SIGTERM handled like Ctrl-C: long work stops between two blocks and reports what it did.

CI runners send SIGTERM on cancel or timeout. With :func:`install` it raises
:class:`Terminated`, a :class:`KeyboardInterrupt`, exactly where Ctrl-C would,
so every loop that stops cleanly on Ctrl-C (replay, probe, record) does so on
SIGTERM too; :func:`interrupted_code` then tells 143 from 130.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from kvmgen.errors import ExitCode


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`install` sets)."""


_received: list[int] = []


def _raise(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated()


def install() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


def interrupted_code() -> ExitCode:
    """143 if SIGTERM stopped the work, else 130 (Ctrl-C)."""
    return ExitCode.TERMINATED if _received else ExitCode.INTERRUPTED


def interruption() -> str:
    """How to name what stopped the work in messages."""
    return "terminated (SIGTERM)" if _received else "interrupted"
