import math

import numpy as np
import pytest

from harness.spec.checks import CHECKS, Approx, Ge, Gt, Interval, Le, Lt, Reaches, Target
from harness.errors import SuiteError

const = lambda t: t.value  # noqa: E731  (resolves constant targets only)


def test_approx_margin_is_the_distance_to_the_nearest_edge():
    inside, outside = Approx(Target(1.0), rtol=0.1).evaluate(1.05, const), Approx(Target(1.0), rtol=0.1).evaluate(1.2, const)
    assert inside.passed and inside.margin == pytest.approx(0.05) and inside.limits == pytest.approx((0.9, 1.1))
    assert not outside.passed and outside.margin == pytest.approx(-0.1)


def test_interval_tolerance_is_written_as_a_closed_range():
    out = Interval(0.9, 1.15).evaluate(1.0, const)
    assert out.tolerance == "[0.9, 1.15]"


def test_interval_margin_is_the_distance_to_the_nearest_edge():
    out = Interval(0.9, 1.15).evaluate(1.0, const)
    assert out.passed and out.margin == pytest.approx(0.1)
    assert Interval(0.9, 1.15).evaluate(0.85, const).margin < 0


def test_strict_bounds_refuse_equality():
    one = Target(1.0)
    assert Le(one).evaluate(1.0, const).passed and not Lt(one).evaluate(1.0, const).passed
    assert Ge(one).evaluate(1.0, const).passed and not Gt(one).evaluate(1.0, const).passed
    assert Le(one).evaluate(0.5, const).limits == (None, 1.0) and Ge(one).evaluate(2.0, const).limits == (1.0, None)


def test_predicted_bound_is_resolved_for_the_case():
    out = Le(Target(predict="gd_edge")).evaluate(5.0, lambda t: 2.0 / 0.3)
    assert out.passed and out.margin == pytest.approx(2.0 / 0.3 - 5.0)


def test_reaches_counts_steps_from_the_window_start():
    c = Reaches(threshold=1.0, within=1000)
    steps, values = np.array([100, 200, 400]), np.array([0.1, 0.5, 1.2])
    assert c.steps_to_reach(steps, values, 100) == 300 and c.evaluate(300, const).passed
    assert not c.evaluate(1200, const).passed
    assert c.steps_to_reach(steps, np.zeros(3), 100) != c.steps_to_reach(steps, np.zeros(3), 100)  # NaN: never
    assert c.evaluate(math.nan, const).passed is False
    below = Reaches(threshold=0.2, within=10, direction="below")
    assert below.steps_to_reach(steps, np.array([0.5, 0.1, 0.0]), 100) == 100


@pytest.mark.parametrize("kind, keys, path", [
    ("approx", {"rtol": 0.1}, "e.target"),
    ("approx", {"target": Target(1.0)}, "e.rtol"),
    ("interval", {}, "e.interval"),
    ("le", {}, "e.bound"),
    ("reaches", {"threshold": 1.0}, "e.within"),
    ("interval", {"interval": (0.0, 1.0), "bound": Target(1.0)}, "e.bound"),  # a key the check never reads
])
def test_each_kind_names_the_key_it_misses_or_does_not_use(kind, keys, path):
    with pytest.raises(SuiteError) as err:
        CHECKS[kind].from_keys(keys, "f.toml", "e")
    assert err.value.key == path


def test_every_kind_is_one_registered_class():
    assert set(CHECKS) == {"approx", "interval", "le", "ge", "lt", "gt", "reaches"}
    assert all(CHECKS[k].kind == k for k in CHECKS)
