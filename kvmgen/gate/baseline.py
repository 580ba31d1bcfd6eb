"""Baseline files: the JSON reports of an earlier run, one per trace, with the trace's path.

``kvmgen check --save-baseline FILE`` writes::

    {"kvmgen_baseline": 1, "generator": "kvmgen 0.1.0",
     "traces": [{"path": "traces/a.yaml", "report": {<the --json report>}}, ...]}

Each report is byte-for-byte what ``kvmgen replay --json`` writes for the same
options, so it carries its ``kvmgen_report`` version and the trace's content
sha256. The path is the trace's name on the command line: it is what lets a
trace whose content changed be recognised (and reported as changed) rather than
treated as a new trace. A bare report (``replay --json``) or a JSON array of
reports also reads as a baseline; those are matched by content only, except
that one report against one trace is always paired.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvmgen.errors import UsageError
from kvmgen.gate.metrics import ReportFormatError, lookup, report_runs
from kvmgen.report.document import REPORT_VERSION
from kvmgen.version import __version__

BASELINE_VERSION = 1
"""Version of the baseline wrapper (``kvmgen schema baseline``); the reports inside
carry their own ``kvmgen_report`` version. Bumped when a wrapper key is removed or
changes meaning."""


@dataclass(frozen=True)
class TraceReport:
    """One report of a baseline (or of a ``diff`` side) and the trace path it was made from."""

    path: str | None
    sha256: str | None
    version: object
    document: dict[str, Any]

    @property
    def comparable(self) -> bool:
        """True when this kvmgen reads this report version."""
        return self.version == REPORT_VERSION

    @property
    def name(self) -> str:
        """The path, else a short content id."""
        if self.path:
            return self.path
        return f"sha256:{self.sha256[:12]}" if self.sha256 else "(unnamed trace)"


def _optional_str(document: dict[str, Any], *path: str) -> str | None:
    try:
        value = lookup(document, *path)
    except ReportFormatError:
        return None
    return value if isinstance(value, str) else None


def parse_report(document: Any, where: str, path: str | None = None) -> TraceReport:
    """Check one report document enough to compare it; errors name ``where``."""
    if not isinstance(document, dict):
        raise UsageError(f"{where}: expected a kvmgen report (a JSON object)")
    if "kvmgen_check" in document:
        raise UsageError(
            f"{where}: this is a `kvmgen check --json` result, not a report; "
            "write baselines with `kvmgen check --save-baseline`"
        )
    if "kvmgen_report" not in document:
        raise UsageError(f"{where}: not a kvmgen report (no 'kvmgen_report' key)")
    report = TraceReport(
        path=path if path is not None else _optional_str(document, "trace", "path"),
        sha256=_optional_str(document, "trace", "sha256"),
        version=document["kvmgen_report"],
        document=document,
    )
    if report.comparable:
        try:
            if report.sha256 is None:
                raise ReportFormatError("trace.sha256 must be a string")
            report_runs(document)
        except ReportFormatError as exc:
            raise UsageError(f"{where}: not a valid kvmgen report: {exc}") from None
    return report


def _parse_wrapper(data: dict[str, Any], where: str) -> list[TraceReport]:
    version = data["kvmgen_baseline"]
    if version != BASELINE_VERSION:
        raise UsageError(
            f"{where}: baseline file version {version!r}; this kvmgen reads version "
            f"{BASELINE_VERSION}: save a new baseline"
        )
    entries = data.get("traces")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{where}: 'traces' must be a non-empty list")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UsageError(f"{where}: traces[{i}]: expected {{path, report}}")
        out.append(parse_report(entry.get("report"), f"{where}: traces[{i}]", entry["path"]))
    return out


def read_reports(path: str, what: str = "baseline") -> list[TraceReport]:
    """Every report in a baseline file, a report file, or a JSON array of reports."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{what} {path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if isinstance(data, dict) and "kvmgen_baseline" in data:
        return _parse_wrapper(data, path)
    if isinstance(data, list):
        if not data:
            raise UsageError(f"{path}: an empty list: no reports")
        return [parse_report(doc, f"{path}: report {i}") for i, doc in enumerate(data)]
    return [parse_report(data, path)]


def baseline_document(traces: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The baseline wrapper for (path, report) pairs."""
    return {
        "kvmgen_baseline": BASELINE_VERSION,
        "generator": f"kvmgen {__version__}",
        "traces": [{"path": path, "report": report} for path, report in traces],
    }


def baseline_bytes(traces: Sequence[tuple[str, dict[str, Any]]]) -> bytes:
    """A baseline file's bytes (two-space indent, fixed key order, trailing newline)."""
    from kvmgen.report.json_report import dumps

    return dumps(baseline_document(traces))


def baseline_schema() -> dict[str, Any]:
    """JSON Schema of a baseline file, with the report schema embedded under ``$defs``."""
    from kvmgen.report.json_report import schema

    report = {k: v for k, v in schema().items() if k not in ("$schema", "$id", "$defs")}
    defs = dict(schema().get("$defs", {}))
    defs["report"] = report
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://kvmgen.invalid/schema/baseline-{BASELINE_VERSION}.json",
        "title": f"kvmgen baseline, version {BASELINE_VERSION}",
        "description": "Output of kvmgen check --save-baseline: one kvmgen report per trace, "
        "with the trace's path as given on the command line.",
        "type": "object",
        "required": ["kvmgen_baseline", "generator", "traces"],
        "additionalProperties": False,
        "$defs": defs,
        "properties": {
            "kvmgen_baseline": {"const": BASELINE_VERSION},
            "generator": {"type": "string"},
            "traces": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["path", "report"],
                    "additionalProperties": False,
                    "properties": {
                        "path": {"type": "string"},
                        "report": {"$ref": "#/$defs/report"},
                    },
                },
            },
        },
    }


@dataclass(frozen=True)
class Match:
    """How a trace found its report on the other side."""

    report: TraceReport
    by: str  # "path", "sha256" (same content under another or no path), or "only" (1 vs 1)


def find_report(
    reports: Sequence[TraceReport], path: str | None, sha256: str | None, *, alone: bool = False
) -> Match | None:
    """The report for a trace: same path, else same content.

    With ``alone`` (one trace on this side), a lone report that names no path (a
    bare ``replay --json`` report) is paired with it whatever its content.
    """
    if path is not None:
        for report in reports:
            if report.path == path:
                return Match(report, "path")
    if sha256 is not None:
        for report in reports:
            if report.sha256 == sha256 and report.comparable:
                return Match(report, "sha256")
    if alone and len(reports) == 1 and reports[0].path is None:
        return Match(reports[0], "only")
    return None
