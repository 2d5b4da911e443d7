"""Data sets that need no download, generated from a seed on the CPU in float64 and only
then cast and moved, so that every device and dtype sees the same numbers.

``DATASETS`` names the data sets a ``[problem] kind = "module"`` suite may give as ``data``
(with ``data_args`` as keyword arguments); ``"package.module:function"`` names a user's own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["DATASETS", "gaussian_teacher", "gaussian_clusters"]

DATASETS: Registry = Registry("data set")


def gaussian_teacher(n: int, d: int, k: int, seed: int, teacher_width: int = 64,
                     n_test: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Regression: ``x ~ N(0, I_d)``, ``y = tanh(x W) a`` from a random one-hidden-layer tanh
    teacher (``W ~ N(0, 4/d)``, ``a ~ N(0, 1/width)``), targets scaled by the training targets'
    std. Returns ``(x, y, x_test, y_test)``; the test draws come last, so the training set does
    not depend on ``n_test``."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, teacher_width, generator=g, dtype=torch.float64) * (2.0 / math.sqrt(d))
    a = torch.randn(teacher_width, k, generator=g, dtype=torch.float64) / math.sqrt(teacher_width)
    x_test = torch.randn(n_test, d, generator=g, dtype=torch.float64)
    y, y_test = torch.tanh(x @ w) @ a, torch.tanh(x_test @ w) @ a
    scale = y.std()
    return x, y / scale, x_test, y_test / scale


def gaussian_clusters(n: int, d: int, k: int, seed: int, separation: float = 3.0,
                      n_test: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Classification: ``k`` Gaussian clusters with means ``~ N(0, separation^2 I_d)`` and unit
    covariance; integer labels. With a large separation the classes are linearly separable.
    Returns ``(x, labels, x_test, labels_test)``; the test draws come last."""
    g = torch.Generator().manual_seed(20_000 + seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64) * separation
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    x = means[labels] + torch.randn(n, d, generator=g, dtype=torch.float64)
    labels_test = torch.randint(0, k, (n_test,), generator=g)
    x_test = means[labels_test] + torch.randn(n_test, d, generator=g, dtype=torch.float64)
    return x, labels, x_test, labels_test


@DATASETS.register("gaussian_teacher")
def _gaussian_teacher(n_samples: int = 256, input_dim: int = 20, n_outputs: int = 1, data_seed: int = 0,
                      teacher_width: int = 64, n_test: int = 0) -> tuple[Tensor, ...]:
    """:func:`gaussian_teacher` with the ``mlp`` problem's option names: regression targets of a
    random tanh teacher; ``(x, y)``, or ``(x, y, x_test, y_test)`` with ``n_test > 0``."""
    x, y, xt, yt = gaussian_teacher(n_samples, input_dim, n_outputs, data_seed, teacher_width, n_test)
    return (x, y, xt, yt) if n_test else (x, y)


@DATASETS.register("gaussian_clusters")
def _gaussian_clusters(n_samples: int = 256, input_dim: int = 20, n_classes: int = 2, data_seed: int = 0,
                       separation: float = 3.0, n_test: int = 0) -> tuple[Tensor, ...]:
    """:func:`gaussian_clusters` with option names: ``n_classes`` Gaussian classes, integer labels;
    ``(x, labels)``, or ``(x, labels, x_test, labels_test)`` with ``n_test > 0``."""
    x, y, xt, yt = gaussian_clusters(n_samples, input_dim, n_classes, data_seed, separation, n_test)
    return (x, y, xt, yt) if n_test else (x, y)
