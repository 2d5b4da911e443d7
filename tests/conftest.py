import pytest
import torch

from harness import FlatModule, Objective
from harness.losses import mse

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA is not available on this machine")])]


def tiny_problem(device="cpu", seed=0, n=24, d=4, width=6, k=3, act=torch.nn.Tanh, loss=mse, chunk_size=None,
                 dtype=torch.float64):
    """A fresh random tiny MLP regression problem in float64 (new inputs for every seed)."""
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64).to(device, dtype)
    y = torch.randn(n, k, generator=g, dtype=torch.float64).to(device, dtype)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, width), act(), torch.nn.Linear(width, k)).to(device, dtype)
    flat = FlatModule(net)
    return Objective(flat, loss, x, y, chunk_size), flat.flatten()


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
