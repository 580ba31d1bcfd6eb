"""Answers built on the model: wrap forecasts, stale-hit search, sweeps, plots, HTML reports.

Every module here reads the era records and run specs of :mod:`kvmgen.model` and,
where it replays, calls the jitted engine through its public entry point
(:func:`kvmgen.engine.replay.replay_engine`). Heavy imports (numba, matplotlib)
happen inside the functions that need them.
"""
