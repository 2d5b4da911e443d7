import torch
from torch.func import grad

from conftest import tiny_problem


def _whole_and_chunked(device):
    """``(value, gradient)`` of one problem evaluated whole and in unequal chunks."""
    whole, theta = tiny_problem(device, chunk_size=None)
    chunked, _ = tiny_problem(device, chunk_size=5)  # 24 = 5+5+5+5+4: unequal chunks
    return whole.value_and_grad(theta), chunked.value_and_grad(theta)


def test_loss_value_does_not_depend_on_chunking(device):
    (v1, _), (v2, _) = _whole_and_chunked(device)
    torch.testing.assert_close(v1, v2, rtol=1e-13, atol=0)


def test_gradient_does_not_depend_on_chunking(device):
    (_, g1), (_, g2) = _whole_and_chunked(device)
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
