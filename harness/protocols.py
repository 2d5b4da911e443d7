"""What user code must provide to be named in a suite: one protocol per kind.

A suite names a registered kind (``kind = "mlp"``) or an import path
``"package.module:Name"``. An import path is imported when the suite is loaded and checked here;
what it lacks is reported as ``FILE: key: 'pkg.mod:Name' cannot be used as a KIND: ...`` (exit
code 2). The protocols are :class:`typing.Protocol` classes for documentation and type checking;
:func:`lacks` is the check the loader runs.

================  ==========================================  ==========================================
kind              where a suite names it                      what the object must be
================  ==========================================  ==========================================
problem           ``[problem] kind``                          :class:`ProblemKind`: a dataclass (its
                                                              fields are the table's keys) with
                                                              ``build(seed, dtype, device) -> Problem``
optimizer         ``[optimizer] kind``                        :class:`UpdateRule`: a dataclass with
                                                              ``init(theta) -> state`` and
                                                              ``step(theta, state, value_and_grad)``
torch optimizer   ``[optimizer] kind = "torch_optim"``,       :class:`TorchOptimizer`: called as
                  ``class``                                   ``cls(params, **options)``, an object
                                                              with ``step()`` (any
                                                              ``torch.optim.Optimizer``)
measure           ``[measures.NAME] kind``                    :class:`Measure`: a dataclass whose
                                                              instances are called
                                                              ``(ctx, memory) -> Measurement``
prediction        ``predict``                                 :class:`Prediction`: a function of named
                                                              arguments (bound by name) -> float
statistic         ``statistic``                               :class:`WindowStatistic`: a function of
                                                              the window's values (a 1-D numpy
                                                              array) -> float
model             ``[problem] kind = "module"``, ``model``    :class:`ModelFactory`: a class or
                                                              function, ``model_args`` as keywords
                                                              -> ``nn.Module``
data set          ``[problem] data``                          :class:`DataSet`: a function,
                                                              ``data_args`` as keywords ->
                                                              ``(x, y)`` or ``(x, y, x_test, y_test)``
loss              ``[problem] loss``                          :class:`Loss`: ``(outputs, targets) ->``
                                                              the *mean* over the batch's examples
================  ==========================================  ==========================================

Registering a kind under a short name instead: decorate it with the registry's ``register``
(``harness.PROBLEMS``, ``OPTIMIZERS``, ``MEASURES``, ``PREDICTIONS``, ``LOSSES``,
``harness.training.data.DATASETS``; statistics: ``harness.spec.statistics.STATISTICS[name] = (fn, min_points)``)
in a module loaded as a plugin (:func:`harness.registry.load_plugins`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["ProblemKind", "UpdateRule", "TorchOptimizer", "Measure", "Prediction", "WindowStatistic",
           "ModelFactory", "DataSet", "Loss", "lacks", "KINDS"]

ValueAndGrad = Callable[[Tensor], "tuple[Tensor, Tensor]"]


@runtime_checkable
class ProblemKind(Protocol):
    """A problem kind: a (frozen) dataclass whose fields are the keys of the suite's ``[problem]``
    table (types and defaults checked by :func:`harness.options.build`), and

    ``build(seed, dtype, device) -> harness.training.problems.Problem``: the objective (model, loss, data
    on ``device`` in ``dtype``), the initial parameters ``theta0`` (a flat vector; initialise
    on the CPU from ``seed``, then cast and move), and facts about them.

    Optional: a classmethod ``from_table(table, file, path, skip)`` that builds it from the raw
    table itself (raising :class:`~harness.errors.SuiteError` with the key path).
    """

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Any: ...


@runtime_checkable
class UpdateRule(Protocol):
    """An update rule on the flat parameter vector: a (frozen) dataclass of hyper-parameters (the
    ``[optimizer]`` table's keys, at one sweep point) with

    * ``init(theta) -> state``;
    * ``step(theta, state, value_and_grad) -> (theta_next, state)``, where
      ``value_and_grad(theta) -> (L, grad L)``; called at this step's ``theta`` it returns the
      gradient the step's measures share.

    A rule whose state depends on the problem (parameter groups, layer widths, the model's own
    parameters) subclasses :class:`harness.training.optimizers.ProblemRule`: its ``init(theta, problem)``
    puts what it needs from the problem into the state; the rule itself is never changed.
    Optional: ``full_batch = False`` for a rule that never uses the full-batch gradient.
    Predictions bind the rule's fields by name (:func:`harness.training.optimizers.roles`). A
    ``torch.optim.Optimizer`` needs none of this: name it in ``kind = "torch_optim"``.
    """

    def init(self, theta: Tensor) -> Any: ...

    def step(self, theta: Tensor, state: Any, value_and_grad: ValueAndGrad) -> "tuple[Tensor, Any]": ...


@runtime_checkable
class TorchOptimizer(Protocol):
    """``cls(params, **options)`` -> an optimiser over ``params`` (a list of tensors shaped like the
    model's trainable parameters) whose ``step()`` (or ``step(closure)``) updates them in place
    from their ``.grad``: any ``torch.optim.Optimizer``."""

    def step(self, *args: Any) -> Any: ...


@runtime_checkable
class Measure(Protocol):
    """A measure kind: a (frozen) dataclass of options (the ``[measures.NAME]`` table's keys)
    whose instances are called as ``measure(ctx, memory) -> harness.measures.Measurement`` at
    ``theta_t``, before the update; ``ctx`` is the step's :class:`~harness.measures.StepContext`
    (``ctx.theta``, ``ctx.problem``, ``ctx.loss``, ``ctx.grad``, ``ctx.hessian()``, ``ctx.optimizer``),
    ``memory`` a dict kept for the whole case (warm starts). A value that cannot be trusted is
    recorded as NaN with the reason in ``aux``."""

    def __call__(self, ctx: Any, memory: dict) -> Any: ...


@runtime_checkable
class Prediction(Protocol):
    """A function of named arguments returning a float; its docstring states the formula and
    cites the paper. Each parameter is bound by name from the expectation's ``args``, the
    optimiser's hyper-parameters (``lr``, ``momentum``, ...), the problem's options, ``steps``,
    ``seed``, ``step``, or a measure recorded at the same step (``grad_norm``, ...)."""

    def __call__(self, **arguments: float) -> float: ...


@runtime_checkable
class WindowStatistic(Protocol):
    """``fn(values) -> float``: ``values`` are the window's finite measurements (a 1-D float64
    numpy array, at least one)."""

    def __call__(self, values: Any) -> float: ...


@runtime_checkable
class ModelFactory(Protocol):
    """A class or function called with the ``model_args`` table as keyword arguments, returning
    an ``nn.Module`` whose ``forward(inputs)`` maps a batch (first axis) to outputs. It is called
    on the CPU inside ``torch.random.fork_rng`` seeded with the case's seed; the harness then puts
    it in eval mode and casts and moves it."""

    def __call__(self, **model_args: Any) -> nn.Module: ...


@runtime_checkable
class DataSet(Protocol):
    """A function called with the ``data_args`` table as keyword arguments (under
    ``torch.random.fork_rng`` seeded with ``data_seed``), returning CPU tensors
    ``(inputs, targets)`` or ``(inputs, targets, test_inputs, test_targets)``; integer targets
    are class labels."""

    def __call__(self, **data_args: Any) -> tuple: ...


@runtime_checkable
class Loss(Protocol):
    """``loss(outputs, targets) -> 0-d tensor``, the *mean* over the batch's examples (so the
    full-batch loss can be evaluated in chunks); checked on a tiny batch when a suite is loaded."""

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor: ...


def _methods(obj: Any, names: dict[str, int]) -> list[str]:
    """What of ``names`` (method -> positional parameters after self) ``obj`` lacks."""
    out = []
    for name, n in names.items():
        if isinstance(obj, type):  # look in the class's own MRO (a class is callable through its metaclass)
            fn = next((k.__dict__[name] for k in obj.__mro__ if name in k.__dict__ and k is not object), None)
            fn = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        else:
            fn = getattr(obj, name, None)
        if not callable(fn):
            out.append(f"it lacks a method {name}()")
        elif not _accepts(fn, n, bound=not isinstance(obj, type)):
            out.append(f"it lacks a method {name}() taking {n} argument(s)")
    return out


def _accepts(fn: Any, n: int, bound: bool = True) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments (plus ``self`` if unbound)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True  # a builtin without a signature: trust it
    params = list(sig.parameters.values())
    if not bound and params and params[0].name in ("self", "cls"):
        params = params[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    required_kw = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    return len(required) <= n <= len(positional) and not required_kw


def _dataclass(obj: Any, kind: str) -> list[str]:
    if not isinstance(obj, type):
        return [f"it is a {type(obj).__name__}, not a class (a dataclass whose fields are the suite table's keys)"]
    if not dataclasses.is_dataclass(obj):
        return ["it is not a dataclass (@dataclass(frozen=True)): its fields are the keys the suite table may give"]
    return []


def _problem(obj: Any) -> list[str]:
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return ["an nn.Module is a model, not a problem kind: use [problem] kind = \"module\", "
                f"model = \"{obj.__module__}:{obj.__qualname__}\""]
    return _dataclass(obj, "problem") + _methods(obj, {"build": 3})


def _optimizer(obj: Any) -> list[str]:
    if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
        return ["a torch.optim.Optimizer is not an update rule on the flat parameters: use [optimizer] "
                f"kind = \"torch_optim\", class = \"{obj.__module__}:{obj.__qualname__}\""]
    from .training.optimizers import ProblemRule

    init_args = 2 if isinstance(obj, type) and issubclass(obj, ProblemRule) else 1
    return _dataclass(obj, "optimizer") + _methods(obj, {"init": init_args, "step": 3})


def _torch_optimizer(obj: Any) -> list[str]:
    if not callable(obj):
        return [f"it is a {type(obj).__name__}, not a class or function called as cls(params, **options)"]
    if isinstance(obj, type) and not issubclass(obj, torch.optim.Optimizer) and not callable(getattr(obj, "step", None)):
        return ["it lacks a method step() (a torch.optim.Optimizer subclass has one)"]
    return []


def _measure(obj: Any) -> list[str]:
    return _dataclass(obj, "measure") + (_methods(obj, {"__call__": 2}) if isinstance(obj, type) else [])


def _prediction(obj: Any) -> list[str]:
    if isinstance(obj, type) or not callable(obj):
        return [f"it is a {'class' if isinstance(obj, type) else type(obj).__name__}, not a function of named "
                "arguments returning a float"]
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return ["its parameter names cannot be read (inspect.signature)"]
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in params):
        return ["it has *args, **kwargs or positional-only parameters: each argument is bound by its name"]
    return []


def _function(n: int, what: str) -> Callable[[Any], list[str]]:
    def check(obj: Any) -> list[str]:
        if not callable(obj):
            return [f"it is a {type(obj).__name__}, not callable as {what}"]
        if isinstance(obj, type):
            return [f"it is a class, not a function called as {what}"]
        return [] if _accepts(obj, n) else [f"it does not take {n} positional argument(s): {what}"]

    return check


def _keywords(what: str) -> Callable[[Any], list[str]]:
    def check(obj: Any) -> list[str]:
        return [] if callable(obj) else [f"it is a {type(obj).__name__}, not callable as {what}"]

    return check


KINDS: dict[str, Callable[[Any], list[str]]] = {
    "problem": _problem,
    "optimizer": _optimizer,
    "torch optimizer": _torch_optimizer,
    "measure": _measure,
    "prediction": _prediction,
    "statistic": _function(1, "fn(values) -> float"),
    "model": _keywords("factory(**model_args) -> nn.Module"),
    "data set": _keywords("fn(**data_args) -> (x, y) or (x, y, x_test, y_test)"),
    "loss": _function(2, "loss(outputs, targets) -> mean over the examples"),
}


def lacks(kind: str, obj: Any) -> str:
    """What ``obj`` lacks to be used as a ``kind`` (``""`` when it satisfies the protocol)."""
    check = KINDS.get(kind)
    if check is None:
        return ""
    missing = check(obj)
    if not missing:
        return ""
    return "; ".join(missing) + f" (protocol: harness.protocols.{_PROTOCOL_NAMES[kind]})"


_PROTOCOL_NAMES = {"problem": "ProblemKind", "optimizer": "UpdateRule", "torch optimizer": "TorchOptimizer",
                   "measure": "Measure", "prediction": "Prediction", "statistic": "WindowStatistic",
                   "model": "ModelFactory", "data set": "DataSet", "loss": "Loss"}
