import numpy as np
import pytest

from harness import PREDICTIONS, gd_edge, heavy_ball_edge, nesterov_edge
from harness.predictions import arguments


def spectral_radius(coeffs):
    return max(abs(np.roots(coeffs)))


@pytest.mark.parametrize("lr", [0.05, 0.3])
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_edges_are_where_the_characteristic_roots_leave_the_unit_disc(lr, beta):
    # independent computation: numpy roots of each iteration's characteristic polynomial
    polys = {
        "heavy_ball": lambda lam: [1, -(1 + beta - lr * lam), beta],
        "nesterov": lambda lam: [1, -(1 - lr * lam) * (1 + beta), (1 - lr * lam) * beta],
    }
    for name, edge in [("heavy_ball", heavy_ball_edge(lr, beta)), ("nesterov", nesterov_edge(lr, beta))]:
        assert spectral_radius(polys[name](0.999 * edge)) < 1
        assert spectral_radius(polys[name](1.001 * edge)) > 1
        assert spectral_radius(polys[name](edge)) == pytest.approx(1, abs=1e-6)
    assert abs(1 - lr * 0.999 * gd_edge(lr)) < 1 < abs(1 - lr * 1.001 * gd_edge(lr))


def test_momentum_zero_reduces_to_gd():
    assert heavy_ball_edge(0.2, 0.0) == gd_edge(0.2) == nesterov_edge(0.2, 0.0)


def _own_predictions():
    return [name for name in PREDICTIONS if PREDICTIONS[name].__module__.startswith("harness.")]


def test_the_registry_holds_the_harness_predictions():
    own = _own_predictions()
    assert "gd_edge" in own and "sam_edge" in own  # (other tests' plugins may have registered theirs)


def test_every_harness_prediction_cites_its_paper():
    for name in _own_predictions():
        fn = PREDICTIONS[name]
        assert fn.__doc__ and "arXiv" in fn.__doc__, f"{name} must cite its paper"


def test_arguments_names_a_predictions_parameters():
    assert arguments("heavy_ball_edge") == ["lr", "momentum"]


@pytest.mark.parametrize("lr,rho,g", [(0.2, 0.02, 0.14), (0.01, 0.1, 1e-3), (0.5, 0.005, 2.0)])
def test_sam_edge_is_the_positive_root_of_the_stability_quadratic(lr, rho, g):
    from harness.predictions import sam_edge
    # independent computation: lr*lam + lr*rho*lam^2/g = 2, solved by numpy
    roots = np.roots([lr * rho / g, lr, -2.0])
    assert sam_edge(lr, rho, g) == pytest.approx(max(roots.real), rel=1e-12)
    assert sam_edge(lr, rho, g) < gd_edge(lr)
    assert sam_edge(lr, rho * 1e-12, g) == pytest.approx(gd_edge(lr), rel=1e-6)  # rho -> 0: the GD edge
    assert sam_edge(lr, rho, 2 * g) > sam_edge(lr, rho, g)  # increasing in ||g||


def test_sam_unnormalized_edge_is_the_positive_root_of_its_quadratic():
    from harness.predictions import sam_unnormalized_edge
    lr, rho = 0.2, 0.02
    assert sam_unnormalized_edge(lr, rho) == pytest.approx(max(np.roots([lr * rho, lr, -2.0]).real), rel=1e-12)


def test_on_the_sam_orbit_the_edge_equals_the_curvature():
    from harness.predictions import sam_edge, sam_orbit_grad_norm
    lr, rho = 0.2, 0.02
    for lam in (1.0, 4.0, 9.0):  # on the 2-cycle the SAM edge equals the curvature exactly
        assert sam_edge(lr, rho, sam_orbit_grad_norm(lr, rho, lam)) == pytest.approx(lam, rel=1e-12)


def test_sam_edge_literal_formula_agrees_where_it_is_well_conditioned():
    from harness.predictions import sam_edge, sam_unnormalized_edge
    import math
    for lr, rho, g in [(0.2, 0.02, 0.14), (0.1, 0.05, 0.01)]:
        literal = (g / (2 * rho)) * (math.sqrt(1 + 8 * rho / (lr * g)) - 1)  # as printed in the paper's code
        assert sam_edge(lr, rho, g) == pytest.approx(literal, rel=1e-12)
        assert sam_unnormalized_edge(lr, rho) == pytest.approx((math.sqrt(1 + 8 * rho / lr) - 1) / (2 * rho), rel=1e-12)
    assert sam_edge(0.2, 0.02, 0.0) == 0.0


def test_dmf_entropy_rank_at_step_is_that_of_the_recursions_modes():
    from harness.predictions.factorization import dmf_entropy_rank_at_step
    spectrum = [10.0, 4.0, 1.5, 0.5]
    # at step 0 every mode is alpha^N: n equal singular values have entropy rank n
    assert dmf_entropy_rank_at_step(lr=0.01, depth=3, alpha=0.1, spectrum=spectrum, n=20, steps=0) == pytest.approx(20)
    # long after: the spectrum itself, up to the zero modes (each below alpha^N = 1e-6)
    p = np.array(spectrum) / sum(spectrum)
    late = dmf_entropy_rank_at_step(lr=0.01, depth=2, alpha=1e-3, spectrum=spectrum, n=6, steps=20_000)
    assert late == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-5)


@pytest.mark.parametrize("lr", [0.001, 0.01])
@pytest.mark.parametrize("beta1", [0.0, 0.5, 0.9])
def test_adam_edge_is_where_frozen_preconditioner_adam_turns_unstable(lr, beta1):
    """Adam with P fixed is EMA momentum m <- b m + (1 - b) g, w <- w - lr P^-1 m; on a 1-D
    quadratic of preconditioned curvature lam (numpy's roots, an independent computation)."""
    from harness.predictions.stability import adam_edge

    edge = adam_edge(lr, [beta1, 0.999])
    poly = lambda lam: [1, -(1 + beta1 - lr * (1 - beta1) * lam), beta1]
    assert spectral_radius(poly(0.999 * edge)) < 1 < spectral_radius(poly(1.001 * edge))
    if beta1 == 0.9:
        assert edge == pytest.approx(38 / lr)  # the paper's 38/eta (arXiv 2207.14484, abstract)
    if beta1 == 0.0:
        assert edge == pytest.approx(gd_edge(lr))


@pytest.mark.parametrize("eps, k", [(0.1, 10), (0.3, 4), (0.02, 2)])
def test_smoothed_cross_entropy_minimum_is_the_least_smoothed_loss(eps, k):
    """H(q) is the loss at p = q (logits ln q) and no other logits go below it."""
    import torch

    from harness.kernels.losses import smoothed_cross_entropy

    floor = PREDICTIONS["smoothed_cross_entropy_minimum"](label_smoothing=eps, n_outputs=k)
    q = torch.full((1, k), eps / k, dtype=torch.float64)
    q[0, 0] += 1 - eps
    loss = smoothed_cross_entropy(eps)
    assert float(loss(torch.log(q), torch.tensor([0]))) == pytest.approx(floor, rel=1e-12)
    g = torch.Generator().manual_seed(0)
    others = [float(loss(torch.log(q) + 0.3 * torch.randn(1, k, generator=g, dtype=torch.float64), torch.tensor([0])))
              for _ in range(20)]
    assert min(others) > floor


def test_smoothed_cross_entropy_minimum_is_zero_without_smoothing_and_refuses_eps_one():
    assert PREDICTIONS["smoothed_cross_entropy_minimum"](label_smoothing=0.0, n_outputs=10) == 0.0
    with pytest.raises(ValueError):
        PREDICTIONS["smoothed_cross_entropy_minimum"](label_smoothing=1.0, n_outputs=10)
