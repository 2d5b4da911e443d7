"""Measures of a problem's matrix (deep matrix factorisation): effective ranks, progress along
the target's eigenvectors, error against the target."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import UnsupportedError
from ..options import positive
from ..kernels.factorization import leading_part
from ..kernels.rank import effective_rank, entropy_rank
from . import MEASURES, Measurement, StepContext

__all__ = ["EffectiveRank", "EntropyRank", "ModeProgress", "RelativeError", "EffectiveRankGap", "EstimationError"]


def _matrix(ctx: StepContext) -> Tensor:
    """The problem's matrix at this step's ``theta``, computed once per step for all its measures."""
    if ctx.problem.matrix is None:
        raise UnsupportedError("this measure needs a problem that defines a matrix (e.g. deep_matrix_factorization)")
    if "matrix" not in ctx.cache:
        ctx.cache["matrix"] = ctx.problem.matrix(ctx.theta).detach()
    return ctx.cache["matrix"]


@MEASURES.register("effective_rank")
@dataclass(frozen=True)
class EffectiveRank:
    """``||W||_* / ||W||_op`` of the problem's matrix (arXiv 2011.13772); records the top
    singular values in ``aux["singular_values"]``."""

    record_singular_values: int = field(default=6, metadata={"check": "nonnegative"})

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        sv = torch.linalg.svdvals(_matrix(ctx).detach())
        aux = {"singular_values": sv[: self.record_singular_values].tolist()} if self.record_singular_values else {}
        return Measurement(effective_rank(sv), aux)


@MEASURES.register("entropy_rank")
@dataclass(frozen=True)
class EntropyRank:
    """Roy-Vetterli entropy effective rank of the problem's matrix."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        return Measurement(entropy_rank(torch.linalg.svdvals(_matrix(ctx).detach())))


@MEASURES.register("mode_progress")
@dataclass(frozen=True)
class ModeProgress:
    """``pi_i / lambda_i = v_i^T W v_i / lambda_i``: how far the product has learned the target's
    ``index``-th eigenvalue (1-based, along its eigenvector ``v_i``)."""

    index: int = field(metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "v" not in memory:
            target = ctx.problem.target
            if target is None:
                raise UnsupportedError("mode_progress needs a problem with a target matrix")
            lam, vecs = torch.linalg.eigh(target)
            lam, vecs = lam.flip(0), vecs.flip(1)
            if self.index > len(lam) or float(lam[self.index - 1]) <= 0:
                raise UnsupportedError(f"mode_progress: the target has no positive eigenvalue number {self.index}")
            memory["v"], memory["lam"] = vecs[:, self.index - 1], lam[self.index - 1]
        v = memory["v"]
        return Measurement(float(v @ _matrix(ctx).detach() @ v / memory["lam"]))


@MEASURES.register("relative_error")
@dataclass(frozen=True)
class RelativeError:
    """``||W - A||_F / ||A||_F``: the problem's matrix against its target."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        target = ctx.problem.target
        if target is None:
            raise UnsupportedError("relative_error needs a problem with a target matrix")
        return Measurement(float((_matrix(ctx).detach() - target).norm() / target.norm()))


@MEASURES.register("effective_rank_gap")
@dataclass(frozen=True)
class EffectiveRankGap:
    """``r(W) - r(A)``: the effective rank of the problem's matrix minus its target's."""

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "target" not in memory:
            if ctx.problem.target is None:
                raise UnsupportedError("effective_rank_gap needs a problem with a target matrix")
            memory["target"] = effective_rank(torch.linalg.svdvals(ctx.problem.target))
        return Measurement(effective_rank(torch.linalg.svdvals(_matrix(ctx).detach())) - memory["target"])


@MEASURES.register("estimation_error")
@dataclass(frozen=True)
class EstimationError:
    """``||W - A_r||_F / ||(A + E) - A_r||_F``: how well the product estimates the rank-``r`` part
    ``A_r`` of the noiseless target ``A`` (``Problem.signal``), relative to the noisy matrix
    ``A + E`` it is fitted to (``Problem.target``). Below 1: a better estimate of ``A_r`` than the
    data itself, which is what stopping inside an interval ``I_r`` is for (Chou, Gieshoff, Maly &
    Rauhut, arXiv 2011.13772, abstract: the intervals "can be used as criteria for early stopping")."""

    rank: int = field(metadata=positive)

    def __call__(self, ctx: StepContext, memory: dict) -> Measurement:
        if "a_r" not in memory:
            fitted, signal = ctx.problem.target, ctx.problem.signal
            if fitted is None:
                raise UnsupportedError("estimation_error needs a problem with a target matrix")
            signal = fitted if signal is None else signal
            a_r = leading_part(signal, self.rank)
            scale = float((fitted - a_r).norm())
            if scale <= 1e-12 * float(fitted.norm()):  # zero but for round-off
                raise UnsupportedError(f"estimation_error: the fitted matrix equals its rank-{self.rank} part "
                                       "(a noiseless target of rank <= rank): give the problem noise or a smaller rank")
            memory["a_r"], memory["scale"] = a_r, scale
        return Measurement(float((_matrix(ctx).detach() - memory["a_r"]).norm()) / memory["scale"])
