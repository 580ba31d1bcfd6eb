"""strace text -> the memslot calls of one VM, for any VMM.

``strace -f -e trace=ioctl`` decodes KVM_SET_USER_MEMORY_REGION for QEMU,
Firecracker, cloud-hypervisor, crosvm, kvmtool alike (strace 6.1, as here)::

    11701 16:58:10.057035 ioctl(10, KVM_SET_USER_MEMORY_REGION, {slot=3,
        flags=KVM_MEM_LOG_DIRTY_PAGES, guest_phys_addr=0xfd000000, memory_size=16777216,
        userspace_addr=0x7f0a3e000000}) = 0                      (one line in the log)

Accepted: a ``PID`` or ``[pid PID]`` prefix (``-f``), or none; ``-t``, ``-tt``,
``-ttt`` and ``-r`` timestamps, and ``-T`` durations; ``-y`` fd paths
(``10</anon_inode:kvm-vm>``); ``-X raw`` and ``-X verbose``; a call split over
``<unfinished ...>`` and ``<... ioctl resumed>``; failed calls (``= -1 EEXIST
(...)``), skipped and counted; KVM_SET_USER_MEMORY_REGION2 where strace decodes it.
The VMs are told apart by the fd ``KVM_CREATE_VM`` returned, per fd table (threads
share one; ``clone`` without CLONE_FILES starts another, when the log traces it).
A memslot call strace did not decode cannot be imported and is an error.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from kvmgen.errors import TraceError, UsageError
from kvmgen.formatting import plural
from kvmgen.importers.memslots import RegionCall, RegionLog

SET_REGION = 0x4020AE46
SET_REGION2 = 0x40A0AE49
CREATE_VM = 0xAE01
CHECK_EXTENSION = 0xAE03
CAP_MULTI_ADDRESS_SPACE = 118
_NAMES = {
    "KVM_SET_USER_MEMORY_REGION": SET_REGION,
    "KVM_SET_USER_MEMORY_REGION2": SET_REGION2,
    "KVM_CREATE_VM": CREATE_VM,
    "KVM_CHECK_EXTENSION": CHECK_EXTENSION,
}
_FLAG_BITS = {"KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_GUEST_MEMFD": 4}
WHAT = "KVM_SET_USER_MEMORY_REGION calls"

_PREFIX = re.compile(
    r"\s*(?:\[pid\s+(?P<bracket>\d+)\]\s+|(?P<pid>\d+)\s+)?"
    r"(?:(?P<clock>\d\d:\d\d:\d\d)(?:\.(?P<clock_frac>\d+))?\s+"
    r"|(?P<secs>\d+)\.(?P<frac>\d+)\s+)?"
)
_CALL = re.compile(r"(?P<name>\w+)\((?P<args>.*)")
_RESUMED = re.compile(r"<\.\.\. (?P<name>\w+) resumed>(?P<rest>.*)")
_RESULT = re.compile(
    r"\)\s+=\s+(?P<ret>-?\d+|\?)(?:<[^>]*>)?(?:\s+(?P<errno>E[A-Z0-9]+)\b[^<]*)?"
    r"(?:\s*<(?P<duration>[\d.]+)>)?\s*$"
)
_UNFINISHED = " <unfinished ...>"
# A whole KVM_SET_USER_MEMORY_REGION call with a flat struct, the line strace prints
# by far the most: read in one match, then finished like any other call.
_REGION_CALL = re.compile(
    r"ioctl\((?P<fd>\d+(?:<[^>]*>)?), KVM_SET_USER_MEMORY_REGION, "
    r"(?P<struct>\{[^{}\[\]()\"]*\})(?P<tail>\) = .*)"
)
# The struct of nearly every such call, read in one match (_region falls back to the
# field-by-field reading for anything else: other flags, comments, REGION2's fields).
_FLAT_STRUCT = re.compile(
    r"\{slot=(?P<slot>\d+), flags=(?P<flags>0|KVM_MEM_LOG_DIRTY_PAGES|KVM_MEM_READONLY), "
    r"guest_phys_addr=(?P<gpa>0x[0-9a-f]+|\d+), memory_size=(?P<size>0x[0-9a-f]+|\d+), "
    r"userspace_addr=(?P<ua>0x[0-9a-f]+|\d+)\}"
)
_FLAT_NUMBERS = (("guest_phys_addr", "gpa"), ("memory_size", "size"), ("userspace_addr", "ua"))
_COMMENT = re.compile(r"\s*/\*.*?\*/")
_FD = re.compile(r"(?P<fd>\d+)(?:<(?P<path>[^>]*)>)?$")


@dataclass
class StraceVm:
    """One VM a log shows: the fd its creator got and where it was created (if seen)."""

    table: int
    fd: int
    creator: int | None
    created_line: int | None
    calls: list[RegionCall] = field(default_factory=list)
    failed: int = 0

    @property
    def label(self) -> str:
        """How the summary and ``--vm`` name it."""
        who = f"pid {self.creator}" if self.creator is not None else "a process"
        where = f"created at line {self.created_line}" if self.created_line else "creation not seen"
        return f"fd {self.fd} of {who} ({where}, {plural(len(self.calls), 'memslot call')})"


@dataclass
class StraceLog:
    """Every VM of a strace log and what the log held besides."""

    path: str
    vms: list[StraceVm]
    lines: int
    unrelated: int
    relative_times: bool = False
    # KVM_CHECK_EXTENSION(KVM_CAP_MULTI_ADDRESS_SPACE): 0 where the kernel has one address
    # space (the capability is compiled out), else the count.
    address_spaces: int | None = None


# What _args stops at: outside brackets and quotes, commas too; inside, only what
# opens or closes a level (a struct's own commas are skipped in one search).
_TOP_MARKS = re.compile(r'[",{}\[\]()]')
_NESTED_MARKS = re.compile(r'["{}\[\]()]')
_QUOTE_MARK = re.compile(r'"')


def _args(text: str) -> list[str]:
    """Split a call's argument text at top-level commas (braces and brackets nest).

    Quotes hide brackets and commas (strace escapes the quotes inside a string).
    Only the marks that matter at each level are visited, not every character: a
    memslot call's two argument lists take most of an import's time otherwise.
    """
    if _NESTED_MARKS.search(text) is None:  # flat: a struct's fields, or plain arguments
        parts = text.split(",")
        if not parts[-1]:
            parts.pop()
        return [part.strip() for part in parts]
    out: list[str] = []
    depth = 0
    quote = False
    start = 0
    at = 0
    while True:
        marks = _QUOTE_MARK if quote else _NESTED_MARKS if depth else _TOP_MARKS
        mark = marks.search(text, at)
        if mark is None:
            break
        at = mark.end()
        char = mark.group()
        if char == '"':
            quote = not quote
        elif char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
        else:  # a comma between two arguments
            out.append(text[start : mark.start()].strip())
            start = at
    if start < len(text):
        out.append(text[start:].strip())
    return out


def _nanoseconds(seconds: str) -> int:
    whole, _, frac = seconds.partition(".")
    return int(whole) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


def _bare(text: str) -> str:
    """``text`` without strace's ``/* ... */`` comments (-X verbose), stripped."""
    return (_COMMENT.sub("", text) if "/*" in text else text).strip()


def _number(text: str) -> int:
    text = _bare(text)
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _flags(text: str) -> int:
    value = 0
    for part in _bare(text).split("|"):
        part = part.strip()
        if part in _FLAG_BITS:
            value |= _FLAG_BITS[part]
        else:
            value |= _number(part)
    return value


_IOC = re.compile(r"_IOC\((?P<dir>[\w|]+),\s*(?P<type>\w+),\s*(?P<nr>\w+),\s*(?P<size>\w+)\)")
_IOC_DIRS = {"_IOC_NONE": 0, "_IOC_WRITE": 1, "_IOC_READ": 2}


def _command(text: str) -> int | None:
    """The ioctl number from its decoded, raw or verbose form (None: not a KVM one we use).

    strace prints a command it has no name for as ``_IOC(_IOC_WRITE, 0xae, 0x49, 0xa0)``
    (KVM_SET_USER_MEMORY_REGION2 in strace 6.1); that is its number too.
    """
    bare = _bare(text)
    if bare in _NAMES:
        return _NAMES[bare]
    spelled = _IOC.fullmatch(bare)
    if spelled is not None:
        try:
            direction = 0
            for part in spelled["dir"].split("|"):
                direction |= _IOC_DIRS[part]
            return (
                direction << 30
                | _number(spelled["size"]) << 16
                | _number(spelled["type"]) << 8
                | _number(spelled["nr"])
            )
        except (KeyError, ValueError):
            return None
    for word in _COMMENT.findall(text):
        name = word.strip(" /*")
        if name in _NAMES:
            return _NAMES[name]
    try:
        return _number(bare)
    except ValueError:
        return None


def _capability(text: str) -> int | None:
    """The capability number of a KVM_CHECK_EXTENSION argument, decoded or raw."""
    bare = _bare(text)
    if bare == "KVM_CAP_MULTI_ADDRESS_SPACE" or "KVM_CAP_MULTI_ADDRESS_SPACE" in text:
        return CAP_MULTI_ADDRESS_SPACE
    try:
        return _number(bare)
    except ValueError:
        return None


def _region(text: str, path: str, line: int, command: int) -> dict[str, int]:
    """The fields of a decoded ``{slot=..., ...}`` struct."""
    text = text.strip()
    flat = _FLAT_STRUCT.fullmatch(text)
    if flat is not None:
        return {
            "slot": int(flat["slot"]),
            "flags": _FLAG_BITS.get(flat["flags"], 0),
            **{key: _number(flat[group]) for key, group in _FLAT_NUMBERS},
        }
    if not (text.startswith("{") and text.endswith("}")):
        what = "KVM_SET_USER_MEMORY_REGION2" if command == SET_REGION2 else "a memslot ioctl"
        raise TraceError(
            path,
            f"{what} whose struct strace did not decode (it printed {text[:40]!r}), so its "
            "slot and range are unknown: strace decodes KVM_SET_USER_MEMORY_REGION but no "
            "strace release seen decodes REGION2; for such a VMM import its own log "
            "(QEMU: -trace kvm_set_user_memory)",
            line=line,
        )
    fields: dict[str, int] = {}
    for part in _args(text[1:-1]):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        key = key.strip()
        try:
            fields[key] = _flags(value) if key == "flags" else _number(value)
        except ValueError:
            raise TraceError(
                path, f"{key}={value.strip()!r} in a memslot ioctl is not a number", line=line
            ) from None
    missing = [k for k in ("slot", "guest_phys_addr", "memory_size") if k not in fields]
    if missing:
        raise TraceError(
            path,
            f"a memslot ioctl without {', '.join(missing)}: not a struct kvmgen knows",
            line=line,
        )
    return fields


@dataclass
class _Pending:
    command: int
    fd: int
    args: list[str]
    line: int
    enter_ns: int | None = None  # the line's timestamp: strace stamps a call at its entry


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.vms: list[StraceVm] = []
        self.live: dict[tuple[int, int], StraceVm] = {}  # (fd table, fd) -> VM
        self.tables: dict[int, int] = {}  # tid -> fd table
        self.pending: dict[int, _Pending] = {}
        self.unrelated = 0
        self.relative = False
        self.clock_ns = 0  # running time for -r
        self.last_day_ns: int | None = None
        self.day_offset = 0
        self.address_spaces: int | None = None

    def table_of(self, tid: int) -> int:
        # Threads (and processes whose clone the log did not show) share the first table.
        return self.tables.setdefault(tid, 0)

    def time(self, match: re.Match[str]) -> int | None:
        if match["secs"] is not None:
            secs = int(match["secs"])
            nanos = secs * 1_000_000_000 + int(match["frac"].ljust(9, "0")[:9])
            if secs < 10**6:  # -r: seconds since the previous line
                self.relative = True
                self.clock_ns += nanos
                return self.clock_ns
            return nanos
        if match["clock"] is not None:
            h, m, s = (int(x) for x in match["clock"].split(":"))
            frac = int((match["clock_frac"] or "0").ljust(9, "0")[:9])
            nanos = ((h * 60 + m) * 60 + s) * 1_000_000_000 + frac
            # -t/-tt print the time of day: a log that runs past midnight goes on counting.
            if (
                self.last_day_ns is not None
                and nanos + self.day_offset < self.last_day_ns - 43_200 * 10**9
            ):
                self.day_offset += 86_400 * 1_000_000_000
            self.last_day_ns = nanos + self.day_offset
            return self.last_day_ns
        return None

    def feed(self, number: int, text: str) -> None:
        prefix = _PREFIX.match(text)
        assert prefix is not None  # every part is optional
        tid = int(prefix["bracket"] or prefix["pid"] or 0)
        t_ns = self.time(prefix)
        rest = text[prefix.end() :]
        region = _REGION_CALL.fullmatch(rest)
        if region is not None and rest.rfind(") = ") == region.start("tail"):
            fd = region["fd"]
            args = [fd, "KVM_SET_USER_MEMORY_REGION", region["struct"]]
            fd_number = int(fd.partition("<")[0])
            self.finish(_Pending(SET_REGION, fd_number, args, number, t_ns), region["tail"], tid)
            return
        resumed = _RESUMED.match(rest)
        if resumed is not None:
            call = self.pending.pop(tid, None)
            if call is not None and resumed["name"] == "ioctl":
                self.finish(call, resumed["rest"], tid)
            elif resumed["name"] in ("clone", "clone3", "fork", "vfork") and call is not None:
                self.spawned(tid, call.args, resumed["rest"])
            return
        match = _CALL.match(rest)
        if match is None:
            if rest.strip() and not rest.lstrip().startswith(("---", "+++")):
                self.unrelated += 1
            return
        name, args_text = match["name"], match["args"]
        unfinished = args_text.endswith(_UNFINISHED)
        if unfinished:
            args_text = args_text[: -len(_UNFINISHED)]
            tail = ""
        else:
            cut = args_text.rfind(") = ")
            if cut < 0:
                cut = args_text.rfind(")")
            tail, args_text = args_text[cut:], args_text[:cut] if cut >= 0 else args_text
        if name in ("clone", "clone3", "fork", "vfork"):
            args = _args(args_text)
            if unfinished:
                self.pending[tid] = _Pending(0, -1, args, number)
            else:
                self.spawned(tid, args, tail)
            return
        if name == "close":
            self.closed(tid, args_text)
            return
        if name != "ioctl":
            return
        args = _args(args_text)
        if len(args) < 2:
            return
        fd_match = _FD.match(args[0])
        command = _command(args[1])
        if fd_match is None or command not in (SET_REGION, SET_REGION2, CREATE_VM, CHECK_EXTENSION):
            return
        call = _Pending(command, int(fd_match["fd"]), args, number, t_ns)
        if unfinished:
            self.pending[tid] = call
        else:
            self.finish(call, tail, tid)

    def spawned(self, tid: int, args: list[str], tail: str) -> None:
        result = _RESULT.match(tail)
        if result is None or not result["ret"].lstrip("-").isdigit() or int(result["ret"]) <= 0:
            return
        child = int(result["ret"])
        shares_files = any("CLONE_FILES" in arg or "CLONE_THREAD" in arg for arg in args)
        parent = self.table_of(tid)
        if shares_files:
            self.tables[child] = parent
        else:
            # A new process: it inherits copies of its parent's fds (and VMs on them).
            table = max(self.tables.values(), default=0) + 1
            self.tables[child] = table
            for (owner, fd), vm in list(self.live.items()):
                if owner == parent:
                    self.live[(table, fd)] = vm

    def closed(self, tid: int, args_text: str) -> None:
        fd_match = _FD.match(args_text.strip())
        if fd_match is not None:
            self.live.pop((self.table_of(tid), int(fd_match["fd"])), None)

    def finish(self, call: _Pending, tail: str, tid: int) -> None:
        result = _RESULT.match(tail)
        if result is None or result["ret"] == "?":
            self.unrelated += 1
            return
        ret = int(result["ret"])
        table = self.table_of(tid)
        if call.command == CHECK_EXTENSION:
            if (
                ret >= 0
                and len(call.args) > 2
                and _capability(call.args[2]) == CAP_MULTI_ADDRESS_SPACE
            ):
                self.address_spaces = max(ret, 1)
            return
        if call.command == CREATE_VM:
            if ret >= 0:
                vm = StraceVm(table, ret, tid, call.line)
                self.vms.append(vm)
                self.live[(table, ret)] = vm
            return
        found = self.live.get((table, call.fd))
        if found is None:  # the log began after the VM was created
            found = StraceVm(table, call.fd, None, None)
            self.vms.append(found)
            self.live[(table, call.fd)] = found
        vm = found
        fields = _region(
            call.args[2] if len(call.args) > 2 else "", self.path, call.line, call.command
        )
        if ret < 0:
            vm.failed += 1
            code = getattr(errno, result["errno"] or "", None)
            ret = -code if isinstance(code, int) else ret
        raw_slot = fields["slot"]
        vm.calls.append(
            RegionCall(
                line=call.line,
                address_space=raw_slot >> 16,
                slot=raw_slot & 0xFFFF,
                flags=fields.get("flags", 0),
                gpa=fields["guest_phys_addr"],
                size=fields["memory_size"],
                ret=ret,
                t_ns=call.enter_ns,
                tid=tid or None,
                duration_ns=_nanoseconds(result["duration"]) if result["duration"] else None,
                fd=call.fd,
                guest_memfd=fields.get("guest_memfd") if call.command == SET_REGION2 else None,
            )
        )


def read_strace(path: str, lines: Iterable[str]) -> StraceLog:
    """Parse a whole strace log; every VM it shows, in the order they appear."""
    reader = _Reader(path)
    count = 0
    for number, text in enumerate(lines, start=1):
        count = number
        reader.feed(number, text.rstrip("\r\n"))
    return StraceLog(
        path, reader.vms, count, reader.unrelated, reader.relative, reader.address_spaces
    )


def choose_vm(log: StraceLog, wanted: str | None, *, busiest: bool = False) -> StraceVm:
    """The VM to import: ``wanted`` (``FD`` or ``PID:FD``), else the only one with calls.

    ``busiest``: when several made calls, the one that made the most (``kvmgen
    record``, which cannot ask again; the summary names the others).
    """
    with_calls = [vm for vm in log.vms if vm.calls]
    listing = "; ".join(vm.label for vm in log.vms) or "none"
    if wanted is not None:
        pid_text, _, fd_text = wanted.rpartition(":")
        try:
            fd = int(fd_text)
            pid = int(pid_text) if pid_text else None
        except ValueError:
            raise UsageError(f"--vm {wanted!r}: expected FD or PID:FD") from None
        found = [vm for vm in log.vms if vm.fd == fd and (pid is None or vm.creator == pid)]
        if len(found) != 1:
            what = "no VM" if not found else "several VMs"
            raise UsageError(f"--vm {wanted}: {what} of {log.path} match (VMs: {listing})")
        return found[0]
    if not with_calls:
        raise UsageError(
            f"{log.path}: no KVM_SET_USER_MEMORY_REGION calls (run strace -f -e trace=ioctl "
            f"on the VMM; VMs seen: {listing})"
        )
    if len(with_calls) > 1 and busiest:
        return max(with_calls, key=lambda vm: len(vm.calls))
    if len(with_calls) > 1:
        raise UsageError(
            f"{log.path}: {len(with_calls)} VMs made memslot calls: pick one with "
            f"--vm FD or --vm PID:FD ({listing})"
        )
    return with_calls[0]


def _returned(call: RegionCall) -> RegionCall:
    """The call stamped when it returned (strace -T): its entry time plus its duration.

    Spelt out, not ``dataclasses.replace``, which took a quarter of a big import.
    """
    assert call.t_ns is not None and call.duration_ns is not None
    return RegionCall(
        line=call.line,
        address_space=call.address_space,
        slot=call.slot,
        flags=call.flags,
        gpa=call.gpa,
        size=call.size,
        ret=call.ret,
        t_ns=call.t_ns + call.duration_ns,
        tid=call.tid,
        guest_memfd=call.guest_memfd,
        extras=call.extras,
        duration_ns=call.duration_ns,
        fd=call.fd,
    )


def vm_log(log: StraceLog, vm: StraceVm) -> RegionLog:
    """One VM's calls as a :class:`RegionLog` for :func:`kvmgen.importers.memslots.import_calls`."""
    others = [other.label for other in log.vms if other is not vm]
    notes = [f"the log shows other VMs, not imported: {'; '.join(others)}"] if others else []
    if vm.created_line is None:
        notes.append("the log does not show the VM's creation: it starts mid-run")
    if log.relative_times:
        notes.append("-r timestamps: times are relative to the log's first line")
    calls = vm.calls
    # strace stamps a call when it enters; with -T it also says how long the call took,
    # which gives the time it returned (the same reference QEMU's log uses).
    at_exit = bool(calls) and all(c.t_ns is not None and c.duration_ns is not None for c in calls)
    if at_exit:
        calls = [_returned(c) for c in calls]
    if log.address_spaces is not None:
        notes.append(
            "the VMM asked KVM_CAP_MULTI_ADDRESS_SPACE: the host has "
            + plural(log.address_spaces, "memslot address space")
        )
    return RegionLog(
        log.path,
        calls,
        log.lines,
        log.unrelated,
        WHAT,
        notes,
        at_exit=at_exit,
        address_spaces=log.address_spaces,
        from_creation=vm.created_line is not None,
    )
