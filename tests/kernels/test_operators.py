"""The matvec-only linear operator (mirrors harness/kernels/operators.py)."""

import pytest
import torch

from harness.kernels.operators import LinearOperator


def matrix(n=4, seed=0):
    b = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return b + b.T


def operator(a, **kwargs):
    return LinearOperator(lambda v: a @ v, a.shape[0], a.dtype, a.device, **kwargs)


def test_matmul_applies_the_matrix():
    a = matrix()
    v = torch.arange(1.0, 5.0, dtype=torch.float64)
    torch.testing.assert_close(operator(a) @ v, a @ v, rtol=0, atol=0)


def test_matvec_is_the_same_product():
    a = matrix()
    v = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(operator(a).matvec(v), a @ v, rtol=0, atol=0)


def test_dense_reconstructs_the_matrix():
    a = matrix(5, seed=2)
    torch.testing.assert_close(operator(a).dense(), a, rtol=0, atol=0)


def test_dense_of_a_nonsymmetric_matrix_keeps_its_orientation():
    a = torch.arange(9.0, dtype=torch.float64).view(3, 3)
    torch.testing.assert_close(operator(a).dense(), a, rtol=0, atol=0)


def test_dense_has_the_operators_dtype():
    a = matrix().float()
    assert operator(a).dense().dtype == torch.float32


def test_products_are_counted():
    op = operator(matrix())
    v = torch.ones(4, dtype=torch.float64)
    op @ v
    op.matvec(v)
    assert op.n_matvecs == 2


def test_dense_takes_one_product_per_column():
    op = operator(matrix(6))
    op.dense()
    assert op.n_matvecs == 6


def test_count_starts_at_zero():
    assert operator(matrix()).n_matvecs == 0


def test_device_string_becomes_a_torch_device():
    op = LinearOperator(lambda v: v, 3, torch.float64, "cpu")
    assert op.device == torch.device("cpu")


def test_name_defaults_to_a():
    assert operator(matrix()).name == "A"


def test_name_can_be_given():
    assert operator(matrix(), name="H").name == "H"


@pytest.mark.parametrize("n", [1, 3])
def test_dim_is_the_matrix_size(n):
    assert operator(matrix(n)).dim == n
