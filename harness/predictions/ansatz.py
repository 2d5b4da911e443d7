"""Predictions of the Hessian-Jacobian ansatz (MacDonald, Valmadre & Lucey, arXiv 2305.14683)."""

from __future__ import annotations

from . import PREDICTIONS

__all__ = ["gauss_newton_top"]


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
