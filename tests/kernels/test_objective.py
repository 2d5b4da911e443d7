import torch
from torch.func import grad

from conftest import tiny_problem


def test_value_and_grad_do_not_depend_on_chunking(device):
    whole, theta = tiny_problem(device, chunk_size=None)
    chunked, _ = tiny_problem(device, chunk_size=5)  # 24 = 5+5+5+5+4: unequal chunks
    v1, g1 = whole.value_and_grad(theta)
    v2, g2 = chunked.value_and_grad(theta)
    torch.testing.assert_close(v1, v2, rtol=1e-13, atol=0)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)


def test_grad_matches_torch_func_on_the_full_batch(device):
    obj, theta = tiny_problem(device, seed=3, chunk_size=7)
    ref = grad(lambda t: obj.loss(obj.model(t, obj.inputs), obj.targets))(theta)
    torch.testing.assert_close(obj.value_and_grad(theta)[1], ref, rtol=1e-12, atol=1e-14)


def test_flat_module_round_trip():
    obj, theta = tiny_problem()
    params = obj.model.unflatten(theta)
    assert [p.shape for p in params.values()] == list(obj.model.shapes)
    assert torch.equal(torch.cat([p.reshape(-1) for p in params.values()]), theta)
