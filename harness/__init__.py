"""theory-harness: the quantitative predictions of optimisation theory as regression tests.

The public surface, grouped by what it holds; see README.md and docs/ for the suite format
and the result-record schema.
"""

import importlib.abc
import importlib.util
import sys

# layer 1, kernels: objective and curvature
from .kernels.objective import FlatModule, Objective
from .kernels.operators import LinearOperator
from .kernels.curvature import (HVP_STRATEGIES, gauss_newton_operator, hessian_operator, hvp, input_jacobians,
                                param_jvp, param_vjp)
from .kernels.spectrum import EigResult, block_lanczos, lanczos
from .kernels.sharpness import top_eigenpairs
from .kernels.cost import count_flops, flops_in_gradients
from .kernels.ansatz import chain_rule_error, mean_sq_jacobian_norm, trace_inequality_ratio
from .kernels.losses import LOSSES

# layer 2, what is trained and how: problems, update rules, measures, predictions
from .training.problems import PROBLEMS, ModuleProblem, Problem
from .training.data import DATASETS
from .training.optimizers import (GD, OPTIMIZERS, SAM, DirectionRule, HeavyBall, Nesterov, ProblemRule,
                                  SAMUnnormalized, ScaledSGD, TorchOptim, TwoRateGD)
from .measures import MEASURES, Measurement, StepContext
from .predictions import (PREDICTIONS, gauss_newton_top, gd_edge, heavy_ball_edge, nesterov_edge, sam_edge,
                          sam_orbit_grad_norm, sam_unnormalized_edge)

# what user code must provide to be named in a suite, and plugin loading
from . import protocols
from .registry import load_plugins

# layer 3, the suite spec; layer 4, runs; layer 5, records and comparisons
from .errors import HarnessError, MeasurementError, SuiteError
from .spec.types import Suite
from .spec.reader import load_suite
from .run.runner import Case, CaseResult, evaluate_sweeps, expand, run_case
from .run.expectations import Verdict
from .output.records import RECORD_SCHEMA, read_records
from .output.compare import compare


def __getattr__(name: str):
    """``build_report`` is imported on first use (it pulls in matplotlib)."""
    if name == "build_report":
        from .output.report import build_report

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
    "ProblemRule", "DirectionRule",
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


# Module paths before the layers became subpackages (``harness.curvature`` is now
# ``harness.kernels.curvature``): imported under the old name, a module is the new one, so code
# written against them keeps working. New code uses the new paths.
_MOVED = {
    **{m: f"kernels.{m}" for m in ("objective", "operators", "curvature", "spectrum", "sharpness", "cost", "ansatz",
                                   "homogeneous", "rank", "relu_kernels", "losses")},
    **{m: f"training.{m}" for m in ("problems", "data", "optimizers")},
    **{m: f"spec.{m}" for m in ("checks", "expansion", "statistics")}, "suite": "spec.reader",
    **{m: f"run.{m}" for m in ("runner", "events", "series", "expectations", "parallel", "calibrate", "environment")},
    **{m: f"output.{m}" for m in ("records", "report", "figures", "compare", "tables")},
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``harness.<old name>`` and answers with the module at its new path."""

    def find_spec(self, name, path=None, target=None):
        prefix, _, old = name.partition(".")
        if prefix == __name__ and old in _MOVED:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")
        self._own = {k: getattr(module, k) for k in ("__spec__", "__loader__", "__package__", "__name__")}
        return module

    def exec_module(self, module):
        # already executed under its new name; the import system has just stamped the old name's
        # spec on it: give it back its own (relative imports inside it check __spec__.parent)
        for key, value in self._own.items():
            setattr(module, key, value)


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())
