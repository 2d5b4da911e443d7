"""Data sets that need no download, generated from a seed on the CPU in float64 and only
then cast and moved, so that every device and dtype sees the same numbers."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["gaussian_teacher", "gaussian_clusters"]


def gaussian_teacher(n: int, d: int, k: int, seed: int, teacher_width: int = 64) -> tuple[Tensor, Tensor]:
    """Regression: ``x ~ N(0, I_d)``, ``y = tanh(x W) a`` from a random one-hidden-layer tanh
    teacher (``W ~ N(0, 4/d)``, ``a ~ N(0, 1/width)``), targets scaled to unit std."""
    g = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, teacher_width, generator=g, dtype=torch.float64) * (2.0 / math.sqrt(d))
    a = torch.randn(teacher_width, k, generator=g, dtype=torch.float64) / math.sqrt(teacher_width)
    y = torch.tanh(x @ w) @ a
    return x, y / y.std()


def gaussian_clusters(n: int, d: int, k: int, seed: int, separation: float = 3.0) -> tuple[Tensor, Tensor]:
    """Classification: ``k`` Gaussian clusters with means ``~ N(0, separation^2 I_d)`` and unit
    covariance; integer labels. With a large separation the classes are linearly separable."""
    g = torch.Generator().manual_seed(20_000 + seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64) * separation
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    x = means[labels] + torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, labels
