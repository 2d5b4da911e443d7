"""Problems: the model, loss and data of a suite, built for one seed, dtype and device.

A problem kind is a frozen dataclass of options (the suite's ``[problem]`` table) whose
``build(seed, dtype, device)`` returns a :class:`Problem`. Models are initialised on the CPU
from the case's seed and only then cast and moved, so every device starts from the same point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .data import gaussian_clusters, gaussian_teacher
from .losses import LOSSES
from .objective import FlatModule, Objective
from .options import nonnegative, positive
from .registry import Registry

__all__ = ["PROBLEMS", "Problem", "MLP", "Quadratic"]

PROBLEMS: Registry[type] = Registry("problem")

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "softplus": nn.Softplus, "gelu": nn.GELU}


@dataclass
class Problem:
    """What a run trains: the objective, the initial parameters and facts about them."""

    objective: Objective
    theta0: Tensor
    info: dict[str, Any] = field(default_factory=dict)
    test: Objective | None = None


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
        return Problem(obj, flat.flatten(), {"n_params": flat.numel, "module": module}, test)


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
        return Problem(obj, w0.to(device, dtype), {"n_params": n, "eigenvalues": lam.tolist()})
