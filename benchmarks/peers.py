"""Side by side with the peers, in one run: ``python -m benchmarks.peers``.

PyHessian (Yao et al. 2020, arXiv 1912.07145; power iteration, relative-change stop) and
curvlinops (``HessianLinearOperator`` + ``scipy.sparse.linalg.eigsh``) against this package's
kernels on the two reference models of ``benchmarks/common.py``, one CPU thread, float32, the
same data and criterion (curvlinops gets ``MSELoss(reduction="sum")``, whose Hessian is ``2n``
times ours; its eigenvalue is divided by ``2n``). Each row: time as a multiple of one full-batch
gradient measured in the same process, its counted FLOPs (products and convolutions,
:mod:`harness.kernels.cost`) as a multiple of the gradient's, Hessian-vector products used, the error
of the eigenvalue against a float64 Lanczos reference (residual 1e-9), and the relative Ritz
residual ``||H y - lam y|| / lam`` of the returned pair, recomputed with this package's HVP.

Peers are an optional extra (``pip install -e '.[peers]'``); a missing peer is reported, not fatal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness import count_flops, hessian_operator, lanczos, top_eigenpairs
from harness.kernels.sharpness import AUTO_PRESAMPLE
from harness.kernels.losses import mse

from .common import reference_problem

TOL = 1e-3


def _seconds(fn, repeat: int):
    """``(median seconds, result, flops)``: the untimed warm-up call is the one counted."""
    out, flops = count_flops(fn)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out, flops


def _residual(obj, theta, lam: float, y: torch.Tensor) -> float:
    y = y / y.norm()
    return float((hessian_operator(obj, theta) @ y - lam * y).norm()) / abs(lam)


def _ours(obj, theta, presample: float | None = 0.0):
    """``presample=None``: the default path (presampled on :data:`AUTO_PRESAMPLE` here)."""
    res = top_eigenpairs(lambda o: hessian_operator(o, theta), obj, tol=TOL, presample=presample)
    fraction = AUTO_PRESAMPLE if presample is None else presample
    return res.top(), res.eigenvectors[:, 0], res.n_matvecs + fraction * res.presample_matvecs


def _pyhessian(obj, theta):
    import importlib

    ph = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class)

    count = [0]
    real = ph.hessian_vector_product

    def counted(*args):
        count[0] += 1
        return real(*args)

    ph.hessian_vector_product = counted
    try:
        torch.manual_seed(0)
        net = obj.model.module
        h = ph.hessian(net, mse, data=(obj.inputs, obj.targets), cuda=False)
        vals, vecs = h.eigenvalues(tol=TOL, maxIter=1000)
    finally:
        ph.hessian_vector_product = real
    y = torch.cat([v.reshape(-1) for v in vecs[0]])
    return float(vals[0]), y, count[0]


def _curvlinops(obj, theta):
    from curvlinops import HessianLinearOperator
    from scipy.sparse.linalg import LinearOperator, eigsh

    net = obj.model.module
    H = HessianLinearOperator(net, torch.nn.MSELoss(reduction="sum"), [p for p in net.parameters()],
                              [(obj.inputs, obj.targets)], check_deterministic=False).to_scipy()
    count = [0]

    def mv(v):
        count[0] += 1
        return H @ v

    op = LinearOperator(H.shape, matvec=mv, dtype=np.float32)
    vals, vecs = eigsh(op, k=1, which="LA", tol=TOL, v0=np.random.default_rng(0).standard_normal(H.shape[0]))
    scale = 2 * obj.n
    return float(vals[0]) / scale, torch.as_tensor(vecs[:, 0], dtype=theta.dtype), count[0]


def _hvp_rows(obj, theta, v, repeat):
    """``{method: (seconds, flops)}`` of one HVP; ``None`` for a peer that is not installed."""
    rows = {}
    op = hessian_operator(obj, theta)
    fns = {"theory-harness, reused graph": lambda: op @ v,
           "theory-harness, forward-over-reverse": lambda: hessian_operator(obj, theta, "forward_over_reverse") @ v}
    try:
        from curvlinops import HessianLinearOperator

        net = obj.model.module
        H = HessianLinearOperator(net, torch.nn.MSELoss(reduction="sum"), list(net.parameters()),
                                  [(obj.inputs, obj.targets)], check_deterministic=False)
        fns["curvlinops H @ v"] = lambda: H @ v
    except ImportError:
        rows["curvlinops H @ v"] = None
    for name, fn in fns.items():
        rows[name] = _seconds(fn, repeat)[::2]
    return rows


def run(models, repeat: int):
    torch.set_num_threads(1)
    lines = ["| model | method | time (gradients) | FLOPs (gradients) | HVPs | error of lambda_max | relative residual |",
             "|---|---|---|---|---|---|---|"]
    hvp_lines = ["| model | one HVP | time (gradients) | FLOPs (gradients) |", "|---|---|---|---|"]
    for model in models:
        obj, theta, v = reference_problem(model, "cpu")
        obj64, theta64, _ = reference_problem(model, "cpu", torch.float64)
        ref = lanczos(hessian_operator(obj64, theta64), tol=1e-9, max_iter=400).top()
        grad, _, grad_flops = _seconds(lambda: obj.value_and_grad(theta), repeat)
        methods = {
            "theory-harness top_eigenpairs, default (presampled 1/16)": lambda: _ours(obj, theta, None),
            "theory-harness Lanczos, cold Gaussian start": lambda: _ours(obj, theta),
            "theory-harness Lanczos, presampled 1/8": lambda: _ours(obj, theta, 0.125),
            "PyHessian power iteration": lambda: _pyhessian(obj, theta),
            "curvlinops + scipy eigsh": lambda: _curvlinops(obj, theta),
        }
        for name, fn in methods.items():
            try:
                t, (lam, y, n), flops = _seconds(fn, repeat)
            except ImportError as exc:
                lines.append(f"| {model} | {name} | not installed ({exc.name}) | | | | |")
                continue
            lines.append(f"| {model} | {name} | {t / grad:.1f} | {flops / grad_flops:.1f} | {n:g} | "
                         f"{abs(lam - ref) / ref:.1e} | {_residual(obj, theta, lam, y.to(theta.dtype)):.1e} |")
        for name, row in _hvp_rows(obj, theta, v, repeat).items():
            cells = "not installed | " if row is None else f"{row[0] / grad:.2f} | {row[1] / grad_flops:.2f}"
            hvp_lines.append(f"| {model} | {name} | {cells} |")
    return "\n".join(lines) + "\n\n" + "\n".join(hvp_lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, 1 thread, float32, lambda_max to tol {TOL:g}")
    print(run(args.models, args.repeat))


if __name__ == "__main__":
    main()
