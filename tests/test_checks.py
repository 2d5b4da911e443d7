import math

from harness.checks import approx, ge, gt, interval, le, lt, reaches


def test_checks_and_signed_margins():
    assert approx(1.05, 1.0, rtol=0.1)[:2] == (True, approx(1.05, 1.0, rtol=0.1)[1]) and approx(1.05, 1.0, rtol=0.1)[1] > 0
    assert approx(1.2, 1.0, rtol=0.1)[0] is False and approx(1.2, 1.0, rtol=0.1)[1] < 0
    assert interval(1.0, 0.9, 1.15) == (True, interval(1.0, 0.9, 1.15)[1], "[0.9, 1.15]")
    assert interval(0.85, 0.9, 1.15)[1] < 0
    assert le(1.0, 1.0)[0] and not lt(1.0, 1.0)[0]
    assert ge(1.0, 1.0)[0] and not gt(1.0, 1.0)[0]
    assert reaches(300, 1000)[0] and not reaches(1200, 1000)[0]
    assert reaches(math.nan, 1000)[0] is False
