"""References for the kernels, computed in a suite beside them by routes that share none of
their code: dense matrices for the curvature kernels, forward mode for the input Jacobians.

A suite that asserts the kernels' answers against these along a real training trajectory
catches what the theory checks cannot: an error that the run absorbs consistently (a chunk
dropped or weighted wrongly in every kernel, a Gauss-Newton product without the loss's output
Hessian, a solver that reports a lower Ritz value) changes ``lambda_max`` without moving the
edge of stability it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.func import hessian, jacrev

from ..kernels.ansatz import forward_input_jacobians
from ..errors import UnsupportedError
from ..options import positive
from . import MEASURES, Measurement, StepContext
from .jacobian import over_shards

__all__ = ["DenseTopEigenvalue", "ForwardJacobianNorm"]


@MEASURES.register("dense_top_eigenvalue")
@dataclass(frozen=True)
class DenseTopEigenvalue:
    """Top eigenvalue of the dense Hessian (or Gauss-Newton matrix) of the whole-batch loss
    ``L(theta) = l(f(X; theta), Y)``, built without any of the kernels it checks: no chunks,
    no Hessian-vector products, no Lanczos.

    * ``hessian``: ``jacrev(jacrev(L))`` (reverse over reverse, vectorised over the basis);
    * ``gauss_newton``: ``G = J^T (d^2 L / d f^2) J`` with ``J = d f(X; theta) / d theta`` the
      ``(n k) x p`` Jacobian of all outputs (``jacrev``) and the ``(n k) x (n k)`` Hessian of
      the loss in the outputs (``torch.func.hessian``): the generalised Gauss-Newton matrix
      (Schraudolph 2002; Martens 2020, arXiv 1412.1193, Sec. 8), whose top eigenvalues are the
      Hessian's outliers (Papyan 2018, arXiv 1811.07062);

    then ``torch.linalg.eigvalsh``. Cost ``O(p^2 n)`` memory and ``O(p^3)`` time: refused for more
    than ``max_params`` parameters. Records ``aux["second"]``, the second eigenvalue (the gap the
    iterative solvers see).
    """

    operator: Literal["hessian", "gauss_newton"] = "hessian"
    max_params: int = field(default=4000, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        obj, theta = ctx.problem.objective, ctx.theta.detach()
        if theta.numel() > self.max_params:
            raise UnsupportedError(f"dense_top_eigenvalue: the model has {theta.numel():,} parameters, more than "
                                   f"max_params = {self.max_params:,} (a dense p x p matrix)")
        x, y = obj.inputs, obj.targets
        if self.operator == "hessian":
            matrix = jacrev(jacrev(lambda t: obj.loss(obj.model(t, x), y)))(theta)
        else:
            out = obj.model(theta, x).detach()
            jac = jacrev(lambda t: obj.model(t, x))(theta).reshape(out.numel(), -1)
            h_out = hessian(lambda o: obj.loss(o, y))(out).reshape(out.numel(), out.numel())
            matrix = jac.T @ h_out @ jac
        matrix = 0.5 * (matrix + matrix.T)
        if obj.sharded:  # the shard's mean-loss matrix, weighted n_shard / n_total, summed over the shards
            matrix = obj.allreduce(matrix * (obj.n / obj.n_total))
        eig = torch.linalg.eigvalsh(matrix)
        return Measurement(float(eig[-1]), {"second": float(eig[-2])})


@MEASURES.register("forward_jacobian_norm")
@dataclass(frozen=True)
class ForwardJacobianNorm:
    """``J_F = (1/n) sum_i ||D_x f(x_i)||_F^2`` over the training inputs (MacDonald, Valmadre &
    Lucey, arXiv 2305.14683), by forward mode (:func:`~harness.kernels.ansatz.forward_input_jacobians`)
    and its own mean: the reference for ``jacobian_norm``, which walks reverse-mode chunks."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        x = ctx.problem.objective.inputs
        if not x.is_floating_point():
            raise UnsupportedError(f"input-output Jacobians need floating-point inputs; this problem's are {x.dtype}")
        jac = forward_input_jacobians(ctx.problem.objective.model, ctx.theta, x)
        per_example = jac.reshape(x.shape[0], -1).pow(2).sum(dim=1)
        return Measurement(over_shards(ctx.problem.objective, float(per_example.sum()) / x.shape[0], x.shape[0], "mean"))
