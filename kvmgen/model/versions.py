"""Mainline kernel version strings -> eras (model.md section 1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kvmgen.errors import UsageError
from kvmgen.model.eras import E6_SLOT_FLUSH, ERAS, Era

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?([-+~_][\w.+~-]*)?$")

# The newest release whose behaviour the spec records (observed on 6.18.44).
NEWEST_CHECKED = (6, 18)


@dataclass(frozen=True)
class KernelChoice:
    """An era picked for a kernel version, with what kvmgen wants the user to know."""

    kernel: str
    version: tuple[int, int, int]
    era: Era
    notes: tuple[str, ...]


def parse_version(text: str) -> tuple[int, int, int]:
    """Parse ``4.19``, ``5.2.1``, ``v6.8``, ``6.18.44-generic`` into (major, minor, patch)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise UsageError(
            f"kernel version {text!r}: expected MAJOR.MINOR[.PATCH] such as 4.19 or 5.2.1"
        )
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    if major > 99:
        raise UsageError(f"kernel version {text!r}: no Linux release has major version {major}")
    return major, minor, patch


def era_for_version(text: str) -> KernelChoice:
    """Map a mainline version to its era, saying which era was chosen and why."""
    version = parse_version(text)
    major_minor = version[:2]
    notes: list[str] = []
    chosen: Era | None = None
    for era in ERAS.values():
        if major_minor >= era.first and (era.last is None or major_minor <= era.last):
            chosen = era
    if chosen is None:  # older than every era start: E0 covers everything below 3.11
        chosen = ERAS["E0"]
    if chosen.name == "E0" and major_minor < (3, 10):
        notes.append(f"{text} predates the MMIO generation; modelled as 3.10 behaves")
    if chosen.name == "E6" and major_minor < (5, 3):
        chosen = E6_SLOT_FLUSH
        notes.append("5.1 and 5.2 flush only the slot's RAM SPTEs on delete/move")
    if major_minor > NEWEST_CHECKED:
        notes.append(
            f"{text} is newer than any kernel kvmgen's model was checked against "
            f"({NEWEST_CHECKED[0]}.{NEWEST_CHECKED[1]}); assuming it behaves as E12"
        )
    if version[2] or "-" in text:
        notes.append("mapped by mainline major.minor; stable and distro backports may differ")
    return KernelChoice(kernel=text, version=version, era=chosen, notes=tuple(notes))


def lookup_era(name: str) -> Era:
    """Return the registry era for ``E0``..``E12`` (case-insensitive)."""
    era = ERAS.get(name.strip().upper())
    if era is None:
        raise UsageError(f"unknown era {name!r}: expected one of {', '.join(ERAS)}")
    return era
