"""A minimal symmetric linear operator: a matrix known only through its products."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["LinearOperator"]


class LinearOperator:
    """``A @ v`` through a matvec closure, counting how many products were taken.

    ``n_matvecs`` is what the harness reports as "HVPs used" by an eigen-solver.
    """

    def __init__(self, matvec: Callable[[Tensor], Tensor], dim: int, dtype: torch.dtype,
                 device: torch.device, name: str = "A"):
        self._matvec = matvec
        self.dim, self.dtype, self.device, self.name = dim, dtype, torch.device(device), name
        self.n_matvecs = 0

    def __matmul__(self, v: Tensor) -> Tensor:
        self.n_matvecs += 1
        return self._matvec(v)

    matvec = __matmul__

    def dense(self) -> Tensor:
        """The full matrix, column by column (tests and tiny models only)."""
        eye = torch.eye(self.dim, dtype=self.dtype, device=self.device)
        return torch.stack([self @ eye[:, j] for j in range(self.dim)], dim=1)
