"""Counted cost of the curvature kernels against Pearlmutter's count, exactly: a kernel that
starts doing more arithmetic (a rebuilt graph, a recomputed gradient) turns a test red without
timing anything."""

import pytest
import torch
from torch import nn

from harness import GD, FlatModule, Objective, hessian_operator
from harness.measures import LambdaMax, StepContext
from harness.training.problems import Problem
from harness.kernels.cost import count_flops, flops_in_gradients
from harness.kernels.losses import mse

WIDTHS = (5, 7, 6, 3)
N = 11


def _mlp(chunk_size=None, n=N):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        layers += [nn.Linear(a, b)] + ([nn.Tanh()] if i < len(WIDTHS) - 2 else [])
    net = nn.Sequential(*layers).double()
    x = torch.randn(n, WIDTHS[0], generator=g, dtype=torch.float64)
    y = torch.randn(n, WIDTHS[-1], generator=g, dtype=torch.float64)
    flat = FlatModule(net)
    theta = flat.flatten()
    return Objective(flat, mse, x, y, chunk_size), theta, torch.randn(theta.shape, generator=g, dtype=torch.float64)


def _pearlmutter(n=N):
    """``(gradient, hvp)`` FLOPs of the module docstring of :mod:`harness.kernels.cost`."""
    p = [a * b for a, b in zip(WIDTHS[:-1], WIDTHS[1:])]
    s = sum(p[1:])
    return 2 * n * (2 * p[0] + 3 * s), 2 * n * (2 * p[0] + 6 * s)


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_gradient_costs_pearlmutters_count(chunk_size):
    obj, theta, _ = _mlp(chunk_size)
    gradient, _ = _pearlmutter()
    assert count_flops(lambda: obj.value_and_grad(theta))[1] == gradient


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_reused_graph_build_costs_one_gradient(chunk_size):
    obj, theta, _ = _mlp(chunk_size)
    gradient, _ = _pearlmutter()
    _, build = count_flops(lambda: hessian_operator(obj, theta))
    assert build == gradient  # the graph build is the gradient, no more products


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_reused_graph_hvp_costs_pearlmutters_count(chunk_size):
    obj, theta, v = _mlp(chunk_size)
    gradient, hvp = _pearlmutter()
    op = hessian_operator(obj, theta)
    assert count_flops(lambda: op @ v)[1] == hvp
    assert flops_in_gradients(lambda: op @ v, obj, theta)[1] == pytest.approx(hvp / gradient, rel=1e-12)


def test_forward_over_reverse_also_pays_for_the_gradient():
    obj, theta, v = _mlp()
    gradient, hvp = _pearlmutter()
    assert count_flops(lambda: hessian_operator(obj, theta, "forward_over_reverse") @ v)[1] >= gradient + hvp


def test_a_measured_step_pays_one_gradient_plus_its_lanczos_products():
    """The step's gradient and lambda_max share one graph: the step costs one gradient, the
    Lanczos products, and Lanczos's own vector work (less than a gradient here), never a
    second gradient or a graph per product."""
    obj, theta, _ = _mlp(n=200)
    gradient, hvp = _pearlmutter(200)
    ctx = StepContext(0, theta, Problem(obj, theta), GD(lr=0.1), None, True)

    def step():  # in the runner's order: the loss (divergence check), the measures, the update
        ctx.loss
        m = LambdaMax(tol=1e-6)(ctx, {})
        ctx.value_and_grad(theta)
        return m

    m, flops = count_flops(step)
    assert m.aux["converged"]
    products = gradient + m.aux["n_matvecs"] * hvp
    assert products <= flops < products + gradient
