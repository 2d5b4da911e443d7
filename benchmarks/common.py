"""Fixed, seeded benchmark inputs (never change once published; add new ones instead).

The two reference models of issue 5: a 77k-parameter tanh MLP and a 21k-parameter ReLU CNN,
2000 samples, MSE (Cohen et al.'s convention).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from harness import FlatModule, Objective
from harness.kernels.losses import mse

N_SAMPLES = 2000
REPEAT = 5  # timed repetitions of a ratio benchmark (the CI quick check sets 1)


def cuda_or_skip(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device")  # asv shows the row as skipped


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reference_problem(model: str, device: str, dtype=torch.float32):
    """``(objective, theta, v)``: the reference model, its data and a fixed direction."""
    g = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)
    if model == "mlp":
        net = nn.Sequential(nn.Linear(32, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 10))
        x = torch.randn(N_SAMPLES, 32, generator=g)
    elif model == "cnn":
        net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Flatten(), nn.Linear(32 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))
        x = torch.randn(N_SAMPLES, 1, 16, 16, generator=g)
    else:
        raise ValueError(model)
    y = torch.randn(N_SAMPLES, 10, generator=g)
    net = net.to(device=device, dtype=dtype)
    flat = FlatModule(net)
    obj = Objective(flat, mse, x.to(device, dtype), y.to(device, dtype))
    theta = flat.flatten()
    v = torch.randn(theta.shape, generator=g).to(device, dtype)
    return obj, theta, v


def jacobian_peak_bytes(model: str, method: str, chunk_size: int | None = None) -> float:
    """Bytes the peak resident set grows by while one ``input_jacobians`` call (128 examples)
    runs, measured in a fresh process (Linux: the peak is reset through
    ``/proc/self/clear_refs`` after a warm-up call on two examples, so one-time allocations do
    not count and no freed memory of an earlier call is reused); NaN where unavailable."""
    import subprocess
    import sys

    code = ("from benchmarks.common import _jacobian_peak; "
            f"print(_jacobian_peak({model!r}, {method!r}, {chunk_size!r}))")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("nan")


def _jacobian_peak(model: str, method: str, chunk_size: int | None) -> float:
    from harness import input_jacobians

    torch.set_num_threads(1)
    obj, theta, _ = reference_problem(model, "cpu")
    x = obj.inputs[:128]
    input_jacobians(obj.model, theta, x[:2], method, chunk_size=chunk_size)

    def field(name):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(name))

    try:
        base = field("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return float("nan")
    input_jacobians(obj.model, theta, x, method, chunk_size=chunk_size)
    return float(field("VmHWM") - base)


def gd_trajectory(obj, theta, lr: float, steps: int):
    """``steps + 1`` iterates of full-batch GD from ``theta`` (for warm-start benchmarks)."""
    out = [theta]
    for _ in range(steps):
        out.append(out[-1] - lr * obj.value_and_grad(out[-1])[1])
    return out


def paired_ratio(fn, reference, device: str, repeat: int | None = None) -> float:
    """Median over ``2 * repeat + 1`` rounds of ``time(fn) / time(reference)``, the two timed
    back to back in alternating order: a shared machine's load drifts over seconds, and a
    ratio of two medians taken one after the other moves with it (1.1 to 1.9 for the same
    HVP here), a median of paired ratios much less (1.41 to 1.46)."""
    repeat = REPEAT if repeat is None else repeat

    def timed(f):
        t0 = time.perf_counter()
        f()
        sync(device)
        return time.perf_counter() - t0

    fn(), reference()
    sync(device)
    ratios = []
    for i in range(2 * repeat + 1):
        if i % 2:
            a = timed(reference)
            b = timed(fn)
        else:
            b = timed(fn)
            a = timed(reference)
        ratios.append(b / a)
    return sorted(ratios)[len(ratios) // 2]


def seconds(fn, device: str, repeat: int | None = None) -> float:
    """Median wall time of ``fn`` (synchronised on CUDA), for ratio benchmarks."""
    repeat = REPEAT if repeat is None else repeat
    fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
