"""Import every command module so each registers itself on the ``kvmgen`` group."""

from kvmgen.cli import analysis_cmds, gate_cmds, import_cmds, info_cmds, replay_cmds, trace_cmds

__all__ = ["analysis_cmds", "gate_cmds", "import_cmds", "info_cmds", "replay_cmds", "trace_cmds"]
