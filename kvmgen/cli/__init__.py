"""The ``kvmgen`` command line: options parsed, :mod:`kvmgen.api` called, results rendered."""

from kvmgen.cli.app import cli, main

__all__ = ["cli", "main"]
