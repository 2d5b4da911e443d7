import numpy as np
import pytest

from harness.spec.statistics import Statistic, StatisticError, parse_statistic


SIX = np.arange(6), np.array([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])  # steps, values


def test_named_statistics():
    s, v = SIX
    assert parse_statistic("median")(s, v) == 3.5
    assert parse_statistic("p90")(s, v) == pytest.approx(np.percentile(v, 90))
    assert parse_statistic("frac_increasing")(s, v) == pytest.approx(3 / 5)
    assert parse_statistic("frac_decreasing")(s, v) == pytest.approx(2 / 5)
    assert parse_statistic("last_over_first")(s, v) == 2.0


def test_parametrised_statistics():
    s, v = SIX
    assert parse_statistic({"name": "percentile", "q": 10})(s, v) == pytest.approx(np.percentile(v, 10))
    assert parse_statistic({"name": "fraction_above", "threshold": 3.5})(s, v) == pytest.approx(0.5)


def test_non_finite_values_are_refused_with_their_steps():
    with pytest.raises(StatisticError, match=r"steps 20"):
        Statistic("median")(np.array([10, 20]), np.array([1.0, np.nan]))


def test_too_short_windows_are_refused():
    with pytest.raises(StatisticError, match="at least 2"):
        Statistic("frac_increasing")(np.array([0]), np.array([1.0]))
    with pytest.raises(StatisticError, match="holds 0"):
        Statistic("median")(np.array([], dtype=int), np.array([]))


@pytest.mark.parametrize("bad", ["p101", "average", {"name": "percentile"}, {"name": "percentile", "q": "x"}, 3])
def test_unknown_statistics(bad):
    with pytest.raises(ValueError):
        parse_statistic(bad)


def test_spearman_with_another_series():
    s = parse_statistic({"name": "spearman", "with": "other"})
    steps = np.arange(5)
    assert s(steps, np.array([1.0, 2, 3, 4, 5]), np.array([10.0, 20, 25, 26, 40])) == pytest.approx(1.0)
    assert s(steps, np.array([1.0, 2, 3, 4, 5]), np.array([5.0, 4, 3, 2, 1])) == pytest.approx(-1.0)
    with pytest.raises(StatisticError, match="constant"):
        s(steps, np.array([1.0, 2, 3, 4, 5]), np.ones(5))
    with pytest.raises(ValueError, match="must name a measure"):
        parse_statistic({"name": "spearman", "with": 3})


ROUTE = np.array([0, 10, 20, 30, 40, 50]), np.array([3.0, 1.0, 1.5, 1.4, 2.0, 1.9])  # steps, values


def test_first_step_statistics_give_the_step_of_the_first_crossing():
    steps, v = ROUTE
    assert parse_statistic({"name": "first_step_above", "threshold": 1.9})(steps, v) == 0.0
    assert parse_statistic({"name": "first_step_below", "threshold": 1.2})(steps, v) == 10.0


def test_first_step_statistics_refuse_a_series_that_never_crosses():
    steps, v = ROUTE
    with pytest.raises(StatisticError, match="never crosses"):
        parse_statistic({"name": "first_step_above", "threshold": 9})(steps, v)


def test_route_statistics():
    steps, v = ROUTE
    assert parse_statistic("max_drop_after_min")(steps, v) == pytest.approx(0.1)
    assert parse_statistic("max_drawdown_after_min")(steps, v) == pytest.approx(0.1)
    assert parse_statistic("max_abs")(steps, -v) == 3.0
    runs = np.array([0.5, 0.01, -0.02, 0.0, 0.3, 0.01])
    assert parse_statistic({"name": "longest_run_within", "threshold": 0.03})(steps, runs) == 20.0


def test_median_drift_tells_a_plateau_from_a_crossing():
    steps = np.arange(40)
    plateau = 1.0 + 0.05 * (-1.0) ** steps  # period-2 oscillation about a flat level
    rising = np.linspace(0.9, 1.1, 40) + 0.05 * (-1.0) ** steps  # straight through 1
    drift = parse_statistic("median_drift")
    assert abs(drift(steps, plateau)) < 1e-12
    assert drift(steps, rising) == pytest.approx(np.median(rising[20:]) / np.median(rising[:20]) - 1)
    assert drift(steps, rising) > 0.09 and drift(steps, rising[::-1]) < -0.09


def test_span_is_the_windows_length_in_steps():
    steps = np.array([3, 7, 12, 40])
    assert parse_statistic("span")(steps, np.ones(4)) == 37.0
    assert parse_statistic("span")(np.array([5]), np.ones(1)) == 0.0
    with pytest.raises(StatisticError):
        parse_statistic("span")(np.array([], dtype=np.int64), np.array([]))
