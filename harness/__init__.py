"""theory-harness: the quantitative predictions of optimisation theory as regression tests.

The public surface, grouped by what it holds; see README.md and docs/ for the suite format
and the result-record schema.
"""

# objective and curvature kernels
from .objective import FlatModule, Objective
from .operators import LinearOperator
from .curvature import (HVP_STRATEGIES, gauss_newton_operator, hessian_operator, hvp, input_jacobians,
                        param_jvp, param_vjp)
from .spectrum import EigResult, block_lanczos, lanczos
from .sharpness import top_eigenpairs
from .cost import count_flops, flops_in_gradients

# update rules and predictions
from .optimizers import GD, OPTIMIZERS, SAM, HeavyBall, Nesterov, SAMUnnormalized, ScaledSGD, TorchOptim, TwoRateGD
from .predictions import (PREDICTIONS, gauss_newton_top, gd_edge, heavy_ball_edge, nesterov_edge, sam_edge,
                          sam_orbit_grad_norm, sam_unnormalized_edge)

# problems and measures
from .ansatz import chain_rule_error, mean_sq_jacobian_norm, trace_inequality_ratio
from .problems import PROBLEMS, ModuleProblem, Problem
from .measures import MEASURES, Measurement, StepContext
from .losses import LOSSES
from .data import DATASETS

# what user code must provide to be named in a suite, and plugin loading
from . import protocols
from .registry import load_plugins

# suites, runs and records
from .errors import HarnessError, MeasurementError, SuiteError
from .spec import Suite
from .suite import load_suite
from .runner import Case, CaseResult, evaluate_sweeps, expand, run_case
from .expectations import Verdict
from .records import RECORD_SCHEMA, read_records

# reports and comparisons across runs
from .compare import compare


def __getattr__(name: str):
    """``build_report`` is imported on first use (it pulls in matplotlib)."""
    if name == "build_report":
        from .report import build_report

        return build_report
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    # objective and curvature kernels
    "Objective", "FlatModule", "LinearOperator", "HVP_STRATEGIES", "hessian_operator", "hvp",
    "gauss_newton_operator", "param_jvp", "param_vjp", "input_jacobians", "EigResult", "lanczos",
    "block_lanczos", "top_eigenpairs", "count_flops", "flops_in_gradients",
    # update rules and predictions
    "OPTIMIZERS", "GD", "HeavyBall", "Nesterov", "SAM", "SAMUnnormalized", "TwoRateGD", "ScaledSGD", "TorchOptim",
    "PREDICTIONS", "gd_edge", "heavy_ball_edge", "nesterov_edge", "sam_edge", "sam_unnormalized_edge",
    "sam_orbit_grad_norm", "gauss_newton_top",
    # problems and measures
    "PROBLEMS", "Problem", "mean_sq_jacobian_norm", "chain_rule_error", "trace_inequality_ratio", "MEASURES", "Measurement", "StepContext", "LOSSES",
    "DATASETS", "ModuleProblem",
    # what user code must provide (harness.protocols) and plugin loading
    "protocols", "load_plugins",
    # suites, runs and records
    "HarnessError", "SuiteError", "MeasurementError", "Suite", "load_suite", "Case", "CaseResult", "expand",
    "run_case", "evaluate_sweeps", "Verdict", "RECORD_SCHEMA", "read_records",
    # reports and comparisons across runs
    "build_report", "compare",
]
