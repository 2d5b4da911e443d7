"""Linearised (infinite-width kernel) predictions for the two-layer ReLU network trained by
two-rate GD (Razborov, "Improved Convergence Guarantees for Shallow Neural Networks", arXiv
2212.02323; the kernel regime in the form of Du et al. 2019 and Oymak & Soltanolkotabi 2020).

The residual obeys ``e_{t+1} ~= (I - M) e_t``, ``M = eta_W K_W + eta_a K_a`` with the
infinite-width kernels of :mod:`harness.kernels.relu_kernels`; with ``M = V diag(mu) V^T``,
``L_lin(t) = 1/2 sum_k (1 - mu_k)^{2t} <v_k, e_0>^2``. Each prediction rebuilds the case's data
and initial residual ``e_0`` from the problem's options and the seed (derived and checked in
shared/theory/dynamics.md Sec. 2.3-2.5, [D]; the paper's own constants and rates are [U]).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from . import PREDICTIONS

__all__ = ["relu_mu_min", "relu_loss_slope", "relu_hitting_step", "relu_theorem_bound", "relu_loss_curve"]


@lru_cache(maxsize=64)
def _theory(n, d, m, data_seed, seed, lr_first, lr_second, relative_to):
    from ..training.problems import TwoLayerReLU
    from ..kernels.relu_kernels import relu_kernels

    prob = TwoLayerReLU(int(n), int(d), int(m), int(data_seed))
    x, y = prob.data()
    k_w, k_a = relu_kernels(x)
    eta_w, eta_a = lr_first, lr_second
    if relative_to == "kernel_top":
        eta_w, eta_a = lr_first / float(torch.linalg.eigvalsh(k_w)[-1]), lr_second / float(torch.linalg.eigvalsh(k_a)[-1])
    mu, v = torch.linalg.eigh(eta_w * k_w + eta_a * k_a)
    e0 = (prob.model(prob.init(int(seed)), x) - y)[:, 0]
    return mu, (v.T @ e0) ** 2


def _args(n, d, m, data_seed, seed, lr_first, lr_second, relative_to):
    return (int(n), int(d), int(m), int(data_seed), int(seed), float(lr_first), float(lr_second), str(relative_to))


@PREDICTIONS.register("relu_mu_min")
def relu_mu_min(lr_first: float, lr_second: float, relative_to: str, n: float, d: float, m: float,
                data_seed: float, seed: float) -> float:
    """``mu_min = lambda_min(eta_W K_W + eta_a K_a)``: the slowest contraction of the residual
    (two-rate setting of Razborov, arXiv 2212.02323, abstract; formula derived in
    shared/theory/dynamics.md Sec. 2.3, [D])."""
    return float(_theory(*_args(n, d, m, data_seed, seed, lr_first, lr_second, relative_to))[0][0])


@PREDICTIONS.register("relu_loss_slope")
def relu_loss_slope(lr_first: float, lr_second: float, relative_to: str, n: float, d: float, m: float,
                    data_seed: float, seed: float) -> float:
    """Asymptotic slope of ``ln L`` per step, ``2 ln(1 - mu_min)``: the slowest mode of ``L_lin``
    only while ``1 - mu_min >= |1 - mu_max|`` (true at the suites' rates, which keep
    ``mu_max <= 1``); in general the slope is ``2 ln max_k |1 - mu_k|`` (two-rate setting of
    Razborov, arXiv 2212.02323, abstract; formula derived in shared/theory/dynamics.md Sec. 2.3, [D])."""
    return 2.0 * math.log(1.0 - relu_mu_min(lr_first, lr_second, relative_to, n, d, m, data_seed, seed))


@PREDICTIONS.register("relu_hitting_step")
def relu_hitting_step(lr_first: float, lr_second: float, relative_to: str, n: float, d: float, m: float,
                      data_seed: float, seed: float, level: float) -> float:
    """First step ``t`` with ``L_lin(t) <= level L_lin(0)``, ``L_lin(t) = 1/2 sum_k (1 - mu_k)^{2t}
    <v_k, e_0>^2`` (infinite-width kernels, the case's own initial residual; two-rate setting of
    Razborov, arXiv 2212.02323, abstract; formula derived in shared/theory/dynamics.md Sec. 2.3, [D])."""
    mu, c2 = _theory(*_args(n, d, m, data_seed, seed, lr_first, lr_second, relative_to))
    if float(mu.max()) >= 2 or float(mu.min()) <= 0:
        return math.nan
    log_factor = 2 * torch.log((1 - mu).abs())
    l0 = float(c2.sum())
    t = torch.arange(0, 200_001, dtype=torch.float64)
    for start in range(0, len(t), 5000):
        ts = t[start:start + 5000, None]
        curve = (c2[None, :] * torch.exp(ts * log_factor[None, :])).sum(1)
        hit = torch.nonzero(curve <= level * l0)
        if len(hit):
            return float(ts[int(hit[0])])
    return math.nan


@PREDICTIONS.register("relu_theorem_bound")
def relu_theorem_bound(lr_first: float, lr_second: float, relative_to: str, n: float, d: float, m: float,
                       data_seed: float, seed: float, step: float) -> float:
    """The theorem-form guarantee ``L(t) / L(0) <= (1 - mu_min / 2)^t`` (the form of Du et al. 2019,
    Oymak & Soltanolkotabi 2020 and, in the theory note's reading, Razborov, arXiv 2212.02323,
    whose own constant could not be retrieved)."""
    return (1.0 - relu_mu_min(lr_first, lr_second, relative_to, n, d, m, data_seed, seed) / 2.0) ** step


@PREDICTIONS.register("relu_loss_curve")
def relu_loss_curve(lr_first: float, lr_second: float, relative_to: str, n: float, d: float, m: float,
                    data_seed: float, seed: float, step: float) -> float:
    """The linearised loss curve ``L_lin(t) / L_lin(0)``, ``L_lin(t) = 1/2 sum_k (1 - mu_k)^{2t}
    <v_k, e_0>^2`` (infinite-width kernels, the case's own initial residual; two-rate setting of
    Razborov, arXiv 2212.02323, abstract; formula derived in shared/theory/dynamics.md Sec. 2.3,
    [D]): what the wide regime's measured ``L(t) / L(0)`` should follow."""
    mu, c2 = _theory(*_args(n, d, m, data_seed, seed, lr_first, lr_second, relative_to))
    curve = (c2 * torch.exp(float(step) * 2 * torch.log((1 - mu).abs()))).sum()
    return float(curve / c2.sum())
