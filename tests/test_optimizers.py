import numpy as np
import pytest
import torch

from harness import GD, HeavyBall, Nesterov


def quadratic(lam):
    return lambda w: (0.5 * (lam * w * w).sum(), lam * w)


@pytest.mark.parametrize("rule,kwargs", [(GD, {}), (HeavyBall, {"momentum": 0.9}), (Nesterov, {"momentum": 0.7})])
def test_update_rules_match_torch_optim_sgd(rule, kwargs):
    lam = torch.tensor([3.0, 1.0, 0.2], dtype=torch.float64)
    opt = rule(lr=0.1, **kwargs)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    state = opt.init(w)
    p = torch.nn.Parameter(w.clone())
    ref = torch.optim.SGD([p], lr=0.1, momentum=kwargs.get("momentum", 0.0), nesterov=rule is Nesterov)
    for _ in range(25):
        w, state = opt.step(w, state, quadratic(lam))
        ref.zero_grad()
        (0.5 * (lam * p * p).sum()).backward()
        ref.step()
    torch.testing.assert_close(w, p.detach(), rtol=1e-13, atol=1e-15)


def _final(opt, lam, steps=4000):
    w = torch.ones(1, dtype=torch.float64)
    state = opt.init(w)
    for _ in range(steps):
        w, state = opt.step(w, state, quadratic(torch.tensor([lam], dtype=torch.float64)))
    return float(w.abs())


@pytest.mark.parametrize("opt,edge", [
    (GD(lr=0.1), 2 / 0.1),
    (HeavyBall(lr=0.1, momentum=0.9), (2 + 2 * 0.9) / 0.1),
    (Nesterov(lr=0.1, momentum=0.9), (2 + 2 * 0.9) / (0.1 * (1 + 2 * 0.9))),
])
def test_stability_edges_of_the_rules(opt, edge):
    assert _final(opt, 0.99 * edge) < 1.0
    assert _final(opt, 1.01 * edge) > 1e3
