"""kvmgen: replay memslot-update and guest-access traces through a bit-exact model of KVM's
MMIO-generation scheme, era by era, with and without the historical bias.

Importing this package does not import numba; the engine is loaded on first replay.
"""

__version__ = "0.1.0"
