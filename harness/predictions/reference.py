"""The value a kernel must reproduce: the same quantity computed by an independent route."""

from __future__ import annotations

from . import PREDICTIONS

__all__ = ["reference_value"]


@PREDICTIONS.register("reference_value")
def reference_value(reference: float) -> float:
    """The same quantity from a reference measure at the same step (``measures.reference``):
    computed densely or in another autodiff mode, through none of the kernels it checks.

    For the sharpness: the top eigenvalue ``lambda_1`` of the dense full-batch Hessian, the
    quantity Cohen et al. 2021 (arXiv 2103.00065, Sec. 1 and fn. 2) track. A Krylov estimate of it
    (Lanczos, warm-started or not, on chunked products) is a Rayleigh quotient, so it can only
    fall below ``lambda_1`` (Courant-Fischer), by about its residual when it has found the top
    eigenvector and by the gap to a lower eigenvalue when it has not. For ``J_F``, the project's
    mean-squared-Frobenius proxy for the "input-output Jacobian over training samples" of
    MacDonald, Valmadre & Lucey (arXiv 2305.14683, Ansatz 3.1): the same mean, equal up to round-off.
    It also binds any other measure that bounds a measure at the same step: the data's pairwise
    Lipschitz estimate is read against the sample maximum of ``||D_x f||_2`` (the norm of the same
    paper's Jacobian bounds).
    """
    return reference
