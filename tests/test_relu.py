import dataclasses
"""The two-layer ReLU problem, its kernels, the two-rate rule and the kernel predictions
(mirrors harness/training/problems.py, harness/kernels/relu_kernels.py, harness/training/optimizers.py and
harness/predictions/relu.py)."""

import math

import pytest
import torch

from harness.training.optimizers import TwoRateGD
from harness.predictions import PREDICTIONS
from harness.training.problems import TwoLayerReLU
from harness.kernels.relu_kernels import relu_kernels


def test_infinite_width_kernels_match_a_wide_empirical_kernel():
    prob = TwoLayerReLU(n=6, d=4, m=200_000)
    x, _ = prob.data()
    theta = prob.init(3)
    w, a = theta[: prob.m * prob.d].view(prob.m, prob.d), theta[prob.m * prob.d:]
    pre = x @ w.T / math.sqrt(prob.d)
    act = (pre > 0).double()
    k_w_emp = ((act * a ** 2) @ act.T) / prob.m * (x @ x.T / prob.d)  # the NTK block of W, finite m
    k_a_emp = torch.relu(pre) @ torch.relu(pre).T / prob.m             # the NTK block of a
    k_w, k_a = relu_kernels(x)
    assert float((k_w_emp - k_w).abs().max() / k_w.abs().max()) < 0.02
    assert float((k_a_emp - k_a).abs().max() / k_a.abs().max()) < 0.02


def test_loss_is_half_the_squared_error_of_the_two_layer_relu_model():
    prob = TwoLayerReLU(n=5, d=3, m=7)
    p = prob.build(0, torch.float64, torch.device("cpu"))
    x, y = p.objective.inputs, p.objective.targets
    w, a = p.theta0[:21].view(7, 3), p.theta0[21:]
    f = torch.relu(x @ w.T / math.sqrt(3)) @ a / math.sqrt(7)
    assert float(p.objective.value(p.theta0)) == pytest.approx(0.5 * float(((f - y[:, 0]) ** 2).sum()), rel=1e-12)


@pytest.fixture
def small_relu():
    """A built TwoLayerReLU(n=5, d=3, m=7): 21 first-layer weights, then 7 second-layer ones."""
    return TwoLayerReLU(n=5, d=3, m=7).build(0, torch.float64, torch.device("cpu"))


def _two_rate_step(p):
    """One TwoRateGD step (first layer at 0.3, second at 0): the new parameters and the gradient at theta0."""
    g = p.objective.value_and_grad(p.theta0)[1]
    rule = TwoRateGD(lr_first=0.3, lr_second=0.0)
    new, _ = rule.step(p.theta0, rule.init(p.theta0, p), p.objective.value_and_grad)
    return new, g


def test_two_rate_rule_steps_a_group_at_its_own_rate(small_relu):
    p = small_relu
    new, g = _two_rate_step(p)
    torch.testing.assert_close(new[:21], p.theta0[:21] - 0.3 * g[:21])


def test_two_rate_rule_freezes_a_group_with_a_zero_rate(small_relu):
    p = small_relu
    new, _ = _two_rate_step(p)
    assert torch.equal(new[21:], p.theta0[21:])  # frozen second layer


def test_two_rate_rule_rates_can_be_relative_to_the_kernel_top(small_relu):
    p = small_relu
    rel = TwoRateGD(lr_first=0.5, lr_second=0.05, relative_to="kernel_top")
    assert rel.rates(p) == pytest.approx((0.5 / p.kernel_top["first"], 0.05 / p.kernel_top["second"]))
    scale = rel.init(p.theta0, p).scale
    assert torch.all(scale[:21] == 0.5 / p.kernel_top["first"]) and torch.all(scale[21:] == 0.05 / p.kernel_top["second"])


def test_two_rate_rule_refuses_a_problem_without_its_groups():
    q = TwoLayerReLU(n=5, d=3, m=7).build(0, torch.float64, torch.device("cpu"))
    no_groups = dataclasses.replace(q, groups={})
    with pytest.raises(ValueError, match="groups"):
        TwoRateGD(lr_first=0.1, lr_second=0.1).init(q.theta0, no_groups)
    with pytest.raises(ValueError, match="kernel"):
        TwoRateGD(lr_first=0.1, lr_second=0.1, relative_to="kernel_top").init(q.theta0, dataclasses.replace(q, kernel_top=None))


def test_kernel_predictions_are_consistent():
    args = dict(lr_first=0.5, lr_second=0.05, relative_to="kernel_top", n=50, d=50, m=1000, data_seed=0, seed=0)
    mu = PREDICTIONS["relu_mu_min"](**args)
    assert 0 < mu < 1
    assert PREDICTIONS["relu_loss_slope"](**args) == pytest.approx(2 * math.log(1 - mu))
    assert PREDICTIONS["relu_theorem_bound"](**args, step=10) == pytest.approx((1 - mu / 2) ** 10)
    fast = PREDICTIONS["relu_hitting_step"](**{**args, "lr_first": 0.9}, level=1e-6)
    slow = PREDICTIONS["relu_hitting_step"](**args, level=1e-6)
    assert fast < slow  # a larger first-layer rate contracts faster
    assert PREDICTIONS["relu_hitting_step"](**args, level=1e-3) < slow


def test_linearised_loss_curve_matches_the_hitting_step():
    args = dict(lr_first=0.5, lr_second=0.05, relative_to="kernel_top", n=50, d=50, m=1000, data_seed=0, seed=0)
    curve = PREDICTIONS["relu_loss_curve"]
    assert curve(**args, step=0) == pytest.approx(1.0)
    hit = PREDICTIONS["relu_hitting_step"](**args, level=1e-6)
    assert curve(**args, step=hit) <= 1e-6 < curve(**args, step=hit - 1)
    mu = PREDICTIONS["relu_mu_min"](**args)
    late = curve(**args, step=400) / curve(**args, step=399)  # the slowest mode dominates late
    assert late == pytest.approx((1 - mu) ** 2, rel=1e-6)
    assert curve(**args, step=50) <= PREDICTIONS["relu_theorem_bound"](**args, step=50)
