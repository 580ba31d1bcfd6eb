"""The CI regression gate behind ``kvmgen check`` and ``kvmgen diff``.

Everything here works on report documents (the ``--json`` dicts of
:mod:`kvmgen.report.document`), so a baseline file and a fresh replay are read
the same way:

- :mod:`kvmgen.gate.metrics`: the per-run metrics and run identity in a report;
- :mod:`kvmgen.gate.limits`: ``--max`` / ``--max-regression`` limits;
- :mod:`kvmgen.gate.config`: ``[tool.kvmgen.check]`` and ``--config FILE.yaml``;
- :mod:`kvmgen.gate.baseline`: reading and writing baseline report files;
- :mod:`kvmgen.gate.check`: replaying the traces and evaluating every limit;
- :mod:`kvmgen.gate.diff`: what changed between two sets of reports;
- :mod:`kvmgen.gate.junit`, :mod:`kvmgen.gate.markdown`, :mod:`kvmgen.gate.console`:
  JUnit XML, Markdown and terminal output.

Nothing here imports numba; only :func:`kvmgen.gate.check.replay_traces` replays.
"""
