"""kvmgen.report."""
