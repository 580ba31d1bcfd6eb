"""Import every command module so each registers itself on the ``kvmgen`` group."""

from kvmgen.cli import info_cmds, replay_cmds

__all__ = ["info_cmds", "replay_cmds"]
