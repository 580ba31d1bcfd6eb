"""Real kernels vs the model: KVM ioctls, tracefs capture, observed-vs-modelled comparison.

``kvmgen probe`` drives KVM from Python (:mod:`kvmgen.host.kvm`), captures the
kernel's zap tracepoints in a private tracefs instance (:mod:`kvmgen.host.tracefs`),
turns the capture into a trace with observations (:mod:`kvmgen.importers.tracefs`)
and checks it against the model (:mod:`kvmgen.probe.compare`, :mod:`kvmgen.probe.report`).
"""
