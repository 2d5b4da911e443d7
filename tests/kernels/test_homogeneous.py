import dataclasses
"""The homogeneous MLP reading of Terjék (arXiv 2502.13110): layers, depthwise scales, the Gram
form of c_1, Taylor coefficients and soft rank (mirrors harness/kernels/homogeneous.py), and the
seeded minibatches of scaled_sgd."""

import math

import pytest
import torch

from harness.kernels.homogeneous import gram_c1, layer_forward, layer_stats, participation_ratio, taylor_coefficients
from harness.kernels.losses import mse
from harness.training.optimizers import ScaledSGD
from harness.training.problems import HomogeneousMLP

SMALL = HomogeneousMLP(input_dim=5, n_classes=3, depth=3, n1=2, n_samples=40, n_test=20, teacher_width=4)


@pytest.fixture
def problem():
    return SMALL.build(0, torch.float64, torch.device("cpu"))


def test_model_is_positively_homogeneous(problem):
    x = problem.objective.inputs
    out = layer_forward(problem.theta0, problem.widths, x)[0]
    # scaling every layer's weights by c > 0 scales the output by c^L (bias-free, relu)
    assert torch.allclose(layer_forward(2.0 * problem.theta0, problem.widths, x)[0], 2.0 ** 3 * out)
    assert problem.widths == (5, 2, 8, 3)


def test_gram_c1_equals_the_gradient_inner_product(problem):
    x, y = problem.objective.inputs, problem.objective.targets
    widths = problem.widths
    stats = layer_stats(problem.theta0, widths, x, y, mse)
    scale = torch.cat([torch.full((widths[k] * widths[k + 1],), stats.xis[k], dtype=torch.float64)
                       for k in range(len(widths) - 1)])
    u = -scale * stats.grad
    assert gram_c1(stats, widths, stats.xis) == pytest.approx(float(stats.grad @ u), rel=1e-12)
    for k, xi in enumerate(stats.xis):  # ||xi_k G_k||_F <= 1
        sl = slice(sum(widths[j] * widths[j + 1] for j in range(k)), sum(widths[j] * widths[j + 1] for j in range(k + 1)))
        assert float((xi * stats.grad[sl]).norm()) <= 1 + 1e-12


def test_taylor_coefficients_match_finite_differences(problem):
    obj = problem.objective
    f = lambda t: obj.loss(obj.model(t, obj.inputs), obj.targets)
    u = torch.randn(problem.theta0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.1
    l0, c1, c2, c3 = taylor_coefficients(f, problem.theta0, u)
    h = 1e-3
    fh = lambda k: float(f(problem.theta0 + k * h * u))
    assert c1 == pytest.approx((fh(1) - fh(-1)) / (2 * h), rel=1e-5)
    assert c2 == pytest.approx((fh(1) - 2 * fh(0) + fh(-1)) / h ** 2, rel=1e-4)
    assert c3 == pytest.approx((fh(2) - 2 * fh(1) + 2 * fh(-1) - fh(-2)) / (2 * h ** 3), rel=1e-2, abs=1e-6)


def test_participation_ratio():
    assert participation_ratio(torch.eye(4, dtype=torch.float64)) == pytest.approx(4.0)
    rank_one = torch.ones(4, 3, dtype=torch.float64)
    assert participation_ratio(rank_one) == pytest.approx(1.0)


def test_minibatches_are_seeded(problem):
    rule = ScaledSGD(lr=0.1, batch_size=8)
    assert torch.equal(rule.batch(problem, 3)[0], rule.batch(problem, 3)[0])
    assert not torch.equal(rule.batch(problem, 3)[0], rule.batch(problem, 4)[0])
    other_seed = SMALL.build(1, torch.float64, torch.device("cpu"))
    assert not torch.equal(rule.batch(problem, 3)[0], rule.batch(other_seed, 3)[0])


def test_depthwise_scaling_can_be_switched_off(problem):
    plain = ScaledSGD(lr=0.1, batch_size=8, depthwise_scaling=False)
    d = plain.direction(problem.theta0, plain.init(problem.theta0, problem))
    assert d.xis == [1.0] * 3 and torch.equal(d.u, -d.stats.grad)


def _one_step(problem):
    """A ScaledSGD rule, a copy of it from before, and its direction after one step from theta0."""
    rule = ScaledSGD(lr=0.1, batch_size=8)
    before = dataclasses.replace(rule)
    state = rule.init(problem.theta0, problem)
    theta, state = rule.step(problem.theta0, state, problem.objective.value_and_grad)
    d1 = rule.direction(theta, state)
    return rule, before, state, d1


def test_the_state_counts_steps(problem):
    rule, _, state, d1 = _one_step(problem)
    assert state.t == 1
    assert torch.equal(d1.batch[0], rule.batch(problem, 1)[0])


def test_stepping_leaves_the_rule_unchanged(problem):
    rule, before, _, _ = _one_step(problem)
    assert rule == before


def test_soft_rank_variants_agree_on_extremes():
    from harness.kernels.homogeneous import entropy_soft_rank, stable_rank
    eye = torch.eye(5, dtype=torch.float64)
    assert stable_rank(eye) == pytest.approx(5.0) and entropy_soft_rank(eye) == pytest.approx(5.0)
    one = torch.ones(5, 2, dtype=torch.float64)
    assert stable_rank(one) == pytest.approx(1.0) and entropy_soft_rank(one) == pytest.approx(1.0)


def test_preconditioned_sharpness_against_a_dense_hessian(problem):
    from torch.func import hessian

    from harness.measures import PreconditionedSharpness, StepContext
    rule = ScaledSGD(lr=0.5, batch_size=16)
    ctx = StepContext(0, problem.theta0, problem, rule, rule.init(problem.theta0, problem))
    value = PreconditionedSharpness(tol=1e-10).__call__(ctx, {}).value
    d = rule.direction(problem.theta0, ctx.state)
    xis, (x, y) = d.xis, d.batch
    widths = problem.widths
    h = hessian(lambda t: mse(layer_forward(t, widths, x)[0], y))(problem.theta0)
    s = torch.cat([torch.full((widths[k] * widths[k + 1],), math.sqrt(xi), dtype=torch.float64)
                   for k, xi in enumerate(xis)])
    dense = 0.5 * float(torch.linalg.eigvalsh(s[:, None] * h * s[None, :])[-1])
    assert value == pytest.approx(dense, rel=1e-8)


def test_lr_relative_to_the_edge_at_init(problem):
    from harness import hessian_operator, lanczos
    from harness.kernels.objective import Objective
    from harness.training.optimizers import in_absolute_units, roles, step_size_unit
    rule = ScaledSGD(lr=4.0, batch_size=16, depthwise_scaling=False, lr_unit="edge_at_init")
    x, y = rule.batch(problem, 0)
    lam0 = lanczos(hessian_operator(Objective(problem.objective.model, mse, x, y), problem.theta0), tol=1e-8).top()
    unit = step_size_unit(rule, problem)
    runs = in_absolute_units(rule, unit)
    assert unit == pytest.approx(2.0 / lam0, rel=1e-3)
    assert runs.lr == pytest.approx(4.0 * 2.0 / lam0, rel=1e-3) and runs.lr_unit == "absolute"
    assert roles(runs)["lr"] == runs.lr  # a prediction binding lr gets the step size that runs, not 4
    with pytest.raises(ValueError, match="absolute units"):
        rule.init(problem.theta0, problem)
