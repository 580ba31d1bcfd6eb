"""QEMU ``kvm_set_user_memory`` trace lines -> memslot calls.

QEMU traces every KVM_SET_USER_MEMORY_REGION it makes (``-trace kvm_set_user_memory``)
after the ioctl returns. Its payload has had three shapes:

- ``Slot#%d flags=0x%x gpa=0x%x size=0x%x ua=0x%x ret=%d``, the slot number being
  ``address space << 16 | slot`` (QEMU up to 8.2; 7.2 is what Debian 12 ships);
- ``AddrSpace#%d Slot#%d flags=... ua=0x%x guest_memfd=%d guest_memfd_offset=0x%x
  ret=%d``, from QEMU 9.0, which added guest_memfd;
- development trees (the TDX and SNP series) print ``AddrSpace#`` and ``Slot#`` with
  other fields (``restricted_fd=19 restricted_offset=0x0``).

Fields kvmgen does not know are accepted, counted and named in the summary; a
line without ``Slot#`` and the flags, gpa, size and ret fields is an error. With
``-msg timestamp=on`` the log backend prefixes ``<tid>@<sec>.<usec>:``, kept as ``t``.
Turning calls into trace events is :mod:`kvmgen.importers.memslots`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kvmgen.errors import TraceError
from kvmgen.importers.memslots import RegionCall, RegionLog, parse_time

NAME = "kvm_set_user_memory"

_PREFIX = re.compile(r"\s*(?P<tid>\d+)@(?P<sec>\d+)\.(?P<frac>\d{1,9}):")
_HEAD = re.compile(r"(?:AddrSpace#(?P<as>\d+)\s+)?Slot#(?P<slot>-?\d+)(?=\s|$)")
_FIELD = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>\S+)")
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|\d+)")
_REQUIRED = ("flags", "gpa", "size", "ret")
_KNOWN = frozenset({*_REQUIRED, "ua", "guest_memfd", "guest_memfd_offset"})
_SHAPES = (
    "'Slot#N flags=0x.. gpa=0x.. size=0x.. ua=0x.. ret=N', "
    "'AddrSpace#N Slot#N flags=0x.. ... ret=N'"
)


def _number(text: str) -> int:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = int(digits, 16) if digits.startswith("0x") else int(digits)
    return -value if negative else value


def parse_payload(
    body: str, *, path: str, line: int, t_ns: int | None = None, tid: int | None = None
) -> RegionCall:
    """Parse the text after the event name; a TraceError if it is not a memslot call."""
    body = body.lstrip(": \t").rstrip()

    def refuse(why: str) -> TraceError:
        return TraceError(
            path,
            f"{NAME}: payload {body[:60]!r} {why} (expected {_SHAPES}, "
            "other key=value fields allowed)",
            line=line,
        )

    head = _HEAD.match(body)
    if head is None:
        raise refuse("has no Slot#N")
    fields: dict[str, str] = {}
    extras: list[str] = []
    for word in body[head.end() :].split():
        match = _FIELD.fullmatch(word)
        if match is None:
            raise refuse(f"has {word!r}, which is not key=value")
        key, value = match["key"], match["value"]
        if key in fields:
            raise refuse(f"names {key} twice")
        if key in _KNOWN:
            if not _NUMBER.fullmatch(value):
                raise refuse(f"has {key}={value}, which is not a number")
            fields[key] = value
        else:
            extras.append(key)
            fields[key] = value
    missing = [key for key in _REQUIRED if key not in fields]
    if missing:
        raise refuse(f"lacks {', '.join(missing)}")
    if head["as"] is not None:
        address_space, slot = int(head["as"]), int(head["slot"])
    else:
        raw = int(head["slot"]) & 0xFFFFFFFF  # printed with %d: as << 16 | slot
        address_space, slot = raw >> 16, raw & 0xFFFF
    return RegionCall(
        line=line,
        address_space=address_space,
        slot=slot,
        flags=_number(fields["flags"]),
        gpa=_number(fields["gpa"]),
        size=_number(fields["size"]),
        ret=_number(fields["ret"]),
        t_ns=t_ns,
        tid=tid,
        guest_memfd=_number(fields["guest_memfd"]) if "guest_memfd" in fields else None,
        extras=tuple(extras),
    )


# The shapes QEMU prints, whole, with the log backend's prefix: one match reads a line
# (the general parser below handles every other shape and words every error).
_COMMON = re.compile(
    r"\s*(?:(?P<tid>\d+)@(?P<sec>\d+)\.(?P<frac>\d{1,9}):)?kvm_set_user_memory "
    r"(?:AddrSpace#(?P<as>\d+) )?Slot#(?P<slot>\d+) flags=0x(?P<flags>[0-9a-fA-F]+) "
    r"gpa=0x(?P<gpa>[0-9a-fA-F]+) size=0x(?P<size>[0-9a-fA-F]+) ua=0x[0-9a-fA-F]+"
    r"(?: guest_memfd=(?P<memfd>-?\d+) guest_memfd_offset=0x[0-9a-fA-F]+)? "
    r"ret=(?P<ret>-?\d+)[ \t]*"
)


def _common(match: re.Match[str], line: int) -> RegionCall:
    """The call of a line :data:`_COMMON` matched whole."""
    raw = int(match["slot"])
    address_space, slot = (int(match["as"]), raw) if match["as"] else (raw >> 16, raw & 0xFFFF)
    memfd = match["memfd"]
    sec = match["sec"]
    return RegionCall(
        line=line,
        address_space=address_space,
        slot=slot,
        flags=int(match["flags"], 16),
        gpa=int(match["gpa"], 16),
        size=int(match["size"], 16),
        ret=int(match["ret"]),
        t_ns=parse_time(sec, match["frac"]) if sec is not None else None,
        tid=int(match["tid"]) if sec is not None else None,
        guest_memfd=int(memfd) if memfd is not None else None,
    )


def parse_line(text: str, *, path: str, line: int) -> RegionCall | None:
    """A call for a ``kvm_set_user_memory`` line, None for any other line."""
    common = _COMMON.fullmatch(text)
    if common is not None and int(common["slot"]) <= 0xFFFFFFFF:
        return _common(common, line)
    at = text.find(NAME)
    if at < 0:
        return None
    prefix = _PREFIX.match(text)
    t_ns = tid = None
    if prefix is not None and prefix.end() <= at:
        t_ns = parse_time(prefix["sec"], prefix["frac"])
        tid = int(prefix["tid"])
    return parse_payload(text[at + len(NAME) :], path=path, line=line, t_ns=t_ns, tid=tid)


def read_log(path: str, lines: Iterable[str]) -> RegionLog:
    """Parse every line; unrelated lines are counted, a malformed event line is an error."""
    records: list[RegionCall] = []
    unrelated = 0
    count = 0
    for number, text in enumerate(lines, start=1):
        count = number
        rec = parse_line(text.rstrip("\r\n"), path=path, line=number)
        if rec is None:
            if text.strip():
                unrelated += 1
            continue
        records.append(rec)
    return RegionLog(path=path, calls=records, lines=count, unrelated=unrelated)
