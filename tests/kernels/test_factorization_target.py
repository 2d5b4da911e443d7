"""The deep-matrix-factorisation target and its exact mode dynamics (mirrors
harness/kernels/factorization.py)."""

import numpy as np
import pytest
import torch

from harness.kernels.factorization import (fitted_eigh, leading_part, modes_after, symmetric_noise,
                                           symmetric_target)

SPECTRUM = [10.0, 4.0, 1.5, 0.5]


def test_the_target_has_the_given_spectrum_and_zeros():
    a = symmetric_target(12, SPECTRUM, 3)
    assert torch.equal(a, a.T) or torch.allclose(a, a.T, atol=1e-14)
    lam = torch.linalg.eigvalsh(a).flip(0)
    assert lam[:4].tolist() == pytest.approx(SPECTRUM, abs=1e-12)
    assert lam[4:].abs().max() < 1e-12
    assert not torch.equal(a, symmetric_target(12, SPECTRUM, 4))  # data_seed draws another basis


def test_noise_is_symmetric_gaussian_of_the_stated_scale():
    e = symmetric_noise(300, 0.01, 0)
    assert torch.equal(e, e.T)
    off = e[~torch.eye(300, dtype=torch.bool)]
    assert float(off.std()) == pytest.approx(0.01, rel=0.02)
    assert float(e.diagonal().std()) == pytest.approx(0.01 * 2 ** 0.5, rel=0.15)
    assert torch.equal(symmetric_noise(5, 0.0, 0), torch.zeros(5, 5, dtype=torch.float64))


def test_fitted_eigh_decomposes_target_plus_noise_in_descending_order():
    mu, u = fitted_eigh(10, SPECTRUM, 0.05, 1)
    b = symmetric_target(10, SPECTRUM, 1) + symmetric_noise(10, 0.05, 1)
    assert np.all(np.diff(mu) <= 0)
    assert np.allclose((u * mu) @ u.T, b.numpy(), atol=1e-12)
    mu0, _ = fitted_eigh(10, SPECTRUM, 0.0, 1)  # no noise: the spectrum and zeros
    assert mu0[:4] == pytest.approx(SPECTRUM, abs=1e-12) and np.abs(mu0[4:]).max() < 1e-12


def test_leading_part_keeps_the_largest_eigenvalues():
    b = symmetric_target(8, SPECTRUM, 0) + symmetric_noise(8, 0.1, 0)
    lam, vecs = np.linalg.eigh(b.numpy())
    order = np.argsort(lam)[::-1][:3]
    dense = (vecs[:, order] * lam[order]) @ vecs[:, order].T
    assert np.allclose(leading_part(b, 3).numpy(), dense, atol=1e-12)


def test_modes_after_is_the_scalar_recursion():
    mu = np.array([3.0, 0.5, 0.0, -0.2])
    pi = modes_after(0.05, 3, 0.2, mu, 40)
    assert pi.shape == (4,)
    for i, m in enumerate(mu):
        w = 0.2
        for k in range(40):
            w = w - 0.05 * w ** 2 * (w ** 3 - m)
        assert pi[i] == pytest.approx(w ** 3, rel=1e-13, abs=1e-300)
    assert modes_after(0.05, 3, 0.2, mu, 0).tolist() == pytest.approx([0.2 ** 3] * 4)
