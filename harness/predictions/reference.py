"""The value a curvature kernel must reproduce: the same quantity computed densely."""

from __future__ import annotations

from . import PREDICTIONS

__all__ = ["dense_eigenvalue"]


@PREDICTIONS.register("dense_eigenvalue")
def dense_eigenvalue(reference: float) -> float:
    """The top eigenvalue of the dense matrix, ``lambda_1 = max eig(M)``, from
    :class:`~harness.measures.DenseTopEigenvalue` at the same step.

    The sharpness of Cohen et al. 2021 (arXiv 2103.00065, Sec. 2) is the top eigenvalue of the
    full-batch Hessian of exactly the training loss on its fixed examples; a Krylov estimate of
    it (Lanczos, warm-started or not, on chunked products) is a Rayleigh quotient, so it can only
    fall below ``lambda_1`` (Courant-Fischer), by at most its residual when it has found the top
    eigenvector and by the gap to a lower eigenvalue when it has not.
    """
    return reference
