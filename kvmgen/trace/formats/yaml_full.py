"""YAML traces: PyYAML's event stream -> located tree -> :class:`Trace`.

The tree is built from parser events rather than composed nodes or constructed
objects: events carry the position of every scalar and collection, show every
anchor and alias (rejected where they appear, so an alias bomb is never expanded),
and need no recursion however deeply the input nests. Scalars are typed here, not
by PyYAML's constructor, so that only the core tags are honoured and integers
follow kvmgen's rules (decimal or 0x-hex) rather than YAML 1.1's octal, binary and
sexagesimal forms.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

import yaml

from kvmgen.errors import TraceError
from kvmgen.trace.records import Trace
from kvmgen.trace.tree import NOWHERE, Map, Pos, Seq, decode, offset_pos
from kvmgen.trace.validate import build_trace

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_CORE + name for name in ("str", "int", "float", "bool", "null")}
_MAP_TAG = _CORE + "map"
_SEQ_TAG = _CORE + "seq"
_CORE_ONLY = "only the core tags !!str, !!int, !!float, !!bool, !!null, !!map and !!seq"
_INT_TEXT = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|0|[1-9][0-9]*)")
_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}
_MAX_INT_CHARS = 200
_PLAIN_CACHE = 4096


def load_yaml(path: str, data: bytes, sha256: str) -> Trace:
    """Parse and validate a YAML trace held in ``data`` (``path`` names it in messages)."""
    root, pos = parse_yaml(path, data)
    return build_trace(root, pos, path=path, fmt="yaml", sha256=sha256)


def parse_yaml(path: str, data: bytes) -> tuple[Any, Pos]:
    """The located tree of a one-document YAML text, and where its root starts."""
    return parse_yaml_text(path, decode(path, data))


def parse_yaml_text(path: str, text: str, first_line: int = 1) -> tuple[Any, Pos]:
    """The located tree of YAML ``text`` whose first line is line ``first_line`` of the file.

    Positions (and those of syntax errors) are the file's: a line cut from a
    file reads as it does in the whole file.
    """
    loader = None
    base = first_line - 1
    try:
        loader = _Loader(text)
        return _Builder(path, base).build(loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        parts = (error.problem, f"({error.context})" if error.context else None)
        reason = " ".join(part for part in parts if part) or "invalid YAML"
        _fail(path, f"YAML syntax error: {reason}", _mark_pos(mark, base) if mark else NOWHERE)
    except yaml.reader.ReaderError as error:
        # libyaml counts this position in UTF-8 bytes, the pure-Python reader in characters.
        prefix = text.encode("utf-8")[: error.position].decode("utf-8", "ignore")
        offset = error.position if issubclass(_Loader, yaml.reader.Reader) else len(prefix)
        line, column = offset_pos(text, offset)
        _fail(
            path,
            f"YAML syntax error: character {error.character:#06x} is not allowed",
            (None if line is None else line + base, column),
        )
    except yaml.YAMLError as error:
        _fail(path, f"YAML syntax error: {' '.join(str(error).split())}", NOWHERE)
    finally:
        if loader is not None:
            loader.dispose()


def _fail(path: str, message: str, pos: Pos) -> NoReturn:
    raise TraceError(path, message, line=pos[0], column=pos[1])


def _mark_pos(mark: Any, base: int = 0) -> tuple[int, int]:
    return mark.line + 1 + base, mark.column + 1


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


class _Builder:
    """Turns parser events into Map/Seq/scalars, rejecting what a trace may not use."""

    def __init__(self, path: str, base: int = 0) -> None:
        self.path = path
        self.base = base  # lines before the text in its file

    def fail(self, message: str, event: Any) -> NoReturn:
        _fail(self.path, message, _mark_pos(event.start_mark, self.base))

    def build(self, loader: Any) -> tuple[Any, Pos]:
        root: Any = None
        root_pos: Pos = (1, 1)
        documents = 0
        # Plain scalars repeat a lot ("access", "gfn", 0, ...): resolve each text once.
        plain: dict[str, tuple[Any, str | None]] = {}
        # Open collections; for a mapping, the pending key (None until its key is read).
        stack: list[list[Any]] = []
        get_event = loader.get_event
        while True:
            event = get_event()
            kind = type(event)
            raw: str | None = None
            if kind is yaml.ScalarEvent:
                if event.anchor is not None:
                    self.fail(f"anchor &{event.anchor}: anchors and aliases are not allowed", event)
                mark = event.start_mark
                pos = (mark.line + 1 + self.base, mark.column + 1)
                if event.tag is not None:
                    value, raw = self.scalar(event)
                elif event.implicit[0]:
                    text = event.value
                    hit = plain.get(text)
                    if hit is None:
                        hit = self.scalar(event)
                        if len(plain) < _PLAIN_CACHE:
                            plain[text] = hit
                    value, raw = hit
                else:
                    value = event.value
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()[0]
                pos = value.at
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if event.anchor is not None:
                    self.fail(f"anchor &{event.anchor}: anchors and aliases are not allowed", event)
                if kind is yaml.MappingStartEvent:
                    self.check_tag(event, _MAP_TAG, "mapping")
                    node: Map | Seq = Map(_mark_pos(event.start_mark, self.base))
                else:
                    self.check_tag(event, _SEQ_TAG, "sequence")
                    node = Seq(_mark_pos(event.start_mark, self.base))
                if stack and stack[-1][1] is None and type(stack[-1][0]) is Map:
                    self.fail("mapping keys must be plain scalars, not collections", event)
                stack.append([node, None])
                continue
            elif kind is yaml.AliasEvent:
                self.fail(f"alias *{event.anchor}: aliases are not allowed", event)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self.fail("a trace is one YAML document; found a second one", event)
                continue
            elif kind is yaml.StreamStartEvent or kind is yaml.DocumentEndEvent:
                continue
            else:  # the stream's end (a parser may also answer None past it)
                return root, root_pos
            if not stack:
                root, root_pos = value, pos
                continue
            frame = stack[-1]
            parent = frame[0]
            if type(parent) is Seq:
                parent.add(value, pos)
            elif frame[1] is None:
                frame[1] = (value if isinstance(value, str) else raw, pos)
            else:
                key, key_at = frame[1]
                parent.put(key, value, key_at, pos, raw)
                frame[1] = None

    def check_tag(self, event: Any, allowed: str, kind: str) -> None:
        tag = event.tag
        if tag is None or tag == allowed:
            return
        if tag in (_MAP_TAG, _SEQ_TAG):
            self.fail(f"tag {_show_tag(tag)} does not fit a {kind}", event)
        self.fail(f"tag {_show_tag(tag)} is not allowed: {_CORE_ONLY}", event)

    def scalar(self, event: Any) -> tuple[Any, str | None]:
        """The value of a scalar and, unless it is a string, its source text."""
        text = event.value
        tag = event.tag
        if tag is not None:
            if tag not in _SCALAR_TAGS:
                self.fail(f"tag {_show_tag(tag)} is not allowed: {_CORE_ONLY}", event)
        elif event.implicit[0]:
            tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
        else:
            tag = _CORE + "str"
        if tag == _CORE + "str":
            return text, None
        if tag == _CORE + "null":
            return None, text
        if tag == _CORE + "bool":
            lowered = text.lower()
            if lowered not in _TRUE and lowered not in _FALSE:
                self.fail(f"invalid !!bool value {text!r}", event)
            return lowered in _TRUE, text
        if tag == _CORE + "int":
            # Other YAML 1.1 integer forms (010, 0b1, 1_000, 1:30) stay text, so
            # the validator rejects them instead of reading 010 as 8.
            if _INT_TEXT.fullmatch(text) and len(text) <= _MAX_INT_CHARS:
                return int(text, 0) if "x" in text.lower() else int(text), text
            return text, text
        if tag == _CORE + "float":
            return _float(text), text
        # Timestamps, merge keys and the like are just text in a trace.
        return text, text


def _float(text: str) -> float | str:
    cleaned = text.replace("_", "").lower()
    if cleaned in (".inf", "+.inf"):
        return math.inf
    if cleaned == "-.inf":
        return -math.inf
    if cleaned == ".nan":
        return math.nan
    try:
        return float(cleaned)
    except ValueError:
        return text
