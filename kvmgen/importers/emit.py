"""Write trace format version 1 as text: YAML (flow mappings) or line-per-event JSON.

Importers, workload generators and the probe all produce plain dicts (``{"op":
"create", "slot": 0, ...}``) and hand them to :func:`write_trace`, which streams
them out one line each, so a generator can emit 10^8 events without holding
them. The JSON form is one valid JSON document whose events sit one per line
(``grep``/``head`` friendly); the YAML form looks like the hand-written samples.
Both load with :func:`kvmgen.inputs.open_trace` to the same trace.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Protocol, runtime_checkable

from kvmgen.errors import UsageError

# Keys written in hex (addresses, sizes, generations): 0x.. in YAML, "0x.." in JSON.
HEX_KEYS = frozenset({"gfn", "pages", "gpa", "kvm_gen", "spte_gen", "gen", "used_pages"})
FORMATS = ("yaml", "json", "jsonl")
# Keys whose values are identifiers, written unquoted in YAML (op: create).
BARE_KEYS = frozenset({"op", "kind", "window", "outcome", "event"})
_BARE = re.compile(r"[a-z_][a-z0-9_]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


@runtime_checkable
class WritesItself(Protocol):
    """Events that write their own text (:class:`kvmgen.importers.bulk.EventRows`)."""

    def write_items(self, out: IO[str], fmt: str, lead: tuple[str, str, str]) -> int:
        """Write each event led by ``lead[0]`` (the first) or ``lead[1]``, then ``lead[2]``."""


Events = Iterable[Mapping[str, Any]] | WritesItself


def format_for(path: str, fmt: str | None) -> str:
    """The output format: ``fmt`` if given, else from the suffix (.json, .jsonl), else YAML."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r}: expected {', '.join(FORMATS)}")
        return fmt
    lowered = path.lower()
    if lowered.endswith(".jsonl"):
        return "jsonl"
    return "json" if lowered.endswith(".json") else "yaml"


def _scalar(key: str | None, value: Any, fmt: str) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        if key in HEX_KEYS and fmt != "jsonl":
            return f'"{value:#x}"' if fmt == "json" else f"{value:#x}"
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key}: a trace cannot hold {value!r}")
        text = repr(value)
        if "e" in text or "E" in text:
            # YAML 1.1 reads 1e-05 as a string: write the digits out.
            text = f"{value:.12f}".rstrip("0")
            text += "0" if text.endswith(".") else ""
        return text
    if isinstance(value, str):
        if (
            fmt == "yaml"
            and key in BARE_KEYS
            and _BARE.fullmatch(value)
            and value not in _YAML_WORDS
        ):
            return value
        return json.dumps(value)
    if isinstance(value, Mapping):
        return mapping_text(value, fmt)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(key, item, fmt) for item in value) + "]"
    raise TypeError(f"{key}: cannot write a {type(value).__name__} into a trace")


def key_text(key: str, fmt: str) -> str:
    """How ``fmt`` writes a mapping's key, with the ``": "`` after it."""
    return f"{key if fmt == 'yaml' else json.dumps(key)}: "


def value_text(key: str, value: Any, fmt: str) -> str:
    """How ``fmt`` writes ``value`` under ``key`` (hex for addresses, bare words in YAML)."""
    return _scalar(key, value, fmt)


def mapping_text(item: Mapping[str, Any], fmt: str) -> str:
    """How ``fmt`` writes one mapping on one line (``{key: value, ...}``)."""
    return "{" + ", ".join(key_text(k, fmt) + _scalar(k, v, fmt) for k, v in item.items()) + "}"


def _yaml_list(out: IO[str], key: str, items: Events, indent: str) -> int:
    out.write(f"{indent}{key}:")
    if isinstance(items, WritesItself):
        count = items.write_items(out, "yaml", (f"\n{indent}  - ", f"{indent}  - ", "\n"))
        if count == 0:
            out.write(" []\n")
        return count
    count = 0
    for item in items:
        out.write(("\n" if count == 0 else "") + f"{indent}  - {mapping_text(item, 'yaml')}\n")
        count += 1
    if count == 0:
        out.write(" []\n")
    return count


def _json_list(out: IO[str], key: str, items: Events, last: bool) -> int:
    out.write(f' "{key}": [')
    if isinstance(items, WritesItself):
        count = items.write_items(out, "json", ("\n  ", ",\n  ", ""))
    else:
        count = 0
        for item in items:
            out.write(("\n  " if count == 0 else ",\n  ") + mapping_text(item, "json"))
            count += 1
    out.write(("\n ]" if count else "]") + ("}\n" if last else ",\n"))
    return count


def write_trace(
    out: IO[str],
    fmt: str,
    events: Events,
    *,
    vm: Mapping[str, Any] | None = None,
    observations: Iterable[Mapping[str, Any]] | None = None,
    comments: Sequence[str] = (),
) -> int:
    """Write one trace document to ``out``; return the number of events written.

    ``vm`` is the header (``slots`` may be a list of slot mappings); ``comments``
    become ``#`` lines at the top of a YAML trace (JSON has no comments: they are
    dropped). ``events`` is consumed lazily, or writes its own text
    (:class:`WritesItself`). ``jsonl`` is the JSON Lines form (a
    header line, then one event per line) that kvmgen streams without loading it
    whole; it has no place for observations.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}: expected {', '.join(FORMATS)}")
    header = dict(vm or {})
    slots = header.pop("slots", None)
    if fmt == "jsonl":
        if observations is not None:
            raise UsageError("a JSON Lines trace cannot hold observations: write yaml or json")
        if slots:
            header["slots"] = list(slots)
        top: dict[str, Any] = {"kvmgen": 1, **({"vm": header} if header else {})}
        out.write(mapping_text(top, fmt) + "\n")
        if isinstance(events, WritesItself):
            return events.write_items(out, fmt, ("", "", "\n"))
        count = 0
        for item in events:
            out.write(mapping_text(item, fmt) + "\n")
            count += 1
        return count
    if fmt == "yaml":
        for comment in comments:
            for line in comment.splitlines() or [""]:
                out.write(f"# {line}".rstrip() + "\n")
        out.write("kvmgen: 1\n")
        if header or slots:
            out.write("vm:\n")
            for key, value in header.items():
                out.write(f"  {key}: {_scalar(key, value, 'yaml')}\n")
            if slots:
                _yaml_list(out, "slots", slots, "  ")
        count = _yaml_list(out, "events", events, "")
        if observations is not None:
            _yaml_list(out, "observations", observations, "")
        return count
    out.write('{"kvmgen": 1,\n')
    if header or slots:
        if slots:
            header["slots"] = list(slots)
        out.write(f' "vm": {mapping_text(header, "json")},\n')
    count = _json_list(out, "events", events, last=observations is None)
    if observations is not None:
        _json_list(out, "observations", observations, last=True)
    return count
