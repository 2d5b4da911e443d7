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


def test_registry_and_docstrings():
    for name in PREDICTIONS:
        fn = PREDICTIONS[name]
        assert "arXiv" in fn.__doc__, f"{name} must cite its paper"
    assert arguments("heavy_ball_edge") == ["lr", "momentum"]
