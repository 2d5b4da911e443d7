"""Stability edges of update rules: GD (Cohen et al. 2021, arXiv 2103.00065), heavy-ball and
Nesterov momentum (edges derived here), Adam (Cohen et al., arXiv 2207.14484) and
sharpness-aware minimisation (Long & Bartlett, arXiv 2309.12488)."""

from __future__ import annotations

import math

from . import PREDICTIONS

__all__ = ["gd_edge", "heavy_ball_edge", "nesterov_edge", "adam_edge", "sam_edge", "sam_unnormalized_edge",
           "sam_orbit_grad_norm"]


@PREDICTIONS.register("gd_edge")
def gd_edge(lr: float) -> float:
    """GD edge of stability, ``2 / lr``.

    Full-batch GD on ``L`` multiplies the component of the error along a Hessian
    eigenvector of curvature ``lam`` by ``1 - lr * lam``; for a convex quadratic
    (``0 < lam``) it is stable iff ``lam < 2/lr`` (a negative eigenvalue diverges at any step
    size; Cohen et al. 2021, arXiv 2103.00065, fn. 3). Cohen et al. 2021 (arXiv 2103.00065,
    abstract and Fig. 1) observe that on neural networks the sharpness ``lambda_max`` rises
    until it reaches ``2/lr`` and then hovers right at, or just above, it.
    """
    return 2.0 / lr


@PREDICTIONS.register("heavy_ball_edge")
def heavy_ball_edge(lr: float, momentum: float) -> float:
    """Heavy-ball edge, ``(2 + 2 beta) / lr``.

    Along an eigenvector of curvature ``lam`` the iteration ``b <- beta b + g``,
    ``w <- w - lr b`` has characteristic polynomial ``z^2 - (1 + beta - lr lam) z + beta``;
    a root crosses ``z = -1`` when ``lr lam = 2 + 2 beta``. The edge is derived here;
    Cohen et al.'s code (arXiv 2103.00065; ``--opt polyak``, torch.optim.SGD) runs this rule;
    whether the paper reports EoS at this threshold is unverified.
    """
    return (2.0 + 2.0 * momentum) / lr


@PREDICTIONS.register("nesterov_edge")
def nesterov_edge(lr: float, momentum: float) -> float:
    """Nesterov edge, ``(2 + 2 beta) / (lr (1 + 2 beta))``.

    With ``b <- beta b + g``, ``w <- w - lr (g + beta b)`` the characteristic polynomial along
    an eigenvector is ``z^2 - (1 - lr lam)(1 + beta) z + (1 - lr lam) beta``; at ``z = -1`` it
    gives ``1 + (1 - lr lam)(1 + 2 beta) = 0``, i.e. ``lam = (2 + 2 beta)/(lr (1 + 2 beta))``
    (derived here; Cohen et al.'s code, arXiv 2103.00065, runs this rule as ``--opt nesterov``,
    torch.optim.SGD with ``nesterov=True``; whether the paper reports EoS at it is unverified).
    """
    return (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))


@PREDICTIONS.register("adam_edge")
def adam_edge(lr: float, betas: list) -> float:
    """Adaptive edge of stability of Adam, ``(2 + 2 beta1) / ((1 - beta1) lr)`` (38/lr at beta1 = 0.9).

    With its preconditioner ``P`` held fixed, Adam is EMA momentum ``m <- beta1 m + (1 - beta1) g``,
    ``w <- w - lr P^{-1} m`` (the ``1 - beta1^t`` bias correction folded into ``P``). Along an
    eigenvector of ``P^{-1} H`` with eigenvalue ``lam`` the characteristic polynomial is
    ``z^2 - (1 + beta1 - lr (1 - beta1) lam) z + beta1``; a root crosses ``z = -1`` when
    ``lr (1 - beta1) lam = 2 + 2 beta1``: the heavy-ball edge with step ``lr (1 - beta1)``. Cohen et
    al., "Adaptive Gradient Methods at the Edge of Stability" (arXiv 2207.14484, abstract and
    Fig. 1) observe that under full-batch Adam ``lambda_1(P^{-1} H)`` equilibrates at this threshold
    (38/lr at beta1 = 0.9, stated in the abstract); the general-beta1 form is derived here, and the
    paper's equation number was not checked against the full text.
    """
    beta1 = float(betas[0])
    return (2.0 + 2.0 * beta1) / ((1.0 - beta1) * lr)


@PREDICTIONS.register("sam_edge")
def sam_edge(lr: float, rho: float, grad_norm: float) -> float:
    """SAM edge of stability, ``SE = (||g|| / (2 rho)) (sqrt(1 + 8 rho / (lr ||g||)) - 1)``.

    Long & Bartlett, "Sharpness-Aware Minimization and the Edge of Stability", arXiv
    2309.12488 (formula verbatim in google-deepmind/sam_edge ``sam_edge.py``). Derivation as
    reconstructed here (the paper's own derivation not read): on
    ``L = 1/2 (w - w*)^T H (w - w*)`` normalised SAM evaluates the gradient at
    ``w + rho g/||g||``, which is ``g + (rho/||g||) H g``; treating ``||g||`` as locally constant,
    the error along an eigenvector of curvature ``lam`` is multiplied by
    ``1 - lr lam - lr rho lam^2 / ||g||``, unstable once ``lr lam + lr rho lam^2/||g|| > 2``; the
    positive root of ``rho lam^2/||g|| + lam - 2/lr = 0`` is SE. It is below ``2/lr`` for
    ``rho > 0`` and moves with the gradient norm of the same iterate.

    Evaluated in the identical form ``4 / (lr (1 + sqrt(1 + 8 rho / (lr ||g||))))``, which does
    not cancel when ``rho / ||g||`` is small; ``||g|| = 0`` gives the limit 0.
    """
    if grad_norm == 0:
        return 0.0
    return 4.0 / (lr * (1.0 + math.sqrt(1.0 + 8.0 * rho / (lr * grad_norm))))


@PREDICTIONS.register("sam_unnormalized_edge")
def sam_unnormalized_edge(lr: float, rho: float) -> float:
    """Edge of unnormalised SAM, ``(sqrt(1 + 8 rho / lr) - 1) / (2 rho)``.

    Derived here for contrast with Long & Bartlett (arXiv 2309.12488), who analyse the
    normalised rule: ``w - lr grad L(w + rho g)`` on a quadratic multiplies the error along an
    eigenvector by ``1 - lr lam - lr rho lam^2``; the positive root of
    ``rho lam^2 + lam - 2/lr = 0`` is the edge. It does not depend on the gradient norm.
    Evaluated as the identical ``4 / (lr (1 + sqrt(1 + 8 rho / lr)))`` (no cancellation).
    """
    return 4.0 / (lr * (1.0 + math.sqrt(1.0 + 8.0 * rho / lr)))


@PREDICTIONS.register("sam_orbit_grad_norm")
def sam_orbit_grad_norm(lr: float, rho: float, lambda_max: float) -> float:
    """Gradient norm on SAM's period-2 orbit of a quadratic, ``lr rho lam^2 / (2 - lr lam)``.

    Along the top eigenvector (curvature ``lam``) the normalised SAM map is
    ``x <- (1 - lr lam) x - lr rho lam sign(x)``; its 2-cycle ``x <-> -x`` has
    ``|x| = lr rho lam / (2 - lr lam)``, so ``||g|| = lam |x|``. Substituted into
    :func:`sam_edge` it gives ``SE = lam`` exactly: the orbit sits on the SAM edge
    (Long & Bartlett, arXiv 2309.12488; Bartlett, Long & Bousquet 2022, arXiv 2210.01513,
    abstract: on a convex quadratic SAM converges, for most random initialisations, to a cycle
    along the top eigenvector; its amplitude is derived here and checked in the theory note).
    """
    return lr * rho * lambda_max ** 2 / (2.0 - lr * lambda_max)


@PREDICTIONS.register("sam_top_mode_multiplier")
def sam_top_mode_multiplier(lr: float, rho: float, grad_norm: float, lambda_max: float) -> float:
    """The factor by which one normalised-SAM step multiplies the error along the top eigenvector
    of a quadratic, written through the SAM edge ``S = SE(lr, rho, ||g_t||)`` of the step's own
    iterate: ``1 - lr lam - lam^2 (2 - lr S) / S^2``.

    Derived here (Long & Bartlett, arXiv 2309.12488, analyse normalised SAM): on
    ``L = 1/2 w^T A w`` the step ``w - lr A (w + rho g/||g||)`` multiplies the eigen-coordinate of
    curvature ``lam`` by ``1 - lr lam - lr rho lam^2 / ||g_t||``; ``S`` solves
    ``lr S + lr rho S^2/||g_t|| = 2``, so ``lr rho / ||g_t|| = (2 - lr S) / S^2``. Its magnitude is
    1 exactly at ``lam = S``: the edge decides, step by step and off the 2-cycle, whether the top
    mode grows (``lam > SE(||g_t||)``) or decays, with ``||g||`` of the iterate the step starts
    from. On the cycle it is -1 (:func:`sam_orbit_grad_norm`).
    """
    s = sam_edge(lr, rho, grad_norm)
    return 1.0 - lr * lambda_max - lambda_max ** 2 * (2.0 - lr * s) / s ** 2


@PREDICTIONS.register("sam_top_mode_step")
def sam_top_mode_step(lr: float, rho: float, grad_norm: float, lambda_max: float, top_now: float) -> float:
    """The top mode after one normalised-SAM step, ``m * top_now`` with ``m`` the
    :func:`sam_top_mode_multiplier` of the step's iterate and ``top_now = <v_1, g_t>/||g_t||`` (the
    ``top_mode`` measure's ``now``; its ``next`` is the measured counterpart). A product, not a
    ratio, so it stays exact where the top coordinate has decayed to round-off. Derived here for
    normalised SAM as Long & Bartlett (arXiv 2309.12488) analyse it."""
    return sam_top_mode_multiplier(lr, rho, grad_norm, lambda_max) * top_now
