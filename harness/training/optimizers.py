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
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from ..errors import SuiteError
from ..options import nonnegative, positive, unit_interval
from ..registry import Registry, resolve_dotted, suggest

__all__ = ["OPTIMIZERS", "GD", "HeavyBall", "Nesterov", "SAM", "SAMUnnormalized", "TwoRateGD", "ScaledSGD",
           "TorchOptim", "ValueAndGrad", "ProblemRule", "DirectionRule", "Direction", "init_state", "roles", "step_size_unit", "in_absolute_units",
           "edge_at_init", "TwoRateState", "ScaledSGDState"]

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


class ProblemRule:
    """An update rule whose state depends on the problem it trains (parameter groups, layer
    widths, the model's own parameters): its ``init`` takes the problem too,
    ``init(theta, problem) -> state``; everything it learns from the problem lives in that
    state, never in the (frozen) rule. The runner calls ``init(theta0, problem)`` for these
    rules and ``init(theta0)`` for the others."""

    def init(self, theta: Tensor, problem: Any) -> Any:
        raise NotImplementedError


class DirectionRule(ProblemRule):
    """A rule that exposes the direction of its step: ``direction(theta, state)`` (computed once
    per step by the runner and shared with the measures through the step's context, so a
    measure of the update and the update itself see one computation) and
    ``apply(theta, state, direction) -> (theta_next, state)``. ``step`` is both in turn."""

    def direction(self, theta: Tensor, state: Any) -> Any:
        raise NotImplementedError

    def apply(self, theta: Tensor, state: Any, direction: Any) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        return self.apply(theta, state, self.direction(theta, state))


def init_state(rule: Any, theta: Tensor, problem: Any) -> Any:
    """The rule's state at ``theta``: ``init(theta, problem)`` for a :class:`ProblemRule`,
    ``init(theta)`` for any other rule."""
    return rule.init(theta, problem) if isinstance(rule, ProblemRule) else rule.init(theta)


def roles(rule: Any) -> dict[str, Any]:
    """What a prediction binds to from the update rule, by role: the step size ``lr`` and the
    rule's other hyper-parameters (``momentum``, ``rho``, ``betas``...), defaults included. For a
    ``torch_optim`` rule, the optimiser's own ``defaults`` overridden by the suite's options. The
    rule is the one that runs: after :func:`in_absolute_units`, ``lr`` is the effective step size,
    never a number in another unit."""
    if isinstance(rule, TorchOptim):
        return {**rule.defaults(), **rule.kwargs}
    if dataclasses.is_dataclass(rule):
        return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}
    return {}


@dataclass(frozen=True)
class TwoRateState:
    """The per-coordinate step sizes of :class:`TwoRateGD` on its problem's parameter groups."""

    scale: Tensor


@OPTIMIZERS.register("two_rate_gd")
@dataclass(frozen=True)
class TwoRateGD(ProblemRule):
    """Full-batch GD with its own step size for each of the problem's two parameter groups,
    ``first <- first - lr_first grad_first L``, ``second <- second - lr_second grad_second L``
    (both layers trained at once and at different rates, Razborov, arXiv 2212.02323). A rate of
    0 freezes its group. With ``relative_to = "kernel_top"`` the rates are divided by the top
    eigenvalue of the group's infinite-width kernel (``Problem.kernel_top``).

    On the linearised residual ``e <- (I - M) e``, ``M = eta_W K_W + eta_a K_a``: stable iff
    ``lambda_max(M) < 2``.
    """

    lr_first: float = field(metadata=nonnegative)
    lr_second: float = field(metadata=nonnegative)
    relative_to: Literal["none", "kernel_top"] = "none"

    def rates(self, problem) -> tuple[float, float]:
        """The effective rates ``(eta_W, eta_a)`` on ``problem``."""
        if self.relative_to == "kernel_top":
            top = problem.kernel_top
            if top is None:
                raise ValueError("two_rate_gd with relative_to = 'kernel_top' needs a problem with infinite-width "
                                 "kernels (two_layer_relu)")
            return self.lr_first / top["first"], self.lr_second / top["second"]
        return self.lr_first, self.lr_second

    def init(self, theta: Tensor, problem: Any) -> TwoRateState:
        if set(problem.groups) != {"first", "second"}:
            raise ValueError("two_rate_gd needs a problem with parameter groups 'first' and 'second'")
        rates = self.rates(problem)
        scale = torch.empty_like(theta)
        scale[problem.groups["first"]] = rates[0]
        scale[problem.groups["second"]] = rates[1]
        return TwoRateState(scale)

    def step(self, theta: Tensor, state: TwoRateState, value_and_grad: ValueAndGrad) -> tuple[Tensor, TwoRateState]:
        _, g = value_and_grad(theta)
        return theta - state.scale * g, state


@dataclass(frozen=True)
class ScaledSGDState:
    """:class:`ScaledSGD`'s state: the step count and the problem whose minibatches it draws."""

    t: int
    problem: Any


@dataclass(frozen=True)
class Direction:
    """A step's update direction ``U`` with what it was computed from: the layer statistics, the
    depthwise scales ``xi_k`` and the minibatch ``(x, y)``."""

    u: Tensor
    stats: Any
    xis: list[float]
    batch: tuple[Tensor, Tensor]


@OPTIMIZERS.register("scaled_sgd")
@dataclass(frozen=True)
class ScaledSGD(DirectionRule):
    """Minibatch SGD with optional depthwise gradient scaling (Terjék, arXiv 2502.13110, in the
    reading of :mod:`harness.kernels.homogeneous`): ``W_k <- W_k - lr xi_k G_k`` with
    ``xi_k = sqrt(n_{k-1}) / (||Delta_k||_F ||H_{k-1}||_F)`` (``depthwise_scaling = false``: ``xi_k = 1``,
    plain SGD). The batch of step ``t`` is drawn without replacement from a generator seeded by the
    case's seed and ``t``, so every case is reproducible. Needs a ``homogeneous_mlp`` problem.

    ``lr_unit = "edge_at_init"``: ``lr`` is in units of the edge of stability at initialisation,
    ``2 / lambda_0`` with ``lambda_0`` the top Hessian eigenvalue of the first minibatch (so
    ``lr = 4`` is 4x the edge). The runner measures ``lambda_0`` once per case and runs the rule
    in absolute units (:func:`in_absolute_units`), so the rule that steps, its measures and the
    predictions (role ``lr``) all see the effective step size, never the number in the file.
    """

    lr: float = field(metadata=positive)
    batch_size: int = field(default=256, metadata=positive)
    depthwise_scaling: bool = True
    lr_unit: Literal["absolute", "edge_at_init"] = "absolute"
    full_batch = False  # the rule never uses the full-batch gradient

    def init(self, theta: Tensor, problem: Any) -> ScaledSGDState:
        if self.lr_unit != "absolute":
            raise ValueError(f"scaled_sgd with lr_unit = {self.lr_unit!r} must be put in absolute units first "
                             "(harness.training.optimizers.in_absolute_units, as the runner does)")
        if problem.widths is None or problem.seed is None:
            raise ValueError("scaled_sgd needs a problem with layer widths and a seed (homogeneous_mlp)")
        return ScaledSGDState(0, problem)

    def batch(self, problem: Any, t: int) -> tuple[Tensor, Tensor]:
        """The minibatch of step ``t``."""
        obj = problem.objective
        g = torch.Generator().manual_seed(1_000_003 * int(problem.seed) + int(t))
        idx = torch.randperm(obj.n, generator=g)[: min(self.batch_size, obj.n)].to(obj.inputs.device)
        return obj.inputs[idx], obj.targets[idx]

    def direction(self, theta: Tensor, state: ScaledSGDState) -> Direction:
        """The update direction ``U_k = -xi_k G_k`` of step ``state.t``."""
        from ..kernels.homogeneous import layer_stats

        problem = state.problem
        x, y = self.batch(problem, state.t)
        stats = layer_stats(theta, list(problem.widths), x, y, problem.objective.loss)
        xis = stats.xis if self.depthwise_scaling else [1.0] * len(stats.xis)
        scale = torch.empty_like(theta)
        for k, sl in enumerate(problem.groups.values()):
            scale[sl] = xis[k]
        return Direction(-scale * stats.grad, stats, xis, (x, y))

    def apply(self, theta: Tensor, state: ScaledSGDState, direction: Direction) -> tuple[Tensor, ScaledSGDState]:
        return theta + self.lr * direction.u, dataclasses.replace(state, t=state.t + 1)


def edge_at_init(rule: ScaledSGD, problem: Any) -> float:
    """``2 / lambda_0``: the edge of stability of the first minibatch at initialisation,
    ``lambda_0`` its top Hessian eigenvalue (Lanczos, relative residual 1e-4)."""
    from ..kernels.curvature import hessian_operator
    from ..kernels.objective import Objective
    from ..kernels.spectrum import lanczos

    x, y = rule.batch(problem, 0)
    obj = problem.objective
    lam0 = lanczos(hessian_operator(Objective(obj.model, obj.loss, x, y), problem.theta0), tol=1e-4).top()
    return 2.0 / lam0


def step_size_unit(rule: Any, problem: Any) -> float:
    """The unit of the rule's ``lr`` on ``problem``: the edge at initialisation
    (:func:`edge_at_init`) for a rule with ``lr_unit = "edge_at_init"`` (``scaled_sgd``), else 1.
    The runner measures it once per case."""
    if isinstance(rule, ScaledSGD) and rule.lr_unit == "edge_at_init":
        return edge_at_init(rule, problem)
    return 1.0


def in_absolute_units(rule: Any, unit: float) -> Any:
    """The rule with its step size in absolute units: ``lr * unit`` and ``lr_unit = "absolute"``
    for a rule that states ``lr`` in another unit; any other rule as it is. This is the rule that
    runs, and whose ``lr`` the predictions bind (:func:`roles`)."""
    if isinstance(rule, ScaledSGD) and rule.lr_unit != "absolute":
        return dataclasses.replace(rule, lr=rule.lr * unit, lr_unit="absolute")
    return rule


def _constructor_keywords(cls: Any) -> set[str] | None:
    """The keyword arguments ``cls(params, ...)`` accepts after ``params`` (None: any, ``**kwargs``)."""
    try:
        sig = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if named and named[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
        named = named[1:]  # params
    return {p.name for p in named}


# keys whose meaning every optimiser shares, checked before the class is constructed (a user's class
# may not check them; a prediction such as gd_edge = 2/lr or heavy_ball_edge needs them in range)
_RANGES = {"lr": (0.0, math.inf, "a finite step size lr > 0"),
           "momentum": (0.0, 1.0, "a finite momentum in [0, 1)")}
_TUPLE_HINT = (" (in a file without [sweep], a list in [optimizer] is a sweep axis, one case per value: a tuple argument such as "
               "Adam's betas is written betas = [[0.9, 0.999]])")


def _culprit(rule: "TorchOptim", options: dict[str, Any]) -> str | None:
    """The option that makes the constructor raise on its own (the others left at their defaults),
    so the error names its key; ``None`` when only a combination fails (then ``class`` is named)."""
    for key, value in options.items():
        try:
            _resolve_optimizer_class(rule.optimizer_class)([torch.zeros(2, dtype=torch.float64, requires_grad=True)],
                                                           **{key: value})
        except Exception:
            return key
    return None


def _frozen(value: Any) -> Any:
    """A TOML list as a tuple (Adam's ``betas = [0.9, 0.999]``)."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


@OPTIMIZERS.register("torch_optim")
@dataclass(frozen=True)
class TorchOptim(ProblemRule):
    """Any ``torch.optim.Optimizer`` (``class = "torch.optim.SGD"`` or ``"package.module:Name"``)
    as an update rule; every other key of ``[optimizer]`` (at one sweep point) is passed to its
    constructor, a list as a tuple (Adam's ``betas = [0.9, 0.999]``; in a file in the old sweep
    form, without ``[sweep]``, a list is an axis and a tuple is written ``[[0.9, 0.999]]``).
    Predictions bind the keys by name (``lr``, ``momentum``).

    It steps the model's own trainable parameters (in a ``module`` problem; one flat tensor
    otherwise), keeping its own state (momentum buffers, Adam moments) between steps, in the
    runner's order: the step's measures see ``theta_t``; then the step sets each parameter's
    ``.grad`` from the gradient they shared and calls ``optimizer.step(closure)`` (``step()`` if it
    takes no closure). The closure sets ``.grad`` and returns the loss at the parameters as they
    are when it is called: the shared ones while they still equal ``theta_t``, else evaluated
    afresh (L-BFGS's line search; SAM-style optimisers that perturb the parameters, zero the
    gradients and then call it). Constructor keys ``lr`` (> 0) and ``momentum`` (in [0, 1)) are
    range-checked whatever the class checks itself.

    On a quadratic its stability edge is its own: ``torch.optim.SGD`` is ``gd``
    (``2/lr``) without momentum, ``heavy_ball`` (``(2 + 2 beta)/lr``) with it, ``nesterov`` with
    ``nesterov = true``; the ``stability_threshold`` measure runs a fresh instance on its grid of
    1-D quadratics (one flat parameter, every coordinate its own quadratic).
    """

    optimizer_class: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_table(cls, table: dict, file: str, path: str, skip: tuple = ()) -> "TorchOptim":
        """Check ``class`` (importable, an optimiser class) and every other key (a keyword of its
        constructor, a value it accepts: it is constructed once on a dummy parameter)."""
        table = {k: v for k, v in table.items() if k not in skip}
        if "class" not in table:
            raise SuiteError(file, f"{path}.class", "missing; expected the optimiser's class, e.g. "
                             "'torch.optim.SGD' or 'package.module:Name'")
        name = table["class"]
        if not isinstance(name, str):
            raise SuiteError(file, f"{path}.class", f"expected a string such as 'torch.optim.SGD', got {name!r}")
        opt_cls = _resolve_optimizer_class(name, file, f"{path}.class")
        options = {k: _frozen(v) for k, v in table.items() if k != "class"}
        accepted = _constructor_keywords(opt_cls)
        if accepted is not None:
            for key in options:
                if key not in accepted:
                    raise SuiteError(file, f"{path}.{key}", f"unknown key{suggest(key, sorted(accepted))}; "
                                     f"{name}(params, ...) accepts {sorted(accepted)} (and 'class')")
        for key, (lo, hi, what) in _RANGES.items():  # whatever the class checks itself
            if key not in options:
                continue
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not (lo < value if key == "lr" else lo <= value < hi):
                raise SuiteError(file, f"{path}.{key}", f"expected {what}, got {value!r}")
        rule = cls(name, tuple(sorted(options.items())))
        try:
            opt = rule.construct([torch.zeros(2, dtype=torch.float64, requires_grad=True)])
        except Exception as exc:
            args = ", ".join(f"{k}={v!r}" for k, v in options.items())
            culprit = _culprit(rule, options) if options else None
            try:  # a tuple argument (Adam's betas) given as a list: a sweep of scalars
                default = inspect.signature(opt_cls).parameters[culprit].default if culprit else None
            except (TypeError, ValueError, KeyError):
                default = None
            hint = _TUPLE_HINT if isinstance(default, tuple) and not isinstance(options[culprit], tuple) else ""
            raise SuiteError(file, f"{path}.{culprit or 'class'}",
                             f"{name}(params, {args}) raised {type(exc).__name__}: {exc}{hint}") from None
        if not callable(getattr(opt, "step", None)):
            raise SuiteError(file, f"{path}.class", f"{name}(params, ...) returned a {type(opt).__name__}, "
                             "which has no step() method")
        return rule

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)

    def __getattr__(self, name: str) -> Any:
        """The constructor's options read as attributes (``rule.lr``), as for the built-in rules."""
        options = self.__dict__.get("options", ())
        for key, value in options:
            if key == name:
                return value
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def construct(self, params: list[Tensor]) -> Any:
        """A fresh optimiser over ``params``."""
        return _resolve_optimizer_class(self.optimizer_class)(params, **self.kwargs)

    def defaults(self) -> dict[str, Any]:
        """The optimiser's hyper-parameters with its own defaults (``torch.optim.Optimizer.defaults``
        of an instance on a dummy parameter; empty for a class that keeps none)."""
        opt = self.construct([torch.zeros(2, dtype=torch.float64, requires_grad=True)])
        defaults = opt.defaults if isinstance(opt, torch.optim.Optimizer) else {}
        return {k: v for k, v in defaults.items() if isinstance(v, (bool, int, float, tuple, str))}

    def _parameters(self, theta: Tensor, problem: Any) -> tuple[list[Tensor], Callable[[Tensor], list[Tensor]]]:
        """The tensors the optimiser steps and ``theta -> views shaped like them``: the module's
        trainable parameters when ``theta`` is this problem's parameter vector, else one tensor."""
        from ..kernels.objective import FlatModule

        model = problem.objective.model if problem is not None else None
        module = problem.module if problem is not None else None
        if isinstance(model, FlatModule) and module is model.module and theta.numel() == model.numel \
                and theta.dim() == 1:
            named = dict(module.named_parameters())
            params = [named[n] for n in model.names]
            if all(p.dtype == theta.dtype and p.device == theta.device for p in params):
                return params, lambda t: [v for v in model.unflatten(t).values()]
        param = torch.nn.Parameter(theta.detach().clone())
        return [param], lambda t: [t.view(param.shape)]

    def init(self, theta: Tensor, problem: Any = None) -> dict[str, Any]:
        """A fresh optimiser over ``problem``'s own parameters (its module's, where it has one;
        with no problem, over one tensor shaped like ``theta``)."""
        params, views = self._parameters(theta, problem)
        with torch.no_grad():
            for p, v in zip(params, views(theta)):
                p.copy_(v)
        takes_closure = True
        opt = self.construct(params)
        try:
            takes_closure = len(inspect.signature(opt.step).parameters) > 0
        except (TypeError, ValueError):
            pass
        return {"optimizer": opt, "params": params, "views": views, "takes_closure": takes_closure}

    def step(self, theta: Tensor, state: dict[str, Any], value_and_grad: ValueAndGrad) -> tuple[Tensor, Any]:
        params, views = state["params"], state["views"]
        loss, grad = value_and_grad(theta)
        with torch.no_grad():
            # theta into the parameters, every step: another instance may step the same tensors in
            # between (the stability_threshold probes of a model with exactly as many parameters as
            # the probe grid has points step the module's own parameters too)
            for p, v in zip(params, views(theta)):
                p.copy_(v)
            for p, g in zip(params, views(grad)):
                p.grad = g.detach().clone()

        def closure() -> Tensor:
            # the loss and gradient at the parameters as they are now: at theta (the optimiser has
            # not moved them yet) those the step's measures shared; elsewhere (SAM's perturbed
            # point, L-BFGS's line search) evaluated afresh. Either way .grad is set again, since
            # the optimiser may have zeroed it before calling.
            now = torch.cat([p.detach().reshape(-1) for p in params])
            value, g_now = (loss, grad) if torch.equal(now, theta.detach().reshape(-1)) else value_and_grad(now)
            with torch.no_grad():
                for p, g in zip(params, views(g_now)):
                    p.grad = g.detach().clone()
            return value

        opt = state["optimizer"]
        if state["takes_closure"]:
            opt.step(closure)
        else:
            opt.step()
        theta_next = params[0].detach().reshape(-1).clone() if len(params) == 1 else \
            torch.cat([p.detach().reshape(-1) for p in params])
        return theta_next, state


def _resolve_optimizer_class(name: str, file: str | None = None, key: str = "optimizer.class") -> Any:
    """The optimiser class (or factory) named ``"torch.optim.SGD"`` or ``"package.module:Name"``."""
    from ..protocols import lacks

    try:
        obj = resolve_dotted(name)
    except LookupError as exc:
        if file is None:
            raise
        raise SuiteError(file, key, str(exc)) from None
    missing = lacks("torch optimizer", obj)
    if missing:
        if file is None:
            raise LookupError(f"{name!r} cannot be used as a torch optimizer: {missing}")
        raise SuiteError(file, key, f"{name!r} cannot be used as a torch optimizer: {missing}")
    return obj
