"""Measures: what a run records at its measurement steps.

A measure kind is a frozen dataclass of options (the suite's ``[measures.NAME]`` table).
Calling it with the step's :class:`StepContext` and the measure's own ``memory`` (a dict
kept for the whole case, e.g. for warm starts) returns a :class:`Measurement`: a float and
auxiliary numbers (residuals, product counts) that are recorded beside it. A value that
cannot be trusted is recorded as NaN with the reason in ``aux``; it is never a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import torch
from torch import Tensor

from .ansatz import chain_rule_error, mean_sq_jacobian_norm, trace_inequality_ratio
from .curvature import gauss_newton_operator, hessian_operator
from .errors import MeasurementError
from .objective import Objective
from .operators import LinearOperator
from .options import positive
from .problems import Problem
from .homogeneous import (entropy_soft_rank, gram_c1, layer_forward, participation_ratio, stable_rank,
                          taylor_coefficients)
from .rank import effective_rank, entropy_rank
from .registry import Registry
from .spectrum import lanczos

__all__ = ["MEASURES", "Measurement", "StepContext", "Loss", "GradNorm", "LambdaMax", "StabilityThreshold",
           "JacobianNorm", "ChainRuleError", "JacobianTraceRatio", "TestLoss", "EffectiveRank", "EntropyRank",
           "ModeProgress", "RelativeError", "EffectiveRankGap", "LossRatio", "RelativeChange", "MinibatchLoss",
           "TaylorGramError", "TaylorCubicError", "SoftRank", "PreconditionedSharpness"]

MEASURES: Registry[type] = Registry("measure")


@dataclass(frozen=True)
class Measurement:
    value: float
    aux: dict[str, Any] = field(default_factory=dict)


class StepContext:
    """The state of a run at one step, with ``L`` and ``grad L`` at ``theta`` cached so that
    the optimiser and every measure share one gradient evaluation."""

    def __init__(self, step: int, theta: Tensor, problem: Problem, optimizer: Any, state: Any = None):
        self.step, self.theta, self.problem, self.optimizer, self.state = step, theta, problem, optimizer, state
        self._vg: tuple[Tensor, Tensor] | None = None

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        if theta is self.theta:
            if self._vg is None:
                self._vg = self.problem.objective.value_and_grad(theta)
            return self._vg
        return self.problem.objective.value_and_grad(theta)

    @property
    def loss(self) -> float:
        """``L(theta)``; for a minibatch rule (``full_batch = False``) a forward pass only."""
        if self._vg is None and not getattr(self.optimizer, "full_batch", True):
            if not hasattr(self, "_value"):
                self._value = float(self.problem.objective.value(self.theta))
            return self._value
        return float(self.value_and_grad(self.theta)[0])

    @property
    def grad(self) -> Tensor:
        return self.value_and_grad(self.theta)[1]


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


@MEASURES.register("lambda_max")
@dataclass(frozen=True)
class LambdaMax:
    """Top eigenvalue (sharpness) of the full-batch Hessian (or Gauss-Newton matrix) by
    Lanczos on the data's device, warm-started from the previous measurement's eigenvector.

    Records ``aux``: relative residual, products used, converged. An unconverged estimate is
    recorded in ``aux["estimate"]`` and the value is NaN, so no statistic can use it.
    """

    operator: Literal["hessian", "gauss_newton"] = "hessian"
    tol: float = field(default=1e-3, metadata=positive)
    max_iter: int = field(default=100, metadata=positive)
    strategy: Literal["double_backward_reused", "double_backward", "forward_over_reverse"] = "double_backward_reused"
    warm_start: bool = True

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        obj = ctx.problem.objective
        if self.operator == "hessian":
            op = hessian_operator(obj, ctx.theta, self.strategy)
        else:
            op = gauss_newton_operator(obj, ctx.theta)
        v0 = memory.get("v") if self.warm_start else None
        res = lanczos(op, k=1, tol=self.tol, max_iter=self.max_iter, v0=v0, seed=ctx.step)
        memory["v"] = res.eigenvectors[:, 0]
        aux = {"relative_residual": float(res.relative_residuals[0]), "n_matvecs": res.n_matvecs,
               "converged": res.converged}
        if not res.converged:
            aux["estimate"] = float(res.eigenvalues[0])
            return Measurement(math.nan, aux)
        return Measurement(float(res.eigenvalues[0]), aux)


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


def _inputs(ctx: StepContext, which: str, memory: dict) -> Tensor:
    """The training inputs, the held-out inputs, or seeded Gaussian off-data inputs."""
    obj = ctx.problem.objective
    if which == "train":
        return obj.inputs
    if which == "test":
        if ctx.problem.test is None:
            raise MeasurementError("inputs = 'test' needs a problem with a held-out set (n_test > 0)")
        return ctx.problem.test.inputs
    if "random" not in memory:  # fixed for the whole case
        g = torch.Generator().manual_seed(40_000)
        x = torch.randn(obj.inputs.shape, generator=g, dtype=torch.float64)
        memory["random"] = x.to(device=obj.inputs.device, dtype=obj.inputs.dtype)
    return memory["random"]


@dataclass(frozen=True)
class _JacobianMeasure:
    """Options shared by the input-output Jacobian measures; ``quantity`` is the
    :mod:`harness.ansatz` function ``(model, theta, inputs, method, chunk_size) -> float``."""

    quantity: ClassVar[Callable[..., float]]
    inputs: Literal["train", "test", "random"] = "train"
    method: Literal["vmap", "backward"] = "vmap"
    chunk_size: int | None = field(default=None, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        x = _inputs(ctx, self.inputs, memory)
        return Measurement(type(self).quantity(ctx.problem.objective.model, ctx.theta, x, self.method, self.chunk_size))


@MEASURES.register("jacobian_norm")
@dataclass(frozen=True)
class JacobianNorm(_JacobianMeasure):
    """``J_F = (1/n) sum_i ||D_x f(x_i)||_F^2`` over the training inputs (or ``"test"`` or
    ``"random"`` off-data Gaussian inputs), MacDonald, Valmadre & Lucey, arXiv 2305.14683."""

    quantity = staticmethod(mean_sq_jacobian_norm)


@MEASURES.register("chain_rule_error")
@dataclass(frozen=True)
class ChainRuleError(_JacobianMeasure):
    """(H1) of :mod:`harness.ansatz`: worst relative error of ``D_x f = D_{z_1} f W_1``."""

    quantity = staticmethod(chain_rule_error)


@MEASURES.register("jacobian_trace_ratio")
@dataclass(frozen=True)
class JacobianTraceRatio(_JacobianMeasure):
    """(H3) of :mod:`harness.ansatz`: the trace inequality's ratio, at most 1."""

    quantity = staticmethod(trace_inequality_ratio)


@MEASURES.register("test_loss")
@dataclass(frozen=True)
class TestLoss:
    """The loss on the problem's held-out set (``n_test`` > 0)."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if ctx.problem.test is None:
            raise MeasurementError("measure 'test_loss' needs a problem with a held-out set (n_test > 0)")
        return Measurement(float(ctx.problem.test.value(ctx.theta)))


def _matrix(ctx: StepContext) -> Tensor:
    if ctx.problem.matrix is None:
        raise MeasurementError("this measure needs a problem that defines a matrix (e.g. deep_matrix_factorization)")
    return ctx.problem.matrix(ctx.theta)


@MEASURES.register("effective_rank")
@dataclass(frozen=True)
class EffectiveRank:
    """``||W||_* / ||W||_op`` of the problem's matrix (arXiv 2011.13772); records the top
    singular values in ``aux["singular_values"]``."""

    record_singular_values: int = field(default=6, metadata={"check": "nonnegative"})

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        sv = torch.linalg.svdvals(_matrix(ctx).detach())
        aux = {"singular_values": sv[: self.record_singular_values].tolist()} if self.record_singular_values else {}
        return Measurement(effective_rank(sv), aux)


@MEASURES.register("entropy_rank")
@dataclass(frozen=True)
class EntropyRank:
    """Roy-Vetterli entropy effective rank of the problem's matrix."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(entropy_rank(torch.linalg.svdvals(_matrix(ctx).detach())))


@MEASURES.register("mode_progress")
@dataclass(frozen=True)
class ModeProgress:
    """``pi_i / lambda_i = v_i^T W v_i / lambda_i``: how far the product has learned the target's
    ``index``-th eigenvalue (1-based, along its eigenvector ``v_i``)."""

    index: int = field(metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "v" not in memory:
            target = ctx.problem.target
            if target is None:
                raise MeasurementError("mode_progress needs a problem with a target matrix")
            lam, vecs = torch.linalg.eigh(target)
            lam, vecs = lam.flip(0), vecs.flip(1)
            if self.index > len(lam) or float(lam[self.index - 1]) <= 0:
                raise MeasurementError(f"mode_progress: the target has no positive eigenvalue number {self.index}")
            memory["v"], memory["lam"] = vecs[:, self.index - 1], lam[self.index - 1]
        v = memory["v"]
        return Measurement(float(v @ _matrix(ctx).detach() @ v / memory["lam"]))


@MEASURES.register("relative_error")
@dataclass(frozen=True)
class RelativeError:
    """``||W - A||_F / ||A||_F``: the problem's matrix against its target."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        target = ctx.problem.target
        if target is None:
            raise MeasurementError("relative_error needs a problem with a target matrix")
        return Measurement(float((_matrix(ctx).detach() - target).norm() / target.norm()))


@MEASURES.register("effective_rank_gap")
@dataclass(frozen=True)
class EffectiveRankGap:
    """``r(W) - r(A)``: the effective rank of the problem's matrix minus its target's."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "target" not in memory:
            if ctx.problem.target is None:
                raise MeasurementError("effective_rank_gap needs a problem with a target matrix")
            memory["target"] = effective_rank(torch.linalg.svdvals(ctx.problem.target))
        return Measurement(effective_rank(torch.linalg.svdvals(_matrix(ctx).detach())) - memory["target"])


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
            raise MeasurementError(f"relative_change: the problem has no parameter group {self.group!r} "
                                   f"(it has {sorted(ctx.problem.groups)})")
        part = ctx.theta[ctx.problem.groups[self.group]] if self.group else ctx.theta
        start = memory.setdefault("start", part.detach().clone())
        return Measurement(float((part - start).norm() / start.norm()))



def _direction(ctx: StepContext):
    """The update direction of this step, from a rule that exposes it (``scaled_sgd``)."""
    if not hasattr(ctx.optimizer, "direction"):
        raise MeasurementError("this measure needs an update rule that exposes its direction (scaled_sgd)")
    return ctx.optimizer.direction(ctx.theta, ctx.state)


@MEASURES.register("minibatch_loss")
@dataclass(frozen=True)
class MinibatchLoss:
    """The loss on the minibatch the update of this step uses."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(float(_direction(ctx)[1].loss))


def _taylor(ctx: StepContext):
    u, stats, xis, (x, y) = _direction(ctx)
    obj, widths = ctx.problem.objective, ctx.problem.info["widths"]
    batch_loss = lambda t: obj.loss(layer_forward(t, widths, x)[0], y)
    return u, stats, xis, batch_loss, taylor_coefficients(batch_loss, ctx.theta.detach(), u)


@MEASURES.register("taylor_gram_error")
@dataclass(frozen=True)
class TaylorGramError:
    """``|c_1^Gram - c_1| / |c_1|``: the Gram form of the first Taylor coefficient of the
    minibatch loss along the update against nested forward-mode AD (exact identity;
    :mod:`harness.homogeneous`). Records ``c_1, c_2, c_3`` and ``c_1^Gram`` in ``aux``."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        _, stats, xis, _, (l0, c1, c2, c3) = _taylor(ctx)
        g = gram_c1(stats, ctx.problem.info["widths"], xis)
        return Measurement(abs(g - c1) / abs(c1), {"c1": c1, "c2": c2, "c3": c3, "c1_gram": g})


@MEASURES.register("taylor_cubic_error")
@dataclass(frozen=True)
class TaylorCubicError:
    """Relative error of the cubic Taylor model of the minibatch loss at a step ``h = fraction * lr``
    along the update: ``|L(h) - (L_0 + c_1 h + c_2 h^2/2 + c_3 h^3/6)| / |L(h) - L_0|``."""

    fraction: float = field(default=0.01, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        u, _, _, batch_loss, (l0, c1, c2, c3) = _taylor(ctx)
        lr = getattr(ctx.optimizer, "effective_lr", None) or ctx.optimizer.lr
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
        if "widths" not in ctx.problem.info:
            raise MeasurementError("soft_rank needs a layered problem (homogeneous_mlp)")
        x = _inputs(ctx, self.inputs, memory)
        with torch.no_grad():
            feats = layer_forward(ctx.theta, ctx.problem.info["widths"], x)[2][-1]
        fn = {"participation": participation_ratio, "stable": stable_rank, "entropy": entropy_soft_rank}[self.variant]
        return Measurement(fn(feats))



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
        _, _, xis, (x, y) = _direction(ctx)
        obj = ctx.problem.objective
        batch = Objective(obj.model, obj.loss, x, y)
        h = hessian_operator(batch, ctx.theta)
        s = torch.empty_like(ctx.theta)
        for k, sl in enumerate(ctx.problem.groups.values()):
            s[sl] = math.sqrt(xis[k])
        op = LinearOperator(lambda v: s * (h @ (s * v)), h.dim, h.dtype, h.device, name="preconditioned_hessian")
        res = lanczos(op, k=1, tol=self.tol, max_iter=self.max_iter, v0=memory.get("v"), seed=ctx.step)
        memory["v"] = res.eigenvectors[:, 0]
        aux = {"relative_residual": float(res.relative_residuals[0]), "n_matvecs": res.n_matvecs,
               "converged": res.converged}
        if not res.converged:
            return Measurement(math.nan, {**aux, "estimate": float(res.eigenvalues[0])})
        return Measurement(ctx.optimizer.effective_lr * float(res.eigenvalues[0]), aux)
