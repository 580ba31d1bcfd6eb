"""The one place kvmgen asks numba to compile: every jitted function is decorated from here.

Both decorators cache compiled code on disk (``cache=True``), so only the first
run after an install compiles, and release the GIL (``nogil=True``): none holds
a Python object, so the runs of a trace replay on every core. :func:`kernel`
also turns off numba's reference counting of array arguments (``_nrt=False``, a
private numba option, tested with the numba release pyproject.toml pins): no
engine kernel allocates, and the counting cost ~30 ns per call on the access
path (``make bench``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def jit(**options: Any) -> Callable[[F], F]:
    """A cached nopython function that may allocate (the trace scanners)."""
    decorator: Callable[[F], F] = njit(cache=True, nogil=True, **options)
    return decorator


def kernel(**options: Any) -> Callable[[F], F]:
    """A cached nopython engine kernel that never allocates (no NRT)."""
    decorator: Callable[[F], F] = njit(cache=True, nogil=True, _nrt=False, **options)  # type: ignore[call-overload]
    return decorator
