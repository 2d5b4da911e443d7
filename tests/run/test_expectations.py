import dataclasses

import pytest

from harness import load_suite
from harness.run.events import event_step
from harness.run.expectations import evaluate
from harness.spec.types import Window
from suite_text import VALID, write


def trajectories(lam, loss):
    return {"lambda_max": {"steps": [s for s, _ in lam], "values": [v for _, v in lam]},
            "loss": {"steps": list(range(len(loss))), "values": loss}}


@pytest.fixture
def suite(tmp_path):
    return load_suite(write(tmp_path))


def test_ratio_to_prediction_uses_the_case_hyper_parameters(suite):
    e = suite.expectations[0]  # max of lambda_max / (2/lr) <= 0.9
    traj = trajectories([(0, 4.0), (10, 8.0)], [1.0] * 61)
    ok = evaluate(suite, e, traj, {"lr": 0.1})   # 8 / 20 = 0.4
    bad = evaluate(suite, e, traj, {"lr": 0.2})  # 8 / 10 = 0.8 ... passes; lr 0.25 -> 1.0 fails
    worse = evaluate(suite, e, traj, {"lr": 0.25})
    assert ok.passed and ok.measured == pytest.approx(0.4) and ok.predicted == pytest.approx(20)
    assert bad.passed and bad.measured == pytest.approx(0.8)
    assert not worse.passed and worse.margin == pytest.approx(0.9 - 1.0) and "outside" in worse.message


def test_a_window_anchors_on_the_start():
    assert Window("start", 10, 20).bounds(100) == (10, 30)


def test_a_window_anchors_on_the_end():
    assert Window("end", 0, None, 0.5).bounds(100) == (50, 100)
    assert Window("end", 10, 20).bounds(100) == (70, 90)


def test_a_window_anchors_on_an_event():
    assert Window("my_event", 5, 10).bounds(100, {"my_event": 40}) == (45, 55)


def test_a_window_ends_at_its_until_event():
    assert Window("start", 0, None, None, "stop").bounds(100, {"stop": 30}) == (0, 30)


LOW_LOSS_AT_3 = [1.0, 0.5, 0.6, 1e-4, 5e-5, 1e-5]  # loss <= 1e-3 first at step 3, after a rise at step 2


def test_an_event_happens_at_the_first_step_its_condition_holds(suite):
    traj = trajectories([(0, 1.0)], LOW_LOSS_AT_3)
    assert event_step(suite.events["low_loss"], traj, {}) == 3


def test_an_event_window_starts_at_the_event(suite):
    e = suite.expectations[2]  # frac_increasing of loss after loss <= 1e-3
    traj = trajectories([(0, 1.0)], LOW_LOSS_AT_3)
    v = evaluate(suite, e, traj, {"lr": 0.1})
    assert v.passed and v.window == (3, 60)  # the increase at step 2 lies before the event


def test_an_event_that_never_happens_fails_its_expectation(suite):
    e = suite.expectations[2]  # frac_increasing of loss after loss <= 1e-3
    never = evaluate(suite, e, trajectories([(0, 1.0)], [1.0, 0.9]), {"lr": 0.1})
    assert not never.passed and "never happened" in never.message


def test_reaches_reports_steps_to_threshold(suite):
    e = suite.expectations[1]
    v = evaluate(suite, e, trajectories([(0, 1.0)], [1.0, 0.1, 1e-4]), {"lr": 0.1})
    assert v.passed and v.measured == 2
    late = dataclasses.replace(e, check=dataclasses.replace(e.check, within=1))
    assert not evaluate(suite, late, trajectories([(0, 1.0)], [1.0, 0.1, 1e-4]), {"lr": 0.1}).passed


def test_divergence_fails_every_expectation_with_a_message(suite):
    traj = trajectories([(0, 1.0)], [1.0, float("inf")])
    for e in suite.expectations:
        v = evaluate(suite, e, traj, {"lr": 0.1}, divergence="the run diverged at step 1")
        assert not v.passed and v.message == "the run diverged at step 1"


def test_unconverged_measurement_in_window_fails(suite):
    traj = trajectories([(0, 4.0), (10, float("nan"))], [1.0] * 61)
    v = evaluate(suite, suite.expectations[0], traj, {"lr": 0.1})
    assert not v.passed and "non-finite" in v.message and "10" in v.message


def test_device_overrides_change_the_verdict(tmp_path):
    s = load_suite(write(tmp_path, VALID.replace("bound = 0.9", "bound = 0.9\non = { cuda = { bound = 0.3 } }")))
    traj = trajectories([(0, 4.0), (10, 8.0)], [1.0] * 61)
    assert evaluate(s, s.expectations[0], traj, {"lr": 0.1}, device="cpu").passed
    assert not evaluate(s, s.expectations[0], traj, {"lr": 0.1}, device="cuda").passed
