"""Curvature kernels: Hessian- and Gauss-Newton-vector products, parameter JVP/VJP and
per-sample input-output Jacobians, over an :class:`~harness.kernels.objective.Objective`.

Every kernel is a pure function of explicit parameters ``theta``; it runs on the device and
in the dtype of ``theta`` and walks the data in the objective's chunks.

Hessian-vector product, ``H v = d/de grad L(theta + e v) |_{e=0}``, three strategies:

* ``"double_backward_reused"`` (default): the gradient graph of every chunk is built once
  per ``theta`` and each product is one extra backward pass through it (the trick of
  PyHessian, Yao et al. 2020, arXiv 1912.07145). Fastest for repeated products at one
  ``theta`` (Lanczos); holds every chunk's graph in memory.
* ``"double_backward"``: a fresh gradient graph per chunk and product; memory bounded by one
  chunk.
* ``"forward_over_reverse"``: ``torch.func.jvp`` of ``torch.func.jacrev`` of the chunk loss;
  memory bounded by one chunk. (``jvp`` over ``torch.func.grad`` of ``F.mse_loss`` with mean
  reduction raises "ZeroTensors are immutable" in torch 2.13, pytorch issue 123996;
  ``jacrev`` does not.)

Gauss-Newton product (the positive semi-definite part of the Hessian of a convex loss,
MacDonald, Valmadre & Lucey 2023, arXiv 2305.14683, Sec. 3):
``G v = sum_c (n_c/n) J_c^T (grad^2_f l_c) J_c v`` with ``J_c`` the Jacobian of the outputs
of chunk ``c`` with respect to ``theta``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.func import jacrev, jvp, vjp, vmap

from .objective import ModelFn, Objective
from .operators import LinearOperator

__all__ = [
    "HVP_STRATEGIES",
    "hessian_operator",
    "hvp",
    "gauss_newton_operator",
    "param_jvp",
    "param_vjp",
    "input_jacobians",
]

HVP_STRATEGIES = ("double_backward_reused", "double_backward", "forward_over_reverse")


def _check_strategy(strategy: str) -> None:
    if strategy not in HVP_STRATEGIES:
        raise ValueError(f"unknown HVP strategy {strategy!r}; expected one of {HVP_STRATEGIES}")


def _double_backward_reused(obj: Objective, theta: Tensor) -> tuple[Callable[[Tensor], Tensor], Tensor, Tensor]:
    t = theta.detach().requires_grad_(True)
    grads, loss = [], torch.zeros((), dtype=theta.dtype, device=theta.device)
    for x, y, w in obj.chunks():
        loss_c = obj.chunk_loss(t, x, y, w)
        (g_c,) = torch.autograd.grad(loss_c, t, create_graph=True)
        grads.append(g_c)
        loss += loss_c.detach()
    gradient = sum(g.detach() for g in grads)
    if obj.sharded:  # one reduction: the gradient with the loss appended
        both = obj.allreduce(torch.cat([gradient, loss.reshape(1)]))
        gradient, loss = both[:-1], both[-1]

    def matvec(v: Tensor) -> Tensor:
        out = torch.zeros_like(v)
        for g_c in grads:
            (hv,) = torch.autograd.grad(g_c, t, grad_outputs=v, retain_graph=True)
            out += hv
        return obj.allreduce(out)

    return matvec, loss, gradient


def _double_backward(obj: Objective, theta: Tensor) -> Callable[[Tensor], Tensor]:
    def matvec(v: Tensor) -> Tensor:
        t = theta.detach().requires_grad_(True)
        out = torch.zeros_like(v)
        for x, y, w in obj.chunks():
            (g_c,) = torch.autograd.grad(obj.chunk_loss(t, x, y, w), t, create_graph=True)
            (hv,) = torch.autograd.grad(g_c, t, grad_outputs=v)
            out += hv
        return obj.allreduce(out)

    return matvec


def _forward_over_reverse(obj: Objective, theta: Tensor) -> Callable[[Tensor], Tensor]:
    theta = theta.detach()

    def matvec(v: Tensor) -> Tensor:
        out = torch.zeros_like(v)
        for x, y, w in obj.chunks():
            g_c = jacrev(lambda t: obj.chunk_loss(t, x, y, w))
            out += jvp(g_c, (theta,), (v,))[1]
        return obj.allreduce(out)

    return matvec


def hessian_operator(obj: Objective, theta: Tensor, strategy: str = "double_backward_reused") -> LinearOperator:
    """The Hessian ``grad^2 L(theta)`` as a :class:`LinearOperator`.

    With ``strategy="double_backward_reused"`` the operator also carries ``.loss`` and
    ``.gradient``, ``L(theta)`` and ``grad L(theta)``, computed on the way at no extra cost
    (a training step that needs the gradient at the same ``theta`` can take them from here;
    :class:`~harness.measures.StepContext` does). Otherwise both are ``None``.
    """
    _check_strategy(strategy)
    loss = gradient = None
    if strategy == "double_backward_reused":
        matvec, loss, gradient = _double_backward_reused(obj, theta)
    elif strategy == "double_backward":
        matvec = _double_backward(obj, theta)
    else:
        matvec = _forward_over_reverse(obj, theta)
    op = LinearOperator(matvec, theta.numel(), theta.dtype, theta.device, name="hessian")
    op.loss, op.gradient = loss, gradient
    return op


def hvp(obj: Objective, theta: Tensor, v: Tensor, strategy: str = "double_backward") -> Tensor:
    """One Hessian-vector product ``grad^2 L(theta) v``."""
    return hessian_operator(obj, theta, strategy) @ v


def gauss_newton_operator(obj: Objective, theta: Tensor) -> LinearOperator:
    """The Gauss-Newton matrix ``G = sum_c (n_c/n) J_c^T grad^2_f l_c J_c`` as an operator.

    The output-space Hessian of the loss is applied by forward-over-reverse on the outputs
    (cheap: its size is batch x outputs), the Jacobian by ``jvp`` and its transpose by a
    ``vjp`` whose linearisation is built once per chunk and reused across products.
    """
    theta = theta.detach()
    pieces = []
    for x, y, w in obj.chunks():
        f_c = (lambda xx: lambda t: obj.model(t, xx))(x)
        out, vjp_fn = vjp(f_c, theta)
        loss_c = (lambda yy, ww: lambda o: ww * obj.loss(o, yy))(y, w)
        pieces.append((f_c, out.detach(), vjp_fn, loss_c))

    def matvec(v: Tensor) -> Tensor:
        total = torch.zeros_like(v)
        for f_c, out, vjp_fn, loss_c in pieces:
            jv = jvp(f_c, (theta,), (v,))[1]
            h_jv = jvp(jacrev(loss_c), (out,), (jv,))[1]
            total += vjp_fn(h_jv)[0]
        return obj.allreduce(total)

    return LinearOperator(matvec, theta.numel(), theta.dtype, theta.device, name="gauss_newton")


def param_jvp(model: ModelFn, theta: Tensor, inputs: Tensor, v: Tensor) -> Tensor:
    """``J v``: the directional derivative of the outputs ``f(inputs; theta)`` along ``v``."""
    return jvp(lambda t: model(t, inputs), (theta.detach(),), (v,))[1]


def param_vjp(model: ModelFn, theta: Tensor, inputs: Tensor, u: Tensor) -> Tensor:
    """``J^T u``: the outputs' cotangent ``u`` pulled back to parameter space."""
    _, vjp_fn = vjp(lambda t: model(t, inputs), theta.detach())
    return vjp_fn(u)[0]


def input_jacobians(model: ModelFn, theta: Tensor, inputs: Tensor, method: str = "backward",
                    chunk_size: int | None = None) -> Tensor:
    """Per-sample input-output Jacobians ``D_x f(x_i; theta)``, shape ``(n, *out, *in)``.

    ``method="backward"``: one backward pass per output coordinate through the batch sum,
    ``d/dx_i sum_j f_k(x_j) = D_x f_k(x_i)`` (valid when examples do not interact, i.e. no
    batch statistics); ``method="vmap"``: ``vmap(jacrev)`` over the examples. Both walk the
    data in chunks of ``chunk_size`` examples.
    """
    theta = theta.detach()
    n = inputs.shape[0]
    size = n if not chunk_size else min(chunk_size, n)
    parts = []
    for start in range(0, n, size):
        x = inputs[start:start + size]
        if method == "vmap":
            f1 = lambda xi: model(theta, xi.unsqueeze(0)).squeeze(0)
            parts.append(vmap(jacrev(f1))(x))
        elif method == "backward":
            xr = x.detach().requires_grad_(True)
            out = model(theta, xr)
            flat = out.reshape(out.shape[0], -1)
            rows = []
            for k in range(flat.shape[1]):
                (gk,) = torch.autograd.grad(flat[:, k].sum(), xr, retain_graph=k + 1 < flat.shape[1])
                rows.append(gk)
            jac = torch.stack(rows, dim=1)
            parts.append(jac.reshape(out.shape[0], *out.shape[1:], *x.shape[1:]))
        else:
            raise ValueError(f"unknown Jacobian method {method!r}; expected 'backward' or 'vmap'")
    return torch.cat(parts)
