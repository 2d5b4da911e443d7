"""Predictions: named functions of a run's hyper-parameters and same-step measurements.

A suite names a prediction; the runner binds each argument by name, first from the
expectation's ``args`` table, then from the optimiser's hyper-parameters, then from the
measures recorded at the same step, and evaluates the prediction at every measurement.
"""

from __future__ import annotations

import inspect
from typing import Callable

from .registry import Registry

__all__ = ["PREDICTIONS", "gd_edge", "heavy_ball_edge", "nesterov_edge", "arguments"]

PREDICTIONS: Registry[Callable[..., float]] = Registry("prediction")


def arguments(name: str) -> list[str]:
    """The argument names prediction ``name`` needs."""
    return list(inspect.signature(PREDICTIONS[name]).parameters)


@PREDICTIONS.register("gd_edge")
def gd_edge(lr: float) -> float:
    """GD edge of stability, ``2 / lr``.

    Full-batch GD on ``L`` multiplies the component of the error along a Hessian
    eigenvector of curvature ``lam`` by ``1 - lr * lam``; it is stable iff ``lam < 2/lr``.
    Cohen et al. 2021 (arXiv 2103.00065, Sec. 3, Fig. 1) observe that on neural networks
    the sharpness ``lambda_max`` rises until it reaches ``2/lr`` and then hovers just above it.
    """
    return 2.0 / lr


@PREDICTIONS.register("heavy_ball_edge")
def heavy_ball_edge(lr: float, momentum: float) -> float:
    """Heavy-ball edge, ``(2 + 2 beta) / lr``.

    Along an eigenvector of curvature ``lam`` the iteration ``b <- beta b + g``,
    ``w <- w - lr b`` has characteristic polynomial ``z^2 - (1 + beta - lr lam) z + beta``;
    a root crosses ``z = -1`` when ``lr lam = 2 + 2 beta``. Cohen et al. 2021
    (arXiv 2103.00065, appendix on momentum) report EoS at this threshold (derived here).
    """
    return (2.0 + 2.0 * momentum) / lr


@PREDICTIONS.register("nesterov_edge")
def nesterov_edge(lr: float, momentum: float) -> float:
    """Nesterov edge, ``(2 + 2 beta) / (lr (1 + 2 beta))``.

    With ``b <- beta b + g``, ``w <- w - lr (g + beta b)`` the characteristic polynomial along
    an eigenvector is ``z^2 - (1 - lr lam)(1 + beta) z + (1 - lr lam) beta``; at ``z = -1`` it
    gives ``1 + (1 - lr lam)(1 + 2 beta) = 0``, i.e. ``lam = (2 + 2 beta)/(lr (1 + 2 beta))``
    (Cohen et al. 2021, arXiv 2103.00065, appendix on momentum; derived here).
    """
    return (2.0 + 2.0 * momentum) / (lr * (1.0 + 2.0 * momentum))
