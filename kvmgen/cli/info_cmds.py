"""``kvmgen eras`` and ``kvmgen costs``: the model's data as tables."""

from __future__ import annotations

import click

from kvmgen.errors import ExitCode


@click.command()
def eras() -> int:
    """The era registry: what each kernel era does."""
    from rich.table import Table

    from kvmgen.model.eras import ERAS
    from kvmgen.report.console import make_console

    table = Table(title="kvmgen eras (kernel-semantics.md section 9)", title_justify="left")
    for name in (
        "era",
        "kernels",
        "NAS",
        "bias",
        "gen bits (stored)",
        "in progress",
        "wrap zap",
        "memslot flush",
        "summary",
    ):
        table.add_column(name)
    for era in ERAS.values():
        stored = bin(era.stamp_mask).count("1")
        table.add_row(
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
        )
    make_console().print(table)
    click.echo("5.1 and 5.2 (--kernel 5.1/5.2) flush only the slot's RAM SPTEs; --era E6 is 5.3.")
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
    from rich.table import Table

    from kvmgen.model.costs import COST_KEYS, SOURCES, CostModel, load_costs
    from kvmgen.report.console import make_console

    model = load_costs(costs_path) if costs_path else CostModel()
    table = Table(title="kvmgen unit costs (override with --costs FILE.yaml)", title_justify="left")
    for name in ("name", "value", "cycles", "source"):
        table.add_column(name)
    for key in COST_KEYS:
        cycles = "" if key == "clock_ghz" else f"{model.cycles(key):,.0f}"
        table.add_row(key, f"{getattr(model, key):g}", cycles, SOURCES[key])
    make_console().print(table)
    return ExitCode.OK
