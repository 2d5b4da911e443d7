"""Deep matrix factorisation from identity-scaled initialisation (Chou, Gieshoff, Maly &
Rauhut, "Gradient Descent for Deep Matrix Factorization: Dynamics and Implicit Bias towards
Low Rank", arXiv 2011.13772).

Setting: ``L = 1/2 ||W_N ... W_1 - A||_F^2`` with ``A = V diag(lambda) V^T`` symmetric PSD and
``W_j(0) = alpha I``. Every iterate is ``W_j(k) = V diag(w(k)) V^T`` and each mode follows the
exact scalar recursion ``w <- w - lr w^{N-1} (w^N - lambda_i)``, ``pi_i = w^N`` being the
eigenvalue of the product along ``v_i`` (the decoupling lemma; derived and checked to the exact
step in shared/theory/dynamics.md, Sec. 1.3, [D]). The paper's own interval endpoints and
constants could not be retrieved ([U]); these are the note's derived forms.

With ``noise > 0`` the problem fits ``A + E`` (symmetric Gaussian noise,
:mod:`harness.kernels.factorization`): the decoupling holds in the eigenbasis of ``A + E``, so
every mode-level prediction below reads the eigenvalues ``mu_i`` of ``A + E`` (descending;
``index`` counts them), and mode ``rank A + 1`` is the first noise mode.
"""

from __future__ import annotations

import math

import numpy as np

from ..kernels.factorization import fitted_eigh, leading_part, modes_after, symmetric_target
from . import PREDICTIONS

__all__ = ["dmf_hitting_time", "dmf_hitting_time_exact", "dmf_projection_rank", "dmf_rank_bound",
           "dmf_rank_at_step", "dmf_entropy_rank_at_step", "dmf_loss_at_step", "dmf_interval_length_exact",
           "dmf_estimation_error_at_step", "dmf_truncation_error"]


def _fitted(spectrum: list, n: float, noise: float, data_seed: float) -> list[float]:
    """The eigenvalues the modes follow: the spectrum as given without noise (exactly), else
    the eigenvalues of ``A + E``, descending."""
    if not noise:
        return [float(x) for x in spectrum]
    return fitted_eigh(int(n), spectrum, noise, int(data_seed))[0].tolist()


def _mode(spectrum: list[float], index: float) -> float:
    i = int(index)
    if i != index or not 1 <= i <= len(spectrum) or spectrum[i - 1] <= 0:
        raise ValueError(f"index {index} must name a positive eigenvalue of the spectrum (1-based)")
    return float(spectrum[i - 1])


@PREDICTIONS.register("dmf_hitting_time")
def dmf_hitting_time(lr: float, depth: float, alpha: float, spectrum: list, index: float, theta: float,
                     n: float = 0, noise: float = 0.0, data_seed: float = 0) -> float:
    """Steps ``K_i(theta)`` until ``pi_i >= theta lambda_i``, closed form with a first-order correction.

    Gradient flow ``dw/dt = w^{N-1} (lambda - w^N)`` from ``w_0 = alpha`` to ``w_1 = (theta lambda)^{1/N}``:
    for ``N >= 3``, ``t = [alpha^{-(N-2)} - (theta lambda)^{-(N-2)/N}] / ((N-2) lambda)
    + ln(1/(1-theta)) / (N lambda^{2-2/N})``; for ``N = 2``,
    ``t = [ln(theta/(1-theta)) + ln((lambda - alpha^2)/alpha^2)] / (2 lambda)``. GD steps:
    ``K = t / lr + 1/2 ln(g(w_1)/g(w_0))`` with ``g(w) = w^{N-1} (lambda - w^N)`` (modified-equation
    correction). The leading term ``alpha^{-(N-2)}/((N-2) lr lambda)`` matches the v1 abstract's
    statement (arXiv 2011.13772) that recovery rates are proportional to the eigenvalues and that
    depth amplifies their differences (our reading; the paper's own formula is not retrieved, [U]).
    For ``N = 2`` the flow time is exact;
    for ``N >= 3`` splitting the integral into the two terms is an approximation, within 1.04 %
    (``N = 3``) and 2.04 % (``N = 4``) of quadrature for the spectra of the shipped suites.
    With ``noise``, ``lambda`` is the ``index``-th eigenvalue of ``A + E``.
    """
    lam, n = _mode(_fitted(spectrum, n, noise, data_seed), index), int(depth)
    if n == 2:
        u0 = alpha ** 2
        t = (math.log(theta / (1 - theta)) - math.log(u0 / (lam - u0))) / (2 * lam)
    else:
        p = 2.0 - 2.0 / n
        t = (alpha ** (-(n - 2)) - (theta * lam) ** (-(n - 2) / n)) / ((n - 2) * lam) + \
            math.log(1.0 / (1.0 - theta)) / (n * lam ** p)
    w0, w1 = alpha, (theta * lam) ** (1.0 / n)
    g = lambda w: w ** (n - 1) * (lam - w ** n)
    return t / lr + 0.5 * math.log(g(w1) / g(w0))


@PREDICTIONS.register("dmf_hitting_time_exact")
def dmf_hitting_time_exact(lr: float, depth: float, alpha: float, spectrum: list, index: float,
                           theta: float, n: float = 0, noise: float = 0.0, data_seed: float = 0) -> float:
    """Steps until ``pi_i >= theta lambda_i`` by iterating the exact scalar recursion
    ``w <- w - lr w^{N-1} (w^N - lambda_i)`` from ``w = alpha`` (identity init makes matrix GD
    equal to it; the identity-init setting attributed to arXiv 2011.13772 is [U]; the recursion is
    the theory note's decoupling lemma, [D]). With ``noise``, ``lambda_i`` is the ``index``-th
    eigenvalue of ``A + E``."""
    lam, n = _mode(_fitted(spectrum, n, noise, data_seed), index), int(depth)
    w, k = alpha, 0
    while w ** n < theta * lam:
        w = w - lr * w ** (n - 1) * (w ** n - lam)
        k += 1
        if k > 10_000_000 or not math.isfinite(w):
            return math.nan
    return float(k)


@PREDICTIONS.register("dmf_projection_rank")
def dmf_projection_rank(spectrum: list, rank: float) -> float:
    """Effective rank of the rank-``r`` projection ``A_r`` of the target,
    ``r(A_r) = ||A_r||_* / ||A_r||_op = sum_{i<=r} lambda_i / lambda_1`` (arXiv 2011.13772; the
    definition attributed to the paper is [U], see shared/theory/dynamics.md Sec. 1.2)."""
    lam = sorted((float(x) for x in spectrum), reverse=True)
    return sum(lam[: int(rank)]) / lam[0]


@PREDICTIONS.register("dmf_rank_bound")
def dmf_rank_bound(spectrum: list, n: float, alpha: float, depth: float, epsilon: float) -> float:
    """Bound on ``|r(W(k)) - r(A_r)|`` inside ``I_r(eps) = [K_r(1-eps), K_{r+1}(eps)]``:
    ``eps r(A) / (1 - eps) + (n - rank A) alpha^N / ((1 - eps) lambda_1)``.

    On ``I_r``: ``pi_i in [(1-eps) lambda_i, lambda_i]`` for ``i <= r``, ``pi_j <= eps lambda_j`` for the
    other non-zero modes and ``pi_j <= alpha^N`` for the zero ones; put these into
    ``sum pi / pi_1`` (the theory note's form of the interval theorem of arXiv 2011.13772, [D]).
    """
    lam = [float(x) for x in spectrum if x > 0]
    r_a = sum(lam) / max(lam)
    return epsilon * r_a / (1 - epsilon) + (n - len(lam)) * alpha ** depth / ((1 - epsilon) * max(lam))


def _modes_at(lr: float, depth: int, alpha: float, spectrum: list, n: int, steps: int, noise: float = 0.0,
              data_seed: float = 0) -> list[float]:
    """``pi_i(steps)`` for every mode (the zero modes too) by the exact scalar recursion; with
    ``noise``, the ``n`` modes of ``A + E``."""
    lam = _fitted(spectrum, n, noise, data_seed)
    return modes_after(lr, depth, alpha, np.array(lam + [0.0] * (int(n) - len(lam))), steps).tolist()


@PREDICTIONS.register("dmf_rank_at_step")
def dmf_rank_at_step(lr: float, depth: float, alpha: float, spectrum: list, n: float, steps: float,
                    noise: float = 0.0, data_seed: float = 0) -> float:
    """Effective rank ``sum_i pi_i / max_i pi_i`` of the product after ``steps`` GD steps, every mode
    (the ``n - rank A`` zero modes included, which stay near ``alpha^N`` and decay only slowly)
    iterated by the exact scalar recursion (identity init; the identity-init setting attributed to
    arXiv 2011.13772 is [U]; the recursion is the theory note's decoupling lemma, [D]). The product
    is symmetric PSD, so its singular values are the ``pi_i``."""
    pi = _modes_at(lr, int(depth), alpha, spectrum, n, steps, noise, data_seed)
    return sum(pi) / max(pi)


@PREDICTIONS.register("dmf_entropy_rank_at_step")
def dmf_entropy_rank_at_step(lr: float, depth: float, alpha: float, spectrum: list, n: float, steps: float,
                            noise: float = 0.0, data_seed: float = 0) -> float:
    """Entropy effective rank ``exp(-sum_i p_i ln p_i)``, ``p_i = pi_i / sum_j pi_j`` (Roy & Vetterli
    2007), of the product after ``steps`` GD steps, every singular value ``pi_i`` from the exact
    scalar recursion (identity init; attributed to Chou et al., arXiv 2011.13772, [U]; the recursion
    is the theory note's, [D]; see :func:`dmf_rank_at_step`)."""
    pi = _modes_at(lr, int(depth), alpha, spectrum, n, steps, noise, data_seed)
    total = sum(pi)
    return math.exp(-sum((p / total) * math.log(p / total) for p in pi if p > 0))


@PREDICTIONS.register("dmf_loss_at_step")
def dmf_loss_at_step(lr: float, depth: float, alpha: float, spectrum: list, n: float, steps: float,
                    noise: float = 0.0, data_seed: float = 0) -> float:
    """``1/2 ||W - A||_F^2 = 1/2 sum_i (pi_i - lambda_i)^2`` after ``steps`` steps, every mode by the
    exact scalar recursion (identity init; attributed to Chou et al., arXiv 2011.13772, [U]; the
    recursion is the theory note's, [D]; see :func:`dmf_rank_at_step`)."""
    lam = _fitted(spectrum, n, noise, data_seed)
    lam = lam + [0.0] * (int(n) - len(lam))
    pi = _modes_at(lr, int(depth), alpha, spectrum, n, steps, noise, data_seed)
    return 0.5 * sum((p - l) ** 2 for p, l in zip(pi, lam))


@PREDICTIONS.register("dmf_interval_length_exact")
def dmf_interval_length_exact(lr: float, depth: float, alpha: float, spectrum: list, n: float, noise: float,
                              data_seed: float, rank: float, epsilon: float) -> float:
    """Steps in ``I_r(eps) = [K_r(1 - eps), K_{r+1}(eps)]``: ``K_{r+1}(eps) - K_r(1 - eps)``, both
    hitting steps by the exact scalar recursion (:func:`dmf_hitting_time_exact`; with ``noise``,
    mode ``rank A + 1`` is the first noise mode of ``A + E``). Negative where the interval is empty.
    The intervals are Chou, Gieshoff, Maly & Rauhut's (arXiv 2011.13772, abstract: "time intervals"
    in which the effective rank is near that of ``A_r``); the endpoints are the theory note's
    derived forms (shared/theory/dynamics.md Sec. 1.3, [D])."""
    r = int(rank)
    end = dmf_hitting_time_exact(lr, depth, alpha, spectrum, r + 1, epsilon, n, noise, data_seed)
    return end - dmf_hitting_time_exact(lr, depth, alpha, spectrum, r, 1 - epsilon, n, noise, data_seed)


def _relative_to_noisy(pi: np.ndarray, mu: np.ndarray, u: np.ndarray, spectrum: list, n: int, data_seed: float,
                       rank: int) -> float:
    """``||U diag(pi) U^T - A_r||_F / ||U diag(mu) U^T - A_r||_F``, ``U diag(mu) U^T = A + E``."""
    a_r = leading_part(symmetric_target(n, spectrum, int(data_seed)), rank).numpy()
    return float(np.linalg.norm((u * pi) @ u.T - a_r) / np.linalg.norm((u * mu) @ u.T - a_r))


@PREDICTIONS.register("dmf_estimation_error_at_step")
def dmf_estimation_error_at_step(lr: float, depth: float, alpha: float, spectrum: list, n: float, noise: float,
                                 data_seed: float, rank: float, steps: float) -> float:
    """``||W(k) - A_r||_F / ||(A + E) - A_r||_F`` after ``k = steps`` GD steps from identity
    initialisation, ``W(k) = U diag(pi(k)) U^T`` in the eigenbasis ``U`` of ``A + E``, every mode by
    its exact scalar recursion (:func:`harness.kernels.factorization.modes_after`; the theory
    note's decoupling lemma, [D]). Late in training ``W -> (A + E)_+`` (the modes of ``A + E`` with
    ``mu > 0``; a mode with ``mu <= 0`` decays to 0), so the end of a run that fits the noise modes
    estimates ``A_r`` worse than stopping inside ``I_r`` (Chou et al., arXiv 2011.13772, abstract:
    the intervals "can be used as criteria for early stopping")."""
    n = int(n)
    mu, u = fitted_eigh(n, spectrum, noise, int(data_seed))
    return _relative_to_noisy(modes_after(lr, int(depth), alpha, mu, int(steps)), mu, u, spectrum, n, data_seed, int(rank))


@PREDICTIONS.register("dmf_truncation_error")
def dmf_truncation_error(spectrum: list, n: float, noise: float, data_seed: float, rank: float) -> float:
    """``||(A + E)_r - A_r||_F / ||(A + E) - A_r||_F``: the error of the rank-``r`` truncation of the
    noisy matrix, which is what GD from identity initialisation has learned inside ``I_r`` (modes
    ``i <= r`` of ``A + E`` at ``>= (1 - eps) mu_i``, the others at ``<= eps mu_{r+1}``). For
    ``r = rank A``, small isotropic noise and ``n >> r``, about ``sqrt(2r/n)``: the truncation keeps
    the ``r x r`` and ``r x (n - r)`` blocks of ``E`` and drops the rest (derived here, first order in ``E``).
    The early-stopping use of the intervals is Chou, Gieshoff, Maly & Rauhut's (arXiv 2011.13772, abstract)."""
    n, r = int(n), int(rank)
    mu, u = fitted_eigh(n, spectrum, noise, int(data_seed))
    return _relative_to_noisy(np.where(np.arange(n) < r, mu, 0.0), mu, u, spectrum, n, data_seed, r)
