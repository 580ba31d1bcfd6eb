"""The plain-Python reference model: the slow, obviously correct oracle for the engine.

:func:`~kvmgen.reference.replay.replay_reference` replays a trace under one run
and returns the same :class:`~kvmgen.stats.ReplayResult` as the engine; the
property tests compare the two field by field. :mod:`~kvmgen.reference.state`
holds its state (dicts, Python ints masked to 64 bits).
"""
