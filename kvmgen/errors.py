"""One error family for kvmgen, each error mapped to a documented exit code.

The CLI prints ``str(error)`` as a single line on stderr and exits with
``error.exit_code``; nothing below the CLI prints or exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (model.md section 5)."""

    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    BROKEN_PIPE = 141  # standard output's reader went away (128 + SIGPIPE)
    TERMINATED = 143  # SIGTERM, what CI runners send on cancel or timeout (128 + SIGTERM)


class KvmgenError(Exception):
    """Base class: a problem the user can fix; never a kvmgen bug."""

    exit_code: ExitCode = ExitCode.USAGE


class UsageError(KvmgenError):
    """A command-line option or combination of options that cannot be honoured."""


class TraceError(KvmgenError):
    """Bad trace input, located as precisely as the format allows.

    Renders as ``path:line:col: event N (op): field: message``; parts that are
    unknown are left out, so a header problem reads ``path:3:5: vm.kernel: ...``.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        event: int | None = None,
        op: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = path
        self.message = message
        self.line = line
        self.column = column
        self.event = event
        self.op = op
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where]
        if self.event is not None:
            parts.append(f"event {self.event}" + (f" ({self.op})" if self.op else ""))
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)
