"""What touches the real host: KVM ioctls from Python and private tracefs instances.

Used by ``kvmgen probe`` (drive the kernel, compare with the model) and ``kvmgen
record`` (watch a real VMM). Nothing here imports the engine.
"""
