"""pytest-benchmark micro-benchmarks of the kernels on the reference models; each asserts the
value it timed. Off in the normal run; a perf job runs them with ``--perf`` (README)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import reference_problem  # noqa: E402
from harness import hessian_operator, input_jacobians, lanczos  # noqa: E402

pytestmark = pytest.mark.perf

MODELS = ["mlp", "cnn"]


@pytest.fixture(params=MODELS)
def reference(request):
    torch.set_num_threads(1)
    return reference_problem(request.param, "cpu", torch.float64)


def test_gradient(benchmark, reference):
    obj, theta, _ = reference
    loss, grad = benchmark(obj.value_and_grad, theta)
    assert torch.isfinite(grad).all() and grad.shape == theta.shape


def test_hvp_reused_graph(benchmark, reference):
    obj, theta, v = reference
    op = hessian_operator(obj, theta, "double_backward_reused")
    hv = benchmark(op.matvec, v)
    ref = hessian_operator(obj, theta, "forward_over_reverse") @ v
    assert float((hv - ref).norm() / ref.norm()) < 1e-10


def test_lambda_max_cold(benchmark, reference):
    obj, theta, _ = reference
    res = benchmark(lambda: lanczos(hessian_operator(obj, theta), tol=1e-3))
    assert res.converged and float(res.relative_residuals[0]) <= 1e-3


def test_input_jacobians_vmap(benchmark, reference):
    obj, theta, _ = reference
    x = obj.inputs[:128]
    jac = benchmark(input_jacobians, obj.model, theta, x, "vmap", 32)
    assert torch.allclose(jac, input_jacobians(obj.model, theta, x, "backward"), rtol=1e-10, atol=1e-12)
