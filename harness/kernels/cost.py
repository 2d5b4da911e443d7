"""Arithmetic cost of a kernel, counted rather than timed.

``count_flops`` counts the floating-point operations of the matrix products and convolutions a
call dispatches (``torch.utils.flop_counter.FlopCounterMode``: ``2 m n k`` for an ``(m, k) @
(k, n)`` product, the same rule for each convolution); elementwise work is not counted. The
count is exact and the same on every machine, so a kernel that starts doing more arithmetic
shows as a changed number, not as timing noise on a shared runner.

Pearlmutter's count (Pearlmutter 1994, "Fast exact multiplication by the Hessian", Neural
Computation 6(1)). For a dense network with layer sizes ``d_0 .. d_L``, ``P_l = d_{l-1} d_l``,
``S = sum_{l>=2} P_l`` and ``n`` examples, a gradient costs ``2 n (2 P_1 + 3 S)`` FLOPs (the
forward products, the weight gradients, and the input gradients below the top layer). A
Hessian-vector product through the stored gradient graph differentiates every one of those
products once more (the R-operator: ``a_{l-1} W_l`` becomes ``R(a_{l-1}) W_l + a_{l-1} V_l``,
one product only for ``l = 1`` where the data has no tangent, and likewise each backward
product), so it costs ``2 n (2 P_1 + 6 S)``: between 1 (one layer) and 2 gradients, 1.926 for the
reference MLP of the benchmarks (32-256-256-10). The harness's reused-graph product counts
exactly that (``tests/test_cost.py``); forward-over-reverse also recomputes the gradient.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from .objective import Objective

__all__ = ["count_flops", "flops_in_gradients"]


def count_flops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``(fn(), flops)``: the call's result and the FLOPs of the products and convolutions it
    dispatched (forward and backward, any device)."""
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return out, int(counter.get_total_flops())


def flops_in_gradients(fn: Callable[[], Any], obj: Objective, theta: Tensor) -> tuple[Any, float]:
    """``(fn(), flops(fn) / flops(grad L(theta)))``: the cost of ``fn`` in full-batch gradients
    of ``obj`` at ``theta``, counted."""
    _, gradient = count_flops(lambda: obj.value_and_grad(theta))
    out, flops = count_flops(fn)
    return out, flops / gradient
