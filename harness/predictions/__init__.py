"""Predictions: named functions of a run's hyper-parameters, its problem's options and
same-step measurements, each with a docstring that states the formula and cites the paper.

A suite names a prediction; the runner binds each argument by name, first from the
expectation's ``args`` table (a number, or a string naming a measure), then from the
optimiser's hyper-parameters, then from the problem's options, then from the measures
recorded at the same step, and evaluates it at every measurement (or once, for a
prediction that needs no measure).
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..registry import Registry

__all__ = ["PREDICTIONS", "arguments"]

PREDICTIONS: Registry[Callable[..., float]] = Registry("prediction")


def arguments(name: str) -> list[str]:
    """The argument names prediction ``name`` needs."""
    return list(inspect.signature(PREDICTIONS[name]).parameters)


from . import ansatz, factorization, reference, relu, stability  # noqa: E402,F401  (register the predictions)
from .ansatz import gauss_newton_top  # noqa: E402
from .reference import reference_value  # noqa: E402
from .stability import (gd_edge, heavy_ball_edge, nesterov_edge, sam_edge, sam_orbit_grad_norm,  # noqa: E402
                        sam_top_mode_multiplier, sam_top_mode_step, sam_unnormalized_edge)

__all__ += ["gd_edge", "heavy_ball_edge", "nesterov_edge", "sam_edge", "sam_unnormalized_edge",
            "sam_orbit_grad_norm", "sam_top_mode_multiplier", "sam_top_mode_step", "gauss_newton_top", "reference_value"]
