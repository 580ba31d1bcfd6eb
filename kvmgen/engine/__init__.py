"""kvmgen.engine: the numba kernels, their inputs and the replay around them.

The file magics live here, in the package's light ``__init__``, so the CLI can
recognise a compiled trace without importing numba.
"""

COMPILED_MAGIC = b"KVMGENC\x02"  # a compiled trace, format 2 (kvmgen.engine.compiled)
ZIP_MAGIC = b"PK\x03\x04"  # format 1 compiled traces were NumPy .npz archives
