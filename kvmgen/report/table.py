"""Human output: the runs side by side, their details explained, a one-line verdict per era.

Tables are :class:`kvmgen.report.layout.Grid` (they fit any width); numbers,
counted nouns and run labels come from :mod:`kvmgen.formatting`.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from kvmgen import formatting
from kvmgen.formatting import count, cycles, hexadecimal, plural, plural_signed, signed
from kvmgen.model.eras import ERAS
from kvmgen.report.document import comparisons, metrics
from kvmgen.report.explain import stale_reason, wrap_reason, wrap_zap_notes
from kvmgen.report.labels import run_label
from kvmgen.report.layout import TRANSPOSE, Column, Grid, print_grid, print_prose
from kvmgen.session import RunOutcome, Session
from kvmgen.stats import OUTCOMES

LIST_LIMIT = 8
CYCLE_ROWS = ("invalidation cycles", "total cycles")


def _replay_rows(run: RunOutcome) -> list[tuple[str, str, int | None]]:
    """(label, shown value, raw value for the difference column or None)."""
    r = run.result
    counts = r.access_counts()
    dropped = metrics(run)["sptes_dropped"]
    rows: list[tuple[str, str, int | None]] = [
        ("address spaces", str(run.spec.address_spaces), None),
        ("updates", count(r.updates), None),
        ("bumps per AS", " / ".join(count(b) for b in r.bumps), None),
        ("final generation", " / ".join(hexadecimal(g) for g in r.final_generation), None),
        ("wraps", count(r.wraps_total), r.wraps_total),
        ("  undetected", count(r.wraps_undetected), r.wraps_undetected),
        ("wrap zaps", count(r.wrap_zaps), r.wrap_zaps),
        ("memslot-flush zaps", count(r.flush_zaps), r.flush_zaps),
        ("SPTEs dropped", count(dropped), dropped),
    ]
    rows += [(name.replace("_", " "), count(counts[name]), counts[name]) for name in OUTCOMES]
    rows += [
        ("stale hits: harmful", count(r.stale_harmful), r.stale_harmful),
        ("stale hits: benign", count(r.stale_benign), r.stale_benign),
        ("invalidation cycles", cycles(run.costs.invalidation), run.costs.invalidation),
        ("total cycles", cycles(run.costs.total), run.costs.total),
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


def replay_grid(session: Session) -> Grid:
    """Metrics down, runs across (``replay``), with the bias's difference when both ran."""
    columns = [Column("", key=True)]
    columns += [Column(escape(run_label(run.spec, "\n")), right=True) for run in session.runs]
    pair = _bias_pair(session)
    if pair:
        columns.append(Column("bias\n- none", right=True))
    grid = Grid(f"kvmgen replay: {escape(str(session.trace.path))}", columns)
    table = [_replay_rows(run) for run in session.runs]
    for i, (name, _, _) in enumerate(table[0] if table else []):
        cells = [name] + [col[i][1] for col in table]
        if pair:
            a, b = table[pair[0]][i][2], table[pair[1]][i][2]
            if a is None or b is None:
                cells.append("")
            else:
                cells.append(cycles(a - b, sign=True) if name in CYCLE_ROWS else signed(a - b))
        grid.add_row(*cells)
    return grid


def render_runs(session: Session, console: Console) -> None:
    """The ``replay`` table (:func:`replay_grid`), split into parts on a narrow console."""
    print_grid(console, replay_grid(session))


MATRIX_COLUMNS = (
    Column("era", key=True),
    Column("kernels", key=True),
    Column("policy", key=True),
    Column("bias", right=True, key=True),
    Column("NAS", right=True),
    Column("wraps", right=True),
    Column("undet.", right=True),
    Column("wrap\nzaps", right=True),
    Column("flush\nzaps", right=True),
    Column("dropped", right=True),
    Column("refaults", right=True),
    Column("harmful", right=True),
    Column("benign", right=True),
    Column("cycles", right=True),
)


def matrix_grid(session: Session) -> Grid:
    """Runs down, metrics across (``compare``); the kernel asked for, else the era's range."""
    grid = Grid(f"kvmgen compare: {escape(str(session.trace.path))}", MATRIX_COLUMNS)
    for run in session.runs:
        m = metrics(run)
        spec = run.spec
        grid.add_row(
            spec.era.name + (f" [{spec.era.variant}]" if spec.era.variant else ""),
            spec.kernel or spec.era.versions,
            "/".join(spec.policies),
            "-"
            if spec.bias is None
            else f"-{spec.bias} mod 2^64"
            if spec.literal
            else str(spec.bias),
            str(spec.address_spaces),
            count(m["wraps"]),
            count(m["undetected_wraps"]),
            count(m["wrap_zaps"]),
            count(m["memslot_flush_zaps"]),
            count(m["sptes_dropped"]),
            count(m["ram_refaults"] + m["mmio_refaults"]),
            count(m["harmful_stale_hits"]),
            count(m["benign_stale_hits"]),
            cycles(m["total_cycles"]),
            name=escape(run_label(spec, "\n")),
        )
    return grid


def render_matrix(session: Session, console: Console) -> None:
    """The ``compare`` table; on a narrow console the runs go across, as in ``replay``."""
    print_grid(console, matrix_grid(session), narrow=TRANSPOSE)
    for skip in session.skipped:
        print_prose(
            console, f"[yellow]skipped[/] {escape(_skipped_era(skip))}: {escape(skip.reason)}"
        )


def _skipped_era(skip: object) -> str:
    name = str(getattr(skip, "era", ""))
    kernel = getattr(skip, "kernel", None)
    era = ERAS.get(name)
    versions = era.versions if era else ""
    return f"{name} ({kernel or versions})" if kernel or versions else name


def render_details(session: Session, console: Console) -> None:
    """Wraps and stale hits, the first few of each run, with their reasons."""
    for run in session.runs:
        r, spec, era = run.result, run.spec, run.spec.era
        label = escape(run_label(spec))
        for warning in spec.warnings:
            print_prose(console, f"[yellow]note[/] {label}: {escape(warning)}")
        if r.wraps:
            print_prose(console, f"[bold]{label}[/]: {plural(r.wraps_total, 'wrap')}")
            for wrap in r.wraps[:LIST_LIMIT]:
                mark = "detected" if wrap.detected else "[red]UNDETECTED[/]"
                print_prose(
                    console,
                    f"update {count(wrap.update)}, AS {wrap.address_space}: {mark}. "
                    f"{escape(wrap_reason(wrap, era, spec))}",
                    indent=2,
                )
            if r.wraps_total > LIST_LIMIT:
                more = count(r.wraps_total - LIST_LIMIT)
                print_prose(console, f"... {more} more (see --json/--events)", indent=2)
        for note in wrap_zap_notes(run):
            print_prose(console, f"[bold]{label}[/]: {escape(note)}")
        if r.stale_hits:
            print_prose(
                console,
                f"[bold]{label}[/]: {plural(r.stale_harmful + r.stale_benign, 'stale hit')}",
            )
            for hit in r.stale_hits[:LIST_LIMIT]:
                kind = "[red]harmful[/]" if hit.kind == "harmful" else "benign"
                times = f" x{count(hit.count)}" if hit.count > 1 else ""
                print_prose(
                    console,
                    f"update {count(hit.update)}, event {count(hit.event)}: {kind}{times} "
                    f"({hit.source}). {escape(stale_reason(hit, era))}",
                    indent=2,
                )
            if r.stale_records > LIST_LIMIT:
                more = plural(r.stale_records - LIST_LIMIT, "more record")
                print_prose(console, f"... {more} (see --json/--events)", indent=2)


def verdicts(session: Session) -> list[str]:
    """One line per era: what the historical bias changes on this trace."""
    lines = []
    for comp in comparisons(session):
        era = formatting.era_text(
            comp["era"],
            kernel=comp["kernel"],
            versions=ERAS[comp["era"]].versions if comp["era"] in ERAS else "?",
            variant=comp["era_variant"],
        )
        d = comp["delta"]
        if comp["same_run"]:
            lines.append(f"{era}: the historical policy has no bias here; one run serves both.")
            continue
        parts = [
            plural_signed(d["wrap_zaps"], "wrap zap"),
            plural_signed(d["sptes_dropped"], "SPTE dropped", "SPTEs dropped"),
            plural_signed(d["ram_refaults"] + d["mmio_refaults"], "refault"),
            f"{cycles(d['invalidation_cycles'], sign=True)} invalidation cycles",
        ]
        stale = []
        if d["harmful_stale_hits"] or d["benign_stale_hits"]:
            stale.append(
                f"{signed(d['harmful_stale_hits'])} harmful and "
                f"{signed(d['benign_stale_hits'])} benign stale hits"
            )
        if d["undetected_wraps"]:
            stale.append(plural_signed(d["undetected_wraps"], "undetected wrap"))
        tail = "; " + ", ".join(stale) if stale else "; no change in stale hits"
        lines.append(f"{era}: bias {comp['historical_bias']} vs none: {', '.join(parts)}{tail}.")
    for run in session.runs:
        r = run.result
        if r.stale_harmful or r.wraps_undetected:
            lines.append(
                f"{run_label(run.spec)}: {plural(r.stale_harmful, 'harmful stale hit')}, "
                f"{plural(r.wraps_undetected, 'undetected wrap')}."
            )
    return lines


def render(session: Session, console: Console, *, matrix: bool = False) -> None:
    """The whole human report."""
    (render_matrix if matrix else render_runs)(session, console)
    render_details(session, console)
    for line in verdicts(session):
        print_prose(console, f"[bold]verdict[/] {escape(line)}")
