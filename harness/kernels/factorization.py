"""Deep matrix factorisation's target and its exact mode dynamics (Chou, Gieshoff, Maly & Rauhut,
arXiv 2011.13772): pure functions shared by the problem that trains it and the predictions that
forecast it, so both read one definition of the matrix.

* :func:`symmetric_target`: ``A = Q diag(spectrum, 0, ...) Q^T`` with a seeded Haar-random ``Q``.
* :func:`symmetric_noise`: ``E = noise (G + G^T)/sqrt(2)``, a seeded Gaussian orthogonal
  ensemble matrix (off-diagonal entries of variance ``noise^2``, diagonal ``2 noise^2``).
* :func:`fitted_eigh`: eigenvalues (descending) and eigenvectors of the fitted matrix ``A + E``.
* :func:`leading_part`: ``A_r``, a symmetric matrix restricted to its ``r`` largest eigenvalues.
* :func:`modes_after`: every mode's ``pi_i(k) = w_i(k)^N`` after ``k`` steps of the exact scalar recursion
  ``w <- w - lr w^{N-1} (w^N - mu_i)`` from ``w = alpha``, which identity-initialised GD on
  ``1/2 ||W_N ... W_1 - (A + E)||_F^2`` follows exactly in the eigenbasis of ``A + E`` (the
  decoupling lemma of shared/theory/dynamics.md Sec. 1.3, [D]).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["symmetric_target", "symmetric_noise", "fitted_eigh", "leading_part", "modes_after"]


def symmetric_target(n: int, spectrum: list[float], data_seed: int) -> Tensor:
    """``A = Q diag(spectrum, 0, ..., 0) Q^T`` (``n x n``, float64), ``Q`` from the QR of a Gaussian
    matrix drawn with seed ``50_000 + data_seed``."""
    g = torch.Generator().manual_seed(50_000 + int(data_seed))
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.zeros(n, dtype=torch.float64)
    lam[: len(spectrum)] = torch.tensor([float(x) for x in spectrum], dtype=torch.float64)
    return (q * lam) @ q.T


def symmetric_noise(n: int, noise: float, data_seed: int) -> Tensor:
    """``E = noise (G + G^T)/sqrt(2)``, ``G`` a Gaussian ``n x n`` matrix drawn with seed
    ``80_000 + data_seed``: symmetric, ``||E||_F ~ noise n``, ``||E||_op ~ 2 noise sqrt(n)``."""
    g = torch.Generator().manual_seed(80_000 + int(data_seed))
    x = torch.randn(n, n, generator=g, dtype=torch.float64)
    return float(noise) * (x + x.T) / math.sqrt(2.0)


def fitted_eigh(n: int, spectrum: list[float], noise: float, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, U)`` of the fitted matrix ``A + E`` (``A`` alone without noise), eigenvalues in
    descending order, ``U``'s columns the matching eigenvectors."""
    b = symmetric_target(n, spectrum, data_seed)
    if noise:
        b = b + symmetric_noise(n, noise, data_seed)
    mu, u = torch.linalg.eigh(b)
    return mu.flip(0).numpy(), u.flip(1).numpy()


def leading_part(a: Tensor, rank: int) -> Tensor:
    """``A_r = sum_{i <= r} lambda_i v_i v_i^T``: the symmetric matrix ``a`` restricted to its
    ``rank`` largest eigenvalues (the best rank-``r`` approximation of a PSD matrix)."""
    lam, vecs = torch.linalg.eigh(a)
    lam, vecs = lam.flip(0)[:rank], vecs.flip(1)[:, :rank]
    return (vecs * lam) @ vecs.T


def modes_after(lr: float, depth: int, alpha: float, mu: np.ndarray, steps: int) -> np.ndarray:
    """``pi(k)`` after ``k = steps`` steps: each mode's eigenvalue of the product under the exact
    recursion ``w <- w - lr w^{N-1} (w^N - mu_i)``, ``w(0) = alpha``, all modes at once."""
    w = np.full(len(mu), float(alpha))
    mu = np.asarray(mu, dtype=np.float64)
    for _ in range(int(steps)):
        w = w - lr * w ** (depth - 1) * (w ** depth - mu)
    return w ** depth
