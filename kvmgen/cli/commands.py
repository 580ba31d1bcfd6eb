"""Import every command module so each registers itself on the ``kvmgen`` group."""

from kvmgen.cli import gate_cmds, info_cmds, replay_cmds, trace_cmds

__all__ = ["gate_cmds", "info_cmds", "replay_cmds", "trace_cmds"]
