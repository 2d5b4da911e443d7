"""The step against the linearised model (mirrors harness/measures/linearised.py): the predicted
next loss against a dense float64 Jacobian, exactness on a model linear in its parameters, and a
wrong rate in the rule that runs showing as a ratio away from 1."""

import math

import pytest
import torch

from harness.errors import UnsupportedError
from harness.measures import KernelStepRatio, StepContext
from harness.measures.linearised import stated_step
from harness.training.optimizers import GD, HeavyBall, TwoRateGD, init_state
from harness.training.problems import ModuleProblem, TwoLayerReLU

CPU = torch.device("cpu")
TWO_RATES = {"lr_first": 0.5, "lr_second": 0.3, "relative_to": "kernel_top"}


def _run(problem, rule, kind, bindings, steps):
    """The measure at steps 0..steps of ``rule`` run on ``problem`` (the suite states ``bindings``)."""
    theta, state, memory, out = problem.theta0, init_state(rule, problem.theta0, problem), {}, []
    for step in range(steps + 1):
        ctx = StepContext(step, theta, problem, rule, state, bindings=bindings, stated_kind=kind)
        out.append(KernelStepRatio()(ctx, memory))
        theta, state = rule.step(theta, state, ctx.value_and_grad)
    return out


def _linear_problem():
    """``nn.Linear`` under ``mse``: the outputs are linear in the parameters."""
    return ModuleProblem(model="torch.nn:Linear", model_args={"in_features": 4, "out_features": 2},
                         data_args={"n_samples": 12, "input_dim": 4, "n_outputs": 2}).build(0, torch.float64, CPU)


def test_on_a_model_linear_in_its_parameters_the_ratio_is_one():
    for x in _run(_linear_problem(), GD(lr=0.05), "gd", {"lr": 0.05}, 5):
        assert x.value == pytest.approx(1.0, abs=1e-9)
        assert x.aux["predicted"] == pytest.approx(x.aux["measured"], rel=1e-11)


def test_a_rule_ten_percent_long_shows_as_its_log_decrease_ratio():
    problem = _linear_problem()
    m = _run(problem, GD(lr=0.055), "gd", {"lr": 0.05}, 3)
    # by hand: from the same iterate, the loss after the rule's step and after the stated one
    theta = problem.theta0
    for step in range(4):
        loss, g = problem.objective.value_and_grad(theta)
        taken, stated = problem.objective.value(theta - 0.055 * g), problem.objective.value(theta - 0.05 * g)
        expect = math.log(float(taken) / float(loss)) / math.log(float(stated) / float(loss))
        assert m[step].value == pytest.approx(expect, rel=1e-9)
        assert m[step].value > 1.05
        theta = theta - 0.055 * g


def test_two_rate_prediction_is_the_loss_at_f_plus_dense_jacobian_times_the_stated_step():
    problem = TwoLayerReLU(n=6, d=4, m=9, data_seed=1).build(2, torch.float64, CPU)
    obj, theta = problem.objective, problem.theta0
    loss, g = obj.value_and_grad(theta)
    eta_w, eta_a = 0.5 / problem.kernel_top["first"], 0.3 / problem.kernel_top["second"]
    step = torch.cat([-eta_w * g[problem.groups["first"]], -eta_a * g[problem.groups["second"]]])
    torch.testing.assert_close(stated_step("two_rate_gd", TWO_RATES, problem, g), step, rtol=1e-14, atol=0)
    x, y = obj.inputs, obj.targets
    jac = torch.autograd.functional.jacobian(lambda t: obj.model(t, x), theta).reshape(-1, theta.numel())
    lin = 0.5 * float(((obj.model(theta, x).reshape(-1) + jac @ step - y.reshape(-1)) ** 2).sum())
    rule = TwoRateGD(0.5, 0.3, "kernel_top")
    ctx = StepContext(0, theta, problem, rule, init_state(rule, theta, problem), bindings=TWO_RATES,
                      stated_kind="two_rate_gd")
    assert KernelStepRatio()(ctx, {}).aux["predicted"] == pytest.approx(lin, rel=1e-12)


def test_the_stated_rates_not_the_rule_that_runs_set_the_prediction():
    """A rule whose second-layer rate is halved leaves the prediction where the suite states it."""
    problem = TwoLayerReLU(n=6, d=4, m=9).build(0, torch.float64, CPU)
    right = _run(problem, TwoRateGD(0.5, 0.3, "kernel_top"), "two_rate_gd", TWO_RATES, 2)
    halved = _run(problem, TwoRateGD(0.5, 0.15, "kernel_top"), "two_rate_gd", TWO_RATES, 2)
    assert right[0].aux["predicted"] == pytest.approx(halved[0].aux["predicted"], rel=1e-14)
    assert right[0].aux["measured"] != pytest.approx(halved[0].aux["measured"], rel=1e-6)


def test_each_value_is_one_step_so_any_cadence_measures_the_same():
    """A call with no memory of earlier steps gives what an every-step run gives at that step."""
    problem = TwoLayerReLU(n=6, d=4, m=9).build(0, torch.float64, CPU)
    rule = TwoRateGD(0.5, 0.3, "kernel_top")
    every = _run(problem, rule, "two_rate_gd", TWO_RATES, 3)
    theta, state = problem.theta0, init_state(rule, problem.theta0, problem)
    for _ in range(3):
        theta, state = rule.step(theta, state, problem.objective.value_and_grad)
    ctx = StepContext(3, theta, problem, rule, state, bindings=TWO_RATES, stated_kind="two_rate_gd")
    assert KernelStepRatio()(ctx, {}).value == pytest.approx(every[3].value, rel=1e-12)


def test_a_rule_without_a_stated_gradient_step_is_refused():
    problem = _linear_problem()
    ctx = StepContext(0, problem.theta0, problem, HeavyBall(lr=0.05), bindings={"lr": 0.05, "momentum": 0.9},
                      stated_kind="heavy_ball")
    with pytest.raises(UnsupportedError, match="gd or two_rate_gd"):
        KernelStepRatio()(ctx, {})
