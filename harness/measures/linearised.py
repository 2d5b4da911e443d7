"""The step against the model linearised at the iterate: the finite-width kernel regime.

In the kernel (lazy) regime of a wide network, one full-batch GD step moves the outputs by the
Jacobian times the step, ``f(theta + Delta) ~= f(theta) + J Delta``, so the next loss is the loss
at the linearised outputs; for the squared loss ``e <- (I - M) e`` with the finite-width kernel
``M = sum_g eta_g J_g J_g^T`` at the current iterate. This one-step contraction, with the kernel
staying near its value at initialisation, is the step of the kernel-regime convergence proofs
(Du et al., arXiv 1810.02054; both layers at different rates, Razborov, arXiv 2212.02323, as read
in shared/theory/dynamics.md Sec. 2.3). It holds at any width, where the infinite-width rate of
:mod:`harness.predictions.relu` holds only up to the finite-width spread.

For any full-batch GD whose step is small against the curvature of the model (deep matrix
factorisation from small initialisation, where the steps are tiny against the factors), the same
ratio pins the time scale ``eta t`` in which the dynamics run: a run at another step size than the
suite states shows, whatever its claims about time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as forward_ad
from torch import Tensor

from ..errors import UnsupportedError
from . import MEASURES, Measurement, StepContext

__all__ = ["KernelStepRatio", "stated_step"]


def stated_step(kind: str | None, bindings: dict, problem, grad: Tensor) -> Tensor:
    """The step the suite states for an update rule of ``kind``, ``Delta = -eta * grad`` per
    parameter group, from the nominal hyper-parameters a prediction binds (never from the rule
    that runs, so that a wrong rate in the rule shows): ``gd`` takes ``lr``; ``two_rate_gd`` takes
    ``lr_first`` and ``lr_second`` on the groups ``first`` and ``second``, divided by
    ``Problem.kernel_top`` with ``relative_to = "kernel_top"`` (the rule's own ``rates`` written
    again on purpose: a fault there must not move the prediction too)."""
    if kind == "two_rate_gd":
        groups, top = problem.groups, problem.kernel_top
        relative = bindings.get("relative_to", "none") == "kernel_top"
        if set(groups) != {"first", "second"} or (relative and top is None):
            raise UnsupportedError("kernel_step_ratio with two rates needs the groups 'first' and 'second' "
                                   "(and kernel_top with relative_to = 'kernel_top'): two_layer_relu")
        step = torch.zeros_like(grad)
        for g in ("first", "second"):
            eta = float(bindings[f"lr_{g}"]) / (top[g] if relative else 1.0)
            step[groups[g]] = -eta * grad[groups[g]]
        return step
    if kind == "gd":
        return -float(bindings["lr"]) * grad
    raise UnsupportedError(f"kernel_step_ratio needs a gd or two_rate_gd update rule (a step of -eta grad per "
                           f"group), not {kind!r}")


@MEASURES.register("kernel_step_ratio")
@dataclass(frozen=True)
class KernelStepRatio:
    """``ln(L(theta') / L_t) / ln(L_lin / L_t)`` at step ``t``: the log-decrease of the full-batch
    loss over the step the rule that runs takes from ``theta_t`` (to ``theta'``, the run's next
    iterate: ``gd`` and ``two_rate_gd`` steps are pure functions of the iterate and the gradient),
    against the one the model linearised at ``theta_t`` predicts for the step the suite states,
    ``L_lin = sum_chunks w * loss(f(theta_t) + J Delta, y)`` with ``Delta = -eta_g grad_g L``
    (:func:`stated_step`; ``J Delta`` by one forward-mode product). 1 up to the nonlinearity of
    one step; a rate 10 % long makes it about 1.1 once the residual is in the kernel's slow modes
    (``ln(1 - 1.1 mu) / ln(1 - mu)``). Any cadence (each value is one step); NaN where the loss
    does not fall. Records ``predicted`` (``L_lin``) and ``measured`` (``L(theta')``) in ``aux``."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        obj = ctx.problem.objective
        loss = ctx.loss
        predicted = self._linearised(ctx)
        following, _ = ctx.optimizer.step(ctx.theta, ctx.state, ctx.value_and_grad)
        with torch.no_grad():
            measured = float(obj.value(following.detach()))
        value = math.nan
        if 0 < predicted < loss and measured > 0:
            value = math.log(measured / loss) / math.log(predicted / loss)
        return Measurement(value, {"predicted": predicted, "measured": measured})

    @staticmethod
    def _linearised(ctx: StepContext) -> float:
        obj = ctx.problem.objective
        theta = ctx.theta.detach()
        step = stated_step(ctx.stated_kind, ctx.bindings, ctx.problem, ctx.grad.detach())
        total = 0.0
        with torch.no_grad(), forward_ad.dual_level():  # forward mode by hand: torch.func.jvp took 25x longer here
            dual = forward_ad.make_dual(theta, step)
            for inputs, targets, weight in obj.chunks():
                out, moved = forward_ad.unpack_dual(obj.model(dual, inputs))
                total += weight * float(obj.loss(out + moved, targets))
        return total
