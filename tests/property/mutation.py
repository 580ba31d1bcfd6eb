"""Byte-level mutations of valid traces, for checking fast paths against full loaders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st


def mutated(data: st.DataObject, text: str, symbols: Sequence[str], start: int = 0) -> str:
    """``text`` with one to three cuts or insertions of ``symbols`` from offset ``start`` on."""
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(start, len(text)))
        cut = data.draw(st.integers(0, 3))
        text = text[:at] + data.draw(st.sampled_from(["", *symbols])) + text[at + cut :]
    return text


def check_fast_agrees_or_falls_back(
    fast: Callable[[str, bytes, str], Any],
    full: Callable[[str, bytes, str], Any],
    name: str,
    text: str,
) -> None:
    """A fast path gives the full loader's trace for ``text``, or nothing at all."""
    encoded = text.encode()
    sha = hashlib.sha256(encoded).hexdigest()
    got = fast(name, encoded, sha)
    if got is not None:
        assert got == full(name, encoded, sha)
