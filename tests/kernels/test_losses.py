"""Losses (mirrors harness/kernels/losses.py): each against a hand formula, and the per-example
mean that lets the objective evaluate it in chunks."""

import math
import pickle

import pytest
import torch

from harness.kernels.losses import LOSSES, smoothed_cross_entropy

MEAN_LOSSES = ["mse", "mse_mean", "cross_entropy"]


def batch(name, n=5, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(n, k, generator=g, dtype=torch.float64)
    if name == "cross_entropy":
        return out, torch.randint(0, k, (n,), generator=g)
    return out, torch.randn(n, k, generator=g, dtype=torch.float64)


def test_registry_lists_the_built_in_losses():
    assert sorted(LOSSES) == ["cross_entropy", "half_sse", "mse", "mse_mean"]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_returns_a_0d_tensor(name):
    out, y = batch(name)
    assert LOSSES[name](out, y).dim() == 0


@pytest.mark.parametrize("name", MEAN_LOSSES)
def test_loss_is_the_mean_of_its_one_example_values(name):
    out, y = batch(name)
    singles = torch.stack([LOSSES[name](out[i:i + 1], y[i:i + 1]) for i in range(out.shape[0])])
    assert float(LOSSES[name](out, y)) == pytest.approx(float(singles.mean()), rel=1e-13)


@pytest.mark.parametrize("name", MEAN_LOSSES)
def test_loss_is_the_weighted_sum_of_its_chunks(name):
    """What Objective relies on: L = sum_c (n_c/n) l(chunk c)."""
    out, y = batch(name, n=7)
    chunks = [(0, 3), (3, 6), (6, 7)]
    total = sum((b - a) / 7 * LOSSES[name](out[a:b], y[a:b]) for a, b in chunks)
    assert float(LOSSES[name](out, y)) == pytest.approx(float(total), rel=1e-13)


def test_half_sse_is_the_sum_not_the_mean():
    """``half_sse`` is documented as the one built-in loss that is not a per-example mean."""
    out, y = batch("half_sse")
    singles = sum(float(LOSSES["half_sse"](out[i:i + 1], y[i:i + 1])) for i in range(out.shape[0]))
    assert float(LOSSES["half_sse"](out, y)) == pytest.approx(singles, rel=1e-13)


def test_mse_is_half_the_squared_norm_per_example():
    out, y = batch("mse")
    expected = sum(0.5 * sum((out[i, j].item() - y[i, j].item()) ** 2 for j in range(3)) for i in range(5)) / 5
    assert float(LOSSES["mse"](out, y)) == pytest.approx(expected, rel=1e-13)


def test_mse_flattens_trailing_axes():
    g = torch.Generator().manual_seed(1)
    out, y = (torch.randn(4, 2, 3, generator=g, dtype=torch.float64) for _ in range(2))
    assert float(LOSSES["mse"](out, y)) == pytest.approx(float(0.5 * ((out - y) ** 2).sum() / 4), rel=1e-13)


def test_mse_mean_is_the_mean_over_every_entry():
    out, y = batch("mse_mean")
    expected = sum((out[i, j].item() - y[i, j].item()) ** 2 for i in range(5) for j in range(3)) / 15
    assert float(LOSSES["mse_mean"](out, y)) == pytest.approx(expected, rel=1e-13)


def test_mse_mean_is_two_over_k_times_mse():
    out, y = batch("mse")
    assert float(LOSSES["mse_mean"](out, y)) == pytest.approx(2 / 3 * float(LOSSES["mse"](out, y)), rel=1e-13)


def test_half_sse_is_half_the_squared_frobenius_distance():
    out, y = batch("half_sse")
    expected = 0.5 * sum((out[i, j].item() - y[i, j].item()) ** 2 for i in range(5) for j in range(3))
    assert float(LOSSES["half_sse"](out, y)) == pytest.approx(expected, rel=1e-13)


def test_cross_entropy_is_the_mean_negative_log_softmax_of_the_label():
    out, y = batch("cross_entropy")
    expected = 0.0
    for i in range(5):
        row = out[i].tolist()
        log_z = math.log(sum(math.exp(v) for v in row))
        expected += (log_z - row[int(y[i])]) / 5
    assert float(LOSSES["cross_entropy"](out, y)) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_is_zero_at_a_perfect_fit(name):
    if name == "cross_entropy":
        y = torch.tensor([0, 2, 1])
        out = 1e3 * torch.nn.functional.one_hot(y, 3).to(torch.float64)
    else:
        out = y = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert float(LOSSES[name](out, y)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_smoothed_cross_entropy_is_cross_entropy_against_the_smoothed_target(eps):
    out, y = batch("cross_entropy", n=6, k=4)
    q = torch.full((6, 4), eps / 4, dtype=torch.float64)
    q[torch.arange(6), y] += 1 - eps
    by_hand = -(q * torch.log_softmax(out, dim=1)).sum(dim=1).mean()
    assert float(smoothed_cross_entropy(eps)(out, y)) == pytest.approx(float(by_hand), rel=1e-13)


def test_smoothed_cross_entropy_is_the_mean_of_its_one_example_values_and_pickles():
    loss = smoothed_cross_entropy(0.2)
    out, y = batch("cross_entropy")
    singles = torch.stack([loss(out[i:i + 1], y[i:i + 1]) for i in range(out.shape[0])])
    assert float(loss(out, y)) == pytest.approx(float(singles.mean()), rel=1e-13)
    assert pickle.loads(pickle.dumps(loss)) == loss
