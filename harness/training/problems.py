"""Problems: the model, loss and data of a suite, built for one seed, dtype and device.

A problem kind is a frozen dataclass of options (the suite's ``[problem]`` table) whose
``build(seed, dtype, device)`` returns a :class:`Problem`. Models are initialised on the CPU
from the case's seed and only then cast and moved, so every device starts from the same point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from ..kernels.factorization import symmetric_noise, symmetric_target
from ..kernels.homogeneous import layer_forward
from ..kernels.losses import LOSSES, smoothed_cross_entropy
from ..kernels.objective import FlatModule, Objective
from ..kernels.relu_kernels import relu_kernels
from ..options import nonnegative, positive
from ..registry import Registry
from .data import gaussian_clusters, gaussian_teacher

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
    signal: Tensor | None = None  # the noiseless part of ``target``, where the problem adds noise to it
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
    label_smoothing: float = field(default=0.0, metadata=nonnegative)
    chunk_size: int | None = field(default=None, metadata=positive)
    n_test: int = field(default=0, metadata=nonnegative)

    def __post_init__(self):
        if self.loss == "cross_entropy" and self.data != "gaussian_clusters":
            raise ValueError("loss 'cross_entropy' needs data = 'gaussian_clusters' (class labels)")
        if self.label_smoothing and self.loss != "cross_entropy":
            raise ValueError(f"label_smoothing = {self.label_smoothing} needs loss = 'cross_entropy'")
        if not self.label_smoothing < 1:
            raise ValueError(f"label_smoothing = {self.label_smoothing}: expected a value in [0, 1)")
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
        loss = smoothed_cross_entropy(self.label_smoothing) if self.label_smoothing else LOSSES[self.loss]
        obj = Objective(flat, loss, x, y, self.chunk_size)
        test = Objective(flat, loss, xt, yt, self.chunk_size) if self.n_test else None
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
    ``Q``, loss ``1/2 ||W - (A + E)||_F^2``, where ``E = noise (G + G^T)/sqrt(2)`` is seeded
    symmetric Gaussian noise (none by default): ``Problem.target`` is ``A + E``, what is fitted,
    and ``Problem.signal`` is ``A`` (:mod:`harness.kernels.factorization`). Matrix sensing (``sensing = m > 0``): target
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
    noise: float = field(default=0.0, metadata=nonnegative)
    data_seed: int = 0

    def __post_init__(self):
        if self.noise and self.sensing:
            raise ValueError("noise: a sensing problem's target has no noise term (full observation only)")
        if self.sensing == 0 and not self.spectrum:
            raise ValueError("spectrum: the target's non-zero eigenvalues are needed without sensing")
        if self.sensing and self.spectrum:
            raise ValueError("spectrum: a sensing problem's target is U U^T / sqrt(n); give target_rank instead")
        if len(self.spectrum) > self.n or self.target_rank > self.n:
            raise ValueError("the target's rank cannot exceed n")

    def target_matrix(self) -> Tensor:
        """The noiseless target ``A``."""
        if self.sensing:
            g = torch.Generator().manual_seed(50_000 + self.data_seed)
            u = torch.randn(self.n, self.target_rank, generator=g, dtype=torch.float64)
            return u @ u.T / math.sqrt(self.n)
        return symmetric_target(self.n, self.spectrum, self.data_seed)

    def product(self, theta: Tensor) -> Tensor:
        """``W_N ... W_1`` from the flat parameters (factor ``j`` is block ``j`` of ``n^2`` entries)."""
        factors = theta.view(self.depth, self.n, self.n)
        out = factors[0]
        for w in factors[1:]:
            out = w @ out
        return out

    def build(self, seed: int, dtype: torch.dtype, device: torch.device) -> Problem:
        signal = self.target_matrix()
        a = signal + symmetric_noise(self.n, self.noise, self.data_seed) if self.noise else signal
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
                       matrix=self.product, target=cast(a), signal=cast(signal) if self.noise else None)


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


# the user-module kind, in its own module; imported here so that it is registered with the others
from .module_problem import MODELS, ModuleProblem  # noqa: E402
