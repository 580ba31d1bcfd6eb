"""The rules of trace format version 1 (model.md section 2): located tree -> Trace.

Both loaders hand over the same located tree (see :mod:`kvmgen.trace.tree`), so the
rules, the messages and the slot-layout replay live here once. Validation stops at
the first problem with a :class:`TraceError` naming file, line, column, event, op
and field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.model.versions import era_for_version, lookup_era
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
from kvmgen.trace.table import EventTable
from kvmgen.trace.tree import (
    Pos,
    describe,
    format_int,
    is_map,
    is_seq,
    item_pos,
    key_pos,
    node_pos,
    value_pos,
)
from kvmgen.trace.validate.access import plain_access
from kvmgen.trace.validate.fields import (
    ADDRESS_SPACES,
    AS,
    FLAGS,
    GFN,
    GPA,
    PAGES,
    REPEAT,
    SLOT,
    VCPU,
    VCPUS,
    Problem,
    Where,
    parse_int,
)
from kvmgen.trace.validate.layout import GFN_LIMIT, Layout, Slot
from kvmgen.trace.validate.observations import parse_observations

FORMAT_VERSION = 1

OPS: dict[str, Op] = {
    "create": Op.CREATE,
    "delete": Op.DELETE,
    "move": Op.MOVE,
    "flags": Op.FLAGS,
    "bump": Op.BUMP,
    "access": Op.ACCESS,
}
_KINDS = {"read": AccessKind.READ, "write": AccessKind.WRITE}
_WINDOWS = {"in_progress": Window.IN_PROGRESS, "before_zap": Window.BEFORE_ZAP}
_COMMON = ("t", "note")
OP_KEYS: dict[Op, tuple[str, ...]] = {
    # The keys each op takes besides op, t and note (and window inside during).
    Op.CREATE: ("slot", "as", "gfn", "pages", "flags", "repeat", "during"),
    Op.DELETE: ("slot", "as", "repeat", "during"),
    Op.MOVE: ("slot", "as", "gfn", "repeat", "during"),
    Op.FLAGS: ("slot", "as", "flags", "repeat", "during"),
    Op.BUMP: ("as", "count"),
    Op.ACCESS: ("gfn", "gpa", "as", "vcpu", "kind", "repeat"),
}
_NO_REPEAT = {
    Op.CREATE: "a create cannot repeat",
    Op.DELETE: "a delete cannot repeat: the slot no longer exists after the first",
    Op.MOVE: "a move cannot repeat",
}


def _hints(op: Op, inside: bool) -> dict[str, str]:
    """Messages for keys a user plausibly misplaces, instead of a bare "unknown key"."""
    hints = {}
    if not inside:
        hints["window"] = "window is only allowed on an access inside during"
    if op in (Op.BUMP, Op.ACCESS):
        where = "inside during" if inside else f"on {op.name.lower()}"
        hints["during"] = (
            f"during is not allowed {where}: only create, delete, move and flags take one"
        )
    if op == Op.BUMP:
        hints["repeat"] = "a bump takes count, not repeat"
    elif op in (Op.FLAGS, Op.ACCESS):
        hints["count"] = f"count is only for bump; {op.name.lower()} takes repeat"
    else:
        hints["count"] = "count is only for bump"
    return hints


# (op, inside a during list) -> (allowed keys, hints), built once.
_ALLOWED: dict[tuple[Op, bool], tuple[tuple[str, ...], dict[str, str]]] = {
    (op, inside): (("op", *keys, *(("window",) if inside else ()), *_COMMON), _hints(op, inside))
    for op, keys in OP_KEYS.items()
    for inside in (False, True)
}
_KERNEL_TEXT = 'a version string such as "5.10" (quoted: as a number, 5.10 would read 5.1)'
_TOP_KEYS = ("kvmgen", "vm", "events", "observations")
_VM_KEYS = ("kernel", "era", "address_spaces", "vcpus", "slots")
_SLOT_KEYS = ("slot", "as", "gfn", "pages", "flags")


def build_trace(root: Any, root_pos: Pos, *, path: str, fmt: str, sha256: str) -> Trace:
    """Check a loaded tree against the format rules and build the :class:`Trace`."""
    return Validator(path).trace(root, root_pos, fmt, sha256)


class Validator:
    """One validation pass; replays the slot layout of each address space as it goes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.layout = Layout()
        self.vcpus: int | None = None
        self.max_as = 0
        self.max_vcpu = 0

    # --- document and header ----------------------------------------------------

    def trace(self, root: Any, root_pos: Pos, fmt: str, sha256: str) -> Trace:
        """Check a whole located document (header, events, observations) and build the trace."""
        top = Where(self.path)
        if root is None:
            top.fail(
                "empty trace: expected a mapping with the keys kvmgen, vm and events", root_pos
            )
        if not is_map(root):
            top.fail(
                f"expected a mapping with the keys kvmgen, vm and events at the top level, "
                f"got {describe(root)}",
                root_pos,
            )
        top.check_dup(root)
        top.require(root, "kvmgen", f" (the format version; this kvmgen reads {FORMAT_VERSION})")
        try:
            version = parse_int(root["kvmgen"])
        except Problem as problem:
            top.fail(str(problem), value_pos(root, "kvmgen"), "kvmgen")
        if version != FORMAT_VERSION:
            top.fail(
                f"unsupported format version {format_int(version)}: "
                f"this kvmgen reads version {FORMAT_VERSION}",
                value_pos(root, "kvmgen"),
                "kvmgen",
            )
        top.check_keys(root, _TOP_KEYS)
        vm = self.header(root) if "vm" in root else VmHeader()
        events = top.require(root, "events")
        if not is_seq(events):
            top.fail(
                f"expected a list of events, got {describe(events)}",
                value_pos(root, "events"),
                "events",
            )
        built = tuple(self.event(i, events) for i in range(len(events)))
        return self.finish(vm, built, fmt, sha256, parse_observations(self.path, root, built))

    def finish(
        self,
        vm: VmHeader,
        events: Sequence[Event],
        fmt: str,
        sha256: str,
        observations: tuple[Any, ...] = (),
    ) -> Trace:
        """The :class:`Trace` of a validated header and events (every loader ends here)."""
        return Trace(
            path=self.path,
            format=fmt,
            version=FORMAT_VERSION,
            vm=vm,
            events=events,
            observations=observations,
            sha256=sha256,
            max_address_space=self.max_as,
            max_vcpu=self.max_vcpu,
        )

    def fast_event(
        self,
        value: Any,
        index: int,
        position: tuple[int, int],
        vcpus: int,
        locate: Callable[[], Any],
        *,
        layout: bool = True,
    ) -> Event:
        """One event parsed by a fast path: a plain access directly, else ``locate()``'d.

        ``locate`` builds the located tree of the event only when the plain-access
        shortcut does not apply; the event is then checked like any other. With
        ``layout`` False the slot layout is neither checked nor changed (a scan
        checks it over columns) and a move's ``pages`` is left 0.
        """
        event = plain_access(value, index, position[0], position[1], vcpus)
        if event is None:
            seq = _Single(locate(), position)
            return self.event(index, seq) if layout else self.event_fields(index, seq)
        self.max_as = max(self.max_as, event.address_space)
        self.max_vcpu = max(self.max_vcpu, event.vcpu)
        return event

    def note_rows(self, table: EventTable) -> None:
        """Count in events a scan read without this validator (for max address space, vCPU)."""
        if len(table):
            self.max_as = max(self.max_as, int(table.address_space.max()))
            self.max_vcpu = max(self.max_vcpu, int(table.vcpu.max()))

    def header(self, root: Any) -> VmHeader:
        """Check ``root["vm"]``; its slots are placed in the layout the events are checked on."""
        node = root["vm"]
        if not is_map(node):
            Where(self.path).fail(
                f"expected a mapping, got {describe(node)}", value_pos(root, "vm"), "vm"
            )
        w = Where(self.path, prefix="vm.")
        w.check_keys(node, _VM_KEYS)
        kernel = era = None
        if "kernel" in node:
            kernel = w.text(node, "kernel", yaml_raw=True, expected=_KERNEL_TEXT)
            try:
                kernel_era = era_for_version(kernel).era.name
            except UsageError as error:
                w.fail(str(error), value_pos(node, "kernel"), "kernel")
        if "era" in node:
            try:
                era = lookup_era(w.text(node, "era")).name
            except UsageError as error:
                w.fail(str(error), value_pos(node, "era"), "era")
            if kernel is not None and kernel_era != era:
                w.fail(
                    f"era {era} does not match kernel {kernel}, which is era {kernel_era}",
                    value_pos(node, "era"),
                    "era",
                )
        address_spaces = w.opt_int(node, "address_spaces", ADDRESS_SPACES, None)
        self.vcpus = w.opt_int(node, "vcpus", VCPUS, None)
        slots = self._header_slots(w, node) if "slots" in node else ()
        return VmHeader(
            kernel=kernel,
            era=era,
            address_spaces=address_spaces,
            vcpus=self.vcpus,
            slots=slots,
            line=node_pos(node)[0] or 0,
        )

    def _header_slots(self, w: Where, node: Any) -> tuple[SlotDecl, ...]:
        seq = node["slots"]
        if not is_seq(seq):
            w.fail(
                f"expected a list of slots, got {describe(seq)}", value_pos(node, "slots"), "slots"
            )
        decls = []
        for i, item in enumerate(seq):
            sw = w.sub(f"slots[{i}].")
            if not is_map(item):
                sw.fail(f"expected a slot mapping, got {describe(item)}", item_pos(seq, i))
            sw.check_keys(item, _SLOT_KEYS)
            slot = sw.req_int(item, "slot", SLOT)
            a = self._address_space(sw, item)
            gfn = sw.req_int(item, "gfn", GFN)
            pages = self._pages(sw, item, gfn)
            flags = sw.opt_int(item, "flags", FLAGS, 0)
            line = node_pos(item)[0] or 0
            self.layout.create(sw, item, a, Slot(slot, gfn, pages, line))
            decls.append(SlotDecl(slot, a, gfn, pages, flags, line))
        return tuple(decls)

    # --- events -------------------------------------------------------------------

    def event(self, index: int, seq: Any) -> Event:
        """Check event ``index`` of the located list ``seq`` and apply it to the slot layout."""
        return self._event(index, seq, True)

    def event_fields(self, index: int, seq: Any) -> Event:
        """Check event ``index`` of ``seq`` but for the slot layout (checked elsewhere).

        The layout is left as it is, and a move's ``pages`` (the size of the slot
        it moves) is 0.
        """
        return self._event(index, seq, False)

    def event_at(
        self, index: int, node: Any, position: tuple[int, int], *, layout: bool = True
    ) -> Event:
        """Check one event given as its located tree and where it starts.

        As :meth:`event`, or with ``layout`` False as :meth:`event_fields`.
        """
        seq = _Single(node, position)
        return self.event(index, seq) if layout else self.event_fields(index, seq)

    def _event(self, index: int, seq: Any, layout: bool) -> Event:
        node = seq[index]
        w = Where(self.path, event=index)
        if not is_map(node):
            w.fail(f"expected an event mapping, got {describe(node)}", item_pos(seq, index))
        op = self._op(w, node)
        w.op = op.name.lower()
        w.check_dup(node)
        fields = self._fields(w, node, op, inside=False)
        if layout:
            self._apply(w, node, op, fields)
        if "during" in node:
            fields["during"] = self._during(w, node, index, fields["repeat"])
        return Event(index=index, op=op, **fields)

    def _apply(self, w: Where, node: Any, op: Op, fields: dict[str, Any]) -> None:
        """Check an update against the slot layout and apply it (a move learns its pages)."""
        a, slot = fields["address_space"], fields["slot"]
        if op == Op.CREATE:
            self.layout.create(
                w, node, a, Slot(slot, fields["gfn"], fields["pages"], fields["line"])
            )
        elif op == Op.DELETE:
            self.layout.delete(w, node, a, slot)
        elif op == Op.MOVE:
            fields["pages"] = self.layout.move(w, node, a, slot, fields["gfn"], fields["line"])
        elif op == Op.FLAGS:
            self.layout.existing(w, node, a, slot)

    def _op(self, w: Where, node: Any) -> Op:
        name = w.require(node, "op")
        if isinstance(name, str) and name in OPS:
            return OPS[name]
        if isinstance(name, str):
            message = f"unknown op {name!r}: expected one of {', '.join(OPS)}"
        else:
            message = f"expected an op name ({', '.join(OPS)}), got {describe(name)}"
        w.fail(message, value_pos(node, "op"), "op")

    def _during(self, w: Where, node: Any, index: int, repeat: int) -> tuple[Event, ...]:
        seq = node["during"]
        if not is_seq(seq):
            w.fail(
                f"expected a list of accesses, got {describe(seq)}",
                value_pos(node, "during"),
                "during",
            )
        if repeat != 1:
            w.fail("repeat cannot be combined with during", value_pos(node, "repeat"), "repeat")
        subs = []
        for i, item in enumerate(seq):
            sw = w.sub(f"during[{i}].")
            if not is_map(item):
                sw.fail(f"expected an access mapping, got {describe(item)}", item_pos(seq, i))
            sw.check_dup(item)
            name = sw.require(item, "op", " (during entries are accesses: op: access)")
            if name != "access":
                sw.fail(
                    f"during entries must be accesses (op: access), got {describe(name)}",
                    value_pos(item, "op"),
                    "op",
                )
            fields = self._fields(sw, item, Op.ACCESS, inside=True)
            subs.append(Event(index=index, op=Op.ACCESS, sub=i, **fields))
        # Execution order (model.md section 2): every in_progress access, then every
        # before_zap one; sorted() is stable, so each group keeps its list order.
        return tuple(sorted(subs, key=lambda e: e.window))

    def _fields(self, w: Where, node: Any, op: Op, *, inside: bool) -> dict[str, Any]:
        """Check the keys and values of one event; return Event keyword arguments."""
        w.check_keys(node, *_ALLOWED[op, inside])
        line, column = node_pos(node)
        out: dict[str, Any] = {"line": line or 0, "column": column or 0, "slot": -1}
        out["address_space"] = self._address_space(w, node)
        if op in UPDATE_OPS:
            out["slot"] = w.req_int(node, "slot", SLOT)
        if op == Op.CREATE:
            out["gfn"] = w.req_int(node, "gfn", GFN)
            out["pages"] = self._pages(w, node, out["gfn"])
            out["flags"] = w.opt_int(node, "flags", FLAGS, 0)
        elif op == Op.MOVE:
            out["gfn"] = w.req_int(node, "gfn", GFN)
        elif op == Op.FLAGS:
            out["flags"] = w.opt_int(node, "flags", FLAGS, None)
        elif op == Op.ACCESS:
            out["gfn"] = self._access_gfn(w, node)
            out["vcpu"] = self._vcpu(w, node)
            out["kind"] = w.choice(node, "kind", _KINDS, AccessKind.READ)
        if op == Op.BUMP:
            out["repeat"] = w.req_int(node, "count", REPEAT)
        else:
            out["repeat"] = w.opt_int(node, "repeat", REPEAT, 1)
            if out["repeat"] != 1 and op in _NO_REPEAT:
                w.fail(_NO_REPEAT[op], value_pos(node, "repeat"), "repeat")
        if inside:
            w.require(node, "window", f" ({' or '.join(_WINDOWS)})")
            out["window"] = w.choice(node, "window", _WINDOWS, Window.NONE)
        if "t" in node:
            out["t"] = w.number(node, "t")
        if "note" in node:
            out["note"] = w.text(node, "note", yaml_raw=True)
        return out

    # --- single values ----------------------------------------------------------

    def _address_space(self, w: Where, node: Any) -> int:
        a = w.opt_int(node, "as", AS, 0)
        self.max_as = max(self.max_as, a)
        return a

    def _pages(self, w: Where, node: Any, gfn: int) -> int:
        pages = w.req_int(node, "pages", PAGES)
        if gfn + pages > GFN_LIMIT:
            w.fail(
                f"the slot ends past the last guest frame: gfn {gfn:#x} + {pages:#x} pages > 2^40",
                value_pos(node, "pages"),
                "pages",
            )
        return pages

    def _access_gfn(self, w: Where, node: Any) -> int:
        if "gfn" in node and "gpa" in node:
            w.fail("give gfn or gpa, not both", key_pos(node, "gpa"), "gpa")
        if "gpa" in node:
            return w.int_value(node, "gpa", GPA) >> 12
        if "gfn" not in node:
            w.fail("missing required key 'gfn' (or 'gpa')", node_pos(node), "gfn")
        return w.int_value(node, "gfn", GFN)

    def _vcpu(self, w: Where, node: Any) -> int:
        vcpu = w.opt_int(node, "vcpu", VCPU, 0)
        if self.vcpus is not None and vcpu >= self.vcpus:
            w.fail(
                f"vcpu {vcpu} does not exist: the vm header declares {self.vcpus} "
                f"vcpu{'s' if self.vcpus > 1 else ''} (0..{self.vcpus - 1})",
                value_pos(node, "vcpu"),
                "vcpu",
            )
        self.max_vcpu = max(self.max_vcpu, vcpu)
        return vcpu


class _Single:
    """Stands in for the events list so :meth:`Validator.event` can check one event."""

    def __init__(self, node: Any, position: tuple[int, int]) -> None:
        self.node = node
        # A mapping or list knows where it is; a bare scalar (a JSON Lines line "5") does
        # not. Column 0 is how records say "no column" (JSON Lines positions are lines).
        known = hasattr(node, "at")
        self.at = node_pos(node) if known else (position[0], position[1] or None)
        self.src = None

    def __getitem__(self, index: int) -> Any:
        return self.node
