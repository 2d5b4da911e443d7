"""The user's optimiser: normalised gradient descent."""

from __future__ import annotations

import torch

__all__ = ["NormalizedGD"]


class NormalizedGD(torch.optim.Optimizer):
    """``theta <- theta - lr * g / ||g||``, ``||g||`` the Euclidean norm of the gradient over every
    parameter of every group (a step of length ``lr`` whatever the gradient's size; no step where
    ``g = 0``)."""

    def __init__(self, params, lr: float = 0.01):
        if lr <= 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return loss
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        if norm == 0.0:
            return loss
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"] / norm)
        return loss
