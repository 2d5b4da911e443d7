"""The homogeneous MLP of Terjék, "Feature Learning Beyond the Edge of Stability" (arXiv
2502.13110), in the reading documented in shared/theory/dynamics.md Sec. 3.3 ([D]/[U]: the
paper's exact nuP multipliers, scaling rule and soft rank could not be retrieved):

* ``z_k = W_k h_{k-1} / sqrt(n_{k-1})``, ``h_k = sqrt(2) relu(z_k)``, output ``f = z_L``; bias-free,
  so positively homogeneous; ``W_k`` entries ``N(0, 1)``;
* widths ``n_k = n_1 k^r`` for the hidden layers (``r = 2``: the quadratic pattern);
* depthwise gradient scaling ``xi_k = sqrt(n_{k-1}) / (||Delta_k||_F ||H_{k-1}||_F)`` with
  ``Delta_k = dL/dZ_k`` on the batch and ``H_{k-1}`` the batch of layer inputs, so that
  ``||xi_k G_k||_F <= 1``;
* the first Taylor coefficient of the minibatch loss along the update ``U_k = -xi_k G_k`` in Gram
  form: ``c_1 = <grad L, U> = -sum_k xi_k tr(D_k K_{k-1})``, ``D_k = Delta_k Delta_k^T``,
  ``K_{k-1} = H_{k-1} H_{k-1}^T / n_{k-1}`` (batch x batch Gram matrices; exact, derived).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["LayerStats", "layer_forward", "layer_stats", "gram_c1", "participation_ratio", "stable_rank", "entropy_soft_rank",
           "taylor_coefficients"]


def layer_forward(theta: Tensor, widths: list[int], x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """``(f, [z_1..z_L], [h_0..h_{L-1}])`` of the homogeneous MLP at flat parameters ``theta``."""
    zs, hs, h, i = [], [x], x, 0
    for k in range(len(widths) - 1):
        n_in, n_out = widths[k], widths[k + 1]
        w = theta[i:i + n_in * n_out].view(n_out, n_in)
        i += n_in * n_out
        z = h @ w.T / math.sqrt(n_in)
        zs.append(z)
        if k < len(widths) - 2:
            h = math.sqrt(2.0) * torch.relu(z)
            hs.append(h)
        else:
            h = z
    return h, zs, hs


@dataclass(frozen=True)
class LayerStats:
    """The minibatch loss, its parameter gradient, ``Delta_k``, ``H_{k-1}`` and ``xi_k``."""

    loss: Tensor
    grad: Tensor
    deltas: list[Tensor]
    inputs: list[Tensor]
    xis: list[float]


def layer_stats(theta: Tensor, widths: list[int], x: Tensor, y: Tensor, loss_fn) -> LayerStats:
    """One forward and backward pass on a batch, with the depthwise scales ``xi_k``."""
    t = theta.detach().requires_grad_(True)
    out, zs, hs = layer_forward(t, widths, x)
    loss = loss_fn(out, y)
    grads = torch.autograd.grad(loss, [t, *zs])
    deltas, inputs = [d.detach() for d in grads[1:]], [h.detach() for h in hs]
    xis = [math.sqrt(widths[k]) / max(float(deltas[k].norm()) * float(inputs[k].norm()), 1e-300)
           for k in range(len(widths) - 1)]
    return LayerStats(loss.detach(), grads[0], deltas, inputs, xis)


def gram_c1(stats: LayerStats, widths: list[int], xis: list[float]) -> float:
    """``c_1 = -sum_k xi_k tr(D_k K_{k-1})`` from batch Gram matrices (for ``U_k = -xi_k G_k``)."""
    total = 0.0
    for k, (d, h) in enumerate(zip(stats.deltas, stats.inputs)):
        total += xis[k] * float(((d @ d.T) * (h @ h.T / widths[k])).sum())
    return -total


def participation_ratio(features: Tensor) -> float:
    """Soft rank ``(tr K)^2 / ||K||_F^2`` of ``K = F F^T / n`` (the theory note's primary candidate)."""
    k = features @ features.T / features.shape[1]
    return float(torch.trace(k) ** 2 / (k * k).sum())


def entropy_soft_rank(features: Tensor) -> float:
    """Soft rank ``exp(-sum p_i ln p_i)`` with ``p`` the normalised eigenvalues of ``K`` (erank)."""
    ev = torch.linalg.eigvalsh(features @ features.T / features.shape[1]).clamp_min(0)
    p = ev / ev.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def stable_rank(features: Tensor) -> float:
    """Soft rank ``tr K / lambda_max(K)``."""
    k = features @ features.T / features.shape[1]
    return float(torch.trace(k) / torch.linalg.eigvalsh(k)[-1])


def taylor_coefficients(loss_of_theta, theta: Tensor, direction: Tensor) -> tuple[float, float, float, float]:
    """``(L_0, c_1, c_2, c_3)`` of ``L(theta + eta U) = L_0 + c_1 eta + c_2 eta^2/2 + c_3 eta^3/6 + ...``
    by nested forward-mode differentiation (``torch.func.jvp`` three deep): ``c_1 = <grad L, U>``,
    ``c_2 = U^T H U``, ``c_3 = grad^3 L[U, U, U]``."""
    from torch.func import jvp

    f1 = lambda t: jvp(loss_of_theta, (t,), (direction,))[1]
    f2 = lambda t: jvp(f1, (t,), (direction,))[1]
    l0, c1 = jvp(loss_of_theta, (theta,), (direction,))
    c2 = jvp(f1, (theta,), (direction,))[1]
    c3 = jvp(f2, (theta,), (direction,))[1]
    return float(l0), float(c1), float(c2), float(c3)
