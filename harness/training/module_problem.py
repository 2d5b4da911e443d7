"""The ``module`` problem kind: a user's ``nn.Module``, data and loss under a suite
(``[problem] kind = "module"``), with the model factories (``MODELS``) a suite may name."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import SuiteError
from ..kernels.losses import LOSSES
from ..kernels.objective import FlatModule, Objective
from ..options import build as build_options, positive
from ..registry import Registry, is_import_path, suggest
from .data import DATASETS
from .problems import PROBLEMS, Problem

__all__ = ["ModuleProblem", "MODELS"]


MODELS: Registry = Registry("model")  # model factories by name (plugins may register); import paths always work

_DATA_CACHE: dict[tuple, tuple[Tensor, ...]] = {}
_LABEL_LOSSES = ("mse", "mse_mean")  # built-in losses that take integer labels as one-hot targets


def _cpu_rng_fork():
    """``torch.random.fork_rng`` over the CPU generator (and CUDA's, once CUDA is initialised:
    a factory that builds on the GPU then leaves the caller's CUDA generator untouched too)."""
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if cuda else [])


@PROBLEMS.register("module")
@dataclass(frozen=True)
class ModuleProblem:
    """A user's ``nn.Module``, data and loss (``[problem] kind = "module"``).

    * ``model = "package.module:Name"``: a class or factory called with ``model_args`` as keyword
      arguments, returning an ``nn.Module``. It is called on the CPU inside
      ``torch.random.fork_rng`` seeded with the case's seed, so every device and dtype starts
      from the same initialisation (a factory that builds on the GPU is moved like any other);
      then the module is put in **eval mode** (BatchNorm uses its running statistics as fixed
      buffers, dropout is off: ``L(theta)`` is one function of the parameters, as the curvature
      measures need), cast to the suite's dtype (floating parameters and buffers) and moved to the
      case's device. Parameters with ``requires_grad = False`` are not trained, not measured (they
      are not in ``theta``) and stay as built; buffers go along with the module.
    * ``data``: a built-in data set (``harness.training.data.DATASETS``: ``gaussian_teacher``,
      ``gaussian_clusters``) or ``"package.module:function"``, called with ``data_args`` as keyword
      arguments inside ``fork_rng`` seeded with ``data_seed``, returning CPU tensors
      ``(x, y)`` or ``(x, y, x_test, y_test)`` (the held-out set feeds ``test_loss`` and
      ``inputs = "test"``). Floating tensors are cast to the suite's dtype; integer targets are
      class labels, kept as integers (with ``loss = "mse"`` or ``"mse_mean"`` they become one-hot
      targets as wide as the model's output, Cohen et al.'s MSE on one-hot labels).
    * ``loss``: a name from ``harness.kernels.losses.LOSSES`` (``mse`` = (1/n) sum 1/2 ||f - y||^2,
      ``mse_mean``, ``cross_entropy``) or ``"package.module:function"``: ``loss(outputs, targets)``
      returning the **mean over the batch's examples** (the objective evaluates it in chunks).
      A user's loss is checked when the suite is loaded, on the first four examples: a finite 0-d
      tensor, equal to the mean of its values on each example alone (relative 1e-6).
    * ``chunk_size``: examples per chunk of every kernel, as for ``mlp``.
    * ``output``: for a forward that returns a tuple or list (``output = 0``: its first element) or
      a dict (``output = "logits"``), the element that is the model's output; the rest is
      ignored. Without it the forward must return one tensor.

    The forward must be deterministic in eval mode (it is called twice on the same examples when
    the suite is loaded): dropout left on (``F.dropout(x, training=True)``), noise or batch
    statistics would make ``L(theta)`` a random function, which no curvature measure can read.
    Integer targets of any integer dtype are class labels and become ``int64``; with
    ``cross_entropy``, floating targets must be class probabilities (non-negative, each row
    summing to 1), as ``torch.nn.functional.cross_entropy`` reads them.

    Parameter groups (for ``relative_change``): one per trainable parameter, by its name.
    """

    model: str
    model_args: dict = field(default_factory=dict)
    data: str = "gaussian_teacher"
    data_args: dict = field(default_factory=dict)
    data_seed: int = 0
    loss: str = "mse"
    chunk_size: int | None = field(default=None, metadata=positive)
    output: int | str | None = None

    @classmethod
    def from_table(cls, table: dict, file: str, path: str, skip: tuple = ()) -> "ModuleProblem":
        """The options, with ``model``, ``data`` and ``loss`` resolved and the loss checked on a
        tiny batch (each error names its key)."""
        problem = build_options(cls, table, file, path, skip, fields_only=True)
        for key, registry in (("model", MODELS), ("data", DATASETS), ("loss", LOSSES)):
            name = getattr(problem, key)
            if key == "model" and not is_import_path(name) and name not in MODELS:
                raise SuiteError(file, f"{path}.model", f"expected an import path 'package.module:Name' of an "
                                 f"nn.Module class or factory, got {name!r}")
            if name not in registry:
                raise SuiteError(file, f"{path}.{key}", registry.unknown(name))
        try:
            problem.check()
        except _OptionError as exc:
            raise SuiteError(file, f"{path}.{exc.key}", str(exc)) from None
        except Exception as exc:  # the user's code failed in a way no check above foresaw: still bad input
            raise SuiteError(file, path, f"building the problem once (CPU, float64, seed 0) to check it raised "
                             f"{type(exc).__name__}: {exc}") from None
        return problem

    def dataset(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """``(x, y, x_test, y_test)`` on the CPU (no test set: ``None``), computed once per process."""
        key = (self.data, repr(sorted(self.data_args.items())), self.data_seed)
        if key not in _DATA_CACHE:
            fn = DATASETS[self.data]
            try:
                with _cpu_rng_fork():
                    torch.manual_seed(self.data_seed)
                    out = fn(**self.data_args)
            except Exception as exc:
                raise _OptionError("data", f"{self.data}(**{self.data_args}) raised {type(exc).__name__}: {exc}") from None
            if isinstance(out, (tuple, list)):  # numpy arrays are taken as they are
                out = tuple(torch.as_tensor(t) if type(t).__module__ == "numpy" else t for t in out)
                if len(out) == 4 and out[2] is None and out[3] is None:  # (x, y, None, None): no test split
                    out = out[:2]
            if not isinstance(out, (tuple, list)) or len(out) not in (2, 4) or \
                    not all(isinstance(t, Tensor) for t in out):
                raise _OptionError("data", f"{self.data}(**data_args) must return (x, y) or (x, y, x_test, y_test) "
                                   f"tensors, got {_describe(out)}")
            out = tuple(t.detach().cpu() for t in out)
            if any(t.dim() == 0 for t in out):
                raise _OptionError("data", f"{self.data}(**data_args) must return tensors with the examples on the "
                                   f"first axis, got {_describe(out)} (shapes {[tuple(t.shape) for t in out]})")
            # integer class labels of any width (numpy's int32, uint8, ...) as the int64 torch's losses take
            out = tuple(t.long() if not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
                        and i % 2 == 1 else t for i, t in enumerate(out))
            for i in (0, 2)[: len(out) // 2]:
                if out[i].shape[0] != out[i + 1].shape[0]:
                    raise _OptionError("data", f"{self.data}: inputs and targets differ in their number of "
                                       f"examples ({out[i].shape[0]} vs {out[i + 1].shape[0]})")
            if out[0].shape[0] == 0:
                raise _OptionError("data", f"{self.data}: no training examples")
            if len(out) == 4 and out[2].shape[0] == 0:  # an empty test split is no test split
                out = out[:2]
            _DATA_CACHE[key] = out if len(out) == 4 else (*out, None, None)
        return _DATA_CACHE[key]

    def module(self, seed: int, example: Tensor | None = None) -> nn.Module:
        """The model, built on the CPU from ``seed`` (not yet cast, moved or put in eval mode). Lazy
        modules (``nn.LazyLinear``, ...) are materialised by a forward pass on ``example`` (one
        CPU example) under the same seeded generator, so they too start from the case's seed."""
        factory = MODELS[self.model]
        try:
            with _cpu_rng_fork():
                torch.manual_seed(seed)
                module = factory(**self.model_args)
                lazy = isinstance(module, nn.Module) and any(
                    isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters())
                if lazy and example is not None:
                    if example.is_floating_point():
                        example = example.to(torch.get_default_dtype())
                    with torch.no_grad():
                        module.eval()(example)  # eval: no running statistics updated from one example
        except Exception as exc:
            raise _OptionError("model", f"{self.model}(**{self.model_args}) raised {type(exc).__name__}: {exc}") from None
        if not isinstance(module, nn.Module):
            raise _OptionError("model", f"{self.model}(**model_args) must return an nn.Module, got {_describe(module)}")
        if not any(p.requires_grad for p in module.parameters()):
            raise _OptionError("model", f"{self.model}(**model_args) has no parameter that requires grad")
        return module

    def _targets(self, y: Tensor, width: int) -> Tensor:
        """Integer labels as one-hot targets for the built-in MSE losses; anything else unchanged."""
        if self.loss in _LABEL_LOSSES and not y.is_floating_point() and not y.is_complex() and y.dim() == 1:
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= width):
                raise _OptionError("data", f"integer labels must lie in [0, {width}) (the model's output width) "
                                   f"for one-hot {self.loss} targets, got [{int(y.min())}, {int(y.max())}]")
            return torch.nn.functional.one_hot(y, width).to(torch.float64)
        return y

    def _objective_parts(self, seed: int, dtype: torch.dtype, device: torch.device):
        x, y, xt, yt = self.dataset()
        module = self.module(seed, example=x[:1])
        module.eval()
        module.to(device=device, dtype=dtype)
        move = lambda t: t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device=device)
        x = move(x)
        try:
            with torch.no_grad():
                out = module(x[:1])
        except Exception as exc:
            raise _ForwardError("model", f"{self.model}(**model_args) applied to one example (inputs "
                                f"{tuple(x[:1].shape)}, {x.dtype}) raised {type(exc).__name__}: {exc}") from None
        out = self.pick_output(out)
        width = out.shape[-1] if out.dim() > 1 else 1
        y = move(self._targets(y, width))
        test = None if xt is None else (move(xt), move(self._targets(yt, width)))
        return module, x, y, test

    def pick_output(self, out: Any) -> Tensor:
        """The model's output among what its forward returned (``output``: an index or a key)."""
        if self.output is None:
            if isinstance(out, Tensor):
                return out
            hint = ""
            if isinstance(out, (tuple, list)) and out:
                hint = " (for a forward that returns a tuple, say which element is the output: output = 0)"
            elif isinstance(out, dict) and out:
                hint = f" (for a forward that returns a dict, name the output: output = {next(iter(out))!r})"
            raise _OptionError("model", f"the model's forward must return a tensor of outputs, got "
                               f"{_describe(out)}{hint}")
        key = self.output
        if isinstance(key, int) and not isinstance(key, bool):
            if not isinstance(out, (tuple, list)):
                raise _OptionError("output", f"output = {key} picks an element of a tuple, but the forward returned "
                                   f"{_describe(out)}")
            if not -len(out) <= key < len(out):
                raise _OptionError("output", f"output = {key}: the forward returned {_describe(out)}")
            picked = out[key]
        else:
            if not isinstance(out, dict):
                raise _OptionError("output", f"output = {key!r} picks an entry of a dict, but the forward returned "
                                   f"{_describe(out)}")
            if key not in out:
                raise _OptionError("output", f"output = {key!r}: the forward's dict has keys {list(out)}"
                                   f"{suggest(str(key), [str(k) for k in out])}")
            picked = out[key]
        if not isinstance(picked, Tensor):
            raise _OptionError("output", f"output = {key!r} is {_describe(picked)}, not a tensor of outputs")
        return picked

    def check(self) -> None:
        """Build once on the CPU in float64 (float32 if the model cannot run in float64) and
        evaluate the loss on the first four examples: a finite 0-d tensor, and for a user's loss
        the mean of its per-example values (relative 1e-6; 1e-4 in float32)."""
        rtol = 1e-6
        try:
            module, x, y, _ = self._objective_parts(0, torch.float64, torch.device("cpu"))
        except _ForwardError as exc64:
            try:
                module, x, y, _ = self._objective_parts(0, torch.float32, torch.device("cpu"))
            except _ForwardError:
                raise exc64 from None
            rtol = 1e-4
        loss = LOSSES[self.loss]
        m = min(4, x.shape[0])
        try:
            with torch.no_grad():
                out = self.pick_output(module(x[:m]))
                again = self.pick_output(module(x[:m]))
                outs = [self.pick_output(module(x[i:i + 1])) for i in range(m)] if is_import_path(self.loss) else []
        except _OptionError:
            raise
        except Exception as exc:
            raise _OptionError("model", f"{self.model}(**model_args) applied to {m} examples raised "
                               f"{type(exc).__name__}: {exc}") from None
        if out.shape != again.shape or not torch.allclose(out, again, rtol=0, atol=0, equal_nan=True):
            raise _OptionError("model", f"{self.model}(**model_args): its forward (in eval mode) gives different "
                               f"outputs on the same {m} examples twice; L(theta) must be one function of the "
                               "parameters (dropout forced on with training=True? noise? a random layer?)")
        if self.loss == "cross_entropy" and y.is_floating_point():
            bad = ""
            if y.dim() != out.dim() or y.dim() < 2 or y.shape[1:] != out.shape[1:]:
                bad = f"of shape {tuple(y.shape)} for outputs of shape (n, {', '.join(map(str, out.shape[1:]))})"
            elif bool((y < 0).any()) or not torch.allclose(y.sum(1), torch.ones((), dtype=y.dtype), rtol=0,
                                                           atol=1e-6):
                bad = "that are not class probabilities (negative entries, or rows that do not sum to 1)"
            if bad:
                raise _OptionError("loss", f"cross_entropy takes integer class labels or class probabilities; the data "
                                   f"gives floating targets {bad} (class labels must be an integer tensor; "
                                   "regression targets want loss = \"mse\")")
        try:
            with torch.no_grad():
                value = loss(out, y[:m])
                singles = [loss(o, y[i:i + 1]) for i, o in enumerate(outs)]
        except Exception as exc:
            raise _OptionError("loss", f"{self.loss}(outputs, targets) on {m} examples (outputs {tuple(out.shape)}, "
                               f"targets {tuple(y[:m].shape)} {y.dtype}) raised {type(exc).__name__}: {exc}") from None
        if not isinstance(value, Tensor) or value.dim() != 0:
            raise _OptionError("loss", f"{self.loss}(outputs, targets) must return a 0-d tensor (the mean over the "
                               f"examples), got {_describe(value)}")
        if not torch.isfinite(value):
            raise _OptionError("loss", f"{self.loss}(outputs, targets) is not finite at initialisation ({float(value)})")
        if singles:
            if not all(isinstance(v, Tensor) and v.dim() == 0 for v in singles):
                raise _OptionError("loss", f"{self.loss}(outputs, targets) must return a 0-d tensor on one example too")
            mean = float(torch.stack(singles).mean())
            if abs(float(value) - mean) > rtol * max(abs(mean), abs(float(value)), 1e-30):
                ratio = float(value) / mean if mean else math.inf
                raise _OptionError("loss", f"{self.loss}(outputs, targets) must be the mean over the batch's examples "
                                   f"(the full-batch loss is evaluated in chunks): on {m} examples it gives "
                                   f"{float(value):.6g}, the mean of its {m} one-example values is {mean:.6g} "
                                   f"(ratio {ratio:.4g}; a sum over the examples gives {m})")

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        module, x, y, test = self._objective_parts(seed, dtype, device)
        loss = LOSSES[self.loss]
        flat = FlatModule(module) if self.output is None else _PickedOutput(module, self.pick_output)
        obj = Objective(flat, loss, x, y, self.chunk_size)
        test_obj = None if test is None else Objective(flat, loss, *test, self.chunk_size)
        groups, i = {}, 0
        for name, k in zip(flat.names, flat.numels):
            groups[name] = slice(i, i + k)
            i += k
        return Problem(obj, flat.flatten().clone(), test_obj, groups=groups, module=module)


class _PickedOutput(FlatModule):
    """``f(theta, X)``: the element ``pick`` selects of what the module's forward returns."""

    def __init__(self, module: nn.Module, pick: Callable[[Any], Tensor]):
        super().__init__(module)
        self.pick = pick

    def __call__(self, theta: Tensor, inputs: Tensor) -> Tensor:
        return self.pick(super().__call__(theta, inputs))


class _OptionError(ValueError):
    """A problem option that cannot be used: ``key`` is the option's name."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(message)


class _ForwardError(_OptionError):
    """The model's forward pass failed on one example."""


def _describe(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return f"a tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} ({', '.join(type(o).__name__ for o in obj)})"
    return f"a {type(obj).__name__}"
