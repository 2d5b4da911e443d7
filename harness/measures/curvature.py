"""Curvature measures: the top Hessian (or Gauss-Newton) eigenvalue, the stability threshold of
an update rule, and the preconditioned sharpness of a minibatch step."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import UnsupportedError
from ..kernels.curvature import gauss_newton_operator, hessian_operator
from ..kernels.objective import Objective
from ..kernels.operators import LinearOperator
from ..kernels.sharpness import top_eigenpairs
from ..kernels.spectrum import lanczos
from ..options import positive
from ..training.optimizers import TorchOptim
from . import MEASURES, Measurement, StepContext

__all__ = ["LambdaMax", "StabilityThreshold", "PreconditionedSharpness", "AdamPreconditionedSharpness", "TopMode"]


@MEASURES.register("lambda_max")
@dataclass(frozen=True)
class LambdaMax:
    """Top eigenvalue (sharpness) of the full-batch Hessian (or Gauss-Newton matrix) by Lanczos
    on the data's device, warm-started from the previous measurement's eigenvector(s); with
    ``k > 1`` the top ``k`` by block Lanczos, and the value is the ``index``-th largest.

    The Hessian's reused gradient graph is shared with the step's update (see
    :class:`~harness.measures.StepContext`). ``presample`` (a fraction of the examples) starts
    the first, cold measurement from the subsampled operator's eigenvectors
    (:func:`~harness.kernels.sharpness.top_eigenpairs`).

    Records ``aux``: relative residual (the largest of the ``k``), products used, converged, and
    for ``k > 1`` all ``k`` eigenvalues. An unconverged estimate is recorded in
    ``aux["estimate"]`` and the value is NaN, so no statistic can use it; one that could not be
    computed at all (overflowing products, a failed eigensolve) is NaN with ``aux["reason"]``.
    """

    operator: Literal["hessian", "gauss_newton"] = "hessian"
    tol: float = field(default=1e-3, metadata=positive)
    max_iter: int = field(default=100, metadata=positive)
    strategy: Literal["double_backward_reused", "double_backward", "forward_over_reverse"] = "double_backward_reused"
    warm_start: bool = True
    k: int = field(default=1, metadata=positive)
    index: int = field(default=1, metadata=positive)
    presample: float = 0.0

    def __post_init__(self):
        if self.index > self.k:
            raise ValueError(f"index ({self.index}) must be <= k ({self.k})")
        if not 0 <= self.presample < 1:
            raise ValueError(f"presample must be in [0, 1), got {self.presample}")

    @property
    def uses_hessian_graph(self) -> bool:
        """Whether the step's gradient should come from the Hessian's reused graph."""
        return self.operator == "hessian" and self.strategy == "double_backward_reused"

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        obj, theta = ctx.problem.objective, ctx.theta
        if self.operator == "hessian":
            make = lambda o: hessian_operator(o, theta, self.strategy)
            op = ctx.hessian(self.strategy)
        else:
            make = lambda o: gauss_newton_operator(o, theta)
            op = None
        v0 = memory.get("v") if self.warm_start else None
        res = top_eigenpairs(make, obj, k=self.k, tol=self.tol, max_iter=self.max_iter, v0=v0,
                             presample=self.presample, op=op, seed=ctx.step)
        memory["v"] = res.eigenvectors
        aux = {"relative_residual": float(res.relative_residuals.max()), "n_matvecs": res.n_matvecs,
               "converged": res.converged}
        if res.presample_matvecs:
            aux["presample_matvecs"] = res.presample_matvecs
        if self.k > 1:
            aux["eigenvalues"] = [float(x) for x in res.eigenvalues]
        if res.failure:
            aux["reason"] = res.failure
        value = float(res.eigenvalues[self.index - 1])
        if not res.converged:
            aux["estimate"] = value
            return Measurement(math.nan, aux)
        return Measurement(value, aux)


# bounded work of one stability_threshold measurement: ~80x the defaults' 1001 x 4000 x 3 one-dimensional steps
MAX_THRESHOLD_WORK = 10 ** 9


@MEASURES.register("stability_threshold")
@dataclass(frozen=True)
class StabilityThreshold:
    """The largest curvature on which the run's optimiser is stable, measured by running its
    own ``step`` on the diagonal quadratic ``1/2 sum_i lam_i w_i^2`` for a grid of ``lam``
    (every coordinate is an independent 1-D problem) and refining the grid around the first
    unstable curvature ``rounds`` times.

    A coordinate is unstable when its largest ``|w|`` over the last quarter of ``steps``
    exceeds that over the second quarter (the envelope grows) or it is not finite.
    """

    low: float = field(default=1e-6, metadata=positive)
    high: float = field(default=1e8, metadata=positive)
    points: int = field(default=1001, metadata=positive)
    rounds: int = field(default=3, metadata=positive)
    steps: int = field(default=4000, metadata=positive)

    def __post_init__(self):
        if self.low >= self.high or self.points < 3 or self.steps < 8:
            raise ValueError("need low < high, points >= 3 and steps >= 8")
        if self.points * self.steps * self.rounds > MAX_THRESHOLD_WORK:
            raise ValueError(f"points x steps x rounds = {self.points * self.steps * self.rounds:,} is more than "
                             f"{MAX_THRESHOLD_WORK:,} 1-D steps (the defaults take {1001 * 4000 * 3:,})")

    def _stable(self, optimizer: Any, lam: Tensor) -> Tensor:
        w = torch.ones_like(lam)
        state = optimizer.init(w)
        grad = lambda v: (0.5 * (lam * v * v).sum(), lam * v)
        quarter = self.steps // 4
        early = torch.zeros_like(lam)
        late = torch.zeros_like(lam)
        for t in range(self.steps):
            w, state = optimizer.step(w, state, grad)
            if quarter <= t < 2 * quarter:
                early = torch.maximum(early, w.abs())
            elif t >= 3 * quarter:
                late = torch.maximum(late, w.abs())
        return torch.isfinite(early) & torch.isfinite(late) & (late <= early)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "value" in memory:  # a property of the optimiser alone: measure once per case
            return Measurement(memory["value"], dict(memory["aux"]))
        dev = ctx.theta.device
        lam = torch.logspace(math.log10(self.low), math.log10(self.high), self.points,
                             dtype=torch.float64, device=dev)
        value, aux = math.nan, {}
        for r in range(self.rounds):
            stable = self._stable(ctx.optimizer, lam)
            bad = torch.nonzero(~stable)
            if len(bad) == 0 or int(bad[0]) == 0:
                aux = {"reason": "no stable-to-unstable transition inside the grid", "round": r}
                value = math.nan
                break
            i = int(bad[0])
            lo, hi = float(lam[i - 1]), float(lam[i])
            value, aux = 0.5 * (lo + hi), {"bracket": [lo, hi]}
            lam = torch.linspace(lo, hi, self.points, dtype=torch.float64, device=dev)
        memory["value"], memory["aux"] = value, aux
        return Measurement(value, aux)


@MEASURES.register("preconditioned_sharpness")
@dataclass(frozen=True)
class PreconditionedSharpness:
    """``S = lr * lambda_max(Xi^{1/2} H_B Xi^{1/2})`` on this step's minibatch, ``Xi`` blockwise the
    depthwise scales ``xi_k`` of the update (1 for plain SGD), by Lanczos on the minibatch Hessian
    operator. GD on a quadratic with this preconditioner is unstable when ``S > 2`` (Terjék, arXiv
    2502.13110, in the theory note's reading). Records the relative residual; NaN if unconverged."""

    tol: float = field(default=1e-3, metadata=positive)
    max_iter: int = field(default=100, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        d = ctx.direction()
        xis, (x, y) = d.xis, d.batch
        obj = ctx.problem.objective
        batch = Objective(obj.model, obj.loss, x, y)
        h = hessian_operator(batch, ctx.theta)
        s = torch.empty_like(ctx.theta)
        for k, sl in enumerate(ctx.problem.groups.values()):
            s[sl] = math.sqrt(xis[k])
        op = LinearOperator(lambda v: s * (h @ (s * v)), h.dim, h.dtype, h.device, name="preconditioned_hessian")
        return _warm_top_eigenvalue(op, self.tol, self.max_iter, memory, ctx.step, scale=ctx.optimizer.lr)


def _warm_top_eigenvalue(op: LinearOperator, tol: float, max_iter: int, memory: dict, step: int,
                         scale: float = 1.0) -> Measurement:
    """``scale * lambda_1(op)`` by Lanczos warm-started from ``memory["v"]`` (updated), with the
    relative residual and products recorded; NaN (the estimate in ``aux``) if unconverged."""
    res = lanczos(op, k=1, tol=tol, max_iter=max_iter, v0=memory.get("v"), seed=step)
    memory["v"] = res.eigenvectors[:, 0]
    aux = {"relative_residual": float(res.relative_residuals[0]), "n_matvecs": res.n_matvecs,
           "converged": res.converged}
    if res.failure:
        aux["reason"] = res.failure
    if not res.converged:
        return Measurement(math.nan, {**aux, "estimate": float(res.eigenvalues[0])})
    return Measurement(scale * float(res.eigenvalues[0]), aux)


def _adam_preconditioner(ctx: StepContext) -> Tensor:
    """The adaptive optimiser's diagonal preconditioner at this step, flattened like ``theta``, from a
    ``torch_optim`` rule's own state: for ``torch.optim.Adam``/``AdamW``
    ``P = (1 - beta1^t) (sqrt(v / (1 - beta2^t)) + eps)``; for ``torch.optim.RMSprop``
    ``P = sqrt(v) + eps`` (``v - g_avg^2`` in place of ``v`` when ``centered``), the divisor of its
    step (no bias correction in torch's RMSprop). Empty before the first step."""
    state = ctx.state if isinstance(ctx.state, dict) else {}
    opt = state.get("optimizer")
    if opt is None or not isinstance(opt, (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)):
        raise UnsupportedError("adam_preconditioned_sharpness needs a torch_optim rule with class "
                               "torch.optim.Adam, torch.optim.AdamW or torch.optim.RMSprop")
    group = opt.param_groups[0]
    rmsprop = isinstance(opt, torch.optim.RMSprop)
    parts = []
    for p in state["params"]:
        s = opt.state.get(p, {})
        if ("square_avg" if rmsprop else "exp_avg_sq") not in s:
            return torch.empty(0)
        if rmsprop:
            v = s["square_avg"].detach()
            if group["centered"]:
                v = v - s["grad_avg"].detach() ** 2
            parts.append((v.sqrt() + group["eps"]).reshape(-1))
            continue
        beta1, beta2 = group["betas"]
        t = float(s["step"])
        v_hat = s["exp_avg_sq"].detach() / (1 - beta2 ** t)
        parts.append(((1 - beta1 ** t) * (v_hat.sqrt() + group["eps"])).reshape(-1))
    return torch.cat(parts).to(ctx.theta.dtype)


@MEASURES.register("adam_preconditioned_sharpness")
@dataclass(frozen=True)
class AdamPreconditionedSharpness:
    """``lambda_1(P^{-1} H)``, the preconditioned sharpness of full-batch Adam, with ``P`` the
    optimiser's current preconditioner ``(1 - beta1^t) diag(sqrt(v_hat_t) + eps)`` (Cohen et al.,
    "Adaptive Gradient Methods at the Edge of Stability", arXiv 2207.14484): Lanczos on the
    symmetric ``P^{-1/2} H P^{-1/2}``, which has the same eigenvalues, warm-started like
    ``lambda_max``. Adam is then preconditioned EMA momentum, stable on a quadratic while
    ``lambda_1(P^{-1} H) < (2 + 2 beta1) / ((1 - beta1) eta)``. ``torch.optim.RMSprop`` too, with
    ``P = sqrt(v) + eps``: preconditioned GD (heavy ball with its ``momentum``), stable while
    ``lambda_1(P^{-1} H) < (2 + 2 momentum) / eta``. NaN at step 0, before the optimiser has a
    second-moment estimate. Records the relative residual and products used.

    ``frozen_at = k >= 1``, a negative control: ``P`` is the preconditioner of the first
    measurement at a step ``>= k``, held from then on while the optimiser's own keeps adapting
    (``0``, the default: the current one)."""

    tol: float = field(default=1e-3, metadata=positive)
    max_iter: int = field(default=100, metadata=positive)
    frozen_at: int = field(default=0, metadata={"check": "nonnegative"})

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if self.frozen_at and "frozen" in memory:
            p = memory["frozen"]
        else:
            p = _adam_preconditioner(ctx)
            if self.frozen_at and p.numel() and ctx.step >= self.frozen_at:
                memory["frozen"] = p.clone()
        if p.numel() == 0:
            return Measurement(math.nan, {"reason": "no preconditioner before Adam's first step"})
        h = ctx.hessian()
        s = p.to(h.device).rsqrt()
        op = LinearOperator(lambda v: s * (h @ (s * v)), h.dim, h.dtype, h.device, name="adam_preconditioned_hessian")
        return _warm_top_eigenvalue(op, self.tol, self.max_iter, memory, ctx.step)


@MEASURES.register("top_mode")
@dataclass(frozen=True)
class TopMode:
    """The gradient along the top Hessian eigenvector ``v_1`` at ``theta_t`` (Lanczos to relative
    residual ``tol``, warm-started), before and after this step, in units of ``||g_t||``:
    ``quantity = "now"``: ``<v_1, g_t> / ||g_t||``; ``"next"``: ``<v_1, g_{t+1}> / ||g_t||``;
    ``"multiplier"``: their ratio, the factor by which the step multiplies the top mode.

    ``g_{t+1}`` is the gradient at the update rule's own next iterate, from a dry run of its step
    on this step's state (rules keep explicit state, so the run is not advanced; ``torch_optim``,
    whose optimiser object a step changes, is refused). On a quadratic the factor is exact: for
    normalised SAM ``1 - lr lam - lr rho lam^2/||g_t||``, of magnitude 1 exactly at the SAM edge of
    ``||g_t||`` (prediction ``sam_top_mode_step``). ``now`` and ``next`` stay measurable when the
    top coordinate has decayed to round-off (their ratio then does not). ``v_1`` is computed once
    per step for all three. Records ``lambda`` (the eigenvalue) and the residual."""

    quantity: Literal["now", "next", "multiplier"] = "multiplier"
    tol: float = field(default=1e-10, metadata=positive)
    max_iter: int = field(default=100, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if isinstance(ctx.optimizer, TorchOptim):
            raise UnsupportedError("top_mode dry-runs the update rule's step: it needs a rule with explicit state "
                                   "(not torch_optim, whose optimizer object a step changes)")
        key = ("top_mode", self.tol, self.max_iter)
        if key not in ctx.cache:  # one eigensolve and one dry run per step, whatever the quantity
            res = lanczos(ctx.hessian(), k=1, tol=self.tol, max_iter=self.max_iter, v0=memory.get("v"), seed=ctx.step)
            aux = {"lambda": float(res.eigenvalues[0]), "residual": float(res.relative_residuals.max())}
            if not res.converged:
                ctx.cache[key] = (math.nan, math.nan, {**aux, "reason": "Lanczos did not converge"})
            else:
                v1 = res.eigenvectors[:, 0]
                theta_next, _ = ctx.optimizer.step(ctx.theta, ctx.state, ctx.value_and_grad)
                scale = float(ctx.grad.norm())
                now = float(v1 @ ctx.grad) / scale if scale > 0 else math.nan
                after = float(v1 @ ctx.value_and_grad(theta_next)[1]) / scale if scale > 0 else math.nan
                ctx.cache[key] = (now, after, aux)
                memory["v"] = v1
        now, after, aux = ctx.cache[key]
        value = {"now": now, "next": after, "multiplier": after / now if now else math.nan}[self.quantity]
        return Measurement(value, dict(aux))
