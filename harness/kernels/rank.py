"""Effective ranks of a matrix from its singular values (Chou, Gieshoff, Maly & Rauhut,
arXiv 2011.13772, measure the implicit bias towards low rank by ``||W||_* / ||W||_op``; the
Roy-Vetterli entropy rank is recorded beside it, since the paper's exact definition could not
be retrieved, shared/theory/dynamics.md Sec. 1.2)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["effective_rank", "entropy_rank"]


def effective_rank(sv: Tensor) -> float:
    """``r(W) = ||W||_* / ||W||_op = sum_i sigma_i / sigma_1``."""
    return float(sv.sum() / sv.max())


def entropy_rank(sv: Tensor) -> float:
    """``erank(W) = exp(-sum_i p_i ln p_i)``, ``p_i = sigma_i / sum_j sigma_j`` (Roy & Vetterli 2007)."""
    p = sv / sv.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))
