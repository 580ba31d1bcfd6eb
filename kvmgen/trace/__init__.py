"""Trace files (model.md section 2): formats in, validated records and columns out.

The package is laid out by what each part is:

- :mod:`~kvmgen.trace.records` (events, header, trace) and
  :mod:`~kvmgen.trace.observed` (what a real kernel reported): plain records;
- :mod:`~kvmgen.trace.table`: the same events as NumPy columns, and
  :mod:`~kvmgen.trace.digest`, the content digest taken over them;
- :mod:`~kvmgen.trace.validate`: the format-v1 rules behind one
  :class:`~kvmgen.trace.validate.Validator`;
- :mod:`~kvmgen.trace.formats`: one module per syntax (YAML, JSON, JSON Lines);
- :mod:`~kvmgen.trace.streamed`: traces read block by block;
- :mod:`~kvmgen.trace.checks`: checks of a trace against a run (its address spaces).

Opening a trace of any format, from a path or a stream, is
:func:`kvmgen.inputs.open_trace`; every problem with the input is a
:class:`~kvmgen.errors.TraceError`.
"""

from kvmgen.trace.records import (
    UPDATE_OPS,
    AccessKind,
    Event,
    Op,
    SlotDecl,
    Trace,
    VmHeader,
    Window,
)

__all__ = ["UPDATE_OPS", "AccessKind", "Event", "Op", "SlotDecl", "Trace", "VmHeader", "Window"]
