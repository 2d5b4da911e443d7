"""Quantities of the Hessian-Jacobian ansatz (MacDonald, Valmadre & Lucey 2023, arXiv
2305.14683), for a network whose first layer is affine, ``z_1 = W_1 x + b_1``, ``f = g(z_1)``,
and a loss whose output Hessian is ``I / n`` (``mse``: ``(1/n) sum_i 1/2 ||f(x_i) - y_i||^2``).

* ``J_F = (1/n) sum_i ||D_x f(x_i)||_F^2``: the mean squared input-output Jacobian norm over
  a set of inputs (the ansatz's "Jacobian over the training samples").
* (H1) chain rule, exact: ``D_x f(x) = D_{z_1} f(x) W_1``.
* (H2) Kronecker structure, exact: ``||d f / d W_1 (x)||_F^2 = ||D_{z_1} f(x)||_F^2 ||x||^2``, so
  ``Tr G_{W_1} = (1/n) sum_i ||x_i||^2 ||D_{z_1} f(x_i)||_F^2`` for the first-layer block of the
  Gauss-Newton matrix.
* (H3) trace inequality, exact: ``(1/n) sum_i ||x_i||^2 ||D_x f(x_i)||_F^2 <= ||W_1||_2^2 Tr G_{W_1}``
  ("Jacobian <= weights x curvature": with ``||W_1||`` growing slowly, a rising training-sample
  Jacobian forces first-layer curvature up).

(H1)-(H3) are the theory note's formalisation (shared/theory/curvature.md, Sec. 4.2, [D]); the
paper's own equations could not be retrieved. Every Jacobian here goes through
:func:`harness.kernels.curvature.input_jacobians` (reverse mode), except the left side of (H1), which
comes from :func:`forward_input_jacobians` (forward mode, the whole network at once), so that
the identity compares two independent routes rather than one autograd graph with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacfwd, vmap

from .curvature import input_jacobians
from ..errors import UnsupportedError
from .objective import FlatModule

__all__ = ["FirstLayer", "first_layer", "forward_input_jacobians", "mean_sq_jacobian_norm", "max_jacobian_operator_norm",
           "pairwise_lipschitz", "chain_rule_error",
           "trace_inequality_ratio", "trace_inequality_sums"]


@dataclass(frozen=True)
class FirstLayer:
    """``W_1``, ``b_1`` and ``g`` with ``f(x) = g(W_1 x + b_1)``, at parameters ``theta``."""

    weight: Tensor
    bias: Tensor | None
    rest: Callable[[Tensor, Tensor], Tensor]  # g(theta, z_1)

    def preactivation(self, inputs: Tensor) -> Tensor:
        z = inputs @ self.weight.T
        return z if self.bias is None else z + self.bias


def first_layer(model: FlatModule, theta: Tensor) -> FirstLayer:
    """Split an ``nn.Sequential`` whose first module is ``nn.Linear``."""
    module = model.module if isinstance(model, FlatModule) else None
    if not isinstance(module, nn.Sequential) or not isinstance(module[0], nn.Linear):
        raise UnsupportedError("the Hessian-Jacobian measures need an nn.Sequential model whose first layer is nn.Linear")
    params = model.unflatten(theta)
    rest = module[1:]
    rest_names = {n for n, _ in rest.named_parameters()}

    def g(th: Tensor, z: Tensor) -> Tensor:
        p = {k: v for k, v in model.unflatten(th).items() if k in rest_names}
        return functional_call(rest, (p, dict(rest.named_buffers())), (z,))

    # a frozen first layer (requires_grad = False) is not in theta: its tensors are the module's own
    first = module[0]
    weight = params["0.weight"] if "0.weight" in params else first.weight.detach()
    bias = params["0.bias"] if "0.bias" in params else None if first.bias is None else first.bias.detach()
    return FirstLayer(weight, bias, g)


def _flat_jac(j: Tensor) -> Tensor:
    """``(n, *out, *in)`` per-sample Jacobians as ``(n, out, in)`` matrices (one input axis)."""
    return j.reshape(j.shape[0], -1, j.shape[-1])


def forward_input_jacobians(model, theta: Tensor, inputs: Tensor) -> Tensor:
    """Per-example ``D_x f(x_i)`` by forward mode, ``vmap(jacfwd)`` over the examples, shape
    ``(n, *out, *in)``: a second route to what :func:`~harness.kernels.curvature.input_jacobians`
    computes in reverse mode, for checks that must not share its code."""
    theta = theta.detach()
    return vmap(jacfwd(lambda xi: model(theta, xi.unsqueeze(0)).squeeze(0)))(inputs)


def mean_sq_jacobian_norm(model, theta: Tensor, inputs: Tensor, method: str = "vmap",
                          chunk_size: int | None = None) -> float:
    """``J_F = (1/n) sum_i ||D_x f(x_i)||_F^2``."""
    j = input_jacobians(model, theta, inputs, method=method, chunk_size=chunk_size)
    return float(j.pow(2).sum() / inputs.shape[0])


def max_jacobian_operator_norm(model, theta: Tensor, inputs: Tensor, method: str = "vmap",
                               chunk_size: int | None = None) -> float:
    """``max_i ||D_x f(x_i)||_2``: the largest operator (spectral) norm of the per-sample
    input-output Jacobian over ``inputs``, a lower bound on the network's Lipschitz constant on
    their support (the norm MacDonald, Valmadre & Lucey's Jacobian bounds use, arXiv 2305.14683;
    ``J_F`` is the mean squared Frobenius norm instead)."""
    j = _flat_jac(input_jacobians(model, theta, inputs, method=method, chunk_size=chunk_size))
    return float(torch.linalg.matrix_norm(j, ord=2).max())


def pairwise_lipschitz(model, theta: Tensor, inputs: Tensor, method: str = "vmap",
                       chunk_size: int | None = None) -> float:
    """``max_{i != j} ||f(x_i) - f(x_j)|| / ||x_i - x_j||``: the Lipschitz estimate the data
    themselves give, a second lower bound on the Lipschitz constant on their support that needs no
    derivative (``method`` and ``chunk_size`` unused: one forward pass)."""
    with torch.no_grad():
        out = model(theta.detach(), inputs).reshape(inputs.shape[0], -1)
        num = torch.cdist(out, out)
        den = torch.cdist(inputs.flatten(1), inputs.flatten(1))
        off = ~torch.eye(inputs.shape[0], dtype=torch.bool, device=inputs.device)
        return float((num[off] / den[off]).max())


def chain_rule_error(model: FlatModule, theta: Tensor, inputs: Tensor, method: str = "vmap",
                     chunk_size: int | None = None) -> float:
    """(H1): ``max_i ||D_x f(x_i) - D_{z_1} f(x_i) W_1||_F / ||D_x f(x_i)||_F``, the left side in
    forward mode through the whole network, the right in reverse mode (``method``) through the
    layers after the first, at the first layer's pre-activations."""
    layer = first_layer(model, theta)
    dx = _flat_jac(forward_input_jacobians(model, theta, inputs))
    dz = _flat_jac(input_jacobians(layer.rest, theta, layer.preactivation(inputs), method=method, chunk_size=chunk_size))
    err = (dx - dz @ layer.weight).flatten(1).norm(dim=1) / dx.flatten(1).norm(dim=1).clamp_min(torch.finfo(dx.dtype).tiny)
    return float(err.max())


def trace_inequality_sums(model: FlatModule, theta: Tensor, inputs: Tensor, method: str = "vmap",
                          chunk_size: int | None = None) -> tuple[Tensor, Tensor]:
    """The two per-example sums of (H3) over ``inputs``: ``sum_i ||x_i||^2 ||D_x f(x_i)||_F^2`` and
    ``sum_i ||x_i||^2 ||D_{z_1} f(x_i)||_F^2`` (``n Tr G_{W_1}``), as 0-d tensors."""
    layer = first_layer(model, theta)
    x2 = inputs.flatten(1).pow(2).sum(dim=1)
    dx = input_jacobians(model, theta, inputs, method=method, chunk_size=chunk_size)
    dz = input_jacobians(layer.rest, theta, layer.preactivation(inputs), method=method, chunk_size=chunk_size)
    return (x2 * dx.flatten(1).pow(2).sum(dim=1)).sum(), (x2 * dz.flatten(1).pow(2).sum(dim=1)).sum()


def trace_inequality_ratio(model: FlatModule, theta: Tensor, inputs: Tensor, method: str = "vmap",
                           chunk_size: int | None = None, sums: tuple[Tensor, Tensor] | None = None) -> float:
    """(H3): ``[(1/n) sum ||x_i||^2 ||D_x f(x_i)||_F^2] / [||W_1||_2^2 Tr G_{W_1}]`` (<= 1);
    ``sums``: the two sums of :func:`trace_inequality_sums` when they are already known (over
    shards, say)."""
    lhs, trace_g_w1 = trace_inequality_sums(model, theta, inputs, method, chunk_size) if sums is None else sums
    w_norm = torch.linalg.matrix_norm(first_layer(model, theta).weight, ord=2)
    return float(lhs / (w_norm ** 2 * trace_g_w1))
