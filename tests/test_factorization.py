"""The deep-matrix-factorisation problem, rank measures and predictions (mirrors
harness/training/problems.py, harness/kernels/rank.py and harness/predictions/factorization.py)."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from harness.predictions import PREDICTIONS
from harness.training.problems import DeepMatrixFactorization
from harness.kernels.rank import effective_rank, entropy_rank

SPECTRUM = [10.0, 4.0, 1.5, 0.5]


def test_rank_functions_against_numpy():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 5, generator=g, dtype=torch.float64)
    s = np.linalg.svd(w.numpy(), compute_uv=False)
    assert effective_rank(torch.linalg.svdvals(w)) == pytest.approx(s.sum() / s.max(), rel=1e-12)
    p = s / s.sum()
    assert entropy_rank(torch.linalg.svdvals(w)) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert effective_rank(torch.ones(4, dtype=torch.float64)) == 4.0


@pytest.fixture
def random_dmf():
    """A depth-3 factorisation of a 5 x 5 target with spectrum (3, 1), randomly initialised:
    the built problem and the product of its factors, last factor first."""
    prob = DeepMatrixFactorization(n=5, depth=3, spectrum=[3.0, 1.0], alpha=0.3, init="random")
    p = prob.build(0, torch.float64, torch.device("cpu"))
    w = p.theta0.view(3, 5, 5)
    return p, w[2] @ w[1] @ w[0]


def test_problem_product_is_ordered_last_factor_first(random_dmf):
    p, product = random_dmf
    torch.testing.assert_close(p.matrix(p.theta0), product)


def test_problem_loss_is_half_frobenius(random_dmf):
    p, product = random_dmf
    loss = float(p.objective.value(p.theta0))
    assert loss == pytest.approx(0.5 * float(((product - p.target) ** 2).sum()), rel=1e-12)


def test_problem_target_has_the_given_spectrum(random_dmf):
    p, _ = random_dmf
    assert sorted(torch.linalg.eigvalsh(p.target).tolist())[-2:] == pytest.approx([1.0, 3.0], rel=1e-12)


def test_sensing_loss_matches_its_definition():
    prob = DeepMatrixFactorization(n=4, depth=2, alpha=0.5, init="random", sensing=30, target_rank=2)
    p = prob.build(1, torch.float64, torch.device("cpu"))
    ms, y = p.objective.inputs, p.objective.targets[:, 0]
    assert torch.allclose(ms, ms.transpose(1, 2))  # symmetric measurements
    pred = torch.einsum("mij,ij->m", ms, p.matrix(p.theta0))
    assert float(p.objective.value(p.theta0)) == pytest.approx(float(((pred - y) ** 2).sum() / (2 * 30)), rel=1e-12)


@pytest.mark.parametrize("depth,alpha", [(2, 1e-3), (3, 0.05), (4, 0.2)])
@pytest.mark.parametrize("index,theta", [(1, 0.95), (3, 0.05)])
def test_closed_form_time_matches_quadrature_of_gradient_flow(depth, alpha, index, theta):
    lam, lr = SPECTRUM[index - 1], 0.01
    # independent: t = int du / (N u^{2-2/N} (lam - u)) from alpha^N to theta*lam (gradient flow of pi = w^N)
    p = 2 - 2 / depth
    t, _ = quad(lambda lu: math.exp(lu) ** (1 - p) / (depth * (lam - math.exp(lu))),
                math.log(alpha ** depth), math.log(theta * lam), limit=400)
    w0, w1 = alpha, (theta * lam) ** (1 / depth)
    g = lambda w: w ** (depth - 1) * (lam - w ** depth)
    expected = t / lr + 0.5 * math.log(g(w1) / g(w0))
    got = PREDICTIONS["dmf_hitting_time"](lr, depth, alpha, SPECTRUM, index, theta)
    # exact for N = 2; for N >= 3 the closed form splits the integral into a leading and a saturation
    # term, which is an approximation: measured within 1.04 % (N = 3) and 2.04 % (N = 4) of quadrature
    assert got == pytest.approx(expected, rel=1e-9 if depth == 2 else 0.025)


def test_exact_recursion_matches_matrix_gd_step_for_step():
    prob = DeepMatrixFactorization(n=6, depth=3, spectrum=[5.0, 1.0], alpha=0.1)
    p = prob.build(0, torch.float64, torch.device("cpu"))
    lr, theta = 0.02, p.theta0
    lam, vecs = torch.linalg.eigh(p.target)
    v1 = vecs[:, -1]
    k = 0
    while float(v1 @ p.matrix(theta) @ v1) < 0.9 * 5.0:
        theta = theta - lr * p.objective.value_and_grad(theta)[1]
        k += 1
    assert k == PREDICTIONS["dmf_hitting_time_exact"](lr, 3, 0.1, [5.0, 1.0], 1, 0.9)
    assert PREDICTIONS["dmf_rank_at_step"](lr, 3, 0.1, [5.0, 1.0], 6, k) == pytest.approx(
        effective_rank(torch.linalg.svdvals(p.matrix(theta))), rel=1e-10)


def test_projection_rank():
    assert PREDICTIONS["dmf_projection_rank"](SPECTRUM, 2) == pytest.approx(1.4)


def test_rank_bound():
    assert PREDICTIONS["dmf_rank_bound"](SPECTRUM, 20, 0.05, 3, 0.05) == pytest.approx(
        0.05 * 1.6 / 0.95 + 16 * 0.05 ** 3 / (0.95 * 10))


def test_hitting_time_refuses_an_index_past_the_positive_eigenvalues():
    with pytest.raises(ValueError, match="positive eigenvalue"):
        PREDICTIONS["dmf_hitting_time"](0.01, 3, 0.05, SPECTRUM, 5, 0.5)


# --- a noisy target: early stopping (issue 16, item 2) -----------------------------------------

from harness.kernels.factorization import leading_part, symmetric_noise, symmetric_target  # noqa: E402
from harness.measures import MEASURES, StepContext  # noqa: E402


def test_a_noisy_problem_fits_target_plus_noise_and_keeps_the_signal():
    p = DeepMatrixFactorization(n=10, depth=2, spectrum=SPECTRUM, noise=0.02, alpha=0.1).build(0, torch.float64, torch.device("cpu"))
    a = symmetric_target(10, SPECTRUM, 0)
    assert torch.equal(p.signal, a)
    assert torch.equal(p.target, a + symmetric_noise(10, 0.02, 0))
    clean = DeepMatrixFactorization(n=10, depth=2, spectrum=SPECTRUM, alpha=0.1).build(0, torch.float64, torch.device("cpu"))
    assert clean.signal is None and torch.equal(clean.target, a)  # noise 0: the target as it always was


def test_noise_is_refused_on_a_sensing_problem():
    with pytest.raises(ValueError, match="noise"):
        DeepMatrixFactorization(n=6, sensing=20, noise=0.1)


def _context(problem, theta):
    return StepContext(0, theta, problem, None)


def test_estimation_error_against_a_dense_computation():
    p = DeepMatrixFactorization(n=8, depth=2, spectrum=SPECTRUM, noise=0.05, alpha=0.3).build(0, torch.float64, torch.device("cpu"))
    theta = p.theta0 + 0.1 * torch.randn(p.theta0.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    w = (theta.view(2, 8, 8)[1] @ theta.view(2, 8, 8)[0]).numpy()
    a, b = p.signal.numpy(), p.target.numpy()
    lam, vecs = np.linalg.eigh(a)
    a2 = (vecs[:, -2:] * lam[-2:]) @ vecs[:, -2:].T
    want = np.linalg.norm(w - a2) / np.linalg.norm(b - a2)
    got = MEASURES["estimation_error"](rank=2)(_context(p, theta), {}).value
    assert got == pytest.approx(want, rel=1e-12)


def test_estimation_error_refuses_a_noiseless_target_at_its_own_rank():
    from harness.errors import UnsupportedError
    p = DeepMatrixFactorization(n=8, depth=2, spectrum=SPECTRUM, alpha=0.3).build(0, torch.float64, torch.device("cpu"))
    with pytest.raises(UnsupportedError, match="noise"):
        MEASURES["estimation_error"](rank=4)(_context(p, p.theta0), {})


def test_noisy_predictions_read_the_eigenvalues_of_target_plus_noise():
    lr, depth, alpha, n, noise = 0.01, 3, 0.1, 12, 0.02
    mu = np.linalg.eigvalsh((symmetric_target(n, SPECTRUM, 0) + symmetric_noise(n, noise, 0)).numpy())[::-1]
    k5 = PREDICTIONS["dmf_hitting_time_exact"](lr, depth, alpha, SPECTRUM, 5, 0.05, n, noise, 0)
    assert k5 == PREDICTIONS["dmf_hitting_time_exact"](lr, depth, alpha, [float(x) for x in mu], 5, 0.05)
    k4 = PREDICTIONS["dmf_hitting_time_exact"](lr, depth, alpha, SPECTRUM, 4, 0.95, n, noise, 0)
    assert PREDICTIONS["dmf_interval_length_exact"](lr, depth, alpha, SPECTRUM, n, noise, 0, 4, 0.05) == k5 - k4
    # without noise the predictions are what they were: the spectrum as given, no round-off
    assert PREDICTIONS["dmf_hitting_time"](lr, depth, alpha, SPECTRUM, 2, 0.9, n, 0.0, 0) == \
        PREDICTIONS["dmf_hitting_time"](lr, depth, alpha, SPECTRUM, 2, 0.9)


def test_estimation_error_prediction_at_step_zero_and_late():
    n, noise, alpha = 10, 0.02, 0.3
    a, e = symmetric_target(n, SPECTRUM, 0), symmetric_noise(n, noise, 0)
    a4 = leading_part(a, 4)
    scale = float((a + e - a4).norm())
    at0 = PREDICTIONS["dmf_estimation_error_at_step"](0.02, 2, alpha, SPECTRUM, n, noise, 0, 4, 0)
    assert at0 == pytest.approx(float((alpha ** 2 * torch.eye(n, dtype=torch.float64) - a4).norm()) / scale, rel=1e-12)
    # depth 2 fits every positive mode of A + E in the end and lets the others decay to 0
    mu, u = np.linalg.eigh((a + e).numpy())
    plus = torch.from_numpy((u * np.maximum(mu, 0)) @ u.T)
    late = PREDICTIONS["dmf_estimation_error_at_step"](0.02, 2, alpha, SPECTRUM, n, noise, 0, 4, 200_000)
    assert late == pytest.approx(float((plus - a4).norm()) / scale, rel=1e-3)


def test_truncation_error_is_that_of_the_rank_r_part_of_the_noisy_matrix():
    n, noise = 40, 0.01
    b = symmetric_target(n, SPECTRUM, 2) + symmetric_noise(n, noise, 2)
    a4 = leading_part(symmetric_target(n, SPECTRUM, 2), 4)
    want = float((leading_part(b, 4) - a4).norm() / (b - a4).norm())
    got = PREDICTIONS["dmf_truncation_error"](SPECTRUM, n, noise, 2, 4)
    assert got == pytest.approx(want, rel=1e-10)
    assert got == pytest.approx((2 * 4 / n) ** 0.5, rel=0.25)  # the first-order estimate in its docstring
