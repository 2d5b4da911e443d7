import numpy as np
import pytest
import torch

from conftest import tiny_problem
from harness import hessian_operator, top_eigenpairs


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
