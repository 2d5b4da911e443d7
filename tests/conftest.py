import pytest
import torch

from harness import FlatModule, Objective
from harness.kernels.losses import mse

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


def pytest_addoption(parser):
    parser.addoption("--perf", action="store_true", default=False,
                     help="run the pytest-benchmark micro-benchmarks (tests marked 'perf'); off by default")


def pytest_configure(config):
    config.addinivalue_line("markers", "perf: a pytest-benchmark micro-benchmark (run with --perf)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--perf"):
        return
    skip = pytest.mark.skip(reason="micro-benchmark: run with --perf")
    for item in items:
        if "perf" in item.keywords:
            item.add_marker(skip)


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["torch_cuda"] = torch.version.cuda
    machine_info["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    machine_info["torch_threads"] = torch.get_num_threads()
