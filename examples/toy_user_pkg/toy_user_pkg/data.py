"""The user's data: noisy images of a few random class templates, with some labels flipped."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["template_images"]


def template_images(n_samples: int = 256, channels: int = 2, image_size: int = 6, n_classes: int = 4,
                    noise: float = 1.0, label_noise: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n_samples`` images ``template[c] + noise * N(0, I)`` of ``n_classes`` Gaussian templates
    (balanced classes), then a fraction ``label_noise`` of the labels redrawn uniformly: a task a
    small network cannot fit at once. Returns float64 images ``(n, channels, size, size)`` and
    integer labels ``(n,)``, on the CPU, from ``seed`` alone."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(n_classes, channels, image_size, image_size, generator=g, dtype=torch.float64)
    labels = torch.arange(n_samples) % n_classes
    labels = labels[torch.randperm(n_samples, generator=g)]
    x = templates[labels] + noise * torch.randn(n_samples, channels, image_size, image_size, generator=g,
                                                dtype=torch.float64)
    if label_noise:
        flip = torch.rand(n_samples, generator=g) < label_noise
        labels = torch.where(flip, torch.randint(0, n_classes, (n_samples,), generator=g), labels)
    return x, labels
