"""Small traces as data: the search's steps, turned into trace records and trace v1 YAML.

A *step* is one top-level trace event in a compact, hashable form; a candidate is
a tuple of steps. Slots cover one page each and get the lowest free id of their
address space, so a candidate names gfns and slots by small indices only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kvmgen.trace.records import Event, Op, Trace, VmHeader, Window

GFNS: tuple[int, ...] = (0x100, 0x200, 0x300)
"""The guest frames a searched trace may name, by index."""


@dataclass(frozen=True, slots=True)
class Touch:
    """One access: top-level, or inside an update's ``during`` list (``window`` set)."""

    address_space: int
    gfn: int  # index into GFNS
    vcpu: int
    window: Window = Window.NONE


@dataclass(frozen=True, slots=True)
class Step:
    """One top-level event of a searched trace.

    ``op`` is the trace op; ``slot`` names an existing slot (delete, move, flags) or,
    for create, the id it gets; ``gfn`` is the create/move target (index into GFNS);
    ``count`` is a bump's count; ``access`` is the access of an ``access`` step.
    """

    op: Op
    address_space: int = 0
    slot: int = -1
    gfn: int = -1
    count: int = 1
    access: Touch | None = None
    during: tuple[Touch, ...] = ()

    @property
    def is_update(self) -> bool:
        """Whether the step is a numbered memslot update."""
        return self.op in (Op.CREATE, Op.DELETE, Op.MOVE, Op.FLAGS)

    def touches(self) -> tuple[Touch, ...]:
        """Every access of the step, in execution order."""
        return (self.access,) if self.access is not None else self.during


def to_trace(
    steps: Sequence[Step],
    nas: int,
    *,
    path: str = "<search>",
    kernel: str | None = None,
    era: str | None = None,
) -> Trace:
    """Build validated-shape trace records for ``steps``."""
    events = []
    vcpus = 1
    for index, step in enumerate(steps):
        if step.op == Op.ACCESS:
            touch = step.access
            assert touch is not None
            vcpus = max(vcpus, touch.vcpu + 1)
            events.append(
                Event(
                    index=index,
                    op=Op.ACCESS,
                    address_space=touch.address_space,
                    gfn=GFNS[touch.gfn],
                    vcpu=touch.vcpu,
                )
            )
            continue
        if step.op == Op.BUMP:
            events.append(
                Event(index=index, op=Op.BUMP, address_space=step.address_space, repeat=step.count)
            )
            continue
        during = []
        for sub, touch in enumerate(step.during):
            vcpus = max(vcpus, touch.vcpu + 1)
            during.append(
                Event(
                    index=index,
                    op=Op.ACCESS,
                    sub=sub,
                    address_space=touch.address_space,
                    gfn=GFNS[touch.gfn],
                    vcpu=touch.vcpu,
                    window=touch.window,
                )
            )
        during.sort(key=lambda e: (e.window, e.sub))
        events.append(
            Event(
                index=index,
                op=step.op,
                address_space=step.address_space,
                slot=step.slot,
                gfn=GFNS[step.gfn] if step.op in (Op.CREATE, Op.MOVE) else -1,
                pages=1 if step.op == Op.CREATE else 0,
                flags=0 if step.op == Op.CREATE else None,
                during=tuple(during),
            )
        )
    vm = VmHeader(kernel=kernel, era=era, address_spaces=nas, vcpus=vcpus)
    return Trace(path=path, format="yaml", version=1, vm=vm, events=tuple(events))


_WINDOW_NAMES = {Window.IN_PROGRESS: "in_progress", Window.BEFORE_ZAP: "before_zap"}


def _touch_yaml(touch: Touch) -> str:
    parts = ["op: access", f"gfn: {GFNS[touch.gfn]:#x}"]
    if touch.address_space:
        parts.append(f"as: {touch.address_space}")
    parts.append(f"vcpu: {touch.vcpu}")
    if touch.window != Window.NONE:
        parts.append(f"window: {_WINDOW_NAMES[touch.window]}")
    return "{" + ", ".join(parts) + "}"


def to_yaml(
    steps: Sequence[Step],
    nas: int,
    *,
    kernel: str | None,
    era: str | None,
    comments: Sequence[str] = (),
) -> str:
    """Trace format v1 YAML for ``steps``, with ``comments`` as ``#`` lines on top."""
    lines = [f"# {line}".rstrip() for text in comments for line in text.splitlines()]
    vcpus = max([1] + [t.vcpu + 1 for s in steps for t in s.touches()])
    lines += ["kvmgen: 1", "vm:"]
    lines.append(f'  kernel: "{kernel}"' if kernel else f"  era: {era}")
    lines += [f"  address_spaces: {nas}", f"  vcpus: {vcpus}", "events:"]
    if not steps:
        lines[-1] = "events: []"
    for step in steps:
        a = f", as: {step.address_space}" if step.address_space else ""
        if step.op == Op.ACCESS:
            assert step.access is not None
            lines.append(f"  - {_touch_yaml(step.access)}")
            continue
        if step.op == Op.BUMP:
            lines.append(f"  - {{op: bump, as: {step.address_space}, count: {step.count}}}")
            continue
        if step.op == Op.CREATE:
            head = f"op: create, slot: {step.slot}{a}, gfn: {GFNS[step.gfn]:#x}, pages: 1"
        elif step.op == Op.MOVE:
            head = f"op: move, slot: {step.slot}{a}, gfn: {GFNS[step.gfn]:#x}"
        elif step.op == Op.DELETE:
            head = f"op: delete, slot: {step.slot}{a}"
        else:
            head = f"op: flags, slot: {step.slot}{a}"
        if not step.during:
            lines.append(f"  - {{{head}}}")
            continue
        lines.append("  - " + head.replace(", ", "\n    ").replace(": ", ": ", 1))
        lines.append("    during:")
        lines += [f"      - {_touch_yaml(t)}" for t in step.during]
    return "\n".join(lines) + "\n"
