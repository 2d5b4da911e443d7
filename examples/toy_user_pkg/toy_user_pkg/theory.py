"""The package's kinds for theory-harness, registered when the harness loads this module (entry
point ``theory_harness.plugins`` in ``pyproject.toml``): the stability edge of
:class:`toy_user_pkg.optim.NormalizedGD` as a prediction."""

from __future__ import annotations

from harness import PREDICTIONS

__all__ = ["normalized_gd_edge"]


@PREDICTIONS.register("normalized_gd_edge")
def normalized_gd_edge(lr: float, grad_norm: float) -> float:
    """Edge of stability of normalised GD, ``2 ||grad L(theta_t)|| / lr``.

    Normalised GD, ``theta <- theta - lr g / ||g||``, is GD with the varying step size
    ``eta_t = lr / ||grad L(theta_t)||`` (Arora, Li & Panigrahi 2022, "Understanding Gradient
    Descent on Edge of Stability in Deep Learning", arXiv 2205.09745, abstract: normalised GD
    provably enters the edge of stability). Derived here, as Cohen et al. 2021 (arXiv 2103.00065,
    Sec. 2) derive ``2/eta`` for GD: along a Hessian eigenvector of curvature ``lam`` a GD step of
    size ``eta_t`` multiplies the error by ``1 - eta_t lam``, which is unstable once
    ``lam > 2 / eta_t = 2 ||g|| / lr``. The edge moves with the gradient norm of the same iterate
    (bound by name to a measure ``grad_norm`` recorded at the same step). Check on a 1-D
    quadratic ``1/2 lam x^2``: normalised GD maps ``x -> x - lr sign(x)``, whose 2-cycle
    ``x = +-lr/2`` has ``|g| = lam lr / 2``, i.e. ``lam = 2 |g| / lr`` exactly: the cycle sits on
    the edge. On a network, once normalised GD has settled into its oscillation along the top
    eigenvector, ``lambda_max / (2 ||g|| / lr)`` stays near 1 while ``lambda_max`` itself moves
    (measured on the package's CNN: 1.005-1.013, see ``suites/cnn_normalized_gd_edge.toml``).
    """
    return 2.0 * grad_norm / lr
