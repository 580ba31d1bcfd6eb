"""JSON traces: text -> located tree -> :class:`Trace`.

A small iterative parser records the line and column of every object, key and
value as it goes, so field errors and ``Event.line`` need no second pass. It is
linear in the input, uses the C string scanner of the standard library, and keeps
its own stack, so nesting depth cannot raise RecursionError. The grammar is strict
RFC 8259 JSON (no NaN, no trailing commas, no comments).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from json import JSONDecodeError
from json.decoder import scanstring
from typing import Any, NoReturn

from kvmgen.errors import TraceError
from kvmgen.trace.records import Trace
from kvmgen.trace.tree import Map, Pos, Seq
from kvmgen.trace.validate import build_trace
from kvmgen.trace.yaml_loader import decode

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS = (("true", True), ("false", False), ("null", None))
_MAX_DIGITS = 200


def load_json(path: str, data: bytes, sha256: str) -> Trace:
    """Parse and validate a JSON trace held in ``data`` (``path`` names it in messages)."""
    root, pos = parse_json(path, data)
    return build_trace(root, pos, path=path, fmt="json", sha256=sha256)


def parse_json(path: str, data: bytes) -> tuple[Any, Pos]:
    """The located tree of a JSON text, and where its root starts."""
    return _Parser(path, decode(path, data)).parse()


class _Parser:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def pos(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def fail(self, message: str, offset: int) -> NoReturn:
        line, column = self.pos(offset)
        raise TraceError(self.path, f"JSON syntax error: {message}", line=line, column=column)

    def found(self, offset: int) -> str:
        if offset >= len(self.text):
            return "the end of the input"
        return repr(self.text[offset])

    def skip(self, offset: int) -> int:
        match = _WS.match(self.text, offset)
        assert match is not None  # the pattern matches the empty string
        return match.end()

    def parse(self) -> tuple[Any, Pos]:
        text = self.text
        i = self.skip(0)
        if i == len(text):
            return None, (1, 1)
        root_pos = self.pos(i)
        # Open containers, and for each open object the key awaiting its value.
        stack: list[Map | Seq] = []
        keys: list[tuple[str, tuple[int, int]]] = []
        while True:
            start = i
            # Read one value starting at i; containers are pushed and filled later.
            char = text[i] if i < len(text) else ""
            if char == "{":
                obj = Map(*self.pos(i))
                i = self.skip(i + 1)
                if text.startswith("}", i):
                    value: Any = obj
                    i += 1
                else:
                    stack.append(obj)
                    i = self.key(i, keys)
                    continue
            elif char == "[":
                arr = Seq(*self.pos(i))
                i = self.skip(i + 1)
                if text.startswith("]", i):
                    value = arr
                    i += 1
                else:
                    stack.append(arr)
                    continue
            else:
                value, i = self.scalar(i)
            value_at = self.pos(start)
            # Attach the finished value, closing every container it completes.
            while True:
                if not stack:
                    i = self.skip(i)
                    if i != len(text):
                        self.fail("extra data after the JSON document", i)
                    return value, root_pos
                parent = stack[-1]
                if isinstance(parent, Map):
                    key, key_at = keys.pop()
                    parent.put(key, value, key_at, value_at)
                    closer = "}"
                else:
                    parent.add(value, value_at)
                    closer = "]"
                i = self.skip(i)
                if text.startswith(",", i):
                    i = self.skip(i + 1)
                    if text.startswith(closer, i):
                        self.fail(f"trailing comma before {closer!r}", i)
                    if closer == "}":
                        i = self.key(i, keys)
                    break
                if text.startswith(closer, i):
                    i += 1
                    value = stack.pop()
                    value_at = (value.line, value.column)
                    continue
                what = "member" if closer == "}" else "element"
                self.fail(f"expected ',' or {closer!r} after an {what}, got {self.found(i)}", i)

    def key(self, i: int, keys: list[tuple[str, tuple[int, int]]]) -> int:
        """Read ``"key" :`` at i; return where its value starts."""
        if not self.text.startswith('"', i):
            self.fail(f"expected a key in double quotes, got {self.found(i)}", i)
        key_at = self.pos(i)
        key, i = self.string(i)
        i = self.skip(i)
        if not self.text.startswith(":", i):
            self.fail(f"expected ':' after a key, got {self.found(i)}", i)
        keys.append((key, key_at))
        return self.skip(i + 1)

    def string(self, i: int) -> tuple[str, int]:
        match = _PLAIN_STRING.match(self.text, i)
        if match is not None:
            return match[1], match.end()
        try:
            value, end = scanstring(self.text, i + 1, True)
        except JSONDecodeError as error:
            self.fail(error.msg.lower(), error.pos)
        # A lone surrogate escape decodes, but could never be written out again.
        if _SURROGATE.search(value):
            self.fail("string holds an unpaired surrogate escape", i)
        return value, end

    def scalar(self, i: int) -> tuple[Any, int]:
        text = self.text
        char = text[i] if i < len(text) else ""
        if char == '"':
            return self.string(i)
        if char == "-" or char.isdigit():
            match = _NUMBER.match(text, i)
            if match is None:
                self.fail(f"invalid number starting {text[i : i + 10]!r}", i)
            literal = match[0]
            if match[1] is None and match[2] is None:
                if len(literal) > _MAX_DIGITS:
                    self.fail(f"integer with {len(literal)} digits is too large", i)
                return int(literal), match.end()
            return float(literal), match.end()
        for word, value in _LITERALS:
            if text.startswith(word, i):
                return value, i + len(word)
        self.fail(f"expected a value, got {self.found(i)}", i)
