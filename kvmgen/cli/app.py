"""The ``kvmgen`` group, every command registered on it, and ``main``.

Commands live in one module per family and know nothing of the group: they are
added here, so no command module imports this one. Heavy modules (numba, numpy,
rich, the engine) are imported inside the commands that need them, so
``kvmgen --help`` and ``kvmgen eras`` start fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from kvmgen.cli import (
    analysis_cmds,
    compile_cmds,
    gate_cmds,
    gen_cmds,
    import_cmds,
    info_cmds,
    probe_cmds,
    record_cmds,
    run_cmds,
)
from kvmgen.errors import ExitCode, KvmgenError
from kvmgen.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kvmgen")
def cli() -> None:
    """Replay memslot/MMIO traces through a bit-exact model of KVM's MMIO generation.

    Every report shows the era's historical bias and no bias side by side.
    Exit codes: 0 ran and no gate failed, 1 a --fail-on gate failed,
    2 usage or input error, 130 Ctrl-C, 143 SIGTERM (a partial report is
    still written), 141 standard output closed early.
    """


COMMANDS = (
    run_cmds.replay,
    run_cmds.compare,
    compile_cmds.compile_command,
    import_cmds.import_group,
    record_cmds.record,
    gen_cmds.gen_group,
    probe_cmds.probe,
    gate_cmds.check,
    gate_cmds.diff,
    gate_cmds.schema,
    analysis_cmds.forecast,
    analysis_cmds.search,
    analysis_cmds.sweep,
    analysis_cmds.report,
    info_cmds.eras,
    info_cmds.costs,
)
for _command in COMMANDS:
    cli.add_command(_command)


def _quiet_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so exiting does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    from kvmgen import signals
    from kvmgen.cli import process

    process.tune()

    try:
        with signals.sigterm_as_interrupt():
            code = cli.main(
                args=list(argv) if argv is not None else None,
                prog_name="kvmgen",
                standalone_mode=False,
            )
    except KvmgenError as exc:
        if str(exc):
            click.echo(f"kvmgen: error: {exc}", err=True)
        if exc.exit_code == ExitCode.BROKEN_PIPE:
            _quiet_stdout()
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    except (click.Abort, KeyboardInterrupt):
        click.echo(f"kvmgen: {signals.interruption()}", err=True)
        return signals.interrupted_code()
    except BrokenPipeError:
        _quiet_stdout()
        return ExitCode.BROKEN_PIPE
    return int(code or 0)
