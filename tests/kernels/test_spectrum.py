import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch

from conftest import tiny_problem
from harness import LinearOperator, MeasurementError, block_lanczos, hessian_operator, lanczos


def matrix_operator(A):
    return LinearOperator(lambda v: A @ v, A.shape[0], A.dtype, A.device)


def random_symmetric(n, seed, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return ((q * lam) @ q.T).to(device)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_matches_eigvalsh(device, k, seed):
    A = random_symmetric(40, seed, device)
    res = lanczos(matrix_operator(A), k=k, tol=1e-10, max_iter=40)
    ref = np.sort(np.linalg.eigvalsh(A.cpu().numpy()))[::-1][:k]
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues.numpy(), ref, rtol=1e-9)
    for i in range(k):  # the reported residual is the true residual of the returned pair
        y = res.eigenvectors[:, i]
        true = float((A @ y - res.eigenvalues[i].item() * y).norm())
        assert true <= 1e-8 * abs(ref[i]) + 1e-12
        assert abs(true - float(res.residuals[i])) <= 1e-8 * abs(ref[i])


def test_smallest_algebraic():
    A = random_symmetric(30, 5)
    res = lanczos(matrix_operator(A), k=2, tol=1e-10, which="SA", max_iter=30)
    np.testing.assert_allclose(res.eigenvalues.numpy(), np.sort(np.linalg.eigvalsh(A.numpy()))[:2], rtol=1e-9)


def _hessian_top_two():
    """Lanczos's top two Hessian eigenvalues of a tiny problem, and that Hessian as a dense array."""
    obj, theta = tiny_problem(seed=11)
    op = hessian_operator(obj, theta)
    res = lanczos(op, k=2, tol=1e-8)
    return res.eigenvalues.numpy(), op.dense().numpy()


def test_hessian_top_eigenvalues_match_dense_eigvalsh():
    top, H = _hessian_top_two()
    dense = np.sort(np.linalg.eigvalsh(H))[::-1][:2]
    np.testing.assert_allclose(top, dense, rtol=1e-7)


def test_hessian_top_eigenvalues_match_scipy_eigsh():
    top, H = _hessian_top_two()
    arpack = np.sort(sla.eigsh(H, k=2, which="LA", tol=1e-12)[0])[::-1]
    np.testing.assert_allclose(top, arpack, rtol=1e-7)


def test_warm_start_needs_fewer_products():
    A = random_symmetric(200, 3)
    cold = lanczos(matrix_operator(A), tol=1e-6, max_iter=200)
    A2 = A + 1e-4 * random_symmetric(200, 4)
    warm = lanczos(matrix_operator(A2), tol=1e-6, max_iter=200, v0=cold.eigenvectors[:, 0])
    cold2 = lanczos(matrix_operator(A2), tol=1e-6, max_iter=200)
    assert warm.converged and cold2.converged
    assert warm.n_matvecs < cold2.n_matvecs
    assert abs(warm.eigenvalues[0] - cold2.eigenvalues[0]) <= 1e-5 * abs(cold2.eigenvalues[0])


def test_non_convergence_is_reported_not_returned():
    A = random_symmetric(300, 6)
    res = lanczos(matrix_operator(A), tol=1e-12, max_iter=5)
    assert not res.converged and res.n_matvecs == 5
    assert float(res.relative_residuals[0]) > 1e-12
    with pytest.raises(MeasurementError, match="did not converge"):
        res.top()


def test_low_rank_operator_invariant_subspace():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(50, 2, generator=g, dtype=torch.float64)
    A = u @ torch.diag(torch.tensor([5.0, 2.0], dtype=torch.float64)) @ u.T  # rank 2
    res = lanczos(matrix_operator(A), k=3, tol=1e-8, max_iter=50)
    ref = np.sort(np.linalg.eigvalsh(A.numpy()))[::-1][:3]
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_bad_arguments():
    A = random_symmetric(5, 0)
    with pytest.raises(ValueError):
        lanczos(matrix_operator(A), k=6)
    with pytest.raises(ValueError):
        lanczos(matrix_operator(A), which="LM")


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_reported_residual_is_the_true_residual_before_convergence(which):
    A = random_symmetric(120, 7)
    res = lanczos(matrix_operator(A), k=2, tol=1e-12, max_iter=8, which=which)
    assert not res.converged
    for i in range(2):
        y, theta = res.eigenvectors[:, i], float(res.eigenvalues[i])
        assert float(y.norm()) == pytest.approx(1.0, rel=1e-12)
        assert float(y @ A @ y) == pytest.approx(theta, rel=1e-10)  # a Ritz value is a Rayleigh quotient
        true = float((A @ y - theta * y).norm())
        assert true > 1e-3
        assert float(res.residuals[i]) == pytest.approx(true, rel=1e-8)


@pytest.mark.parametrize("which", ["LA", "SA"])
@pytest.mark.parametrize("k", [2, 4])
def test_block_lanczos_matches_eigvalsh_with_true_residuals(device, which, k):
    A = random_symmetric(60, 7, device)
    res = block_lanczos(matrix_operator(A), k, tol=1e-10, max_iter=60, which=which)
    ev = np.sort(np.linalg.eigvalsh(A.cpu().numpy()))
    ref = ev[::-1][:k] if which == "LA" else ev[:k]
    assert res.converged and res.eigenvectors.shape == (60, k)
    np.testing.assert_allclose(res.eigenvalues.numpy(), ref, rtol=1e-9)
    true = (A @ res.eigenvectors - res.eigenvectors * res.eigenvalues.to(device)).norm(dim=0).cpu()
    np.testing.assert_allclose(true.numpy(), res.residuals.numpy(), atol=1e-8 * abs(ref).max())


def test_block_lanczos_warm_start_from_previous_top_k_needs_fewer_products():
    A = random_symmetric(200, 3)
    first = block_lanczos(matrix_operator(A), 3, tol=1e-6, max_iter=200)
    A2 = A + 1e-4 * random_symmetric(200, 4)
    warm = block_lanczos(matrix_operator(A2), 3, tol=1e-6, max_iter=200, v0=first.eigenvectors)
    cold = block_lanczos(matrix_operator(A2), 3, tol=1e-6, max_iter=200)
    assert warm.converged and cold.converged and warm.n_matvecs < cold.n_matvecs
    np.testing.assert_allclose(warm.eigenvalues.numpy(), cold.eigenvalues.numpy(), rtol=1e-5)


def test_block_lanczos_continues_past_an_invariant_subspace():
    q, _ = torch.linalg.qr(torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    A = (q * torch.tensor([3.0, 2.0, 1.0, 0.5], dtype=torch.float64)) @ q.T  # rank 4 < 2 blocks of 3
    res = block_lanczos(matrix_operator(A), 3, tol=1e-8)
    assert res.converged
    np.testing.assert_allclose(res.eigenvalues.numpy(), [3.0, 2.0, 1.0], rtol=1e-10)


def test_block_lanczos_reports_non_convergence():
    res = block_lanczos(matrix_operator(random_symmetric(100, 5)), 2, tol=1e-12, max_iter=6)
    assert not res.converged and res.n_matvecs == 6
    with pytest.raises(MeasurementError):
        res.top()


@pytest.mark.parametrize("solver", ["lanczos", "block_lanczos"])
@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 1e300])
def test_an_overflowing_operator_gives_nan_with_a_reason_not_an_exception(solver, bad):
    """What a Hessian at an exploding iterate looks like: products that are or become non-finite."""
    A = random_symmetric(20, 3)
    A[0, 0] = bad  # 1e300: finite entries, but squared norms of the products overflow
    op = matrix_operator(A)
    res = lanczos(op, k=1, tol=1e-8) if solver == "lanczos" else block_lanczos(op, k=2, tol=1e-8)
    assert not res.converged and res.failure and "overflow" in res.failure
    assert torch.isnan(res.eigenvalues).all() and res.n_matvecs >= 1
    with pytest.raises(MeasurementError):
        res.top()


@pytest.mark.parametrize("solver", ["lanczos", "block_lanczos"])
def test_a_failed_tridiagonal_eigensolve_gives_nan_with_a_reason(solver, monkeypatch):
    def eigh(T):
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", eigh)
    op = matrix_operator(random_symmetric(20, 4))
    res = lanczos(op, k=1) if solver == "lanczos" else block_lanczos(op, k=2)
    assert not res.converged and "eigensolve failed" in res.failure and torch.isnan(res.eigenvalues).all()


def test_a_solvable_run_reports_no_failure():
    res = lanczos(matrix_operator(random_symmetric(20, 5)), k=1, tol=1e-10, max_iter=20)
    assert res.converged and res.failure == ""
