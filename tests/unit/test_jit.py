"""kvmgen.jit: never_inline keeps a kernel out of its callers, and does nothing in Python."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from kvmgen.jit import never_inline


def _sum_kept_apart(values: np.ndarray) -> int:
    never_inline()
    total = 0
    for i in range(values.shape[0]):
        total += values[i]
    return total


def _sum_inlined(values: np.ndarray) -> int:
    total = 0
    for i in range(values.shape[0]):
        total += values[i]
    return total


# kvmgen.jit.kernel's options without numba's cache: numba does not show cached code.
_INNER: dict[str, Any] = {"_nrt": False, "no_cfunc_wrapper": True, "no_cpython_wrapper": True}


def _caller_asm(callee_py: object) -> tuple[int, str, str]:
    callee = njit(**_INNER)(callee_py)

    def caller(values: np.ndarray) -> int:
        return callee(values) + 1

    jitted = njit(**{**_INNER, "no_cpython_wrapper": False})(caller)
    result = jitted(np.arange(5))
    asm = jitted.inspect_asm(jitted.signatures[0])
    # The caller's own code: from its label to the end of its function.
    start = asm.index(":", asm.index("caller"))
    body = asm[start : asm.index(".Lfunc_end", start)]
    return result, body, callee_py.__name__  # type: ignore[attr-defined]


def test_a_marked_kernel_is_called_not_inlined() -> None:
    result, body, name = _caller_asm(_sum_kept_apart)
    assert result == 10 + 1
    assert "call" in body and name in body


def test_an_unmarked_kernel_is_inlined() -> None:
    # The contrast that makes the test above mean something: LLVM inlines by default.
    result, body, name = _caller_asm(_sum_inlined)
    assert result == 10 + 1
    assert name not in body


def test_in_python_it_does_nothing() -> None:
    never_inline()  # no numba error: it is a plain function outside a kernel
    assert _sum_kept_apart(np.arange(5)) == 10
