"""Human output: rich tables, side by side, and a one-line verdict per era."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from kvmgen.report.document import comparisons, metrics
from kvmgen.report.explain import stale_reason, wrap_reason
from kvmgen.report.labels import run_label
from kvmgen.session import RunOutcome, Session
from kvmgen.stats import OUTCOMES

LIST_LIMIT = 8


def _cycles(value: int) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _label(run: RunOutcome) -> str:
    return run_label(run.spec, separator="\n")


def _signed(value: int) -> str:
    return f"{value:+d}" if value else "0"


def _replay_rows(run: RunOutcome) -> list[tuple[str, str, int | None]]:
    """(label, shown value, raw value for the difference column or None)."""
    r = run.result
    counts = r.access_counts()
    dropped = metrics(run)["sptes_dropped"]
    rows: list[tuple[str, str, int | None]] = [
        ("address spaces", str(run.spec.address_spaces), None),
        ("updates", f"{r.updates:,}", None),
        ("bumps per AS", " / ".join(f"{b:,}" for b in r.bumps), None),
        ("final generation", " / ".join(f"{g:#x}" for g in r.final_generation), None),
        ("wraps", f"{r.wraps_total:,}", r.wraps_total),
        ("  undetected", f"{r.wraps_undetected:,}", r.wraps_undetected),
        ("wrap zaps", f"{r.wrap_zaps:,}", r.wrap_zaps),
        ("memslot-flush zaps", f"{r.flush_zaps:,}", r.flush_zaps),
        ("SPTEs dropped", f"{dropped:,}", dropped),
    ]
    rows += [(name.replace("_", " "), f"{counts[name]:,}", counts[name]) for name in OUTCOMES]
    rows += [
        ("stale hits: harmful", f"{r.stale_harmful:,}", r.stale_harmful),
        ("stale hits: benign", f"{r.stale_benign:,}", r.stale_benign),
        ("invalidation cycles", _cycles(run.costs.invalidation), run.costs.invalidation),
        ("total cycles", _cycles(run.costs.total), run.costs.total),
    ]
    return rows


def _bias_pair(session: Session) -> tuple[int, int] | None:
    """Indices of the historical and no-bias runs when the session is exactly that pair."""
    runs = session.runs
    if len(runs) != 2 or runs[0].spec.era != runs[1].spec.era:
        return None
    names = [run.spec.policies for run in runs]
    if "historical" in names[0] and "none" in names[1]:
        return 0, 1
    if "historical" in names[1] and "none" in names[0]:
        return 1, 0
    return None


def render_runs(session: Session, console: Console) -> None:
    """Metrics down, runs across (``replay``), with the bias's difference when both ran."""
    table = Table(title=f"kvmgen replay: {session.trace.path}", title_justify="left")
    table.add_column("")
    for run in session.runs:
        table.add_column(_label(run), justify="right")
    pair = _bias_pair(session)
    if pair:
        table.add_column("bias\n- none", justify="right")
    columns = [_replay_rows(run) for run in session.runs]
    for i, (name, _, _) in enumerate(columns[0] if columns else []):
        cells = [col[i][1] for col in columns]
        if pair:
            a, b = columns[pair[0]][i][2], columns[pair[1]][i][2]
            cells.append("" if a is None or b is None else _signed(a - b))
        table.add_row(name, *cells)
    console.print(table)


def render_matrix(session: Session, console: Console) -> None:
    """Runs down, metrics across (``compare``)."""
    table = Table(title=f"kvmgen compare: {session.trace.path}", title_justify="left")
    for name in (
        "era",
        "kernel",
        "policy",
        "bias",
        "NAS",
        "wraps",
        "undet.",
        "wrap zaps",
        "flush zaps",
        "dropped",
        "refaults",
        "harmful",
        "benign",
        "cycles",
    ):
        table.add_column(name, justify="left" if name in ("era", "kernel", "policy") else "right")
    for run in session.runs:
        m = metrics(run)
        spec = run.spec
        table.add_row(
            spec.era.name + (f" {spec.era.variant}" if spec.era.variant else ""),
            spec.kernel or "",
            "/".join(spec.policies),
            "-" if spec.bias is None else str(spec.bias),
            str(spec.address_spaces),
            f"{m['wraps']:,}",
            f"{m['undetected_wraps']:,}",
            f"{m['wrap_zaps']:,}",
            f"{m['memslot_flush_zaps']:,}",
            f"{m['sptes_dropped']:,}",
            f"{m['ram_refaults'] + m['mmio_refaults']:,}",
            f"{m['harmful_stale_hits']:,}",
            f"{m['benign_stale_hits']:,}",
            _cycles(m["total_cycles"]),
        )
    console.print(table)
    for skip in session.skipped:
        console.print(f"[yellow]skipped[/] {skip.era}: {skip.reason}")


def render_details(session: Session, console: Console) -> None:
    """Wraps and stale hits, the first few of each run, with their reasons."""
    for run in session.runs:
        r, era = run.result, run.spec.era
        label = _label(run).replace("\n", ", ")
        for warning in run.spec.warnings:
            console.print(f"[yellow]note[/] {label}: {warning}")
        if r.wraps:
            console.print(f"[bold]{label}[/]: wraps")
            for wrap in r.wraps[:LIST_LIMIT]:
                mark = "detected" if wrap.detected else "[red]UNDETECTED[/]"
                console.print(
                    f"  update {wrap.update}, AS {wrap.address_space}: {mark}. "
                    f"{wrap_reason(wrap, era)}"
                )
            if r.wraps_total > LIST_LIMIT:
                console.print(f"  ... {r.wraps_total - LIST_LIMIT:,} more (see --json/--events)")
        if r.stale_hits:
            console.print(f"[bold]{label}[/]: stale hits")
            for hit in r.stale_hits[:LIST_LIMIT]:
                kind = "[red]harmful[/]" if hit.kind == "harmful" else "benign"
                times = f" x{hit.count:,}" if hit.count > 1 else ""
                console.print(
                    f"  update {hit.update}, event {hit.event}: {kind}{times} "
                    f"({hit.source}). {stale_reason(hit, era)}"
                )
            if r.stale_records > LIST_LIMIT:
                console.print(f"  ... {r.stale_records - LIST_LIMIT:,} more records")


def verdicts(session: Session) -> list[str]:
    """One line per era: what the historical bias changes on this trace."""
    lines = []
    for comp in comparisons(session):
        era = comp["era"] + (f" ({comp['kernel']})" if comp["kernel"] else "")
        d = comp["delta"]
        if comp["same_run"]:
            lines.append(f"{era}: the historical policy has no bias here; one run serves both.")
            continue
        parts = [
            f"{_signed(d['wrap_zaps'])} wrap zaps",
            f"{_signed(d['sptes_dropped'])} SPTEs dropped",
            f"{_signed(d['ram_refaults'] + d['mmio_refaults'])} refaults",
            f"{_signed(d['invalidation_cycles'])} invalidation cycles",
        ]
        stale = []
        if d["harmful_stale_hits"] or d["benign_stale_hits"]:
            stale.append(
                f"{_signed(d['harmful_stale_hits'])} harmful / "
                f"{_signed(d['benign_stale_hits'])} benign stale hits"
            )
        if d["undetected_wraps"]:
            stale.append(f"{_signed(d['undetected_wraps'])} undetected wraps")
        tail = "; " + ", ".join(stale) if stale else "; no change in stale hits"
        lines.append(f"{era}: bias {comp['historical_bias']} vs none: {', '.join(parts)}{tail}.")
    for run in session.runs:
        r = run.result
        if r.stale_harmful or r.wraps_undetected:
            lines.append(
                f"{_label(run).replace(chr(10), ', ')}: {r.stale_harmful:,} harmful stale hits, "
                f"{r.wraps_undetected:,} undetected wraps."
            )
    return lines


def render(session: Session, console: Console, *, matrix: bool = False) -> None:
    """The whole human report."""
    (render_matrix if matrix else render_runs)(session, console)
    render_details(session, console)
    for line in verdicts(session):
        console.print(f"[bold]verdict[/] {line}")
