"""``kvmgen eras`` and ``kvmgen costs``: the model's data as tables."""

from __future__ import annotations

import click

from kvmgen.errors import ExitCode


@click.command()
def eras() -> int:
    """The era registry: what each kernel era does."""
    from kvmgen.formatting import era_text
    from kvmgen.model.eras import ERAS
    from kvmgen.report.console import make_console
    from kvmgen.report.layout import STACK, Column, Grid, print_grid, print_prose

    grid = Grid(
        "kvmgen eras (kernel-semantics.md section 9)",
        [
            Column("era", key=True),
            Column("kernels", key=True),
            Column("NAS"),
            Column("bias", right=True),
            Column("gen bits\n(stored)"),
            Column("in\nprogress"),
            Column("wrap zap"),
            Column("memslot\nflush"),
            Column("summary", prose=True),
        ],
    )
    for era in ERAS.values():
        stored = bin(era.stamp_mask).count("1")
        grid.add_row(
            era.name,
            era.versions,
            "/".join(str(n) for n in sorted(era.allowed_address_spaces)),
            str(era.historical_bias),
            f"{era.nominal_width} ({stored})" if era.has_mmio_generation else "-",
            era.bump_scheme.name.lower(),
            f"{era.wrap_zap_scope.name.lower()} ({era.wrap_zap_style.name.lower()})"
            if era.has_mmio_generation
            else "-",
            era.flush_scope.name.lower(),
            era.summary,
            name=era_text(era.name, kernel=None, versions=era.versions),
        )
    console = make_console()
    print_grid(console, grid, narrow=STACK)
    print_prose(
        console, "5.1 and 5.2 (--kernel 5.1/5.2) flush only the slot's RAM SPTEs; --era E6 is 5.3."
    )
    return ExitCode.OK


@click.command()
@click.option(
    "--costs",
    "costs_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Show the unit costs with this YAML file's overrides applied.",
)
def costs(costs_path: str | None) -> int:
    """Unit costs, their cycle equivalents and where each number comes from."""
    from kvmgen.formatting import count, number
    from kvmgen.model.costs import COST_KEYS, SOURCES, CostModel, load_costs
    from kvmgen.report.console import make_console
    from kvmgen.report.layout import STACK, Column, Grid, print_grid

    model = load_costs(costs_path) if costs_path else CostModel()
    grid = Grid(
        "kvmgen unit costs (override with --costs FILE.yaml)",
        [
            Column("name", key=True),
            Column("value", right=True),
            Column("cycles", right=True),
            Column("source", prose=True),
        ],
    )
    for key in COST_KEYS:
        cycles = "" if key == "clock_ghz" else count(round(model.cycles(key)))
        grid.add_row(key, number(getattr(model, key)), cycles, SOURCES[key])
    print_grid(make_console(), grid, narrow=STACK)
    return ExitCode.OK
