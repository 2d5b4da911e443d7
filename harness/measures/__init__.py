"""Measures: what a run records at its measurement steps.

A measure kind is a frozen dataclass of options (the suite's ``[measures.NAME]`` table).
Calling it with the step's :class:`StepContext` and the measure's own ``memory`` (a dict
kept for the whole case, e.g. for warm starts) returns a :class:`Measurement`: a float and
auxiliary numbers (residuals, product counts) that are recorded beside it. A value that
cannot be trusted is recorded as NaN with the reason in ``aux``; it is never a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from ..kernels.curvature import hessian_operator
from ..errors import UnsupportedError
from ..kernels.operators import LinearOperator
from ..training.optimizers import Direction, DirectionRule
from ..training.problems import Problem
from ..registry import Registry

__all__ = ["MEASURES", "Measurement", "StepContext", "HessianGraphUser", "MinibatchRule", "uses_hessian_graph", "forward_only_loss"]

MEASURES: Registry[type] = Registry("measure")


@runtime_checkable
class HessianGraphUser(Protocol):
    """A measure that may reuse the step's full-batch Hessian graph: ``uses_hessian_graph`` says
    whether this instance does (then the step's gradient comes from building that graph)."""

    uses_hessian_graph: bool


@runtime_checkable
class MinibatchRule(Protocol):
    """An update rule that declares whether it uses the full-batch gradient (``full_batch``); one
    that does not (``scaled_sgd``) never pays for it when only the loss is recorded."""

    full_batch: bool


def forward_only_loss(rule: Any) -> bool:
    """Whether ``rule`` is a :class:`MinibatchRule` that does not use the full-batch gradient, so
    that its step's loss is a forward pass alone. A runtime protocol check walks the class's
    attributes: a run checks once, not at every step (:class:`StepContext`'s ``forward_only``)."""
    return isinstance(rule, MinibatchRule) and not rule.full_batch


def uses_hessian_graph(measure: Any) -> bool:
    """Whether ``measure`` reuses the step's Hessian graph (:class:`HessianGraphUser`)."""
    return isinstance(measure, HessianGraphUser) and bool(measure.uses_hessian_graph)


@dataclass(frozen=True)
class Measurement:
    value: float
    aux: dict[str, Any] = field(default_factory=dict)


class StepContext:
    """The state of a run at one step, with ``L`` and ``grad L`` at ``theta`` cached so that
    the optimiser and every measure share one gradient evaluation."""

    def __init__(self, step: int, theta: Tensor, problem: Problem, optimizer: Any, state: Any = None,
                 hessian_due: bool = False, forward_only: bool | None = None, bindings: dict | None = None,
                 stated_kind: str | None = None):
        self.step, self.theta, self.problem, self.optimizer, self.state = step, theta, problem, optimizer, state
        # what the case's predictions bind to (the suite's stated, nominal hyper-parameters) and the
        # stated update rule's kind: for a measure that compares the run with the step the suite states
        self.bindings, self.stated_kind = ({} if bindings is None else bindings), stated_kind
        self.hessian_due = hessian_due
        self.forward_only = forward_only_loss(optimizer) if forward_only is None else forward_only
        self._vg: tuple[Tensor, Tensor] | None = None
        self._value: float | None = None  # L(theta) from a forward pass alone (a minibatch rule's step)
        self.cache: dict[Any, Any] = {}  # quantities several measures of this step share

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(L, grad L)``; at this step's ``theta`` computed once. When a measure of this step
        will need the Hessian (``hessian_due``), they come from building its reused gradient
        graph, so the update's gradient and the Hessian's graph cost one evaluation, not two."""
        if theta is self.theta:
            if self._vg is None:
                if self.hessian_due:
                    self.hessian()
                if self._vg is None:  # no Hessian due, or a strategy that carries no gradient
                    self._vg = self.problem.objective.value_and_grad(theta)
            return self._vg
        return self.problem.objective.value_and_grad(theta)

    def hessian(self, strategy: str = "double_backward_reused") -> LinearOperator:
        """The full-batch Hessian operator at ``theta``, built once per step and strategy."""
        key = ("hessian", strategy)
        if key not in self.cache:
            op = hessian_operator(self.problem.objective, self.theta, strategy)
            self.cache[key] = op
            if op.gradient is not None and self._vg is None:
                self._vg = (op.loss, op.gradient)
        return self.cache[key]

    def direction(self) -> Direction:
        """This step's update direction, from a rule that exposes it (:class:`DirectionRule`,
        e.g. ``scaled_sgd``), computed once per step: the update uses the same one."""
        if not isinstance(self.optimizer, DirectionRule):
            raise UnsupportedError("this measure needs an update rule that exposes its direction (scaled_sgd)")
        if "direction" not in self.cache:
            self.cache["direction"] = self.optimizer.direction(self.theta, self.state)
        return self.cache["direction"]

    @property
    def loss(self) -> float:
        """``L(theta)``; for a minibatch rule (``full_batch = False``) a forward pass only."""
        if self._vg is None and self.forward_only:
            if self._value is None:
                self._value = float(self.problem.objective.value(self.theta))
            return self._value
        return float(self.value_and_grad(self.theta)[0])

    @property
    def grad(self) -> Tensor:
        return self.value_and_grad(self.theta)[1]

    @property
    def computed_grad(self) -> Tensor | None:
        """``grad L(theta)`` if this step has already computed it (a full-batch rule's ``loss``
        does), else None; never computes it."""
        return None if self._vg is None else self._vg[1]


from . import basic, curvature, dynamics, jacobian, linearised, matrix, reference  # noqa: E402,F401  (register the measures)
from .basic import GradNorm, Loss, LossRatio, MinibatchLoss, RelativeChange, TestLoss  # noqa: E402
from .curvature import (AdamPreconditionedSharpness, LambdaMax, PreconditionedSharpness, StabilityThreshold,  # noqa: E402
                        TopMode)
from .dynamics import SoftRank, TaylorCubicError, TaylorGramError  # noqa: E402
from .jacobian import ChainRuleError, JacobianNorm, JacobianOperatorNorm, JacobianTraceRatio, PairwiseLipschitz  # noqa: E402
from .linearised import KernelStepRatio  # noqa: E402
from .matrix import EffectiveRank, EffectiveRankGap, EntropyRank, EstimationError, ModeProgress, RelativeError  # noqa: E402
from .reference import DenseTopEigenvalue, ForwardJacobianNorm  # noqa: E402

__all__ += ["Loss", "GradNorm", "LossRatio", "RelativeChange", "TestLoss", "MinibatchLoss", "LambdaMax",
            "StabilityThreshold", "PreconditionedSharpness", "AdamPreconditionedSharpness", "TopMode", "JacobianNorm", "JacobianOperatorNorm", "PairwiseLipschitz", "ChainRuleError", "JacobianTraceRatio",
            "EffectiveRank", "EntropyRank", "ModeProgress", "RelativeError", "EffectiveRankGap", "EstimationError", "TaylorGramError",
            "TaylorCubicError", "SoftRank", "DenseTopEigenvalue", "ForwardJacobianNorm", "KernelStepRatio"]
