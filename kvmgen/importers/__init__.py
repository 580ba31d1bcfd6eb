"""Importers: real-world logs (QEMU trace logs, tracefs/trace-cmd/perf text) to trace v1.

Each importer parses its input into plain event and observation mappings and
writes them with :func:`kvmgen.importers.emit.write_trace`; the output loads with
:func:`kvmgen.inputs.open_trace` like any hand-written trace. Decisions about
ambiguous input are documented in ``docs/importers.md``.
"""
