"""kvmgen.engine."""
