"""Infinite-width kernels of the two-layer ReLU network of Razborov, "Improved Convergence
Guarantees for Shallow Neural Networks" (arXiv 2212.02323), ``f(x) = m^{-1/2} sum_r a_r
relu(<w_r, x>/sqrt(d))`` with ``w_r ~ N(0, I_d)``, ``a_r ~ N(0, 1)`` (arc-cosine kernels; derived
and checked in shared/theory/dynamics.md Sec. 2.3, [D]; the paper's own constants are [U]).

With ``theta_ij`` the angle between ``x_i`` and ``x_j``:

* first layer:  ``K_W(i,j) = E[a^2] <x_i, x_j>/d (pi - theta_ij)/(2 pi)``
* second layer: ``K_a(i,j) = ||x_i|| ||x_j||/d (sin theta_ij + (pi - theta_ij) cos theta_ij)/(2 pi)``

Full-batch GD with rates ``eta_W``, ``eta_a`` linearises to ``e_{t+1} = (I - M) e_t`` with
``M = eta_W K_W + eta_a K_a`` acting on the residual ``e = f(X) - y``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["relu_kernels"]


def relu_kernels(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(K_W, K_a)`` for the rows of ``x`` (float64)."""
    x = x.to(torch.float64)
    d = x.shape[1]
    norms = x.norm(dim=1)
    gram = x @ x.T
    cos = (gram / torch.outer(norms, norms)).clamp(-1.0, 1.0)
    cos.fill_diagonal_(1.0)  # exactly: a rounded cosine just below 1 would give arccos ~1e-8, not 0
    th = torch.arccos(cos)
    k_w = (gram / d) * (math.pi - th) / (2 * math.pi)
    k_a = (torch.outer(norms, norms) / d) * (torch.sin(th) + (math.pi - th) * cos) / (2 * math.pi)
    return k_w, k_a
