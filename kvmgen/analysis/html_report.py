"""``kvmgen report``: one self-contained HTML page per trace, for CI artifacts.

The page holds the run table (one column per era x policy), the verdicts, the
generation timeline as inline SVG, the wraps, zaps and stale hits with their
reasons, the literal-bias windows when a ``literal:B`` policy ran, and the unit
costs. No script, no external stylesheet, font or image: it opens from a file.
"""

from __future__ import annotations

import html
from typing import Any

from kvmgen.report.labels import bias_text, era_text
from kvmgen.version import __version__

LIST_LIMIT = 25

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1400px;padding:0 16px;color:#1d2329}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ccd}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #cfd6de;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#eef2f6}td.l,th.l{text-align:left}
.meta{color:#5a6570;font-size:12.5px}.bad{color:#b71c1c;font-weight:600}
.note{background:#fff8e1;border-left:3px solid #f0b400;padding:4px 8px;margin:4px 0}
.verdict{background:#eef6ee;border-left:3px solid #3c8d40;padding:4px 8px;margin:4px 0}
.plot svg{max-width:100%;height:auto}ul{margin:4px 0 8px 18px;padding:0}li{margin:2px 0}
code{background:#f3f5f7;padding:0 3px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cycles(value: float) -> str:
    from kvmgen.analysis.literal import fmt_cycles

    return fmt_cycles(value)


def _run_label(run: Any) -> str:
    spec = run.spec
    return f"{_e(era_text(spec))}<br>{_e('/'.join(spec.policies))}, {_e(bias_text(spec))}"


def _runs_table(session: Any) -> str:
    from kvmgen.report.document import metrics
    from kvmgen.stats import OUTCOMES

    runs = session.runs
    rows: list[tuple[str, list[str], bool]] = [
        ("address spaces", [str(r.spec.address_spaces) for r in runs], False),
        ("updates", [f"{r.result.updates:,}" for r in runs], False),
        ("bumps per AS", [" / ".join(f"{b:,}" for b in r.result.bumps) for r in runs], False),
        (
            "final generation",
            [" / ".join(f"{g:#x}" for g in r.result.final_generation) for r in runs],
            False,
        ),
    ]
    found = [metrics(r) for r in runs]
    for key, label, alarm in (
        ("wraps", "wraps", False),
        ("undetected_wraps", "undetected wraps", True),
        ("wrap_zaps", "wrap zaps", False),
        ("memslot_flush_zaps", "memslot-flush zaps", False),
        ("sptes_dropped", "SPTEs dropped", False),
        ("harmful_stale_hits", "harmful stale hits", True),
        ("benign_stale_hits", "benign stale hits", False),
    ):
        rows.append((label, [f"{m[key]:,}" for m in found], alarm))
    for i, name in enumerate(OUTCOMES):
        rows.append((name.replace("_", " "), [f"{r.result.accesses[i]:,}" for r in runs], False))
    rows.append(("invalidation cycles", [_cycles(m["invalidation_cycles"]) for m in found], False))
    rows.append(("total cycles", [_cycles(m["total_cycles"]) for m in found], False))
    head = "".join(f"<th>{_run_label(r)}</th>" for r in runs)
    body = []
    for label, cells, alarm in rows:
        tds = "".join(
            f'<td class="bad">{_e(c)}</td>' if alarm and c not in ("0", "") else f"<td>{_e(c)}</td>"
            for c in cells
        )
        body.append(f'<tr><th class="l">{_e(label)}</th>{tds}</tr>')
    return f'<table><tr><th class="l"></th>{head}</tr>{"".join(body)}</table>'


def _details(run: Any) -> str:
    from kvmgen.report.explain import stale_reason, wrap_reason, zap_reason

    r, era = run.result, run.spec.era
    label = _run_label(run).replace("<br>", ", ")
    parts = [f"<h3>{label}</h3>"]
    parts += [f'<div class="note">{_e(w)}</div>' for w in run.spec.warnings]
    if r.wraps:
        items = "".join(
            f"<li>update {w.update}, AS {w.address_space}: "
            + ("detected" if w.detected else '<span class="bad">UNDETECTED</span>')
            + f". {_e(wrap_reason(w, era))}</li>"
            for w in r.wraps[:LIST_LIMIT]
        )
        more = (
            f"<li>... {r.wraps_total - LIST_LIMIT:,} more</li>"
            if r.wraps_total > LIST_LIMIT
            else ""
        )
        parts.append(f"<p><b>Wraps</b> ({r.wraps_total:,})</p><ul>{items}{more}</ul>")
    if r.stale_hits:
        lines = []
        for h in r.stale_hits[:LIST_LIMIT]:
            kind = f'<span class="bad">{h.kind}</span>' if h.kind == "harmful" else h.kind
            times = f" x{h.count:,}" if h.count > 1 else ""
            race = f", race {h.race}" if h.race else ""
            lines.append(
                f"<li>update {h.update}, event {h.event}: {kind}{times} ({h.source}{race}). "
                f"{_e(stale_reason(h, era))}</li>"
            )
        items = "".join(lines)
        more = (
            f"<li>... {r.stale_records - LIST_LIMIT:,} more records</li>"
            if r.stale_records > LIST_LIMIT
            else ""
        )
        parts.append(
            f"<p><b>Stale hits</b> ({r.stale_harmful:,} harmful, {r.stale_benign:,} benign)</p>"
            f"<ul>{items}{more}</ul>"
        )
    zaps = [z for z in r.zap_events if z.kind == "wrap"][:LIST_LIMIT]
    if zaps:
        items = "".join(f"<li>update {z.update}: {_e(zap_reason(z, era))}</li>" for z in zaps)
        parts.append(f"<p><b>Wrap zaps</b> ({r.wrap_zaps:,})</p><ul>{items}</ul>")
    if not (r.wraps or r.stale_hits or zaps):
        parts.append("<p>No wrap, no wrap zap, no stale hit.</p>")
    return "".join(parts)


def _literal_section(session: Any) -> str:
    from kvmgen.analysis.literal import session_windows

    found = session_windows(session)
    if not found:
        return ""
    parts = ["<h2>Literal bias: bit 63 at rest</h2>"]
    for run, wins in found:
        spec = run.spec
        rows = "".join(_window_row(w) for w in wins)
        parts.append(
            f"<h3>{spec.era.name} literal:{spec.bias} (literal / masked bias {spec.bias})</h3>"
            '<table><tr><th>AS</th><th class="l">from</th><th class="l">until</th>'
            "<th>events</th><th>accesses</th><th>MMIO refaults</th><th>cache hits</th>"
            f"<th>cycles</th><th>extra cycles</th></tr>{rows}</table>"
            "<p>While bit 63 is set every MMIO check fails (refault and re-stamp) and no vCPU "
            "caches MMIO info: what the 2019 patch said the literal -150 would break.</p>"
        )
    return "".join(parts)


def _window_row(w: Any) -> str:
    from kvmgen.analysis.literal import fmt_cycles

    def pair(lit: int, masked: int | None) -> str:
        return f"{lit:,}" if masked is None else f"{lit:,} / {masked:,}"

    start = (
        "creation"
        if w.after_bump == 0
        else f"after bump {w.after_bump:,} (update {w.start_update:,}, event {w.start_event})"
    )
    end = "end of trace" if w.end_event is None else f"update {w.end_update:,}, event {w.end_event}"
    cycles = fmt_cycles(w.cycles)
    if w.masked_cycles is not None:
        cycles += f" / {fmt_cycles(w.masked_cycles)}"
    extra = "-" if w.extra_cycles is None else f"{w.extra_cycles:+,}"
    cells = [
        str(w.address_space),
        start,
        end,
        f"{w.events:,}",
        f"{w.accesses:,}",
        pair(w.mmio_refaults, w.masked_mmio_refaults),
        pair(w.cache_hits, w.masked_cache_hits),
        cycles,
        extra,
    ]
    tds = "".join(
        f'<td class="l">{_e(c)}</td>' if i in (1, 2) else f"<td>{_e(c)}</td>"
        for i, c in enumerate(cells)
    )
    return f"<tr>{tds}</tr>"


def _costs_table(session: Any) -> str:
    from kvmgen.report.document import cost_model_dict

    lines = []
    for key, entry in cost_model_dict(session).items():
        cycles = f"{entry['cycles']:,.0f}" if "cycles" in entry else ""
        lines.append(
            f'<tr><td class="l">{_e(key)}</td><td>{entry["value"]:g}</td><td>{cycles}</td>'
            f'<td class="l">{_e(entry["source"])}</td></tr>'
        )
    rows = "".join(lines)
    return (
        '<table><tr><th class="l">unit cost</th><th>value</th><th>cycles</th>'
        f'<th class="l">source</th></tr>{rows}</table>'
    )


def render_html(session: Any, *, command: str | None = None) -> str:
    """The whole page for a replay session."""
    from kvmgen.analysis.plot import svg_text, timeline_figure
    from kvmgen.report.table import verdicts

    trace = session.trace
    plot = svg_text(timeline_figure(session))
    verdict = "".join(f'<div class="verdict">{_e(line)}</div>' for line in verdicts(session))
    skipped = "".join(
        f'<div class="note">skipped {_e(s.era)}: {_e(s.reason)}</div>' for s in session.skipped
    )
    details = "".join(_details(run) for run in session.runs)
    events = len(getattr(trace, "events", ())) or getattr(trace, "event_count", 0)
    reproduce = f"<p class='meta'>Reproduce: <code>{_e(command)}</code></p>" if command else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>kvmgen report: {_e(trace.path)}</title><style>{_CSS}</style></head><body>"
        f"<h1>kvmgen report: {_e(trace.path)}</h1>"
        f'<p class="meta">kvmgen {_e(__version__)} &middot; {events:,} events &middot; '
        f"sha256 {_e(getattr(trace, 'sha256', ''))}</p>{reproduce}"
        f"<h2>Verdict</h2>{verdict or '<p>No historical-vs-none pair to compare.</p>'}{skipped}"
        f"<h2>Runs</h2>{_runs_table(session)}"
        "<h2>Generation timeline</h2>"
        "<p class='meta'>Each panel is one run. Lines: each address space's truncated "
        "generation; triangles: wraps (red X: undetected); red dashed: wrap zaps; grey dotted: "
        "memslot-flush zaps; stars: harmful stale hits; dots: benign ones; purple: bit 63 at "
        "rest (literal bias); ticks and bars along the bottom: updates.</p>"
        f'<div class="plot">{plot}</div>'
        f"{_literal_section(session)}"
        f"<h2>Details</h2>{details}"
        f"<h2>Unit costs</h2>{_costs_table(session)}"
        "</body></html>\n"
    )
