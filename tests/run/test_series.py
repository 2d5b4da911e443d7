"""A measure's series against a prediction (mirrors harness/run/series.py)."""

import math

import numpy as np
import pytest

from harness.run.series import compared_series, predicted_value, prediction_key, resolver, series
from harness.spec.checks import Target


def sam_edge(lr, rho, g):
    """Long & Bartlett's SAM edge, written out: (g / (2 rho)) (sqrt(1 + 8 rho / (lr g)) - 1)."""
    return g / (2 * rho) * (math.sqrt(1 + 8 * rho / (lr * g)) - 1)


def trajectories():
    return {"lambda_max": {"steps": [0, 5, 10, 15, 20], "values": [2.0, 4.0, 8.0, 12.0, 16.0], "aux": {}},
            "grad_norm": {"steps": [0, 10, 20], "values": [1.0, 0.5, 0.25], "aux": {}},
            "other_norm": {"steps": [0, 5, 10, 15, 20], "values": [2.0, 2.0, 2.0, 2.0, 2.0], "aux": {}}}


def test_series_returns_typed_arrays():
    steps, values = series(trajectories(), "grad_norm")
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [0, 10, 20] and values.tolist() == [1.0, 0.5, 0.25]


def test_without_a_prediction_the_series_is_the_measure():
    steps, values, pred = compared_series("lambda_max", None, {}, None, trajectories(), {})
    assert steps.tolist() == [0, 5, 10, 15, 20] and values.tolist() == [2.0, 4.0, 8.0, 12.0, 16.0] and pred is None


def test_ratio_to_a_prediction_bound_from_hyper_parameters():
    _, values, pred = compared_series("lambda_max", "gd_edge", {}, "ratio", trajectories(), {"lr": 0.1})
    assert pred.tolist() == pytest.approx([20.0] * 5, rel=1e-15)
    assert values.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8], rel=1e-14)


def test_difference_to_a_prediction_bound_from_hyper_parameters():
    _, values, _ = compared_series("lambda_max", "gd_edge", {}, "difference", trajectories(), {"lr": 0.25})
    assert values.tolist() == pytest.approx([-6.0, -4.0, 0.0, 4.0, 8.0], rel=1e-14)


def test_fixed_argument_overrides_the_hyper_parameter():
    _, _, pred = compared_series("lambda_max", "gd_edge", {"lr": 0.5}, "ratio", trajectories(), {"lr": 0.1})
    assert pred.tolist() == pytest.approx([4.0] * 5, rel=1e-15)


def test_prediction_from_a_measure_keeps_only_steps_with_that_measure():
    steps, _, _ = compared_series("lambda_max", "sam_edge", {}, "ratio", trajectories(), {"lr": 0.1, "rho": 0.05})
    assert steps.tolist() == [0, 10, 20]


def test_prediction_from_a_measure_uses_its_value_at_the_same_step():
    _, _, pred = compared_series("lambda_max", "sam_edge", {}, "ratio", trajectories(), {"lr": 0.1, "rho": 0.05})
    assert pred.tolist() == pytest.approx([sam_edge(0.1, 0.05, g) for g in (1.0, 0.5, 0.25)], rel=1e-12)


def test_ratio_to_a_prediction_from_a_measure():
    _, values, _ = compared_series("lambda_max", "sam_edge", {}, "ratio", trajectories(), {"lr": 0.1, "rho": 0.05})
    expected = [v / sam_edge(0.1, 0.05, g) for v, g in ((2.0, 1.0), (8.0, 0.5), (16.0, 0.25))]
    assert values.tolist() == pytest.approx(expected, rel=1e-12)


def test_difference_to_a_prediction_from_a_measure():
    _, values, _ = compared_series("lambda_max", "sam_edge", {}, "difference", trajectories(),
                                   {"lr": 0.1, "rho": 0.05})
    expected = [v - sam_edge(0.1, 0.05, g) for v, g in ((2.0, 1.0), (8.0, 0.5), (16.0, 0.25))]
    assert values.tolist() == pytest.approx(expected, rel=1e-12)


def test_argument_named_in_args_reads_another_measure():
    steps, _, pred = compared_series("lambda_max", "sam_edge", {"grad_norm": "other_norm"}, "ratio", trajectories(),
                                     {"lr": 0.1, "rho": 0.05})
    assert steps.tolist() == [0, 5, 10, 15, 20]
    assert pred.tolist() == pytest.approx([sam_edge(0.1, 0.05, 2.0)] * 5, rel=1e-12)


def test_prediction_outside_its_domain_is_nan_at_that_step():
    t = trajectories()
    t["grad_norm"]["values"] = [1.0, -0.1, 0.25]  # 1 + 8 rho / (lr g) < 0: no square root
    _, values, pred = compared_series("lambda_max", "sam_edge", {}, "ratio", t, {"lr": 0.1, "rho": 0.05})
    assert math.isnan(pred[1]) and math.isnan(values[1])
    assert np.isfinite(pred[[0, 2]]).all()


def test_predicted_value_binds_from_args():
    assert predicted_value("gd_edge", {"lr": 0.25}, {}) == 8.0


def test_predicted_value_binds_from_the_case():
    assert predicted_value("heavy_ball_edge", {}, {"lr": 0.1, "momentum": 0.9}) == pytest.approx(38.0, rel=1e-14)


def test_predicted_value_is_nan_outside_the_domain():
    assert math.isnan(predicted_value("gd_edge", {"lr": 0.0}, {}))


def test_resolver_returns_a_constant_as_it_is():
    assert resolver({"lr": 0.1})(Target(value=3.5)) == 3.5


def test_resolver_evaluates_a_predicted_target_from_the_case():
    assert resolver({"lr": 0.1})(Target(predict="gd_edge")) == pytest.approx(20.0, rel=1e-15)


def test_resolver_evaluates_a_predicted_target_with_its_args():
    assert resolver({"lr": 0.1})(Target(predict="gd_edge", args={"lr": 0.5})) == pytest.approx(4.0, rel=1e-15)


def test_prediction_key_without_args():
    assert prediction_key("gd_edge", {}, "lambda_max") == "gd_edge on lambda_max"


def test_prediction_key_lists_sorted_args():
    assert prediction_key("heavy_ball_edge", {"momentum": 0.9, "lr": 0.1}, "lambda_max") == \
        "heavy_ball_edge(lr=0.1, momentum=0.9) on lambda_max"


def test_a_prediction_with_nothing_per_step_is_evaluated_once(monkeypatch):
    from harness.predictions import PREDICTIONS
    calls = []

    def edge(lr):
        calls.append(lr)
        return 2 / lr
    monkeypatch.setitem(PREDICTIONS._items, "gd_edge", edge)
    _, values, pred = compared_series("lambda_max", "gd_edge", {}, "ratio", trajectories(), {"lr": 0.1})
    assert calls == [0.1] and pred.tolist() == pytest.approx([20.0] * 5)
    assert values.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6, 0.8], rel=1e-14)
