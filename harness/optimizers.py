"""Optimisers as explicit update rules on a flat parameter vector.

An optimiser is a frozen dataclass of hyper-parameters with two pure functions:
``init(theta) -> state`` and ``step(theta, state, value_and_grad) -> (theta, state)``.
``value_and_grad(theta) -> (L, grad L)`` is passed in, so a rule that evaluates the gradient
elsewhere than at ``theta`` (SAM) needs no special support. Each docstring states the rule
and its stability edge on a quadratic ``L = 1/2 w^T A w`` (Cohen et al. 2021, arXiv
2103.00065, Sec. 2 and App. on momentum; the momentum edges are derived from the
characteristic polynomial of the iteration along one eigenvector).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from .options import nonnegative, positive, unit_interval
from .registry import Registry

__all__ = ["OPTIMIZERS", "GD", "HeavyBall", "Nesterov", "SAM", "SAMUnnormalized", "TwoRateGD", "ScaledSGD",
           "ValueAndGrad"]

ValueAndGrad = Callable[[Tensor], tuple[Tensor, Tensor]]
OPTIMIZERS: Registry[type] = Registry("optimizer")


@OPTIMIZERS.register("gd")
@dataclass(frozen=True)
class GD:
    """Full-batch gradient descent, ``theta <- theta - lr * grad L(theta)``.

    Along an eigenvector of curvature ``lam`` the error is multiplied by ``1 - lr * lam``:
    stable iff ``lam < 2 / lr``.
    """

    lr: float = field(metadata=positive)

    def init(self, theta: Tensor) -> Any:
        return ()

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        _, g = value_and_grad(theta)
        return theta - self.lr * g, state


@dataclass(frozen=True)
class _Momentum:
    """Hyper-parameters and state shared by the momentum rules: the buffer ``b``, zero at start."""

    lr: float = field(metadata=positive)
    momentum: float = field(default=0.9, metadata=unit_interval)

    def init(self, theta: Tensor) -> Tensor:
        return theta.new_zeros(theta.shape)


@OPTIMIZERS.register("heavy_ball")
@dataclass(frozen=True)
class HeavyBall(_Momentum):
    """Polyak heavy-ball momentum in PyTorch's convention (``torch.optim.SGD``, dampening 0):
    ``b <- momentum * b + grad L(theta)``, ``theta <- theta - lr * b``.

    Characteristic polynomial ``z^2 - (1 + beta - lr*lam) z + beta``: stable iff
    ``lam < (2 + 2 beta) / lr``.
    """

    def step(self, theta: Tensor, state: Tensor, value_and_grad: ValueAndGrad) -> tuple[Tensor, Tensor]:
        _, g = value_and_grad(theta)
        buf = self.momentum * state + g
        return theta - self.lr * buf, buf


@OPTIMIZERS.register("nesterov")
@dataclass(frozen=True)
class Nesterov(_Momentum):
    """Nesterov momentum in PyTorch's convention: ``b <- momentum * b + g``,
    ``theta <- theta - lr * (g + momentum * b)``.

    Characteristic polynomial ``z^2 - (1 - lr*lam)(1 + beta) z + (1 - lr*lam) beta``:
    stable iff ``lam < (2 + 2 beta) / (lr (1 + 2 beta))``.
    """

    def step(self, theta: Tensor, state: Tensor, value_and_grad: ValueAndGrad) -> tuple[Tensor, Tensor]:
        _, g = value_and_grad(theta)
        buf = self.momentum * state + g
        return theta - self.lr * (g + self.momentum * buf), buf


@OPTIMIZERS.register("sam")
@dataclass(frozen=True)
class SAM:
    """Normalised sharpness-aware minimisation, as Long & Bartlett analyse it
    (arXiv 2309.12488; Foret et al. 2021): with ``g = grad L(theta)``,
    ``theta <- theta - lr * grad L(theta + rho * g / (||g|| + eps))``.

    ``eps = 0`` is the exact normalisation of the analysis (the authors' code,
    google-deepmind/sam_edge ``sam_edge.py``, uses ``eps = 1e-5``). With ``g = 0`` the
    perturbation is zero.
    """

    lr: float = field(metadata=positive)
    rho: float = field(metadata=positive)
    eps: float = field(default=0.0, metadata=nonnegative)

    def init(self, theta: Tensor) -> Any:
        return ()

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        _, g = value_and_grad(theta)
        norm = g.norm() + self.eps
        shift = g * (self.rho / norm) if float(norm) > 0 else torch.zeros_like(g)
        _, g_sam = value_and_grad(theta + shift)
        return theta - self.lr * g_sam, state


@OPTIMIZERS.register("sam_unnormalized")
@dataclass(frozen=True)
class SAMUnnormalized:
    """Unnormalised SAM (a separate variant, not the one Long & Bartlett analyse):
    ``theta <- theta - lr * grad L(theta + rho * grad L(theta))``.

    On a quadratic it is linear, ``w <- (I - lr A - lr rho A^2) w``: stable iff
    ``lr lam + lr rho lam^2 < 2``, i.e. ``lam < (sqrt(1 + 8 rho / lr) - 1) / (2 rho)``.
    """

    lr: float = field(metadata=positive)
    rho: float = field(metadata=positive)

    def init(self, theta: Tensor) -> Any:
        return ()

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        _, g = value_and_grad(theta)
        _, g_sam = value_and_grad(theta + self.rho * g)
        return theta - self.lr * g_sam, state


@OPTIMIZERS.register("two_rate_gd")
@dataclass(frozen=True)
class TwoRateGD:
    """Full-batch GD with its own step size for each of the problem's two parameter groups,
    ``first <- first - lr_first grad_first L``, ``second <- second - lr_second grad_second L``
    (both layers trained at once and at different rates, Razborov, arXiv 2212.02323). A rate of
    0 freezes its group. With ``relative_to = "kernel_top"`` the rates are divided by the top
    eigenvalue of the group's infinite-width kernel (``problem.info["kernel_top"]``).

    On the linearised residual ``e <- (I - M) e``, ``M = eta_W K_W + eta_a K_a``: stable iff
    ``lambda_max(M) < 2``.
    """

    lr_first: float = field(metadata=nonnegative)
    lr_second: float = field(metadata=nonnegative)
    relative_to: Literal["none", "kernel_top"] = "none"
    first: slice | None = field(default=None, init=False)
    second: slice | None = field(default=None, init=False)
    rates: tuple[float, float] | None = field(default=None, init=False)

    def bind(self, problem) -> "TwoRateGD":
        """This rule with the problem's parameter groups and the effective rates."""
        if set(problem.groups) != {"first", "second"}:
            raise ValueError("two_rate_gd needs a problem with parameter groups 'first' and 'second'")
        rates = (self.lr_first, self.lr_second)
        if self.relative_to == "kernel_top":
            top = problem.info["kernel_top"]
            rates = (self.lr_first / top["first"], self.lr_second / top["second"])
        bound = dataclasses.replace(self)
        for name, value in (("first", problem.groups["first"]), ("second", problem.groups["second"]),
                            ("rates", rates)):
            object.__setattr__(bound, name, value)
        return bound

    def init(self, theta: Tensor) -> Any:
        if self.rates is None:
            raise ValueError("two_rate_gd must be bound to its problem (bind) before use")
        return ()

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        _, g = value_and_grad(theta)
        scale = torch.empty_like(theta)
        scale[self.first] = self.rates[0]
        scale[self.second] = self.rates[1]
        return theta - scale * g, state


@OPTIMIZERS.register("scaled_sgd")
@dataclass(frozen=True)
class ScaledSGD:
    """Minibatch SGD with optional depthwise gradient scaling (Terjék, arXiv 2502.13110, in the
    reading of :mod:`harness.homogeneous`): ``W_k <- W_k - lr xi_k G_k`` with
    ``xi_k = sqrt(n_{k-1}) / (||Delta_k||_F ||H_{k-1}||_F)`` (``depthwise_scaling = false``: ``xi_k = 1``,
    plain SGD). The batch of step ``t`` is drawn without replacement from a generator seeded by the
    case's seed and ``t``, so every case is reproducible. Needs a ``homogeneous_mlp`` problem.
    """

    lr: float = field(metadata=positive)
    batch_size: int = field(default=256, metadata=positive)
    depthwise_scaling: bool = True
    lr_unit: Literal["absolute", "edge_at_init"] = "absolute"
    problem: Any = field(default=None, init=False, repr=False, compare=False)
    effective_lr: float | None = field(default=None, init=False, compare=False)
    full_batch = False  # the rule never uses the full-batch gradient

    def bind(self, problem) -> "ScaledSGD":
        """This rule with its problem; with ``lr_unit = "edge_at_init"`` the step size is
        ``lr * 2 / lambda_0``, ``lambda_0`` the top Hessian eigenvalue of the first minibatch at
        initialisation (so ``lr = 4`` is "4x the edge of stability")."""
        if "widths" not in problem.info:
            raise ValueError("scaled_sgd needs a problem with layer widths (homogeneous_mlp)")
        bound = dataclasses.replace(self)
        object.__setattr__(bound, "problem", problem)
        object.__setattr__(bound, "_last", {})  # the latest direction, keyed by (iterate, step)
        lr = self.lr
        if self.lr_unit == "edge_at_init":
            from .curvature import hessian_operator
            from .objective import Objective
            from .spectrum import lanczos

            x, y = bound.batch(0)
            obj = problem.objective
            lam0 = lanczos(hessian_operator(Objective(obj.model, obj.loss, x, y), problem.theta0), tol=1e-4).top()
            lr = self.lr * 2.0 / lam0
        object.__setattr__(bound, "effective_lr", lr)
        return bound

    def init(self, theta: Tensor) -> int:
        if self.problem is None:
            raise ValueError("scaled_sgd must be bound to its problem (bind) before use")
        return 0

    def batch(self, t: int) -> tuple[Tensor, Tensor]:
        """The minibatch of step ``t``."""
        obj = self.problem.objective
        g = torch.Generator().manual_seed(1_000_003 * int(self.problem.info["seed"]) + int(t))
        idx = torch.randperm(obj.n, generator=g)[: min(self.batch_size, obj.n)].to(obj.inputs.device)
        return obj.inputs[idx], obj.targets[idx]

    def direction(self, theta: Tensor, t: int):
        """``(U, stats, xis, batch)``: the update direction ``U_k = -xi_k G_k`` of step ``t``,
        computed once per iterate and step (the measures of the step and the update share it)."""
        from .homogeneous import layer_stats

        cached = self._last.get("key")
        if cached is not None and cached[0] is theta and cached[1] == t:
            return self._last["value"]
        x, y = self.batch(t)
        widths = self.problem.info["widths"]
        stats = layer_stats(theta, widths, x, y, self.problem.objective.loss)
        xis = stats.xis if self.depthwise_scaling else [1.0] * len(stats.xis)
        scale = torch.empty_like(theta)
        for k, sl in enumerate(self.problem.groups.values()):
            scale[sl] = xis[k]
        value = (-scale * stats.grad, stats, xis, (x, y))
        self._last.update(key=(theta, t), value=value)
        return value

    def step(self, theta: Tensor, state: int, value_and_grad: ValueAndGrad) -> tuple[Tensor, int]:
        u, _, _, _ = self.direction(theta, state)
        return theta + self.effective_lr * u, state + 1
