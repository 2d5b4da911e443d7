"""Input-output Jacobian measures of the Hessian-Jacobian ansatz (MacDonald, Valmadre & Lucey,
arXiv 2305.14683)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Literal

import torch
from torch import Tensor

from ..kernels.ansatz import (chain_rule_error, max_jacobian_operator_norm, mean_sq_jacobian_norm, pairwise_lipschitz,
                              trace_inequality_ratio, trace_inequality_sums)
from ..errors import UnsupportedError
from ..options import positive
from . import MEASURES, Measurement, StepContext

__all__ = ["JacobianNorm", "JacobianOperatorNorm", "PairwiseLipschitz", "ChainRuleError", "JacobianTraceRatio", "over_shards"]


def _inputs(ctx: StepContext, which: str, memory: dict) -> Tensor:
    """The training inputs, the held-out inputs, or seeded Gaussian off-data inputs."""
    obj = ctx.problem.objective
    if which == "train":
        return obj.inputs
    if which == "test":
        if ctx.problem.test is None:
            raise UnsupportedError("inputs = 'test' needs a problem with a held-out set (n_test > 0)")
        return ctx.problem.test.inputs
    if "random" not in memory:  # fixed for the whole case; a shard takes its rows of the whole set's
        g = torch.Generator().manual_seed(40_000)
        x = torch.randn((obj.n_total or obj.n, *obj.inputs.shape[1:]), generator=g, dtype=torch.float64)
        x = x[obj.offset:obj.offset + obj.n]
        memory["random"] = x.to(device=obj.inputs.device, dtype=obj.inputs.dtype)
    return memory["random"]


def over_shards(obj, value: float, n: int, how: str) -> float:
    """A per-example statistic over ``n`` examples of one shard combined over the shards: ``"mean"``
    (the shards' sums, reduced, over the total) or ``"max"``; ``value`` itself when the data is
    all here."""
    if not obj.sharded:
        return value
    if how == "max":
        return float(obj.allreduce_max(torch.tensor([value], dtype=torch.float64, device=obj.inputs.device))[0])
    if how != "mean":  # pairs of examples across shards, say: no reduction gives the whole set's value
        raise UnsupportedError(f"this measure ({how} over the examples) cannot be combined over data-parallel shards")
    total = obj.allreduce(torch.tensor([value * n], dtype=torch.float64, device=obj.inputs.device))
    return float(total[0]) / obj.n_total


@dataclass(frozen=True)
class _JacobianMeasure:
    """Options shared by the input-output Jacobian measures; ``quantity`` is the
    :mod:`harness.kernels.ansatz` function ``(model, theta, inputs, method, chunk_size) -> float``."""

    quantity: ClassVar[Callable[..., float]]
    over_shards: ClassVar[str] = "mean"  # a data-parallel run's combination of the shards' values
    inputs: Literal["train", "test", "random"] = "train"
    method: Literal["vmap", "backward"] = "vmap"
    chunk_size: int | None = field(default=None, metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if not ctx.problem.objective.inputs.is_floating_point():  # token ids, say: no derivative in x
            raise UnsupportedError(f"input-output Jacobians need floating-point inputs; this problem's inputs are "
                                   f"{ctx.problem.objective.inputs.dtype} (e.g. token ids)")
        x = _inputs(ctx, self.inputs, memory)
        value = type(self).quantity(ctx.problem.objective.model, ctx.theta, x, self.method, self.chunk_size)
        if self.inputs == "test":  # the held-out set is whole in every rank
            return Measurement(value)
        return Measurement(over_shards(ctx.problem.objective, value, x.shape[0], type(self).over_shards))


@MEASURES.register("jacobian_norm")
@dataclass(frozen=True)
class JacobianNorm(_JacobianMeasure):
    """``J_F = (1/n) sum_i ||D_x f(x_i)||_F^2`` over the training inputs (or ``"test"`` or
    ``"random"`` off-data Gaussian inputs), MacDonald, Valmadre & Lucey, arXiv 2305.14683."""

    quantity = staticmethod(mean_sq_jacobian_norm)


@MEASURES.register("jacobian_operator_norm")
@dataclass(frozen=True)
class JacobianOperatorNorm(_JacobianMeasure):
    """``max_i ||D_x f(x_i)||_2`` over the inputs: the sample maximum of the Jacobian's operator
    norm, the Lipschitz-type norm of MacDonald, Valmadre & Lucey's bounds (arXiv 2305.14683)."""

    quantity = staticmethod(max_jacobian_operator_norm)
    over_shards = "max"


@MEASURES.register("pairwise_lipschitz")
@dataclass(frozen=True)
class PairwiseLipschitz(_JacobianMeasure):
    """``max_{i != j} ||f(x_i) - f(x_j)|| / ||x_i - x_j||`` over the inputs: the data's own
    Lipschitz estimate on their support (no derivative), for the operator norm to be read against."""

    quantity = staticmethod(pairwise_lipschitz)
    over_shards = "pairs"  # not shardable (harness.run.distributed refuses it)


@MEASURES.register("chain_rule_error")
@dataclass(frozen=True)
class ChainRuleError(_JacobianMeasure):
    """(H1) of :mod:`harness.kernels.ansatz`: worst relative error of ``D_x f = D_{z_1} f W_1``."""

    quantity = staticmethod(chain_rule_error)
    over_shards = "max"


@MEASURES.register("jacobian_trace_ratio")
@dataclass(frozen=True)
class JacobianTraceRatio(_JacobianMeasure):
    """(H3) of :mod:`harness.kernels.ansatz`: the trace inequality's ratio, at most 1."""

    quantity = staticmethod(trace_inequality_ratio)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        obj = ctx.problem.objective
        if not obj.sharded or self.inputs == "test":
            return super().__call__(ctx, memory)
        x = _inputs(ctx, self.inputs, memory)  # a ratio of two sums over the examples: each reduced
        sums = obj.allreduce(torch.stack(trace_inequality_sums(obj.model, ctx.theta, x, self.method, self.chunk_size)))
        return Measurement(trace_inequality_ratio(obj.model, ctx.theta, x, self.method, self.chunk_size,
                                                  sums=(sums[0], sums[1])))
