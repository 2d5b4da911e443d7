"""Events (mirrors harness/run/events.py): the first measured crossing, a predicted step
rounded as the event says, and the watcher that fires them during a run."""

import pytest

from harness.run.events import EventWatcher, event_step
from harness.spec.types import EventSpec


def measured(measure="loss", above=None, below=None, predict=None, args=None, compare=None, name="ev"):
    return EventSpec(name, measure, predict, args or {}, compare, above, below)


def predicted(predict="gd_edge", args=None, rounding="ceil", name="ev"):
    return EventSpec(name, None, predict, args or {}, None, None, None, rounding)


def traj(values, steps=None, name="loss"):
    return {name: {"steps": list(steps if steps is not None else range(len(values))), "values": list(values),
                   "aux": {}}}


def test_measured_event_above_is_the_first_step_at_or_over_the_level():
    assert event_step(measured(above=1.0), traj([0.1, 0.5, 1.2, 0.8, 2.0]), {}) == 2


def test_measured_event_below_is_the_first_step_at_or_under_the_level():
    assert event_step(measured(below=0.1), traj([1.0, 0.5, 0.2, 0.05, 0.01]), {}) == 3


def test_measured_event_counts_a_value_equal_to_the_level():
    assert event_step(measured(above=1.0), traj([0.5, 1.0, 2.0]), {}) == 1


def test_measured_event_returns_the_step_not_the_index():
    assert event_step(measured(below=0.1), traj([1.0, 0.5, 0.01], steps=[0, 10, 20]), {}) == 20


def test_measured_event_skips_nan_values():
    assert event_step(measured(above=1.0), traj([0.5, float("nan"), 3.0]), {}) == 2


def test_measured_event_that_never_happens_is_none():
    assert event_step(measured(below=0.1), traj([1.0, 0.5, 0.2]), {}) is None


def test_measured_event_on_an_empty_trajectory_is_none():
    assert event_step(measured(above=0.0), traj([]), {}) is None


def test_ratio_event_compares_the_measure_to_its_prediction():
    """lambda_max / (2 / lr) >= 0.9 with lr = 0.1: the edge is 20, crossed at 19 (step 30)."""
    ev = measured("lambda_max", above=0.9, predict="gd_edge", compare="ratio")
    assert event_step(ev, traj([4.0, 10.0, 17.0, 19.0], steps=[0, 10, 20, 30], name="lambda_max"),
                      {"lr": 0.1}) == 30


def test_difference_event_compares_the_measure_to_its_prediction():
    """lambda_max - 2/lr >= 0 with lr = 0.5: the edge is 4."""
    ev = measured("lambda_max", above=0.0, predict="gd_edge", compare="difference")
    assert event_step(ev, traj([3.0, 3.9, 4.0, 5.0], name="lambda_max"), {"lr": 0.5}) == 2


def test_predicted_event_rounds_up_by_default():
    assert event_step(predicted(args={"lr": 0.3}), {}, {}) == 7  # 2 / 0.3 = 6.67


def test_predicted_event_rounds_down_with_floor():
    assert event_step(predicted(args={"lr": 0.3}, rounding="floor"), {}, {}) == 6


def test_predicted_event_rounds_to_nearest():
    assert event_step(predicted(args={"lr": 0.3}, rounding="nearest"), {}, {}) == 7


def test_predicted_event_nearest_rounds_down_below_the_half():
    assert event_step(predicted(args={"lr": 0.45}, rounding="nearest"), {}, {}) == 4  # 4.44


@pytest.mark.parametrize("rounding", ["ceil", "floor", "nearest"])
def test_predicted_event_at_an_integer_step_is_that_step(rounding):
    assert event_step(predicted(args={"lr": 0.25}, rounding=rounding), {}, {}) == 8


def test_predicted_event_binds_its_arguments_from_the_case():
    assert event_step(predicted(), {}, {"lr": 0.3}) == 7


def test_predicted_event_args_override_the_case():
    assert event_step(predicted(args={"lr": 0.5}), {}, {"lr": 0.3}) == 4


def test_predicted_event_returns_an_int():
    assert type(event_step(predicted(args={"lr": 0.3}), {}, {})) is int


def test_predicted_event_with_a_non_finite_prediction_is_none():
    assert event_step(predicted(args={"lr": 0.0}), {}, {}) is None  # 2 / 0


def fill(watcher, values, every=1, name="loss"):
    """Run the watcher over steps 0..len(values)-1, recording ``name`` every ``every`` steps."""
    t = traj([], name=name)
    for step, v in enumerate(values):
        if step % every == 0:
            t[name]["steps"].append(step)
            t[name]["values"].append(v)
        watcher.update(step, t)
    return watcher


def test_watcher_fires_at_the_first_crossing_step():
    w = fill(EventWatcher({"low": measured(below=0.1, name="low")}, {"low"}, {}), [1.0, 0.5, 0.05, 0.5, 0.01])
    assert w.fired == {"low": 2}


def test_watcher_fires_only_once():
    w = EventWatcher({"low": measured(below=0.1, name="low")}, {"low"}, {})
    fill(w, [1.0, 0.05, 0.5, 0.01])
    assert w.fired["low"] == 1


def test_watcher_does_not_fire_without_a_crossing():
    w = fill(EventWatcher({"low": measured(below=0.1, name="low")}, {"low"}, {}), [1.0, 0.5, 0.2])
    assert w.fired == {}


def test_watcher_fires_at_a_step_the_measure_was_recorded():
    """Recorded every 2 steps: the value under 0.1 at step 3 is never seen; step 4's is."""
    w = fill(EventWatcher({"low": measured(below=0.1, name="low")}, {"low"}, {}), [1.0, 0.5, 0.5, 0.05, 0.05, 0.5],
             every=2)
    assert w.fired == {"low": 4}


def test_watcher_ignores_events_it_was_not_asked_to_watch():
    events = {"low": measured(below=0.1, name="low"), "high": measured(above=0.9, name="high")}
    w = fill(EventWatcher(events, {"low"}, {}), [1.0, 0.05])
    assert w.fired == {"low": 1}


def test_watcher_fires_a_predicted_event_at_its_step():
    w = EventWatcher({"edge": predicted(args={"lr": 0.3}, name="edge")}, {"edge"}, {})
    fill(w, [1.0] * 12)
    assert w.fired == {"edge": 7}


def test_watcher_never_fires_a_predicted_event_without_a_finite_step():
    w = EventWatcher({"edge": predicted(args={"lr": 0.0}, name="edge")}, {"edge"}, {})
    fill(w, [1.0] * 5)
    assert w.fired == {}


def test_watcher_binds_a_ratio_event_from_the_case():
    """lambda_max / (2 / lr) >= 1 with lr = 0.5 (edge 4): first recorded at or over 4 at step 3."""
    ev = measured("lambda_max", above=1.0, predict="gd_edge", compare="ratio", name="edge")
    w = fill(EventWatcher({"edge": ev}, {"edge"}, {"lr": 0.5}), [1.0, 2.0, 3.9, 4.2, 5.0], name="lambda_max")
    assert w.fired == {"edge": 3}


def test_watcher_agrees_with_event_step_after_the_run():
    values = [1.0, 0.7, 0.3, 0.09, 0.2, 0.01]
    ev = measured(below=0.1, name="low")
    w = fill(EventWatcher({"low": ev}, {"low"}, {}), values)
    assert w.fired["low"] == event_step(ev, traj(values), {})
