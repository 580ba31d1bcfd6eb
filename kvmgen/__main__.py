"""``python -m kvmgen``: the same entry point as the ``kvmgen`` command."""

from kvmgen.cli import main

raise SystemExit(main())
