"""Checks of a loaded trace against one run's settings (the run decides NAS, not the file)."""

from __future__ import annotations

from kvmgen.errors import TraceError
from kvmgen.trace.records import Event, Trace


def trace_error_for_as(trace: Trace, address_spaces: int) -> TraceError | None:
    """The error for the first slot or event naming an address space >= ``address_spaces``."""
    if trace.max_address_space < address_spaces:
        return None
    if address_spaces == 1:
        have = "which has only address space 0"
    else:
        have = f"which has address spaces 0..{address_spaces - 1}"
    for i, decl in enumerate(trace.vm.slots):
        if decl.address_space >= address_spaces:
            return TraceError(
                trace.path,
                f"address space {decl.address_space} does not exist in this run, {have}",
                line=decl.line or None,
                field=f"vm.slots[{i}].as",
            )
    for event in trace.iter_all():
        if event.address_space >= address_spaces:
            return TraceError(
                trace.path,
                f"address space {event.address_space} does not exist in this run, {have}",
                line=event.line or None,
                column=event.column or None,
                event=event.index,
                op=_parent_op(trace, event),
                field="as" if event.sub < 0 else f"during[{event.sub}].as",
            )
    return None


def _parent_op(trace: Trace, event: Event) -> str:
    if event.sub < 0:
        return event.op.name.lower()
    return trace.events[event.index].op.name.lower()
