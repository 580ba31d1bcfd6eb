"""The CLI process's own settings (kvmgen/cli/process.py)."""

from __future__ import annotations

import gc
import sys

import pytest

from kvmgen.cli import process


@pytest.fixture
def restore_gc():  # type: ignore[no-untyped-def]
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_full_collections_made_rarer_young_ones_kept(restore_gc) -> None:  # type: ignore[no-untyped-def]
    young, middle, _ = gc.get_threshold()
    process.tune()
    assert gc.get_threshold() == (young, middle, process.FULL_COLLECTION_EVERY)


def test_one_openblas_thread_unless_the_user_chose(monkeypatch, restore_gc) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delitem(sys.modules, "numpy", raising=False)  # as in a fresh `kvmgen` process
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    process.tune()
    assert process.os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    process.tune()
    assert process.os.environ["OPENBLAS_NUM_THREADS"] == "4"


def test_numpy_already_loaded_leaves_the_environment(monkeypatch, restore_gc) -> None:  # type: ignore[no-untyped-def]
    import numpy  # noqa: F401  (loaded: OpenBLAS has read its setting already)

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    process.tune()
    assert "OPENBLAS_NUM_THREADS" not in process.os.environ
