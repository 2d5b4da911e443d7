import pytest
import torch
import torch.nn.functional as F
from torch.func import hessian, jacrev

from conftest import tiny_problem
from harness import HVP_STRATEGIES, gauss_newton_operator, hessian_operator, hvp, input_jacobians, param_jvp, param_vjp


def dense_hessian(obj, theta):
    return hessian(lambda t: obj.loss(obj.model(t, obj.inputs), obj.targets))(theta)


def relerr(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("strategy", HVP_STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_hvp_matches_dense_hessian(device, strategy, seed):
    obj, theta = tiny_problem(device, seed=seed, chunk_size=7)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype).to(device)
    H = dense_hessian(obj, theta)
    assert relerr(hvp(obj, theta, v, strategy), H @ v) < 1e-12


@pytest.mark.parametrize("strategy", HVP_STRATEGIES)
def test_hvp_matches_finite_differences_of_gradients(strategy):
    obj, theta = tiny_problem(seed=5)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(9), dtype=theta.dtype)
    eps = 1e-5
    fd = (obj.value_and_grad(theta + eps * v)[1] - obj.value_and_grad(theta - eps * v)[1]) / (2 * eps)
    assert relerr(hvp(obj, theta, v, strategy), fd) < 1e-7


def test_reused_graph_operator_serves_repeated_products():
    obj, theta = tiny_problem(seed=2, chunk_size=10)
    op = hessian_operator(obj, theta, "double_backward_reused")
    H = dense_hessian(obj, theta)
    for s in range(3):
        v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(s), dtype=theta.dtype)
        assert relerr(op @ v, H @ v) < 1e-12
    assert op.n_matvecs == 3


def test_reused_graph_operator_carries_the_gradient():
    obj, theta = tiny_problem(seed=2, chunk_size=10)
    op = hessian_operator(obj, theta, "double_backward_reused")
    torch.testing.assert_close(op.gradient, obj.value_and_grad(theta)[1], rtol=1e-12, atol=1e-14)


def test_forward_over_reverse_survives_mse_loss_mean_reduction():
    # pytorch issue 123996: jvp over torch.func.grad of F.mse_loss (mean) raises "ZeroTensors are immutable"
    obj, theta = tiny_problem(seed=4, loss=lambda o, y: F.mse_loss(o, y))
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(4), dtype=theta.dtype)
    assert relerr(hvp(obj, theta, v, "forward_over_reverse"), dense_hessian(obj, theta) @ v) < 1e-12


@pytest.mark.parametrize("seed", [0, 1])
def test_gauss_newton_matches_dense_jacobian_form(device, seed):
    obj, theta = tiny_problem(device, seed=seed, chunk_size=9)
    J = jacrev(lambda t: obj.model(t, obj.inputs).reshape(-1))(theta)  # (n*k, p)
    G = J.T @ J / obj.n  # mse = (1/n) sum 1/2 ||r||^2 has output Hessian I/n
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(seed), dtype=theta.dtype).to(device)
    assert relerr(gauss_newton_operator(obj, theta) @ v, G @ v) < 1e-12


def test_gauss_newton_with_cross_entropy_matches_dense():
    obj, theta = tiny_problem(seed=3, loss=lambda o, y: F.cross_entropy(o, y.argmax(1)))
    labels = obj.targets.argmax(1)
    J = jacrev(lambda t: obj.model(t, obj.inputs))(theta)  # (n, k, p)
    p = torch.softmax(obj.model(theta, obj.inputs), dim=1)
    Hout = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # softmax-CE output Hessian per example
    G = torch.einsum("nkp,nkl,nlq->pq", J, Hout, J) / obj.n
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    assert labels.numel() == obj.n
    assert relerr(gauss_newton_operator(obj, theta) @ v, G @ v) < 1e-12


def _dense_jacobian_case(device):
    """A tiny problem, its dense parameter Jacobian ``(n, k, p)``, a parameter vector and an output cotangent."""
    obj, theta = tiny_problem(device, seed=6)
    J = jacrev(lambda t: obj.model(t, obj.inputs))(theta)  # (n, k, p)
    g = torch.Generator().manual_seed(6)
    v = torch.randn(theta.shape, generator=g, dtype=theta.dtype).to(device)
    u = torch.randn(J.shape[:2], generator=g, dtype=theta.dtype).to(device)
    return obj, theta, J, v, u


def test_param_jvp_matches_dense_jacobian(device):
    obj, theta, J, v, _ = _dense_jacobian_case(device)
    assert relerr(param_jvp(obj.model, theta, obj.inputs, v), J @ v) < 1e-12


def test_param_vjp_matches_dense_jacobian(device):
    obj, theta, J, _, u = _dense_jacobian_case(device)
    assert relerr(param_vjp(obj.model, theta, obj.inputs, u), torch.einsum("nk,nkp->p", u, J)) < 1e-12


@pytest.mark.parametrize("method", ["backward", "vmap"])
@pytest.mark.parametrize("chunk_size", [None, 5])
def test_input_jacobians_match_per_sample_jacrev(device, method, chunk_size):
    obj, theta = tiny_problem(device, seed=7)
    ref = torch.stack([jacrev(lambda x: obj.model(theta, x[None])[0])(x) for x in obj.inputs])
    out = input_jacobians(obj.model, theta, obj.inputs, method=method, chunk_size=chunk_size)
    assert out.shape == (obj.n, 3, 4)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-14)


def test_unknown_strategy_is_refused():
    obj, theta = tiny_problem()
    with pytest.raises(ValueError, match="unknown HVP strategy"):
        hessian_operator(obj, theta, "fast")
