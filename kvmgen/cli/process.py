"""Settings for the ``kvmgen`` process itself, made once before a command runs.

A command is a short-lived process that imports numpy and numba and then does
one job, so two interpreter defaults cost it CPU time for nothing:

- Python's cyclic garbage collector makes full passes over every live object
  as imports add them; importing numba and loading the engine's cached code
  triggers enough of them to take a tenth of a 1M-line import's CPU time
  (measured with ``perf``). Full passes are made rarer; young objects are still
  collected as usual.
- numpy's OpenBLAS starts a thread per core that spins while it waits; kvmgen
  does no linear algebra. A value the user set is kept.

The library (:mod:`kvmgen.api`) changes neither: these are the CLI's choices.
"""

from __future__ import annotations

import gc
import os
import sys

FULL_COLLECTION_EVERY = 1000
"""Second-generation collections between two full passes (Python's default: 10)."""


def tune() -> None:
    """Apply the settings above to the running interpreter."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    if "numpy" not in sys.modules:  # OpenBLAS reads it once, when numpy loads it
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
