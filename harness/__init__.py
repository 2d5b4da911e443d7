"""theory-harness: the quantitative predictions of optimisation theory as regression tests.

The public surface, grouped by what it holds; see README.md and docs/ for the suite format
and the result-record schema.
"""

# objective and curvature kernels
from .objective import FlatModule, Objective
from .operators import LinearOperator
from .curvature import (HVP_STRATEGIES, gauss_newton_operator, hessian_operator, hvp, input_jacobians,
                        param_jvp, param_vjp)
from .spectrum import EigResult, lanczos

# update rules and predictions
from .optimizers import GD, OPTIMIZERS, HeavyBall, Nesterov
from .predictions import PREDICTIONS, gd_edge, heavy_ball_edge, nesterov_edge

# problems and measures
from .problems import PROBLEMS, Problem
from .measures import MEASURES, Measurement, StepContext
from .losses import LOSSES

# suites, runs and records
from .errors import HarnessError, MeasurementError, SuiteError
from .suite import Suite, load_suite
from .runner import Case, CaseResult, expand, run_case
from .expectations import Verdict
from .records import RECORD_SCHEMA, read_records

__version__ = "0.1.0"

__all__ = [
    # objective and curvature kernels
    "Objective", "FlatModule", "LinearOperator", "HVP_STRATEGIES", "hessian_operator", "hvp",
    "gauss_newton_operator", "param_jvp", "param_vjp", "input_jacobians", "EigResult", "lanczos",
    # update rules and predictions
    "OPTIMIZERS", "GD", "HeavyBall", "Nesterov", "PREDICTIONS", "gd_edge", "heavy_ball_edge", "nesterov_edge",
    # problems and measures
    "PROBLEMS", "Problem", "MEASURES", "Measurement", "StepContext", "LOSSES",
    # suites, runs and records
    "HarnessError", "SuiteError", "MeasurementError", "Suite", "load_suite", "Case", "CaseResult", "expand",
    "run_case", "Verdict", "RECORD_SCHEMA", "read_records",
]
