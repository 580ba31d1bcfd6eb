"""kvmgen.model."""
