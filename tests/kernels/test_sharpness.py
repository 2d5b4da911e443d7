import dataclasses

import numpy as np
import pytest
import torch

from conftest import tiny_problem
from harness import count_flops, hessian_operator, lanczos, top_eigenpairs
from harness.kernels.sharpness import AUTO_PRESAMPLE, AUTO_PRESAMPLE_MIN_EXAMPLES


def _make(theta):
    return lambda o: hessian_operator(o, theta)


def test_presampled_cold_start_answers_for_the_full_hessian():
    obj, theta = tiny_problem(n=200, width=8)
    dense = torch.linalg.eigvalsh(hessian_operator(obj, theta).dense())
    res = top_eigenpairs(_make(theta), obj, tol=1e-8, presample=0.25)
    assert res.converged and res.presample_matvecs > 0
    np.testing.assert_allclose(float(res.eigenvalues[0]), float(dense[-1]), rtol=1e-8)
    sub = torch.linalg.eigvalsh(hessian_operator(obj.subset(0.25), theta).dense())
    assert abs(float(sub[-1]) - float(dense[-1])) > 1e-4 * float(dense[-1])  # the subsample differs


def test_default_cold_start_is_presampled_on_enough_examples_and_answers_for_the_full_hessian():
    obj, theta = tiny_problem(n=AUTO_PRESAMPLE_MIN_EXAMPLES, width=8)
    dense = torch.linalg.eigvalsh(hessian_operator(obj, theta).dense())
    res = top_eigenpairs(_make(theta), obj, tol=1e-8)
    assert res.converged and res.presample_matvecs > 0
    np.testing.assert_allclose(float(res.eigenvalues[0]), float(dense[-1]), rtol=1e-8)
    explicit = top_eigenpairs(_make(theta), obj, tol=1e-8, presample=AUTO_PRESAMPLE)
    assert explicit.presample_matvecs == res.presample_matvecs  # the same seeded subset


def test_default_cold_start_is_not_presampled_on_few_examples_on_a_shard_or_from_a_warm_start():
    small, theta = tiny_problem(n=AUTO_PRESAMPLE_MIN_EXAMPLES - 1, width=8)
    assert top_eigenpairs(_make(theta), small, tol=1e-6).presample_matvecs == 0
    big, theta = tiny_problem(n=AUTO_PRESAMPLE_MIN_EXAMPLES, width=8)
    shard = dataclasses.replace(big, n_total=big.n, reduce=lambda t: t, reduce_max=lambda t: t)
    assert top_eigenpairs(_make(theta), shard, tol=1e-6).presample_matvecs == 0
    cold = top_eigenpairs(_make(theta), big, tol=1e-6)
    assert top_eigenpairs(_make(theta), big, tol=1e-6, v0=cold.eigenvectors).presample_matvecs == 0


def test_default_cold_start_costs_fewer_counted_flops_than_a_gaussian_start():
    """Counted, not timed: over four 2048-example problems on a 1.4k-parameter MLP the presampled
    default answers λ_max to 1e-3 for fewer FLOPs than Lanczos from a Gaussian vector (summed: one
    problem's margin is a product or two, the sum's about ten)."""
    auto_flops = plain_flops = 0
    for seed in range(4):
        obj, theta = tiny_problem(seed=seed, n=2 * AUTO_PRESAMPLE_MIN_EXAMPLES, d=8, width=64, k=4,
                                  dtype=torch.float32)
        default, flops = count_flops(lambda: top_eigenpairs(_make(theta), obj))
        auto_flops += flops
        plain, flops = count_flops(lambda: lanczos(hessian_operator(obj, theta), tol=1e-3))
        plain_flops += flops
        assert default.converged and plain.converged and default.presample_matvecs > 0
        assert abs(default.top() - plain.top()) <= 2e-3 * plain.top()
    assert auto_flops < 0.95 * plain_flops


@pytest.fixture
def top3():
    """A problem, its parameters and a cold-started top-3 solve of its Hessian."""
    obj, theta = tiny_problem(n=60, width=8)
    return obj, theta, top_eigenpairs(_make(theta), obj, k=3, tol=1e-8)


def test_top_k_matches_the_dense_top_eigenvalues(top3):
    obj, theta, cold = top3
    dense = torch.linalg.eigvalsh(hessian_operator(obj, theta).dense()).flip(0)[:3]
    np.testing.assert_allclose(cold.eigenvalues.numpy(), dense.numpy(), rtol=1e-7)


def test_warm_start_skips_presampling(top3):
    obj, theta, cold = top3
    warm = top_eigenpairs(_make(theta), obj, k=3, tol=1e-8, v0=cold.eigenvectors, presample=0.5)
    assert warm.presample_matvecs == 0


def test_warm_started_top_k_converges_within_two_blocks(top3):
    obj, theta, cold = top3
    warm = top_eigenpairs(_make(theta), obj, k=3, tol=1e-8, v0=cold.eigenvectors, presample=0.5)
    assert warm.n_matvecs <= 6


def test_subset_is_seeded():
    obj, _ = tiny_problem(n=40)
    a, b = obj.subset(0.25, seed=3), obj.subset(0.25, seed=3)
    assert a.n == 10 and torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.inputs, obj.subset(0.25, seed=4).inputs)


def test_subset_refuses_a_zero_fraction():
    obj, _ = tiny_problem(n=40)
    with pytest.raises(ValueError, match="fraction"):
        obj.subset(0.0)
