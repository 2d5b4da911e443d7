"""Losses as functions ``l(outputs, targets) -> mean over the batch's examples``."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from ..registry import Registry

__all__ = ["LOSSES", "mse", "mse_mean", "half_sse", "cross_entropy", "smoothed_cross_entropy"]

LOSSES: Registry = Registry("loss")


@LOSSES.register("mse")
def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """``(1/n) sum_i 1/2 ||f(x_i) - y_i||^2``: Cohen et al.'s convention
    (locuslab/edge-of-stability, ``SquaredLoss``); its output Hessian is the identity / n."""
    r = (outputs - targets).reshape(outputs.shape[0], -1)
    return 0.5 * (r * r).sum(dim=1).mean()


@LOSSES.register("mse_mean")
def mse_mean(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean over all ``n * K`` entries of ``(f - y)^2`` (Long & Bartlett's code): ``2/K`` times ``mse``."""
    return ((outputs - targets) ** 2).mean()


@LOSSES.register("half_sse")
def half_sse(outputs: Tensor, targets: Tensor) -> Tensor:
    """``1/2 sum (f - y)^2`` over every entry (no mean over examples): with the examples the
    columns of a matrix, ``1/2 ||W - A||_F^2``. Not a per-example mean, so never chunked."""
    return 0.5 * ((outputs - targets) ** 2).sum()


@LOSSES.register("cross_entropy")
def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Softmax cross-entropy against integer class labels, mean over examples."""
    return F.cross_entropy(outputs, targets)


@dataclass(frozen=True)
class smoothed_cross_entropy:
    """Softmax cross-entropy against the smoothed target ``(1 - eps) onehot(y) + eps / K`` (Szegedy
    et al. 2016, arXiv 1512.00567, Sec. 7), mean over examples: ``F.cross_entropy(...,
    label_smoothing=eps)``. Its minimiser has finite logit gaps ``ln(1 + K (1 - eps) / eps)``, so
    the output Hessian ``diag(p) - p p^T`` does not vanish as training goes on (MacDonald et al.,
    arXiv 2305.14683, list label smoothing among the factors that change the scale between the
    loss Hessian and the input-output Jacobian). A frozen dataclass, so that it pickles."""

    eps: float

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.eps)
