"""JSON output: the report document and the per-event JSON Lines stream."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import orjson


def dumps(document: dict[str, Any]) -> bytes:
    """Serialize a report: fixed key order, two-space indent, trailing newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def dumps_line(record: dict[str, Any]) -> bytes:
    """One JSON Lines record."""
    return orjson.dumps(record) + b"\n"


def schema() -> dict[str, Any]:
    """The JSON Schema every report validates against (shipped in the package)."""
    text = resources.files("kvmgen.schema").joinpath("report.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
