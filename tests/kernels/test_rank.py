"""Effective ranks from singular values (mirrors harness/kernels/rank.py)."""

import math

import pytest
import torch

from harness.kernels.rank import effective_rank, entropy_rank


def orthogonal(n, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def known_matrix():
    """``U diag(4, 2, 1, 0) V^T``: singular values 4, 2, 1, 0 in a random basis."""
    return orthogonal(4, 0) @ torch.diag(torch.tensor([4.0, 2.0, 1.0, 0.0], dtype=torch.float64)) @ orthogonal(4, 1).T


def test_effective_rank_of_a_known_matrix():
    assert effective_rank(torch.linalg.svdvals(known_matrix())) == pytest.approx(7 / 4, rel=1e-12)


def test_entropy_rank_of_a_known_matrix():
    p = [4 / 7, 2 / 7, 1 / 7]
    expected = math.exp(-sum(q * math.log(q) for q in p))
    assert entropy_rank(torch.linalg.svdvals(known_matrix())) == pytest.approx(expected, rel=1e-12)


def test_effective_rank_of_the_identity_is_its_size():
    assert effective_rank(torch.linalg.svdvals(torch.eye(5, dtype=torch.float64))) == pytest.approx(5.0, rel=1e-14)


def test_entropy_rank_of_the_identity_is_its_size():
    assert entropy_rank(torch.linalg.svdvals(torch.eye(5, dtype=torch.float64))) == pytest.approx(5.0, rel=1e-14)


def test_effective_rank_of_a_rank_one_matrix_is_one():
    u, v = torch.arange(1.0, 5.0, dtype=torch.float64), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert effective_rank(torch.linalg.svdvals(torch.outer(u, v))) == pytest.approx(1.0, rel=1e-12)


def test_entropy_rank_ignores_exact_zero_singular_values():
    assert entropy_rank(torch.tensor([3.0, 3.0, 0.0, 0.0], dtype=torch.float64)) == pytest.approx(2.0, rel=1e-14)


def test_effective_rank_does_not_depend_on_the_order_of_the_singular_values():
    assert effective_rank(torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64)) == pytest.approx(7 / 4, rel=1e-14)


def test_effective_rank_does_not_depend_on_scale():
    sv = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    assert effective_rank(1e-3 * sv) == pytest.approx(effective_rank(sv), rel=1e-14)


def test_entropy_rank_does_not_exceed_the_number_of_nonzero_singular_values():
    sv = torch.linalg.svdvals(torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    assert 1.0 <= entropy_rank(sv) <= 4.0 + 1e-12


def test_ranks_return_python_floats():
    sv = torch.tensor([2.0, 1.0], dtype=torch.float64)
    assert type(effective_rank(sv)) is float and type(entropy_rank(sv)) is float
