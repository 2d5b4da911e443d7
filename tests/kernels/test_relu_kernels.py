"""Infinite-width kernels of the two-layer ReLU network (mirrors harness/kernels/relu_kernels.py):
exact arc-cosine closed forms on chosen inputs, an entry-by-entry float64 reference, and a
Monte-Carlo estimate of the defining expectations."""

import math

import pytest
import torch

from harness.kernels.relu_kernels import relu_kernels


def reference(x):
    """``K_W``, ``K_a`` entry by entry in Python floats, from the formulas in the module docstring."""
    rows = x.tolist()
    d, n = len(rows[0]), len(rows)
    k_w, k_a = [[0.0] * n for _ in range(n)], [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            dot = sum(a * b for a, b in zip(rows[i], rows[j]))
            ni, nj = math.sqrt(sum(a * a for a in rows[i])), math.sqrt(sum(b * b for b in rows[j]))
            th = math.acos(max(-1.0, min(1.0, dot / (ni * nj))))
            k_w[i][j] = dot / d * (math.pi - th) / (2 * math.pi)
            k_a[i][j] = ni * nj / d * (math.sin(th) + (math.pi - th) * math.cos(th)) / (2 * math.pi)
    return torch.tensor(k_w, dtype=torch.float64), torch.tensor(k_a, dtype=torch.float64)


def inputs(n=5, d=3, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_kernels_match_an_entrywise_reference():
    x = inputs()
    k_w, k_a = relu_kernels(x)
    r_w, r_a = reference(x)
    torch.testing.assert_close(k_w, r_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(k_a, r_a, rtol=1e-12, atol=1e-14)


def test_first_layer_kernel_diagonal_is_half_the_scaled_norm():
    """theta_ii = 0 exactly, so K_W(i, i) = ||x_i||^2 / (2d) to float64 precision. (These inputs,
    3 x the seeded draws, have rows whose computed cosine with themselves rounds below 1;
    arccos(1 - eps) ~ 1.5e-8 would put a ~5e-9 relative error on the diagonal.)"""
    x = 3.0 * inputs()
    k_w, _ = relu_kernels(x)
    torch.testing.assert_close(k_w.diag(), (x * x).sum(1) / (2 * 3), rtol=1e-12, atol=0)


def test_second_layer_kernel_diagonal_is_half_the_scaled_norm():
    """theta = 0: (0 + pi * 1) / (2 pi) = 1/2, so K_a(i, i) = ||x_i||^2 / (2d)."""
    x = 3.0 * inputs()
    _, k_a = relu_kernels(x)
    torch.testing.assert_close(k_a.diag(), (x * x).sum(1) / (2 * 3), rtol=1e-12, atol=0)


def test_orthogonal_inputs_give_the_closed_form():
    """theta = pi/2: K_W = 0 (orthogonal), K_a = ||x|| ||y|| / d / (2 pi)."""
    x = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]], dtype=torch.float64)
    k_w, k_a = relu_kernels(x)
    assert float(k_w[0, 1]) == pytest.approx(0.0, abs=1e-15)
    assert float(k_a[0, 1]) == pytest.approx(2.0 * 3.0 / 3 / (2 * math.pi), rel=1e-12)


def test_antipodal_inputs_give_zero():
    """theta = pi: the two ReLUs are never active together."""
    x = torch.tensor([[1.0, 2.0], [-2.0, -4.0]], dtype=torch.float64)
    k_w, k_a = relu_kernels(x)
    # atol 1e-7 (entries are O(1) here): the cosine rounds to -1 + eps, and arccos near -1 loses
    # half the digits (pi - theta ~ 1.5e-8); see test_first_layer_kernel_diagonal_is_half_the_scaled_norm
    assert float(k_w[0, 1]) == pytest.approx(0.0, abs=1e-7)
    assert float(k_a[0, 1]) == pytest.approx(0.0, abs=1e-7)


def test_sixty_degree_inputs_give_the_closed_form():
    """theta = pi/3: K_W = <x,y>/d * (2/3)/2, K_a = |x||y|/d (sqrt(3)/2 + (2 pi/3)/2) / (2 pi)."""
    x = torch.tensor([[1.0, 0.0], [0.5, math.sqrt(3) / 2]], dtype=torch.float64)
    k_w, k_a = relu_kernels(x)
    assert float(k_w[0, 1]) == pytest.approx(0.5 / 2 * (2 / 3) / 2, rel=1e-12)
    assert float(k_a[0, 1]) == pytest.approx((math.sqrt(3) / 2 + math.pi / 3) / 2 / (2 * math.pi), rel=1e-12)


def test_kernels_are_symmetric():
    k_w, k_a = relu_kernels(inputs(n=6))
    assert torch.equal(k_w, k_w.T) and torch.equal(k_a, k_a.T)


@pytest.mark.parametrize("which", [0, 1])
def test_kernels_are_positive_semidefinite(which):
    k = relu_kernels(inputs(n=6))[which]
    assert float(torch.linalg.eigvalsh(k)[0]) > -1e-12


@pytest.mark.parametrize("which", [0, 1])
def test_kernels_scale_quadratically_with_the_inputs(which):
    x = inputs()
    # rtol 1e-7, not 1e-12: an angle of 0 or pi read through arccos of a rounded cosine is off by
    # ~1.5e-8 (see test_first_layer_kernel_diagonal_is_half_the_scaled_norm), which this
    # test is not about
    torch.testing.assert_close(relu_kernels(3.0 * x)[which], 9.0 * relu_kernels(x)[which], rtol=1e-7, atol=1e-14)


def test_float32_inputs_give_float64_kernels():
    k_w, k_a = relu_kernels(inputs().float())
    assert k_w.dtype == k_a.dtype == torch.float64


def test_kernels_match_a_monte_carlo_estimate():
    """K_W(i,j) = E[a^2 1{w.x_i > 0} 1{w.x_j > 0}] <x_i, x_j>/d and
    K_a(i,j) = E[relu(w.x_i/sqrt d) relu(w.x_j/sqrt d)], w ~ N(0, I_d), a ~ N(0, 1), estimated with
    m = 400,000 draws. Each entry is a mean of m i.i.d. terms whose standard deviation is of the
    order of the diagonal entries, so the standard error is about sqrt(3)/sqrt(m) ~ 0.3% of the
    largest entry; 2% of the largest entry is more than five standard errors (the draws are
    seeded, so the test is deterministic)."""
    x = torch.tensor([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4], [-0.9, -0.4, 0.2], [0.1, 0.2, 1.5]], dtype=torch.float64)
    d, m = x.shape[1], 400_000
    g = torch.Generator().manual_seed(11)
    w = torch.randn(m, d, generator=g, dtype=torch.float64)
    a = torch.randn(m, generator=g, dtype=torch.float64)
    pre = x @ w.T / math.sqrt(d)
    act = (pre > 0).double()
    mc_w = ((act * a ** 2) @ act.T) / m * (x @ x.T / d)
    mc_a = torch.relu(pre) @ torch.relu(pre).T / m
    k_w, k_a = relu_kernels(x)
    assert float((mc_w - k_w).abs().max()) < 0.02 * float(k_w.abs().max())
    assert float((mc_a - k_a).abs().max()) < 0.02 * float(k_a.abs().max())
