"""The top_mode measure: the step's factor along the top Hessian eigenvector, from a dry run of the
update rule (exact on a quadratic)."""

import math

import pytest
import torch

from harness import GD, SAM, HeavyBall, TorchOptim
from harness.errors import UnsupportedError
from harness.measures import StepContext, TopMode
from harness.predictions import PREDICTIONS
from harness.training.problems import Quadratic

LAM = [4.0, 2.5, 1.0, 0.3]


@pytest.fixture
def problem():
    return Quadratic(eigenvalues=LAM, rotate=True, init=[1.0, -0.7, 0.5, 0.2]).build(0, torch.float64, torch.device("cpu"))


def _measure(problem, rule, quantity, state=None):
    state = rule.init(problem.theta0) if state is None else state
    ctx = StepContext(0, problem.theta0, problem, rule, state)
    return TopMode(quantity=quantity)(ctx, {}).value


def _top_eigenvalue(problem) -> float:
    """Dense float64 reference: the top eigenvalue of the quadratic's Hessian."""
    obj = problem.objective
    h = torch.func.hessian(lambda w: obj.loss(obj.model(w, obj.inputs), obj.targets))(problem.theta0)
    return float(torch.linalg.eigvalsh(h)[-1])


def test_the_reference_hessian_is_the_quadratics_spectrum(problem):
    assert _top_eigenvalue(problem) == pytest.approx(max(LAM), rel=1e-12)


def test_under_gd_the_multiplier_is_one_minus_lr_lambda(problem):
    m = _measure(problem, GD(lr=0.1), "multiplier")
    assert m == pytest.approx(1 - 0.1 * _top_eigenvalue(problem), rel=1e-9)


def test_under_sam_next_is_the_predicted_step(problem):
    rule = SAM(lr=0.2, rho=0.02)
    now, nxt = _measure(problem, rule, "now"), _measure(problem, rule, "next")
    ev = _top_eigenvalue(problem)
    g = float(problem.objective.value_and_grad(problem.theta0)[1].norm())
    predicted = PREDICTIONS["sam_top_mode_step"](lr=0.2, rho=0.02, grad_norm=g, lambda_max=ev, top_now=now)
    assert nxt == pytest.approx(predicted, abs=1e-12) and abs(now) > 1e-3


def test_the_dry_run_leaves_the_rules_state_alone(problem):
    rule = HeavyBall(lr=0.1, momentum=0.9)
    state = rule.init(problem.theta0) + 1.0  # a non-zero momentum buffer
    before = state.clone()
    _measure(problem, rule, "next", state)
    assert torch.equal(state, before)


def test_a_torch_optimizer_is_refused(problem):
    with pytest.raises(UnsupportedError, match="torch_optim"):
        _measure(problem, TorchOptim("torch.optim.SGD", (("lr", 0.1),)), "next", state={})


def test_the_multiplier_is_the_ratio_of_next_to_now(problem):
    rule = SAM(lr=0.2, rho=0.02)
    m = _measure(problem, rule, "multiplier")
    assert math.isclose(m, _measure(problem, rule, "next") / _measure(problem, rule, "now"), rel_tol=1e-12)
