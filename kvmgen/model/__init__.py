"""What kvmgen simulates, as data: eras, bias policies, kernel versions, costs, and the
closed-form generation arithmetic (:mod:`~kvmgen.model.genmath`).

Two implementations replay traces through this model: the numba engine
(:mod:`kvmgen.engine`) and the plain-Python reference (:mod:`kvmgen.reference`);
both branch on the fields of an :class:`~kvmgen.model.eras.Era`, never on its name.
"""
