"""JSON Schema files shipped with kvmgen."""
