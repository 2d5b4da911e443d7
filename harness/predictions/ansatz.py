"""Predictions of the Hessian-Jacobian ansatz (MacDonald, Valmadre & Lucey, arXiv 2305.14683)."""

from __future__ import annotations

import math

from . import PREDICTIONS

__all__ = ["gauss_newton_top", "smoothed_cross_entropy_minimum"]


@PREDICTIONS.register("gauss_newton_top")
def gauss_newton_top(lambda_gn: float) -> float:
    """Gauss-Newton dominance: the top of the Hessian spectrum is the top of the Gauss-Newton
    matrix, ``lambda_max(H) ~= lambda_max(G)``, with ``H = G + R`` for a convex loss.

    The outlier eigenvalues of the loss Hessian are those of ``G`` (Sagun et al. 2017, arXiv
    1706.04454; Papyan 2018, arXiv 1811.07062); MacDonald, Valmadre & Lucey (arXiv 2305.14683,
    Sec. 3, Ansatz 3.1) ground their ansatz on it; the numeric closeness ``lambda_H/lambda_GN ~= 1``
    asserted here is the project's calibration, not a claim of the paper.
    """
    return lambda_gn


@PREDICTIONS.register("smoothed_cross_entropy_minimum")
def smoothed_cross_entropy_minimum(label_smoothing: float, n_outputs: float) -> float:
    """The least value of cross-entropy against label-smoothed targets, the entropy of the smoothed
    target ``q = (1 - eps) onehot + eps / K``:

    ``H(q) = -(1 - eps + eps/K) ln(1 - eps + eps/K) - (K - 1) (eps/K) ln(eps/K)``

    (Gibbs' inequality: ``CE(q, p) = H(q) + KL(q || p) >= H(q)``, equality at ``p = q``, reached
    with the finite logit gaps ``ln(1 + K (1 - eps)/eps)``; 0 at ``eps = 0``, approached only as
    the logits grow without bound). With label smoothing the loss floors at ``H(q)`` while the
    Jacobian needed to reach it shrinks as ``eps`` grows: the setting in which MacDonald, Valmadre &
    Lucey (arXiv 2305.14683, end of Sec. 3, in the theory note's reading) expect the ansatz's
    tie between sharpness and Jacobian to be broken by a change of scale.
    """
    eps, k = float(label_smoothing), float(n_outputs)
    if not 0.0 <= eps < 1.0 or k < 2:
        raise ValueError(f"label_smoothing {eps} outside [0, 1) or n_outputs {k} < 2")
    if eps == 0.0:
        return 0.0
    top, rest = 1.0 - eps + eps / k, eps / k
    return -top * math.log(top) - (k - 1.0) * rest * math.log(rest)
