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


def test_sam_rules_match_their_formulas():
    from harness import SAM, SAMUnnormalized
    lam = torch.tensor([3.0, 1.0], dtype=torch.float64)
    w = torch.tensor([0.5, -1.0], dtype=torch.float64)
    g = lam * w
    w_sam, _ = SAM(lr=0.1, rho=0.05).step(w, (), quadratic(lam))
    torch.testing.assert_close(w_sam, w - 0.1 * lam * (w + 0.05 * g / g.norm()), rtol=1e-14, atol=0)
    w_u, _ = SAMUnnormalized(lr=0.1, rho=0.05).step(w, (), quadratic(lam))
    torch.testing.assert_close(w_u, w - 0.1 * lam * (w + 0.05 * g), rtol=1e-14, atol=0)
    w_eps, _ = SAM(lr=0.1, rho=0.05, eps=1e-5).step(w, (), quadratic(lam))
    torch.testing.assert_close(w_eps, w - 0.1 * lam * (w + 0.05 * g / (g.norm() + 1e-5)), rtol=1e-14, atol=0)


def test_sam_at_a_stationary_point_does_not_divide_by_zero():
    from harness import SAM
    w = torch.zeros(2, dtype=torch.float64)
    out, _ = SAM(lr=0.1, rho=0.05).step(w, (), quadratic(torch.ones(2, dtype=torch.float64)))
    assert torch.equal(out, w)
