"""JSON traces: text -> located tree -> :class:`Trace`.

A small iterative parser records the line and column of every object, key and
value as it goes, so field errors and ``Event.line`` need no second pass. It is
linear in the input, uses the C string scanner of the standard library, and keeps
its own stack, so nesting depth cannot raise RecursionError. The grammar is strict
RFC 8259 JSON (no NaN, no trailing commas, no comments).
"""

from __future__ import annotations

import re
from json import JSONDecodeError
from json.decoder import scanstring  # type: ignore[attr-defined]  # the C scanner, not stubbed
from typing import Any, NoReturn

from kvmgen.errors import TraceError
from kvmgen.trace.records import Trace
from kvmgen.trace.tree import Anchor, Map, Pos, Seq, Source, decode
from kvmgen.trace.validate import build_trace

_WS = re.compile(r"[ \t\n\r]*")
# ws, then the separator or closer that follows a value (missing at a syntax error).
_AFTER = re.compile(r"[ \t\n\r]*([,\]}]?)[ \t\n\r]*")
# The common key: no escapes, with its colon and the whitespace around it.
_KEY = re.compile(r'"([^"\\\x00-\x1f]*)"[ \t\n\r]*:[ \t\n\r]*')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_PLAIN_STRING = re.compile(r'"([^"\\\x00-\x1f]*)"')
_SURROGATE = re.compile("[\ud800-\udfff]")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}
_MAX_DIGITS = 200


def load_json(path: str, data: bytes, sha256: str) -> Trace:
    """Parse and validate a JSON trace held in ``data`` (``path`` names it in messages)."""
    root, pos = parse_json(path, data)
    return build_trace(root, pos, path=path, fmt="json", sha256=sha256)


def parse_json(path: str, data: bytes) -> tuple[Any, Pos]:
    """The located tree of a JSON text, and where its root starts."""
    return _Parser(path, decode(path, data)).parse()


def parse_json_text(path: str, text: str, anchors: tuple[Anchor, ...]) -> tuple[Any, Pos]:
    """The located tree of JSON ``text`` cut from a file: ``anchors`` place it there.

    Positions (and those of syntax errors) are the file's, as if it were read whole.
    """
    return _Parser(path, text, anchors).parse()


class _Parser:
    def __init__(self, path: str, text: str, anchors: tuple[Anchor, ...] = ()) -> None:
        self.path = path
        self.text = text
        self.src = Source(text, anchors)

    def fail(self, message: str, offset: int) -> NoReturn:
        line, column = self.src.pos(offset)
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
        text, src = self.text, self.src
        i = self.skip(0)
        if i == len(text):
            return None, (1, 1)
        root_at = i
        # Open containers, and for each open object the key awaiting its value.
        stack: list[Map | Seq] = []
        keys: list[tuple[str, int]] = []
        while True:
            # Read one value starting at i; a container is pushed and filled later.
            start = i
            char = text[i : i + 1]
            if char == "{":
                i = self.skip(i + 1)
                if text.startswith("}", i):
                    value: Any = Map(start, src)
                    i += 1
                else:
                    stack.append(Map(start, src))
                    i = self.key(i, keys)
                    continue
            elif char == "[":
                i = self.skip(i + 1)
                if text.startswith("]", i):
                    value = Seq(start, src)
                    i += 1
                else:
                    stack.append(Seq(start, src))
                    continue
            elif char == '"':
                match = _PLAIN_STRING.match(text, i)
                if match is not None:
                    value, i = match[1], match.end()
                else:
                    value, i = self.string(i)
            else:
                value, i = self.scalar(i)
            # Attach the finished value, closing every container it completes.
            while True:
                if not stack:
                    i = self.skip(i)
                    if i != len(text):
                        self.fail("extra data after the JSON document", i)
                    return value, src.pos(root_at)
                parent = stack[-1]
                if type(parent) is Map:
                    key, key_at = keys.pop()
                    parent.put(key, value, key_at, start)
                    closer = "}"
                else:
                    assert type(parent) is Seq
                    parent.add(value, start)
                    closer = "]"
                after = _AFTER.match(text, i)
                assert after is not None  # every part of the pattern is optional
                sep = after[1]
                if sep == ",":
                    i = after.end()
                    if text.startswith(closer, i):
                        self.fail(f"trailing comma before {closer!r}", i)
                    if closer == "}":
                        i = self.key(i, keys)
                    break
                if sep == closer:
                    i = after.end(1)
                    value = stack.pop()
                    start = value.at
                    continue
                i = after.start(1)
                what = "a member" if closer == "}" else "an element"
                self.fail(f"expected ',' or {closer!r} after {what}, got {self.found(i)}", i)

    def key(self, i: int, keys: list[tuple[str, int]]) -> int:
        """Read ``"key" :`` at i; return where its value starts."""
        match = _KEY.match(self.text, i)
        if match is not None:
            keys.append((match[1], i))
            return match.end()
        if not self.text.startswith('"', i):
            self.fail(f"expected a key in double quotes, got {self.found(i)}", i)
        key, end = self.string(i)
        end = self.skip(end)
        if not self.text.startswith(":", end):
            self.fail(f"expected ':' after a key, got {self.found(end)}", end)
        keys.append((key, i))
        return self.skip(end + 1)

    def string(self, i: int) -> tuple[str, int]:
        try:
            value, end = scanstring(self.text, i + 1, True)
        except JSONDecodeError as error:
            if "control character" in error.msg:
                bad = repr(self.text[error.pos])
                self.fail(f"control character {bad} in a string (unterminated?)", error.pos)
            if "Unterminated" in error.msg:
                self.fail("unterminated string", i)
            self.fail(error.msg.lower().removesuffix(" at").strip(), error.pos)
        # A lone surrogate escape decodes, but could never be written out again.
        if _SURROGATE.search(value):
            self.fail("string holds an unpaired surrogate escape", i)
        return value, end

    def scalar(self, i: int) -> tuple[Any, int]:
        text = self.text
        char = text[i : i + 1]
        if char and char in "-0123456789":
            match = _NUMBER.match(text, i)
            if match is None:
                self.fail(f"invalid number starting {text[i : i + 10]!r}", i)
            literal = match[0]
            if text[match.end() : match.end() + 1].isdigit():
                self.fail("a number cannot have leading zeros in JSON", i)
            if match[1] is None and match[2] is None:
                if len(literal) > _MAX_DIGITS:
                    self.fail(f"integer with {len(literal)} digits is too large", i)
                return int(literal), match.end()
            return float(literal), match.end()
        word = _LITERALS.get(char)
        if word is not None and text.startswith(word[0], i):
            return word[1], i + len(word[0])
        self.fail(f"expected a value, got {self.found(i)}", i)
