"""Extreme eigenvalues of a symmetric operator by Lanczos, in torch, on the operator's device.

Lanczos with full reorthogonalisation (classical Gram-Schmidt, applied twice): after ``j``
products the Krylov basis ``Q_j`` and tridiagonal ``T_j = Q_j^T A Q_j`` give Ritz pairs
``(theta_i, Q_j s_i)``; their residual is exactly ``||A y_i - theta_i y_i|| = beta_j |s_{j,i}|``
(Golub & Van Loan, Matrix Computations, Sec. 10.1), so each reported eigenvalue carries its
residual and the iteration stops when ``residual_i <= tol * |theta_i|`` for all wanted pairs.
Non-convergence within ``max_iter`` products is reported in the result, and
:meth:`EigResult.top` refuses to return a number from an unconverged run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import MeasurementError
from .operators import LinearOperator

__all__ = ["EigResult", "lanczos"]


@dataclass(frozen=True)
class EigResult:
    """Wanted Ritz pairs of a Lanczos run.

    Attributes:
        eigenvalues: ``(k,)`` float64 on the CPU, largest first for ``which="LA"``.
        eigenvectors: ``(dim, k)`` unit vectors on the operator's device and dtype.
        residuals: ``(k,)`` ``||A y - theta y||`` for each pair.
        n_matvecs: operator products used.
        converged: every wanted pair met ``residual <= tol * |theta|``.
        tol: the relative tolerance asked for.
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    n_matvecs: int
    converged: bool
    tol: float

    @property
    def relative_residuals(self) -> Tensor:
        return self.residuals / self.eigenvalues.abs().clamp_min(torch.finfo(torch.float64).tiny)

    def top(self) -> float:
        """The first wanted eigenvalue; raises :class:`MeasurementError` if not converged."""
        if not self.converged:
            raise MeasurementError(
                f"Lanczos did not converge in {self.n_matvecs} products: relative residual "
                f"{float(self.relative_residuals.max()):.3g} > tol {self.tol:g}")
        return float(self.eigenvalues[0])


def _orthogonalise(w: Tensor, basis: Tensor) -> Tensor:
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def lanczos(op: LinearOperator, k: int = 1, tol: float = 1e-3, max_iter: int = 100,
            v0: Tensor | None = None, which: str = "LA", seed: int = 0) -> EigResult:
    """The ``k`` algebraically largest (``which="LA"``) or smallest (``"SA"``) eigenpairs.

    Args:
        op: symmetric operator (e.g. :func:`~harness.curvature.hessian_operator`).
        k: how many eigenpairs; ``1 <= k <= op.dim``.
        tol: relative residual ``||A y - theta y|| / |theta|`` every pair must reach.
        max_iter: cap on operator products (capped at ``op.dim``).
        v0: warm start (for example the previous step's top eigenvector); a ``(dim, m)``
            matrix is summed into one start vector. ``None``: a seeded Gaussian vector.
        which: ``"LA"`` or ``"SA"``.
        seed: seed of the random start vector and of restarts after an invariant subspace.
    """
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' or 'SA', got {which!r}")
    dim = op.dim
    if not 1 <= k <= dim:
        raise ValueError(f"k must be in [1, {dim}], got {k}")
    if tol <= 0 or max_iter < 1:
        raise ValueError("tol must be > 0 and max_iter >= 1")
    max_iter = min(max_iter, dim)
    gen = torch.Generator().manual_seed(seed)

    def random_vector() -> Tensor:
        return torch.randn(dim, generator=gen, dtype=torch.float64).to(op.dtype).to(op.device)

    q = random_vector() if v0 is None else (v0 if v0.ndim == 1 else v0.sum(dim=1)).to(op.dtype).to(op.device)
    if not torch.isfinite(q).all() or float(q.norm()) == 0.0:
        q = random_vector()
    basis = torch.empty(max_iter, dim, dtype=op.dtype, device=op.device)
    basis[0] = q / q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    start = op.n_matvecs
    converged = False
    theta = vals = vecs = None
    res = None
    for j in range(max_iter):
        w = op @ basis[j]
        alpha = float(basis[j] @ w)
        alphas.append(alpha)
        w = _orthogonalise(w, basis[: j + 1])
        beta = float(w.norm())
        T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
        if j:
            off = torch.tensor(betas, dtype=torch.float64)
            T += torch.diag(off, 1) + torch.diag(off, -1)
        vals, vecs = torch.linalg.eigh(T)
        order = torch.arange(j, -1, -1) if which == "LA" else torch.arange(j + 1)
        vals, vecs = vals[order], vecs[:, order]
        m = min(k, j + 1)
        theta = vals[:m]
        res = beta * vecs[-1, :m].abs()
        scale = torch.maximum(theta.abs(), vals.abs().max() * torch.finfo(op.dtype).eps)
        if j + 1 >= k and bool((res <= tol * scale).all()):
            converged = True
            break
        if j + 1 == max_iter:
            break
        if beta <= torch.finfo(op.dtype).eps * max(1.0, float(vals.abs().max())):
            # invariant subspace: continue from a fresh vector orthogonal to the basis
            w = _orthogonalise(random_vector(), basis[: j + 1])
            beta_next = 0.0
            w = w / w.norm()
        else:
            beta_next = beta
            w = w / beta
        betas.append(beta_next)
        basis[j + 1] = w
    n = len(alphas)
    m = min(k, n)
    y = basis[:n].T @ vecs[:, :m].to(op.dtype).to(op.device)
    return EigResult(eigenvalues=theta.clone(), eigenvectors=y, residuals=res.clone(),
                     n_matvecs=op.n_matvecs - start, converged=converged, tol=tol)
