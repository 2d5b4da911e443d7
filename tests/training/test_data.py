"""Built-in data sets (mirrors harness/training/data.py): the DATASETS registry, shapes and seeding."""

import math

import pytest
import torch

from harness.training.data import DATASETS, gaussian_clusters, gaussian_teacher


def test_registry_lists_the_built_in_data_sets():
    assert sorted(DATASETS) == ["gaussian_clusters", "gaussian_teacher"]


def test_teacher_without_n_test_returns_a_training_pair():
    out = DATASETS["gaussian_teacher"](n_samples=7, input_dim=3, n_outputs=2)
    assert [tuple(t.shape) for t in out] == [(7, 3), (7, 2)]


def test_teacher_with_n_test_returns_a_held_out_split():
    out = DATASETS["gaussian_teacher"](n_samples=7, input_dim=3, n_outputs=2, n_test=4)
    assert [tuple(t.shape) for t in out] == [(7, 3), (7, 2), (4, 3), (4, 2)]


def test_teacher_data_are_float64():
    assert all(t.dtype == torch.float64 for t in DATASETS["gaussian_teacher"](n_samples=5, input_dim=2, n_test=2))


def test_clusters_without_n_test_returns_a_training_pair():
    out = DATASETS["gaussian_clusters"](n_samples=9, input_dim=4, n_classes=3)
    assert [tuple(t.shape) for t in out] == [(9, 4), (9,)]


def test_clusters_with_n_test_returns_a_held_out_split():
    out = DATASETS["gaussian_clusters"](n_samples=9, input_dim=4, n_classes=3, n_test=5)
    assert [tuple(t.shape) for t in out] == [(9, 4), (9,), (5, 4), (5,)]


def test_cluster_labels_are_integers():
    _, y, _, yt = DATASETS["gaussian_clusters"](n_samples=9, input_dim=4, n_classes=3, n_test=5)
    assert y.dtype == yt.dtype == torch.int64


def test_cluster_labels_lie_in_range():
    _, y, _, yt = gaussian_clusters(30, 2, 4, seed=0, n_test=30)
    assert int(y.min()) >= 0 and int(y.max()) < 4
    assert int(yt.min()) >= 0 and int(yt.max()) < 4


def test_cluster_training_labels_are_balanced():
    _, y, _, _ = gaussian_clusters(12, 2, 3, seed=1)
    assert torch.bincount(y, minlength=3).tolist() == [4, 4, 4]


def test_cluster_inputs_lie_near_their_class_mean():
    """With a large separation, each input is nearer its own class mean than any other."""
    x, y, _, _ = gaussian_clusters(60, 5, 3, seed=2, separation=50.0)
    means = torch.stack([x[y == k].mean(0) for k in range(3)])
    assert torch.equal(torch.cdist(x, means).argmin(1), y)


def test_teacher_targets_have_unit_standard_deviation():
    _, y, _, _ = gaussian_teacher(50, 4, 1, seed=0)
    assert float(y.std()) == pytest.approx(1.0, rel=1e-12)


def test_teacher_targets_are_a_tanh_network_of_the_inputs():
    """Rebuild the teacher from the documented draws (x, W ~ N(0, 4/d), a ~ N(0, 1/width))."""
    n, d, k, width = 6, 3, 2, 5
    x, y, _, _ = gaussian_teacher(n, d, k, seed=4, teacher_width=width)
    g = torch.Generator().manual_seed(10_000 + 4)
    x_ref = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, width, generator=g, dtype=torch.float64) * (2.0 / math.sqrt(d))
    a = torch.randn(width, k, generator=g, dtype=torch.float64) / math.sqrt(width)
    f = torch.tanh(x_ref @ w) @ a
    torch.testing.assert_close(x, x_ref, rtol=0, atol=0)
    torch.testing.assert_close(y, f / f.std(), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("name,kwargs", [("gaussian_teacher", {"n_samples": 6, "input_dim": 3, "n_test": 2}),
                                         ("gaussian_clusters", {"n_samples": 6, "input_dim": 3, "n_test": 2})])
def test_same_data_seed_gives_identical_data(name, kwargs):
    a, b = DATASETS[name](data_seed=3, **kwargs), DATASETS[name](data_seed=3, **kwargs)
    assert all(torch.equal(s, t) for s, t in zip(a, b))


@pytest.mark.parametrize("name,kwargs", [("gaussian_teacher", {"n_samples": 6, "input_dim": 3}),
                                         ("gaussian_clusters", {"n_samples": 6, "input_dim": 3})])
def test_another_data_seed_gives_different_inputs(name, kwargs):
    a, b = DATASETS[name](data_seed=3, **kwargs), DATASETS[name](data_seed=4, **kwargs)
    assert not torch.equal(a[0], b[0])


@pytest.mark.parametrize("name", ["gaussian_teacher", "gaussian_clusters"])
def test_data_do_not_depend_on_the_global_rng(name):
    torch.manual_seed(0)
    a = DATASETS[name](n_samples=6, input_dim=3)
    torch.manual_seed(1)
    b = DATASETS[name](n_samples=6, input_dim=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("fn", [gaussian_teacher, gaussian_clusters])
def test_training_split_does_not_depend_on_n_test(fn):
    x0, y0, _, _ = fn(8, 3, 2, 0, n_test=0)
    x5, y5, _, _ = fn(8, 3, 2, 0, n_test=5)
    assert torch.equal(x0, x5) and torch.equal(y0, y5)


def test_teacher_test_targets_use_the_training_scale():
    """The held-out targets are divided by the *training* targets' std (one teacher for both)."""
    _, y, xt, yt = gaussian_teacher(40, 3, 1, seed=0, n_test=4000)
    assert float(y.std()) == pytest.approx(1.0, rel=1e-12)
    assert float(yt.std()) == pytest.approx(1.0, rel=0.3)  # same distribution: near 1, not exactly 1
    assert float(yt.std()) != pytest.approx(1.0, rel=1e-9)
