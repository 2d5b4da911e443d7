import numpy as np
import pytest

from harness.statistics import Statistic, StatisticError, parse_statistic


def test_named_and_parametrised_statistics():
    s = np.arange(6)
    v = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 6.0])
    assert parse_statistic("median")(s, v) == 3.5
    assert parse_statistic("p90")(s, v) == pytest.approx(np.percentile(v, 90))
    assert parse_statistic({"name": "percentile", "q": 10})(s, v) == pytest.approx(np.percentile(v, 10))
    assert parse_statistic("frac_increasing")(s, v) == pytest.approx(3 / 5)
    assert parse_statistic("frac_decreasing")(s, v) == pytest.approx(2 / 5)
    assert parse_statistic("last_over_first")(s, v) == 2.0
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
