"""The ``kvmgen`` command line: a thin layer over the library."""

from kvmgen.cli.app import cli, main

__all__ = ["cli", "main"]
