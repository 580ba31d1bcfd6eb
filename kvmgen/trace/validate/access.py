"""The shape most trace lines have, checked without the general validator.

Big traces are mostly plain accesses. :func:`plain_access` builds their
:class:`Event` directly when every field is a plain in-range value, and returns
None for anything else, which then goes through the format-v1 validator: the same
event for valid input, and the validator's one-line error for invalid input.
"""

from __future__ import annotations

from typing import Any

from kvmgen.trace.records import AccessKind, Event, Op

VCPU_LIMIT = 4096
_GFN_END = 1 << 40
_REPEAT_MAX = 1 << 62
_KEYS = frozenset({"op", "gfn", "as", "vcpu", "repeat", "kind"})
_KINDS = {"read": AccessKind.READ, "write": AccessKind.WRITE}


def plain_access(value: Any, index: int, line: int, column: int, vcpus: int) -> Event | None:
    """An access event from a parsed mapping, or None if it needs the full validator.

    ``vcpus`` is the header's vCPU count (or 4096 when the header gives none).
    """
    if type(value) is not dict or value.get("op") != "access" or not value.keys() <= _KEYS:
        return None
    gfn = value.get("gfn")
    a = value.get("as", 0)
    vcpu = value.get("vcpu", 0)
    repeat = value.get("repeat", 1)
    kind = _KINDS.get(value.get("kind", "read"))
    if not (
        type(gfn) is int
        and type(a) is int
        and type(vcpu) is int
        and type(repeat) is int
        and kind is not None
        and 0 <= gfn < _GFN_END
        and 0 <= a <= 1
        and 0 <= vcpu < vcpus
        and 1 <= repeat <= _REPEAT_MAX
    ):
        return None
    return Event(
        index=index,
        op=Op.ACCESS,
        line=line,
        column=column,
        address_space=a,
        gfn=gfn,
        vcpu=vcpu,
        kind=kind,
        repeat=repeat,
    )
