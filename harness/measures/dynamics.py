"""Measures of a minibatch update (Terjék, arXiv 2502.13110, in the theory note's reading):
Taylor coefficients of the minibatch loss along the update and the soft rank of the features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import UnsupportedError
from ..kernels.homogeneous import (entropy_soft_rank, gram_c1, layer_forward, participation_ratio, stable_rank,
                           taylor_coefficients)
from ..options import positive
from . import MEASURES, Measurement, StepContext
from .jacobian import _inputs

__all__ = ["TaylorGramError", "TaylorCubicError", "SoftRank"]


def _taylor(ctx: StepContext):
    """The update direction, the minibatch loss and its Taylor coefficients, once per step."""
    if "taylor" not in ctx.cache:
        d = ctx.direction()
        u, stats, xis, (x, y) = d.u, d.stats, d.xis, d.batch
        obj, widths = ctx.problem.objective, list(ctx.problem.widths)
        batch_loss = lambda t: obj.loss(layer_forward(t, widths, x)[0], y)
        ctx.cache["taylor"] = (u, stats, xis, batch_loss, taylor_coefficients(batch_loss, ctx.theta.detach(), u))
    return ctx.cache["taylor"]


@MEASURES.register("taylor_gram_error")
@dataclass(frozen=True)
class TaylorGramError:
    """``|c_1^Gram - c_1| / |c_1|``: the Gram form of the first Taylor coefficient of the
    minibatch loss along the update against nested forward-mode AD (exact identity;
    :mod:`harness.kernels.homogeneous`). Records ``c_1, c_2, c_3`` and ``c_1^Gram`` in ``aux``."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        _, stats, xis, _, (l0, c1, c2, c3) = _taylor(ctx)
        g = gram_c1(stats, list(ctx.problem.widths), xis)
        return Measurement(abs(g - c1) / abs(c1), {"c1": c1, "c2": c2, "c3": c3, "c1_gram": g})


@MEASURES.register("taylor_cubic_error")
@dataclass(frozen=True)
class TaylorCubicError:
    """Relative error of the cubic Taylor model of the minibatch loss at a step ``h = fraction * lr``
    along the update: ``|L(h) - (L_0 + c_1 h + c_2 h^2/2 + c_3 h^3/6)| / |L(h) - L_0|``."""

    fraction: float = field(default=0.01, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        u, _, _, batch_loss, (l0, c1, c2, c3) = _taylor(ctx)
        lr = ctx.optimizer.lr  # in absolute units (the runner converts an lr_unit)
        h = self.fraction * lr
        with torch.no_grad():
            lh = float(batch_loss(ctx.theta + h * u))
        model = l0 + c1 * h + c2 * h ** 2 / 2 + c3 * h ** 3 / 6
        return Measurement(abs(lh - model) / abs(lh - l0), {"q": lr * c2 / (2 * abs(c1))})


@MEASURES.register("soft_rank")
@dataclass(frozen=True)
class SoftRank:
    """Soft rank of the last hidden layer's features ``F`` (``K = F F^T / n``) on the held-out
    (or training) inputs: participation ratio ``(tr K)^2/||K||_F^2`` (the theory note's primary
    reading of Terjék's soft rank, arXiv 2502.13110), stable rank ``tr K / lambda_max(K)`` or the
    entropy rank of ``K``'s spectrum (the alternatives; all three moved together in the note's runs)."""

    variant: Literal["participation", "stable", "entropy"] = "participation"
    inputs: Literal["test", "train"] = "test"

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if ctx.problem.widths is None:
            raise UnsupportedError("soft_rank needs a layered problem (homogeneous_mlp)")
        x = _inputs(ctx, self.inputs, memory)
        with torch.no_grad():
            feats = layer_forward(ctx.theta, list(ctx.problem.widths), x)[2][-1]
        fn = {"participation": participation_ratio, "stable": stable_rank, "entropy": entropy_soft_rank}[self.variant]
        return Measurement(fn(feats))
