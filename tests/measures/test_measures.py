import math

import numpy as np
import pytest
import torch

from conftest import tiny_problem
from harness import GD, Objective, hessian_operator
from harness.measures import LambdaMax, StepContext
from harness.training.problems import Problem


def _ctx(hessian_due=False, n=40):
    obj, theta = tiny_problem(n=n, width=8, chunk_size=15)  # chunks: the graph's loss is summed
    return StepContext(0, theta, Problem(obj, theta), GD(lr=0.1), None, hessian_due), obj, theta


def test_the_step_gradient_comes_from_the_hessian_graph_when_one_is_due(monkeypatch):
    ctx, obj, theta = _ctx(hessian_due=True)
    loss, grad = obj.value_and_grad(theta)
    monkeypatch.setattr(Objective, "value_and_grad", lambda *a: pytest.fail("a second gradient evaluation"))
    l2, g2 = ctx.value_and_grad(ctx.theta)
    torch.testing.assert_close(g2, grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(l2, loss, rtol=1e-12, atol=1e-14)
    assert ctx.hessian() is ctx.hessian()  # built once per step
    LambdaMax()(ctx, {})  # and the measure uses that operator


def test_without_a_hessian_due_the_plain_gradient_is_used(monkeypatch):
    ctx, obj, theta = _ctx(hessian_due=False)
    monkeypatch.setattr("harness.measures.hessian_operator", lambda *a: pytest.fail("a Hessian graph was built"))
    torch.testing.assert_close(ctx.grad, obj.value_and_grad(theta)[1])


@pytest.fixture
def top3():
    """LambdaMax(k=3, index=2) measured once: the measurement, its memory, the parameters, and
    the dense Hessian's eigenvalues, largest first."""
    ctx, obj, theta = _ctx()
    dense = torch.linalg.eigvalsh(hessian_operator(obj, theta).dense()).flip(0)
    m = LambdaMax(k=3, index=2, tol=1e-8)(ctx, memory := {})
    return m, memory, theta, dense


def test_lambda_max_top_k_reports_the_index_th_eigenvalue(top3):
    m, _, _, dense = top3
    np.testing.assert_allclose(m.value, float(dense[1]), rtol=1e-7)
    assert m.aux["converged"] and m.aux["relative_residual"] <= 1e-8


def test_lambda_max_top_k_reports_all_k_eigenvalues(top3):
    m, _, _, dense = top3
    np.testing.assert_allclose(m.aux["eigenvalues"], dense[:3].numpy(), rtol=1e-7)


def test_lambda_max_top_k_remembers_all_k_vectors(top3):
    _, memory, theta, _ = top3
    assert memory["v"].shape == (theta.numel(), 3)


def test_lambda_max_presampled_cold_start_answers_for_the_full_hessian():
    ctx, obj, theta = _ctx(n=80)
    dense = torch.linalg.eigvalsh(hessian_operator(obj, theta).dense())
    m = LambdaMax(presample=0.25, tol=1e-8)(ctx, {})
    assert m.aux["presample_matvecs"] > 0
    np.testing.assert_allclose(m.value, float(dense[-1]), rtol=1e-8)


def test_lambda_max_unconverged_is_nan_with_its_estimate():
    ctx, _, _ = _ctx(n=80)
    bad = LambdaMax(tol=1e-12, max_iter=2, warm_start=False)(ctx, {})
    assert math.isnan(bad.value) and not bad.aux["converged"] and "estimate" in bad.aux


def test_lambda_max_options_are_checked():
    with pytest.raises(ValueError, match="index"):
        LambdaMax(k=2, index=3)
    with pytest.raises(ValueError, match="presample"):
        LambdaMax(presample=1.5)


def test_stability_threshold_work_is_bounded(tmp_path):
    from harness import SuiteError, load_suite
    from harness.measures import StabilityThreshold
    from suite_text import VALID, write

    StabilityThreshold()  # the defaults: 1001 x 4000 x 3
    StabilityThreshold(points=10_000, steps=10_000, rounds=10)  # exactly the bound
    with pytest.raises(ValueError, match="1-D steps"):
        StabilityThreshold(points=10_000, steps=100_000, rounds=3)
    text = VALID.replace("[measures.lambda_max]", "[measures.stability_threshold]\nsteps = 1000000000\n\n[measures.lambda_max]")
    with pytest.raises(SuiteError, match="1-D steps") as err:
        load_suite(write(tmp_path, text))
    assert err.value.key.startswith("measures.stability_threshold")


@pytest.mark.parametrize("curvature", [1e300, float("inf")])
@pytest.mark.parametrize("k", [1, 2])
def test_lambda_max_on_an_overflowing_hessian_is_nan_with_a_reason(curvature, k):
    """The Hessian's products overflow (curvature 1e300: finite entries, squared norms beyond
    float64); the measure is NaN with the reason, never a crash, for Lanczos and block Lanczos."""
    from harness.training.problems import Quadratic

    problem = Quadratic(eigenvalues=[curvature, 1.0, 0.5]).build(0, torch.float64, torch.device("cpu"))
    ctx = StepContext(0, problem.theta0, problem, GD(lr=0.1))
    m = LambdaMax(k=k)(ctx, {})
    assert math.isnan(m.value) and not m.aux["converged"] and "overflow" in m.aux["reason"]


def _linear_problem(loss, k):
    """f(x; W) = x W (no bias): the Hessian of 1/2 mean ||xW - y||^2 is (X^T X / n) (x) I_k, and
    for any loss of a model linear in its parameters the Hessian is the Gauss-Newton matrix."""
    from harness.kernels.losses import LOSSES
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randn(30, k, generator=g, dtype=torch.float64) if loss == "mse" else torch.arange(30) % k
    theta = torch.randn(4 * k, generator=g, dtype=torch.float64)
    obj = Objective(lambda t, xx: xx @ t.view(4, k), LOSSES[loss], x, y, chunk_size=7)
    return StepContext(0, theta, Problem(obj, theta), GD(lr=0.1)), obj, theta, x


@pytest.mark.parametrize("operator", ["hessian", "gauss_newton"])
def test_dense_top_eigenvalue_of_a_linear_least_squares_model_is_that_of_x_t_x(operator):
    from harness.measures import DenseTopEigenvalue
    ctx, _, _, x = _linear_problem("mse", 1)
    top = torch.linalg.eigvalsh(x.T @ x / x.shape[0])
    m = DenseTopEigenvalue(operator=operator)(ctx, {})
    np.testing.assert_allclose(m.value, float(top[-1]), rtol=1e-12)
    np.testing.assert_allclose(m.aux["second"], float(top[-2]), rtol=1e-12)


def test_dense_gauss_newton_equals_the_dense_hessian_for_a_linear_model_under_cross_entropy():
    from harness.measures import DenseTopEigenvalue
    ctx, obj, theta, _ = _linear_problem("cross_entropy", 3)
    h = DenseTopEigenvalue()(ctx, {}).value
    gn = DenseTopEigenvalue(operator="gauss_newton")(ctx, {}).value
    np.testing.assert_allclose(gn, h, rtol=1e-10)
    np.testing.assert_allclose(h, float(torch.linalg.eigvalsh(hessian_operator(obj, theta).dense())[-1]), rtol=1e-10)


def test_dense_top_eigenvalue_refuses_a_model_above_max_params():
    from harness.errors import UnsupportedError
    from harness.measures import DenseTopEigenvalue
    ctx, _, _, _ = _linear_problem("mse", 1)
    with pytest.raises(UnsupportedError, match="max_params = 3"):
        DenseTopEigenvalue(max_params=3)(ctx, {})


def test_forward_jacobian_norm_equals_the_reverse_mode_measure():
    from harness.measures import ForwardJacobianNorm, JacobianNorm
    ctx, _, _ = _ctx()
    ref = ForwardJacobianNorm()(ctx, {}).value
    assert JacobianNorm(method="backward", chunk_size=7)(ctx, {}).value == pytest.approx(ref, rel=1e-12)
    assert JacobianNorm()(ctx, {}).value == pytest.approx(ref, rel=1e-12)


def _adaptive_run(cls, options):
    """A tiny problem, a ``torch_optim`` rule of class ``cls`` and its initial state."""
    from harness.training.optimizers import TorchOptim

    obj, theta = tiny_problem(n=40, width=8, chunk_size=15)
    problem = Problem(obj, theta)
    rule = TorchOptim(cls, options)
    return obj, theta, problem, rule, rule.init(theta, problem)


def _dense_top_of_p_inverse_h(obj, theta, p):
    """``lambda_1(P^-1 H)`` from the dense Hessian: the independent reference."""
    return float(torch.linalg.eigvals(torch.diag(1 / p) @ hessian_operator(obj, theta).dense()).real.max())


def _adam_p(state, t, beta1=0.9, beta2=0.99):
    """Adam's preconditioner after ``t`` steps, by hand from its state."""
    (param,) = state["params"]
    v = state["optimizer"].state[param]["exp_avg_sq"].reshape(-1).clone()
    return (1 - beta1 ** t) * ((v / (1 - beta2 ** t)).sqrt() + 1e-8)


def test_adam_preconditioned_sharpness_is_the_top_eigenvalue_of_p_inverse_h():
    from harness.errors import UnsupportedError
    from harness.measures import AdamPreconditionedSharpness

    obj, theta, problem, rule, state = _adaptive_run("torch.optim.Adam", (("betas", (0.9, 0.99)), ("lr", 0.01)))
    measure = AdamPreconditionedSharpness(tol=1e-10)
    assert math.isnan(measure(StepContext(0, theta, problem, rule, state), {}).value)  # no v before a step
    for _ in range(5):
        theta, state = rule.step(theta, state, obj.value_and_grad)
    value = measure(StepContext(5, theta, problem, rule, state), {}).value
    np.testing.assert_allclose(value, _dense_top_of_p_inverse_h(obj, theta, _adam_p(state, 5)), rtol=1e-8)
    with pytest.raises(UnsupportedError, match="torch.optim.Adam"):
        measure(StepContext(0, theta, problem, GD(lr=0.1), None), {})


@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop_preconditioned_sharpness_uses_sqrt_v_plus_eps(centered):
    from harness.measures import AdamPreconditionedSharpness

    obj, theta, problem, rule, state = _adaptive_run(
        "torch.optim.RMSprop", (("alpha", 0.9), ("centered", centered), ("lr", 0.01)))
    measure = AdamPreconditionedSharpness(tol=1e-10)
    assert math.isnan(measure(StepContext(0, theta, problem, rule, state), {}).value)
    for _ in range(4):
        theta, state = rule.step(theta, state, obj.value_and_grad)
    value = measure(StepContext(4, theta, problem, rule, state), {}).value
    # independent: the divisor of torch's RMSprop step, by hand (no bias correction)
    (param,) = state["params"]
    v = state["optimizer"].state[param]["square_avg"].reshape(-1)
    if centered:
        v = v - state["optimizer"].state[param]["grad_avg"].reshape(-1) ** 2
    np.testing.assert_allclose(value, _dense_top_of_p_inverse_h(obj, theta, v.sqrt() + 1e-8), rtol=1e-8)


def test_a_frozen_preconditioner_is_the_one_of_the_freezing_step():
    from harness.measures import AdamPreconditionedSharpness

    obj, theta, problem, rule, state = _adaptive_run("torch.optim.Adam", (("betas", (0.9, 0.99)), ("lr", 0.01)))
    frozen, memory = AdamPreconditionedSharpness(tol=1e-10, frozen_at=2), {}
    p_at_2 = None
    for t in range(1, 7):
        theta, state = rule.step(theta, state, obj.value_and_grad)
        value = frozen(StepContext(t, theta, problem, rule, state), memory).value
        if t == 2:
            p_at_2 = _adam_p(state, 2)
    np.testing.assert_allclose(value, _dense_top_of_p_inverse_h(obj, theta, p_at_2), rtol=1e-8)  # step 6's H, step 2's P
    current = AdamPreconditionedSharpness(tol=1e-10)(StepContext(6, theta, problem, rule, state), {}).value
    assert abs(current - value) > 1e-6 * abs(value)  # Adam's own P has moved on
