"""The one place kvmgen asks numba to compile: every jitted function is decorated from here.

Both decorators cache compiled code on disk (``cache=True``), so only the first
run after an install compiles, and release the GIL (``nogil=True``): none holds
a Python object, so the runs of a trace replay on every core. :func:`kernel`
also turns off numba's reference counting of array arguments (``_nrt=False``, a
private numba option, tested with the numba release pyproject.toml pins): no
engine kernel allocates, and the counting cost ~30 ns per call on the access
path (``make bench``).

:func:`never_inline` keeps LLVM from inlining one kernel into its callers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit, types
from numba.core.base import BaseContext
from numba.extending import intrinsic, overload

F = TypeVar("F", bound=Callable[..., Any])


def jit(**options: Any) -> Callable[[F], F]:
    """A cached nopython function that may allocate (the trace scanners)."""
    decorator: Callable[[F], F] = njit(cache=True, nogil=True, **options)
    return decorator


def kernel(**options: Any) -> Callable[[F], F]:
    """A cached nopython engine kernel that never allocates (no NRT)."""
    decorator: Callable[[F], F] = njit(cache=True, nogil=True, _nrt=False, **options)  # type: ignore[call-overload]
    return decorator


def never_inline() -> None:
    """Called first in a kernel: LLVM then compiles it on its own, never inlined.

    Numba hands LLVM every kernel a kernel calls, and LLVM inlines them all: the
    engine's access loops become a few blocks of one huge ``replay_events``,
    whose register allocation spilled the loop's pointers to the stack (bench's
    all-MMIO row). A kernel marked so keeps its own allocation, at the cost of one
    call each time it is entered. In Python (``replay.python_kernels``) it does
    nothing.
    """


@intrinsic
def _mark_never_inline(typingctx: Any) -> Any:
    def codegen(context: BaseContext, builder: Any, signature: Any, args: Any) -> Any:
        builder.function.attributes.add("noinline")
        return context.get_dummy_value()

    return types.none(), codegen


# Inlined in numba's own IR, so the mark lands on the kernel that calls never_inline.
@overload(never_inline, inline="always")
def _never_inline_in_kernels() -> Callable[[], None]:
    return lambda: _mark_never_inline()  # type: ignore[call-arg]  # numba passes typingctx
