"""Extreme eigenvalues of a symmetric operator by Lanczos, in torch, on the operator's device.

Lanczos with full reorthogonalisation (classical Gram-Schmidt, applied twice): after ``j``
products the Krylov basis ``Q_j`` and tridiagonal ``T_j = Q_j^T A Q_j`` give Ritz pairs
``(theta_i, Q_j s_i)``; their residual is exactly ``||A y_i - theta_i y_i|| = beta_j |s_{j,i}|``
(Golub & Van Loan, Matrix Computations, Sec. 10.1), so each reported eigenvalue carries its
residual and the iteration stops when ``residual_i <= tol * |theta_i|`` for all wanted pairs.
Non-convergence within ``max_iter`` products is reported in the result, and
:meth:`EigResult.top` refuses to return a number from an unconverged run. An operator whose
products overflow (non-finite Lanczos coefficients) or a tridiagonal eigensolve that fails
ends the run unconverged with NaN eigenvalues and the reason in ``failure``; it never raises.

Block Lanczos (:func:`block_lanczos`, Golub & Van Loan Sec. 10.3) runs the same recurrence on
``b`` vectors at once, ``A Q_j = Q_{j-1} B_{j-1}^T + Q_j A_j + Q_{j+1} B_j``; it takes a
``(dim, k)`` warm start (the previous step's top-k eigenvectors), which single-vector Lanczos
can only sum into one vector. The residual of Ritz pair ``i`` is ``||B_j S_{j,i}||`` with
``S_{j,i}`` the last block of its eigenvector of the block-tridiagonal ``T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import MeasurementError
from .operators import LinearOperator

__all__ = ["EigResult", "lanczos", "block_lanczos"]


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
        presample_matvecs: products of a cheaper operator spent on the start vector (see
            :func:`harness.kernels.sharpness.top_eigenpairs`), not counted in ``n_matvecs``.
        failure: why the run stopped without an answer (eigenvalues NaN), or "".
    """

    eigenvalues: Tensor
    eigenvectors: Tensor
    residuals: Tensor
    n_matvecs: int
    converged: bool
    tol: float
    presample_matvecs: int = 0
    failure: str = ""

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


def _failed(op: LinearOperator, k: int, start: int, tol: float, why: str) -> EigResult:
    """The answer of a run that cannot go on: NaN eigenpairs, unconverged, with the reason."""
    nan = torch.full((k,), math.nan, dtype=torch.float64)
    return EigResult(eigenvalues=nan, eigenvectors=torch.full((op.dim, k), math.nan, dtype=op.dtype, device=op.device),
                     residuals=nan.clone(), n_matvecs=op.n_matvecs - start, converged=False, tol=tol, failure=why)


def _eigh(T: Tensor) -> tuple[Tensor, Tensor] | str:
    """``torch.linalg.eigh(T)``, or why it cannot be had (non-finite entries, LAPACK failure)."""
    if not bool(torch.isfinite(T).all()):
        return "non-finite Lanczos coefficients (the operator's products overflowed)"
    try:
        return torch.linalg.eigh(T)
    except torch.linalg.LinAlgError as exc:
        return f"the tridiagonal eigensolve failed: {exc}"


def _orthogonalise(w: Tensor, basis: Tensor) -> Tensor:
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def lanczos(op: LinearOperator, k: int = 1, tol: float = 1e-3, max_iter: int = 100,
            v0: Tensor | None = None, which: str = "LA", seed: int = 0) -> EigResult:
    """The ``k`` algebraically largest (``which="LA"``) or smallest (``"SA"``) eigenpairs.

    Args:
        op: symmetric operator (e.g. :func:`~harness.kernels.curvature.hessian_operator`).
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
        solved = _eigh(T) if math.isfinite(beta) else "non-finite Lanczos coefficients (the operator's products overflowed)"
        if isinstance(solved, str):
            return _failed(op, k, start, tol, solved)
        vals, vecs = solved
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


def block_lanczos(op: LinearOperator, k: int, tol: float = 1e-3, max_iter: int = 200,
                  v0: Tensor | None = None, which: str = "LA", seed: int = 0) -> EigResult:
    """The ``k`` algebraically largest (``"LA"``) or smallest (``"SA"``) eigenpairs by block
    Lanczos with block size ``k``, full reorthogonalisation and a Ritz-residual stop.

    Args:
        op, tol, which, seed: as for :func:`lanczos`.
        k: how many eigenpairs, also the block size.
        max_iter: cap on operator products (a block step costs ``k``).
        v0: ``(dim, k)`` warm start, e.g. the previous measurement's eigenvectors (fewer
            columns are completed with seeded Gaussian vectors). ``None``: Gaussian.
    """
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' or 'SA', got {which!r}")
    dim = op.dim
    if not 1 <= k <= dim:
        raise ValueError(f"k must be in [1, {dim}], got {k}")
    if tol <= 0 or max_iter < k:
        raise ValueError("tol must be > 0 and max_iter >= k")
    gen = torch.Generator().manual_seed(seed)

    def gaussian(m: int) -> Tensor:
        return torch.randn(dim, m, generator=gen, dtype=torch.float64).to(op.dtype).to(op.device)

    start = gaussian(k)
    if v0 is not None:
        v0 = (v0 if v0.ndim == 2 else v0[:, None]).to(op.dtype).to(op.device)[:, :k]
        if torch.isfinite(v0).all():
            start[:, : v0.shape[1]] = v0
    eps = torch.finfo(op.dtype).eps

    def orthonormal(w: Tensor, basis: Tensor | None) -> tuple[Tensor, Tensor]:
        """``w = Q R`` column by column (Gram-Schmidt, twice), ``Q`` orthogonal to ``basis``; a
        column that cancels (an invariant subspace) is replaced by a fresh Gaussian direction with
        a zero row in ``R``, so the recurrence continues."""
        if basis is not None:
            w = _orthogonalise(w, basis)
        q = torch.zeros_like(w)
        r = torch.zeros(k, k, dtype=w.dtype, device=w.device)
        for i in range(k):
            v = w[:, i]
            for _ in range(2):
                c = q[:, :i].T @ v
                v = v - q[:, :i] @ c
                r[:i, i] += c
            nrm = v.norm()
            done = q[:, :i].T if basis is None else torch.cat([basis, q[:, :i].T])
            if float(nrm) <= eps * max(1.0, float(w[:, i].norm())):
                v, nrm = gaussian(1)[:, 0], torch.zeros((), dtype=w.dtype, device=w.device)
            # after heavy cancellation v is mostly rounding error: orthogonalise its direction again
            v = _orthogonalise(v / v.norm(), done)
            q[:, i] = v / v.norm()
            r[i, i] = nrm
        return q, r

    q, _ = orthonormal(start, None)
    blocks: list[Tensor] = [q]  # Q_0, Q_1, ... each (dim, k)
    a_blocks: list[Tensor] = []
    b_blocks: list[Tensor] = []
    first = op.n_matvecs
    converged = False
    vals = vecs = res = None
    while True:
        qj = blocks[-1]
        w = torch.stack([op @ qj[:, i] for i in range(k)], dim=1)
        aj = qj.T @ w
        a_blocks.append(((aj + aj.T) / 2).double().cpu())
        basis = torch.cat(blocks, dim=1).T
        qn, bj = orthonormal(w, basis)
        m = len(a_blocks)
        T = torch.zeros(m * k, m * k, dtype=torch.float64)
        for i, a in enumerate(a_blocks):
            T[i * k:(i + 1) * k, i * k:(i + 1) * k] = a
        for i, b in enumerate(b_blocks):
            T[(i + 1) * k:(i + 2) * k, i * k:(i + 1) * k] = b
            T[i * k:(i + 1) * k, (i + 1) * k:(i + 2) * k] = b.T
        solved = _eigh(T)
        bj64 = bj.double().cpu()
        if isinstance(solved, str) or not bool(torch.isfinite(bj64).all()):
            return _failed(op, k, first, tol, solved if isinstance(solved, str) else
                           "non-finite Lanczos coefficients (the operator's products overflowed)")
        vals, vecs = solved
        order = torch.arange(m * k - 1, -1, -1) if which == "LA" else torch.arange(m * k)
        vals, vecs = vals[order], vecs[:, order]
        res = (bj64 @ vecs[-k:, :k]).norm(dim=0)
        if not bool(torch.isfinite(res).all()):
            return _failed(op, k, first, tol, "non-finite Ritz residuals (the operator's products overflowed)")
        scale = torch.maximum(vals[:k].abs(), vals.abs().max() * eps)
        if bool((res <= tol * scale).all()):
            converged = True
            break
        if op.n_matvecs - first + k > max_iter or (m + 1) * k > dim:
            break
        b_blocks.append(bj64)
        blocks.append(qn)
    basis = torch.cat(blocks, dim=1)
    y = basis @ vecs[:, :k].to(op.dtype).to(op.device)
    return EigResult(eigenvalues=vals[:k].clone(), eigenvectors=y, residuals=res.clone(),
                     n_matvecs=op.n_matvecs - first, converged=converged, tol=tol)
