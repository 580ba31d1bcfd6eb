"""``kvmgen report``: one self-contained HTML page per trace, for CI artifacts.

The page holds the run table (one column per era x policy), the verdicts, the
generation timeline as inline SVG, the wraps, zaps and stale hits with their
reasons, the literal-bias windows when a ``literal:B`` policy ran, and the unit
costs. No script, no external stylesheet, font or image: it opens from a file.
"""

from __future__ import annotations

import html
from typing import Any

from kvmgen.formatting import count, cycles, number, plural
from kvmgen.report.labels import run_label
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
.explain{margin:2px 0 4px;color:#33404c}
.plot svg{max-width:100%;height:auto}ul{margin:4px 0 8px 18px;padding:0}li{margin:2px 0}
code{background:#f3f5f7;padding:0 3px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _run_label(run: Any, separator: str = "<br>") -> str:
    """The run label, escaped, its era and policy parts joined by ``separator``."""
    return _e(run_label(run.spec, "\n")).replace("\n", separator)


def _runs_table(session: Any) -> str:
    from kvmgen.report.document import metrics
    from kvmgen.stats import OUTCOMES

    runs = session.runs
    rows: list[tuple[str, list[str], bool]] = [
        ("address spaces", [str(r.spec.address_spaces) for r in runs], False),
        ("updates", [count(r.result.updates) for r in runs], False),
        ("bumps per AS", [" / ".join(count(b) for b in r.result.bumps) for r in runs], False),
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
        rows.append((label, [count(m[key]) for m in found], alarm))
    for i, name in enumerate(OUTCOMES):
        rows.append((name.replace("_", " "), [count(r.result.accesses[i]) for r in runs], False))
    rows.append(("invalidation cycles", [cycles(m["invalidation_cycles"]) for m in found], False))
    rows.append(("total cycles", [cycles(m["total_cycles"]) for m in found], False))
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
    from kvmgen.report.explain import stale_reason, wrap_reason, wrap_zap_notes, zap_reason

    r, spec, era = run.result, run.spec, run.spec.era
    parts = [f"<h3>{_run_label(run, ', ')}</h3>"]
    parts += [f'<div class="note">{_e(w)}</div>' for w in spec.warnings]
    if r.wraps:
        items = "".join(
            f"<li>update {count(w.update)}, AS {w.address_space}: "
            + ("detected" if w.detected else '<span class="bad">UNDETECTED</span>')
            + f". {_e(wrap_reason(w, era, spec))}</li>"
            for w in r.wraps[:LIST_LIMIT]
        )
        more = (
            f"<li>... {count(r.wraps_total - LIST_LIMIT)} more</li>"
            if r.wraps_total > LIST_LIMIT
            else ""
        )
        parts.append(f"<p><b>Wraps</b> ({count(r.wraps_total)})</p><ul>{items}{more}</ul>")
    if r.stale_hits:
        lines = []
        for h in r.stale_hits[:LIST_LIMIT]:
            kind = f'<span class="bad">{h.kind}</span>' if h.kind == "harmful" else h.kind
            times = f" x{count(h.count)}" if h.count > 1 else ""
            race = f", race {h.race}" if h.race else ""
            lines.append(
                f"<li>update {count(h.update)}, event {count(h.event)}: {kind}{times} "
                f"({h.source}{race}). {_e(stale_reason(h, era))}</li>"
            )
        items = "".join(lines)
        more = (
            f"<li>... {plural(r.stale_records - LIST_LIMIT, 'more record')}</li>"
            if r.stale_records > LIST_LIMIT
            else ""
        )
        parts.append(
            f"<p><b>Stale hits</b> ({count(r.stale_harmful)} harmful, "
            f"{count(r.stale_benign)} benign)</p><ul>{items}{more}</ul>"
        )
    zaps = [z for z in r.zap_events if z.kind == "wrap"][:LIST_LIMIT]
    if zaps:
        items = "".join(
            f"<li>update {count(z.update)}: {_e(zap_reason(z, era))}</li>" for z in zaps
        )
        notes = "".join(f'<p class="explain">{_e(n)}</p>' for n in wrap_zap_notes(run))
        parts.append(f"<p><b>Wrap zaps</b> ({count(r.wrap_zaps)})</p>{notes}<ul>{items}</ul>")
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
            f"<h3>{_e(spec.label)} (literal / masked bias {spec.bias})</h3>"
            '<table><tr><th>AS</th><th class="l">from</th><th class="l">until</th>'
            "<th>events</th><th>accesses</th><th>MMIO refaults</th><th>cache hits</th>"
            f"<th>cycles</th><th>extra cycles</th></tr>{rows}</table>"
            "<p>While bit 63 is set every MMIO check fails (refault and re-stamp) and no vCPU "
            "caches MMIO info: what the 2019 patch said the literal -150 would break.</p>"
        )
    return "".join(parts)


def _window_row(w: Any) -> str:
    def pair(lit: int, masked: int | None, show: Any = count) -> str:
        return show(lit) if masked is None else f"{show(lit)} / {show(masked)}"

    start = (
        "creation"
        if w.after_bump == 0
        else f"after bump {count(w.after_bump)} (update {count(w.start_update)}, "
        f"event {count(w.start_event)})"
    )
    end = (
        "end of trace"
        if w.end_event is None
        else f"update {count(w.end_update)}, event {count(w.end_event)}"
    )
    extra = "-" if w.extra_cycles is None else cycles(w.extra_cycles, sign=True)
    cells = [
        str(w.address_space),
        start,
        end,
        count(w.events),
        count(w.accesses),
        pair(w.mmio_refaults, w.masked_mmio_refaults),
        pair(w.cache_hits, w.masked_cache_hits),
        pair(w.cycles, w.masked_cycles, cycles),
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
        spent = count(round(entry["cycles"])) if "cycles" in entry else ""
        lines.append(
            f'<tr><td class="l">{_e(key)}</td><td>{number(entry["value"])}</td><td>{spent}</td>'
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
        "<p class='meta'>Each panel is one run, all on the same x and y scales. Lines: each "
        "address space's truncated generation (AS 1 dashed); triangles: wraps (red X: "
        "undetected); red dashed: wrap zaps; grey dotted: memslot-flush zaps; stars: harmful "
        "stale hits; dots: benign ones; purple: bit 63 at rest (literal bias); ticks and bars "
        "along the bottom: updates.</p>"
        f'<div class="plot">{plot}</div>'
        f"{_literal_section(session)}"
        f"<h2>Details</h2>{details}"
        f"<h2>Unit costs</h2>{_costs_table(session)}"
        "</body></html>\n"
    )
