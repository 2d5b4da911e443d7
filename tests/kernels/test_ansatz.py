import pytest
import torch
from torch.func import jacrev

from conftest import tiny_problem
from harness.kernels.ansatz import (chain_rule_error, first_layer, max_jacobian_operator_norm, mean_sq_jacobian_norm,
                                   pairwise_lipschitz, trace_inequality_ratio)


@pytest.fixture(params=[0, 1])
def problem(request):
    return tiny_problem(seed=request.param)


def test_first_layer_split_reproduces_the_model(problem):
    obj, theta = problem
    layer = first_layer(obj.model, theta)
    torch.testing.assert_close(layer.rest(theta, layer.preactivation(obj.inputs)), obj.model(theta, obj.inputs))


def test_jacobian_norm_matches_per_sample_jacrev(problem):
    obj, theta = problem
    ref = torch.stack([jacrev(lambda x: obj.model(theta, x[None])[0])(x) for x in obj.inputs])
    expected = float(ref.pow(2).sum() / obj.n)
    for method in ("vmap", "backward"):
        assert mean_sq_jacobian_norm(obj.model, theta, obj.inputs, method) == pytest.approx(expected, rel=1e-12)


def test_chain_rule_holds_for_the_true_first_layer(problem):
    obj, theta = problem
    assert chain_rule_error(obj.model, theta, obj.inputs) < 1e-12


def test_chain_rule_error_detects_a_stale_first_layer_weight(problem, monkeypatch):
    import dataclasses

    import harness.kernels.ansatz as ansatz

    obj, theta = problem
    stale = theta.clone()
    stale[: 6 * 4] += 0.05  # first-layer weight of other parameters
    real = ansatz.first_layer
    monkeypatch.setattr(ansatz, "first_layer",
                        lambda model, th: dataclasses.replace(real(model, th), weight=real(model, stale).weight))
    assert chain_rule_error(obj.model, theta, obj.inputs) > 1e-3


def test_trace_inequality_against_dense_first_layer_gauss_newton(problem):
    obj, theta = problem
    # independent: Tr G_W1 = (1/n) sum_i ||d f(x_i) / d W_1||_F^2 from per-sample parameter Jacobians
    n_w1 = 6 * 4
    per_sample = torch.stack([jacrev(lambda t: obj.model(t, x[None])[0])(theta)[:, :n_w1] for x in obj.inputs])
    trace_g_w1 = float(per_sample.pow(2).sum() / obj.n)
    dx = torch.stack([jacrev(lambda x: obj.model(theta, x[None])[0])(x) for x in obj.inputs])
    lhs = float((obj.inputs.pow(2).sum(1) * dx.pow(2).sum((1, 2))).mean())
    w1 = theta[:n_w1].view(6, 4)
    expected = lhs / (float(torch.linalg.matrix_norm(w1, ord=2)) ** 2 * trace_g_w1)
    ratio = trace_inequality_ratio(obj.model, theta, obj.inputs)
    assert ratio == pytest.approx(expected, rel=1e-10)
    assert 0 < ratio <= 1


def test_forward_mode_jacobians_equal_the_reverse_mode_ones(problem):
    from harness.kernels.ansatz import forward_input_jacobians
    from harness.kernels.curvature import input_jacobians

    obj, theta = problem
    fwd = forward_input_jacobians(obj.model, theta, obj.inputs)
    for method in ("vmap", "backward"):
        torch.testing.assert_close(fwd, input_jacobians(obj.model, theta, obj.inputs, method, chunk_size=5),
                                   rtol=1e-12, atol=1e-14)


def test_chain_rule_error_sees_a_fault_in_the_reverse_mode_jacobians(problem, monkeypatch):
    """Both sides of H1 once went through input_jacobians, so a fault there cancelled; the left
    side is now forward mode, so a scaled reverse-mode Jacobian shows."""
    import harness.kernels.ansatz as ansatz

    obj, theta = problem
    real = ansatz.input_jacobians
    monkeypatch.setattr(ansatz, "input_jacobians", lambda *a, **k: 2.0 * real(*a, **k))
    assert chain_rule_error(obj.model, theta, obj.inputs) == pytest.approx(1.0, rel=1e-9)


def test_operator_norm_is_the_sample_max_of_the_spectral_norm(problem):
    obj, theta = problem
    ref = torch.stack([jacrev(lambda x: obj.model(theta, x[None])[0])(x) for x in obj.inputs])
    ref = ref.reshape(obj.n, -1, obj.inputs.shape[1])
    expected = max(float(torch.linalg.svdvals(j)[0]) for j in ref)
    for method in ("vmap", "backward"):
        assert max_jacobian_operator_norm(obj.model, theta, obj.inputs, method) == pytest.approx(expected, rel=1e-12)


def test_pairwise_lipschitz_is_the_largest_pair_ratio(problem):
    obj, theta = problem
    out = obj.model(theta, obj.inputs).detach().reshape(obj.n, -1)
    best = max(float((out[i] - out[j]).norm() / (obj.inputs[i] - obj.inputs[j]).norm())
               for i in range(obj.n) for j in range(obj.n) if i != j)
    assert pairwise_lipschitz(obj.model, theta, obj.inputs) == pytest.approx(best, rel=1e-12)
