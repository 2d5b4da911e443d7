"""Measures of the loss and the parameters: loss, gradient norm, loss ratio, weight change,
held-out loss, minibatch loss."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UnsupportedError
from . import MEASURES, Measurement, StepContext

__all__ = ["Loss", "GradNorm", "LossRatio", "RelativeChange", "TestLoss", "MinibatchLoss"]


@MEASURES.register("loss")
@dataclass(frozen=True)
class Loss:
    """The full-batch training loss ``L(theta_t)`` (free: shared with the update's gradient)."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(ctx.loss)


@MEASURES.register("grad_norm")
@dataclass(frozen=True)
class GradNorm:
    """``||grad L(theta_t)||_2`` at the iterate, before the update."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(float(ctx.grad.norm()))


@MEASURES.register("test_loss")
@dataclass(frozen=True)
class TestLoss:
    """The loss on the problem's held-out set (``n_test`` > 0)."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if ctx.problem.test is None:
            raise UnsupportedError("measure 'test_loss' needs a problem with a held-out set (n_test > 0)")
        return Measurement(float(ctx.problem.test.value(ctx.theta)))


@MEASURES.register("loss_ratio")
@dataclass(frozen=True)
class LossRatio:
    """``L(theta_t) / L(theta_0)``."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        loss = ctx.loss
        memory.setdefault("l0", loss)
        return Measurement(loss / memory["l0"] if memory["l0"] else math.nan)


@MEASURES.register("relative_change")
@dataclass(frozen=True)
class RelativeChange:
    """``||theta_g(t) - theta_g(0)|| / ||theta_g(0)||`` for the problem's parameter group ``group``
    (all parameters if empty): how far training moved the weights (lazy regime: small)."""

    group: str = ""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if self.group and self.group not in ctx.problem.groups:
            raise UnsupportedError(f"relative_change: the problem has no parameter group {self.group!r} "
                                   f"(it has {sorted(ctx.problem.groups)})")
        part = ctx.theta[ctx.problem.groups[self.group]] if self.group else ctx.theta
        start = memory.setdefault("start", part.detach().clone())
        return Measurement(float((part - start).norm() / start.norm()))


@MEASURES.register("minibatch_loss")
@dataclass(frozen=True)
class MinibatchLoss:
    """The loss on the minibatch the update of this step uses."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(float(ctx.direction().stats.loss))
