"""The object every curvature kernel works on: a model, a loss and a fixed data set.

Parameters are one flat vector ``theta`` so that Lanczos vectors, optimiser updates and
torch.func transforms all act on the same tensor.  :class:`FlatModule` adapts any
``nn.Module`` to the form ``f(theta, X)`` through ``torch.func.functional_call``.

The full-batch loss is ``L(theta) = (1/n) sum_i l(f(x_i; theta), y_i)``.  The loss function
given to :class:`Objective` must be a *mean over the examples of its batch*; the objective
evaluates it on chunks of at most ``chunk_size`` examples and weights chunk ``c`` by
``n_c / n``, so every kernel sees the same ``L`` whatever the chunking (Cohen et al. 2021,
arXiv 2103.00065, compute the sharpness of exactly this loss on a fixed set of examples).

Data parallel: an objective may hold one *shard* of the data (``n_total`` examples in all, this
process ``n`` of them) with a ``reduce`` that sums a tensor over the processes
(:mod:`harness.run.distributed`: one ``all_reduce``). Chunks are then weighted ``n_c / n_total``
and every full-batch quantity (the loss, the gradient, each Hessian or Gauss-Newton product) is
the local sum reduced once, so each process holds the same ``L``, ``grad L`` and ``H v`` as one
process with all the data, to round-off; unequal shards are weighted by their size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["Objective", "FlatModule", "ModelFn", "LossFn"]

ModelFn = Callable[[Tensor, Tensor], Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]


class FlatModule:
    """``f(theta, X)`` for an ``nn.Module`` whose parameters are packed into one vector.

    The module's train/eval mode is the caller's: it is recorded, never switched.
    Buffers (for example BatchNorm statistics) are passed through unchanged.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.buffers = dict(module.named_buffers())
        self.training = module.training

    @property
    def numel(self) -> int:
        return sum(self.numels)

    def flatten(self) -> Tensor:
        """The module's current parameters as one detached vector."""
        params = dict(self.module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, theta: Tensor) -> dict[str, Tensor]:
        """Views of ``theta`` shaped like the module's parameters."""
        out, i = {}, 0
        for name, shape, k in zip(self.names, self.shapes, self.numels):
            out[name] = theta[i : i + k].view(shape)
            i += k
        return out

    def __call__(self, theta: Tensor, inputs: Tensor) -> Tensor:
        return functional_call(self.module, (self.unflatten(theta), self.buffers), (inputs,))


@dataclass(frozen=True)
class Objective:
    """Full-batch loss ``L(theta) = (1/n) sum_i l(f(x_i; theta), y_i)`` over fixed data.

    Args:
        model: ``f(theta, X) -> outputs`` with the batch on the first axis.
        loss: ``l(outputs, targets) -> scalar``, the *mean* over the batch's examples.
        inputs, targets: the data set, on the device and in the dtype of the run.
        chunk_size: examples per chunk (``None``: the whole set at once). Memory of every
            kernel is bounded by one chunk's graph, except where a strategy says it reuses
            the graphs of all chunks.
        n_total: the examples of all shards together, when ``inputs`` is one shard of them
            (``None``: the data set is all here).
        reduce: ``t -> sum of t over the shards' processes`` (``None``: the identity).
        reduce_max: ``t -> elementwise max of t over the shards' processes`` (``None``: the identity).
        offset: where this shard's examples start in the whole data set.
    """

    model: ModelFn
    loss: LossFn
    inputs: Tensor
    targets: Tensor
    chunk_size: int | None = None
    n_total: int | None = None
    reduce: Callable[[Tensor], Tensor] | None = None
    reduce_max: Callable[[Tensor], Tensor] | None = None
    offset: int = 0  # the index of this shard's first example in the whole data set

    @property
    def n(self) -> int:
        """The examples held here (one shard's, in a data-parallel run)."""
        return int(self.inputs.shape[0])

    @property
    def sharded(self) -> bool:
        return self.reduce is not None

    def allreduce(self, t: Tensor) -> Tensor:
        """``t`` summed over the shards (``t`` itself when the data is all here)."""
        return t if self.reduce is None else self.reduce(t)

    def allreduce_max(self, t: Tensor) -> Tensor:
        """The elementwise maximum of ``t`` over the shards (``t`` itself when the data is all here)."""
        return t if self.reduce_max is None else self.reduce_max(t)

    def chunks(self) -> Iterator[tuple[Tensor, Tensor, float]]:
        """``(X_c, Y_c, n_c / n_total)`` for each chunk of the data held here."""
        n, total = self.n, self.n_total or self.n
        size = n if not self.chunk_size else min(self.chunk_size, n)
        for start in range(0, n, max(size, 1)):
            stop = min(start + size, n)
            yield self.inputs[start:stop], self.targets[start:stop], (stop - start) / total

    @property
    def n_chunks(self) -> int:
        size = self.n if not self.chunk_size else min(self.chunk_size, self.n)
        return math.ceil(self.n / size)

    def chunk_loss(self, theta: Tensor, inputs: Tensor, targets: Tensor, weight: float) -> Tensor:
        """``(n_c / n) * mean_c l(f(x; theta), y)``: one chunk's share of ``L``."""
        return weight * self.loss(self.model(theta, inputs), targets)

    def subset(self, fraction: float, seed: int = 0) -> "Objective":
        """The same objective on a seeded random ``fraction`` of the examples (at least one)."""
        if self.sharded:
            raise ValueError("a data-parallel (sharded) objective has no random subset: each process holds "
                             "different examples")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        m = max(1, round(fraction * self.n))
        idx = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed))[:m].to(self.inputs.device)
        return Objective(self.model, self.loss, self.inputs[idx], self.targets[idx], self.chunk_size)

    def value(self, theta: Tensor) -> Tensor:
        """``L(theta)`` as a 0-d tensor (no graph)."""
        with torch.no_grad():
            return self.allreduce(sum(self.chunk_loss(theta, x, y, w) for x, y, w in self.chunks()))

    def value_and_grad(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``(L(theta), grad L(theta))``, both detached, chunk by chunk."""
        t = theta.detach().requires_grad_(True)
        total = torch.zeros((), dtype=theta.dtype, device=theta.device)
        g = torch.zeros_like(theta)
        for x, y, w in self.chunks():
            loss_c = self.chunk_loss(t, x, y, w)
            (g_c,) = torch.autograd.grad(loss_c, t)
            g += g_c
            total += loss_c.detach()
        if self.sharded:  # one reduction: the gradient with the loss appended
            both = self.allreduce(torch.cat([g, total.reshape(1)]))
            return both[-1], both[:-1]
        return total, g
