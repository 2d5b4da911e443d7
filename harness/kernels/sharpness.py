"""Top eigenpairs of a curvature operator at one parameter vector: the kernel behind the
``lambda_max`` measure (sharpness, Cohen et al. 2021, arXiv 2103.00065).

Single-vector Lanczos for ``k = 1``, block Lanczos for ``k > 1`` (so a warm start carries all
``k`` previous eigenvectors). A cold start can be *presampled*: the top eigenvectors of the
same operator on a seeded random fraction of the examples (each product costs that fraction of
a full one) start the full run. The answer is always that of the full operator, with its own
Ritz residual; presampling only changes the start vector.

By default (``presample=None``) a cold start on at least :data:`AUTO_PRESAMPLE_MIN_EXAMPLES`
examples is presampled on :data:`AUTO_PRESAMPLE` of them. Counted on the two reference models of
``benchmarks/common.py`` (2000 examples, tolerance 1e-3, five subset seeds each), λ_max costs
29.8–31.8 full-batch gradients on the 77k MLP (plain Lanczos 43.4–51.1) and 9.8–13.9 on the
21k CNN (16.7–22.6); 1/8, 1/32 and cascades of two subsets came within 0.5 gradients of its mean
on either model, but cost up to 6 gradients more on the MLP's worst subset seed
(``docs/performance.md``). Below 1024 examples a sixteenth is under 64 of them, whose Hessian
says little about the whole one, and a product is cheap anyway; a data-parallel (sharded)
objective has no subset, so it is never presampled.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from torch import Tensor

from .objective import Objective
from .operators import LinearOperator
from .spectrum import EigResult, block_lanczos, lanczos

__all__ = ["top_eigenpairs", "AUTO_PRESAMPLE", "AUTO_PRESAMPLE_MIN_EXAMPLES"]

AUTO_PRESAMPLE = 1 / 16
AUTO_PRESAMPLE_MIN_EXAMPLES = 1024


def top_eigenpairs(make_op: Callable[[Objective], LinearOperator], obj: Objective, *, k: int = 1,
                   tol: float = 1e-3, max_iter: int = 100, v0: Tensor | None = None, presample: float | None = None,
                   op: LinearOperator | None = None, seed: int = 0) -> EigResult:
    """The ``k`` largest eigenpairs of ``make_op(obj)`` to relative Ritz residual ``tol``.

    Args:
        make_op: builds the operator of an objective (for example
            ``lambda o: hessian_operator(o, theta)``).
        obj: the full objective; ``op`` (``make_op(obj)`` if ``None``) is the operator solved.
        k: eigenpairs wanted (block Lanczos with block size ``k`` when ``k > 1``).
        v0: warm start, ``(dim,)`` or ``(dim, m)``; when given, no presampling.
        presample: fraction of the examples for the cold start (``0``: a seeded Gaussian start;
            ``None``: :data:`AUTO_PRESAMPLE` on an unsharded objective of at least
            :data:`AUTO_PRESAMPLE_MIN_EXAMPLES` examples, else ``0``). The subsampled run stops
            at residual ``max(tol, 1e-2)``.
    """
    op = make_op(obj) if op is None else op
    if presample is None:
        presample = AUTO_PRESAMPLE if not obj.sharded and obj.n >= AUTO_PRESAMPLE_MIN_EXAMPLES else 0.0
    pre = 0
    if v0 is None and presample:
        sub_op = make_op(obj.subset(presample, seed))
        first = _solve(sub_op, k, max(tol, 1e-2), max_iter, None, seed)
        v0, pre = first.eigenvectors, first.n_matvecs
    return dataclasses.replace(_solve(op, k, tol, max_iter, v0, seed), presample_matvecs=pre)


def _solve(op: LinearOperator, k: int, tol: float, max_iter: int, v0: Tensor | None, seed: int) -> EigResult:
    if k == 1:
        return lanczos(op, k=1, tol=tol, max_iter=max_iter, v0=v0, seed=seed)
    return block_lanczos(op, k, tol=tol, max_iter=max(max_iter, k), v0=v0, seed=seed)
