"""Problems: the model, loss and data of a suite, built for one seed, dtype and device.

A problem kind is a frozen dataclass of options (the suite's ``[problem]`` table) whose
``build(seed, dtype, device)`` returns a :class:`Problem`. Models are initialised on the CPU
from the case's seed and only then cast and moved, so every device starts from the same point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from .data import DATASETS, gaussian_clusters, gaussian_teacher
from ..errors import SuiteError
from ..kernels.losses import LOSSES
from ..kernels.objective import FlatModule, Objective
from ..kernels.homogeneous import layer_forward
from ..kernels.relu_kernels import relu_kernels
from ..options import build as build_options, nonnegative, positive
from ..registry import Registry, is_import_path, suggest

__all__ = ["PROBLEMS", "Problem", "MLP", "Quadratic", "DeepMatrixFactorization", "TwoLayerReLU", "HomogeneousMLP",
           "ModuleProblem", "MODELS"]

PROBLEMS: Registry[type] = Registry("problem")

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "softplus": nn.Softplus, "gelu": nn.GELU}


@dataclass(frozen=True)
class Problem:
    """What a run trains: the objective, the initial parameters, and what the problem provides
    beyond them. An optional field is None where the problem has no such thing; a measure or an
    update rule that needs it says so (:class:`~harness.errors.UnsupportedError`)."""

    objective: Objective
    theta0: Tensor
    test: Objective | None = None  # the held-out objective
    matrix: Callable[[Tensor], Tensor] | None = None  # theta -> the matrix a rank measure reads
    target: Tensor | None = None  # the matrix the problem fits, where there is one
    groups: dict[str, slice] = field(default_factory=dict)  # named parameter blocks of theta
    module: Any = None  # the torch.nn.Module whose parameters theta flattens (mlp, module problems)
    widths: tuple[int, ...] | None = None  # layer widths n_0..n_L of a layered (homogeneous) MLP
    seed: int | None = None  # the case's seed, where the problem's own randomness (minibatches) needs it
    kernel_top: dict[str, float] | None = None  # top eigenvalue of each group's infinite-width kernel
    eigenvalues: tuple[float, ...] | None = None  # a quadratic's Hessian spectrum

    @property
    def n_params(self) -> int:
        """The number of trained parameters (the length of ``theta0``)."""
        return self.theta0.numel()


@PROBLEMS.register("mlp")
@dataclass(frozen=True)
class MLP:
    """Fully connected network (``nn.Linear`` with PyTorch's default initialisation).

    ``data = "gaussian_teacher"`` (regression, ``n_outputs`` targets) or ``"gaussian_clusters"``
    (``n_outputs`` classes; with ``loss = "mse"`` the targets are one-hot).
    """

    widths: list[int] = field(default_factory=lambda: [64, 64], metadata=positive)
    activation: Literal["tanh", "relu", "elu", "softplus", "gelu"] = "tanh"
    bias: bool = True
    data: Literal["gaussian_teacher", "gaussian_clusters"] = "gaussian_teacher"
    n_samples: int = field(default=256, metadata=positive)
    input_dim: int = field(default=20, metadata=positive)
    n_outputs: int = field(default=1, metadata=positive)
    data_seed: int = 0
    teacher_width: int = field(default=64, metadata=positive)
    separation: float = field(default=3.0, metadata=positive)
    loss: Literal["mse", "mse_mean", "cross_entropy"] = "mse"
    chunk_size: int | None = field(default=None, metadata=positive)
    n_test: int = field(default=0, metadata=nonnegative)

    def __post_init__(self):
        if self.loss == "cross_entropy" and self.data != "gaussian_clusters":
            raise ValueError("loss 'cross_entropy' needs data = 'gaussian_clusters' (class labels)")
        if self.data == "gaussian_clusters" and self.n_outputs < 2:
            raise ValueError("data 'gaussian_clusters' needs n_outputs >= 2 classes")

    def dataset(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Training inputs and targets, then ``n_test`` held-out examples from the same source."""
        if self.data == "gaussian_teacher":
            x, y, xt, yt = gaussian_teacher(self.n_samples, self.input_dim, self.n_outputs, self.data_seed,
                                            self.teacher_width, self.n_test)
            return x, y, xt, yt
        x, y, xt, yt = gaussian_clusters(self.n_samples, self.input_dim, self.n_outputs, self.data_seed,
                                         self.separation, self.n_test)
        if self.loss != "cross_entropy":
            y, yt = (torch.nn.functional.one_hot(t, self.n_outputs).to(torch.float64) for t in (y, yt))
        return x, y, xt, yt

    def module(self, seed: int) -> nn.Module:
        sizes = [self.input_dim, *self.widths, self.n_outputs]
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b, bias=self.bias, dtype=torch.float64))
                if i < len(sizes) - 2:
                    layers.append(_ACTIVATIONS[self.activation]())
        return nn.Sequential(*layers)

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        move = lambda t: t.to(device=device) if t.dtype == torch.int64 else t.to(device=device, dtype=dtype)
        x, y, xt, yt = map(move, self.dataset())
        module = self.module(seed).to(device=device, dtype=dtype)
        flat = FlatModule(module)
        obj = Objective(flat, LOSSES[self.loss], x, y, self.chunk_size)
        test = Objective(flat, LOSSES[self.loss], xt, yt, self.chunk_size) if self.n_test else None
        return Problem(obj, flat.flatten(), test, module=module)


@PROBLEMS.register("quadratic")
@dataclass(frozen=True)
class Quadratic:
    """``L(w) = 1/2 w^T A w`` with ``A = Q diag(eigenvalues) Q^T`` (a known spectrum).

    Written as least squares so every kernel applies unchanged: outputs ``X w`` with
    ``X = sqrt(n) A^{1/2}``, zero targets and the ``mse`` loss give ``1/2 w^T A w``.
    ``rotate``: a seeded random orthogonal ``Q`` (else the identity); ``init``: ``w_0 = Q 1``
    (``"ones"``), ``w_0 = Q c`` for a list ``c`` of eigenbasis coordinates, or a seeded Gaussian.
    """

    eigenvalues: list[float] = field(metadata=nonnegative)
    rotate: bool = True
    init: Any = "ones"
    data_seed: int = 0

    def __post_init__(self):
        if not self.eigenvalues:
            raise ValueError("eigenvalues must not be empty")
        if isinstance(self.init, list):
            if len(self.init) != len(self.eigenvalues) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in self.init):
                raise ValueError(f"init: a list must hold {len(self.eigenvalues)} numbers (coordinates in the eigenbasis)")
        elif self.init not in ("ones", "gaussian"):
            raise ValueError(f"init: expected 'ones', 'gaussian' or a list of coordinates, got {self.init!r}")

    def matrix(self) -> tuple[Tensor, Tensor]:
        lam = torch.tensor(self.eigenvalues, dtype=torch.float64)
        n = lam.numel()
        q = torch.eye(n, dtype=torch.float64)
        if self.rotate:
            g = torch.Generator().manual_seed(30_000 + self.data_seed)
            q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
        return q, lam

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        q, lam = self.matrix()
        n = lam.numel()
        x = (n ** 0.5) * (q * lam.sqrt()) @ q.T
        if isinstance(self.init, list):
            w0 = q @ torch.tensor(self.init, dtype=torch.float64)
        elif self.init == "ones":
            w0 = q @ torch.ones(n, dtype=torch.float64)
        else:
            w0 = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        model = lambda w, inputs: inputs @ w.unsqueeze(-1)
        obj = Objective(model, LOSSES["mse"], x.to(device, dtype), torch.zeros(n, 1, dtype=dtype, device=device))
        return Problem(obj, w0.to(device, dtype), eigenvalues=tuple(lam.tolist()))


@PROBLEMS.register("deep_matrix_factorization")
@dataclass(frozen=True)
class DeepMatrixFactorization:
    """``W = W_N ... W_1`` (``N = depth`` square ``n x n`` factors) fitted to a symmetric PSD target
    (Chou, Gieshoff, Maly & Rauhut, arXiv 2011.13772).

    Full observation (``sensing = 0``): ``A = Q diag(spectrum, 0, ...) Q^T`` with a seeded random
    ``Q``, loss ``1/2 ||W - A||_F^2``. Matrix sensing (``sensing = m > 0``): target
    ``X* = U U^T / sqrt(n)``, ``U`` an ``n x target_rank`` seeded Gaussian; ``m`` symmetric Gaussian
    measurements ``M = (G + G^T)/2`` (so ``E[<M, P> M] = P``), loss ``(1/2m) sum (<M_i, W> - y_i)^2``.
    Initialisation: ``identity`` (``W_j(0) = alpha I``) or ``random`` (``alpha G_j / sqrt(n)``,
    Gaussian ``G_j`` from the case's seed).
    """

    n: int = field(default=20, metadata=positive)
    depth: int = field(default=3, metadata=positive)
    spectrum: list[float] = field(default_factory=list, metadata=nonnegative)
    alpha: float = field(default=0.05, metadata=positive)
    init: Literal["identity", "random"] = "identity"
    sensing: int = field(default=0, metadata=nonnegative)
    target_rank: int = field(default=3, metadata=positive)
    data_seed: int = 0

    def __post_init__(self):
        if self.sensing == 0 and not self.spectrum:
            raise ValueError("spectrum: the target's non-zero eigenvalues are needed without sensing")
        if self.sensing and self.spectrum:
            raise ValueError("spectrum: a sensing problem's target is U U^T / sqrt(n); give target_rank instead")
        if len(self.spectrum) > self.n or self.target_rank > self.n:
            raise ValueError("the target's rank cannot exceed n")

    def target_matrix(self) -> Tensor:
        g = torch.Generator().manual_seed(50_000 + self.data_seed)
        if self.sensing:
            u = torch.randn(self.n, self.target_rank, generator=g, dtype=torch.float64)
            return u @ u.T / math.sqrt(self.n)
        q, _ = torch.linalg.qr(torch.randn(self.n, self.n, generator=g, dtype=torch.float64))
        lam = torch.zeros(self.n, dtype=torch.float64)
        lam[: len(self.spectrum)] = torch.tensor(self.spectrum, dtype=torch.float64)
        return (q * lam) @ q.T

    def product(self, theta: Tensor) -> Tensor:
        """``W_N ... W_1`` from the flat parameters (factor ``j`` is block ``j`` of ``n^2`` entries)."""
        factors = theta.view(self.depth, self.n, self.n)
        out = factors[0]
        for w in factors[1:]:
            out = w @ out
        return out

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        a = self.target_matrix()
        n, eye = self.n, torch.eye(self.n, dtype=torch.float64)
        if self.init == "identity":
            theta0 = (self.alpha * eye).repeat(self.depth, 1, 1)
        else:
            g = torch.Generator().manual_seed(1000 + seed)
            theta0 = self.alpha * torch.randn(self.depth, n, n, generator=g, dtype=torch.float64) / math.sqrt(n)
        if self.sensing:
            g = torch.Generator().manual_seed(60_000 + self.data_seed)
            gm = torch.randn(self.sensing, n, n, generator=g, dtype=torch.float64)
            x = (gm + gm.transpose(1, 2)) / 2
            y = torch.einsum("mij,ij->m", x, a).unsqueeze(1)
            model = lambda th, inputs: torch.einsum("mij,ij->m", inputs, self.product(th)).unsqueeze(1)
            loss = LOSSES["mse"]
        else:  # the examples are the columns: outputs e_i^T W^T = (W e_i)^T against A e_i
            x, y = eye, a.T
            model = lambda th, inputs: inputs @ self.product(th).T
            loss = LOSSES["half_sse"]
        cast = lambda t: t.to(device=device, dtype=dtype)
        obj = Objective(model, loss, cast(x), cast(y))
        return Problem(obj, cast(theta0.reshape(-1)),
                       matrix=self.product, target=cast(a))


@PROBLEMS.register("two_layer_relu")
@dataclass(frozen=True)
class TwoLayerReLU:
    """``f(x) = m^{-1/2} sum_r a_r relu(<w_r, x>/sqrt(d))`` on Gaussian inputs ``x ~ N(0, I_d)``
    with arbitrary (independent Gaussian) labels ``y ~ N(0, 1)``, loss ``1/2 sum_i (f(x_i) - y_i)^2``
    (Razborov, arXiv 2212.02323). Initialisation from the case's seed: ``w_r ~ N(0, I_d)``,
    ``a_r ~ N(0, 1)``. Parameter groups: ``first`` (``W``, ``m x d``) and ``second`` (``a``).
    ``Problem.kernel_top`` holds the top eigenvalues of the infinite-width kernels ``K_W``, ``K_a``.
    """

    n: int = field(default=50, metadata=positive)
    d: int = field(default=50, metadata=positive)
    m: int = field(default=1000, metadata=positive)
    data_seed: int = 0

    def data(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(70_000 + self.data_seed)
        x = torch.randn(self.n, self.d, generator=g, dtype=torch.float64)
        return x, torch.randn(self.n, 1, generator=g, dtype=torch.float64)

    def init(self, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(self.m, self.d, generator=g, dtype=torch.float64)
        a = torch.randn(self.m, generator=g, dtype=torch.float64)
        return torch.cat([w.reshape(-1), a])

    def model(self, theta: Tensor, inputs: Tensor) -> Tensor:
        w = theta[: self.m * self.d].view(self.m, self.d)
        a = theta[self.m * self.d:]
        return (torch.relu(inputs @ w.T / math.sqrt(self.d)) @ a / math.sqrt(self.m)).unsqueeze(-1)

    def groups(self) -> dict[str, slice]:
        return {"first": slice(0, self.m * self.d), "second": slice(self.m * self.d, self.m * (self.d + 1))}

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        x, y = self.data()
        k_w, k_a = relu_kernels(x)
        cast = lambda t: t.to(device=device, dtype=dtype)
        obj = Objective(self.model, LOSSES["half_sse"], cast(x), cast(y))
        top = {"first": float(torch.linalg.eigvalsh(k_w)[-1]), "second": float(torch.linalg.eigvalsh(k_a)[-1])}
        return Problem(obj, cast(self.init(seed)), groups=self.groups(), kernel_top=top)


@PROBLEMS.register("homogeneous_mlp")
@dataclass(frozen=True)
class HomogeneousMLP:
    """Bias-free ``sqrt(2)``-ReLU MLP with ``1/sqrt(fan_in)`` multipliers and hidden widths
    ``n_1 k^r`` (``pattern``: quadratic ``r = 2``, linear ``4 n_1 k``, or ``constant_width``), in the
    reading of Terjék, arXiv 2502.13110, documented in :mod:`harness.kernels.homogeneous`. Data: Gaussian
    inputs, labels the argmax of a seeded two-layer tanh teacher, one-hot MSE targets;
    ``n_test`` held-out examples. Parameter groups ``layer1`` ... ``layerL``.
    """

    input_dim: int = field(default=64, metadata=positive)
    n_classes: int = field(default=10, metadata=positive)
    depth: int = field(default=6, metadata=positive)
    n1: int = field(default=16, metadata=positive)
    pattern: Literal["quadratic", "linear", "constant"] = "quadratic"
    constant_width: int = field(default=160, metadata=positive)
    n_samples: int = field(default=2048, metadata=positive)
    n_test: int = field(default=1024, metadata=nonnegative)
    teacher_width: int = field(default=32, metadata=positive)
    data_seed: int = 0

    def widths(self) -> list[int]:
        hidden = {"quadratic": [self.n1 * k ** 2 for k in range(1, self.depth)],
                  "linear": [4 * self.n1 * k for k in range(1, self.depth)],
                  "constant": [self.constant_width] * (self.depth - 1)}[self.pattern]
        return [self.input_dim, *hidden, self.n_classes]

    def data(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(80_000 + self.data_seed)
        n = self.n_samples + self.n_test
        x = torch.randn(n, self.input_dim, generator=g, dtype=torch.float64)
        t1 = torch.randn(self.input_dim, self.teacher_width, generator=g, dtype=torch.float64) / math.sqrt(self.input_dim)
        t2 = torch.randn(self.teacher_width, self.n_classes, generator=g, dtype=torch.float64) / math.sqrt(self.teacher_width)
        labels = (torch.tanh(x @ t1) @ t2).argmax(1)
        return x, torch.nn.functional.one_hot(labels, self.n_classes).to(torch.float64)

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        widths = self.widths()
        g = torch.Generator().manual_seed(seed)
        sizes = [widths[k] * widths[k + 1] for k in range(len(widths) - 1)]
        theta0 = torch.randn(sum(sizes), generator=g, dtype=torch.float64)
        x, y = self.data()
        cast = lambda t: t.to(device=device, dtype=dtype)
        model = lambda th, inputs: layer_forward(th, widths, inputs)[0]
        n = self.n_samples
        obj = Objective(model, LOSSES["mse"], cast(x[:n]), cast(y[:n]))
        test = Objective(model, LOSSES["mse"], cast(x[n:]), cast(y[n:])) if self.n_test else None
        starts = [sum(sizes[:k]) for k in range(len(sizes))]
        groups = {f"layer{k + 1}": slice(a, a + b) for k, (a, b) in enumerate(zip(starts, sizes))}
        return Problem(obj, cast(theta0), test, groups=groups, widths=tuple(widths), seed=seed)


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
