"""The suite specification types (mirrors harness/spec/types.py): a measure's cadence, a
window's bounds and an expectation's per-device tolerance."""

import dataclasses

import pytest

from harness import load_suite
from harness.spec.checks import Approx, Interval, Target
from harness.spec.types import EventSpec, Expectation, MeasureSpec, Window
from suite_text import VALID, write


def spec(**kwargs):
    return MeasureSpec("m", "loss", None, **kwargs)


def due_steps(s, steps=30, fired=None):
    return [t for t in range(steps + 1) if s.due(t, steps, fired)]


def test_due_every_step_by_default():
    assert due_steps(spec(), steps=5) == [0, 1, 2, 3, 4, 5]


def test_due_every_n_steps():
    assert due_steps(spec(every=10), steps=30) == [0, 10, 20, 30]


def test_due_at_the_last_step_off_the_cadence():
    assert due_steps(spec(every=10), steps=25) == [0, 10, 20, 25]


def test_due_coarsely_before_coarse_until():
    """Every 2 steps before step 6 (so not at 5), then every 5."""
    assert due_steps(spec(every=5, coarse_until=6, coarse_every=2), steps=20) == [0, 2, 4, 10, 15, 20]


def test_due_from_event_never_before_it_fires():
    assert due_steps(spec(every=2, from_event="ev"), steps=10, fired={}) == []


def test_due_from_event_without_fired_events():
    assert not spec(from_event="ev").due(10, 10, None)


def test_due_from_event_counts_from_the_firing_step():
    s = spec(every=3, from_event="ev")
    assert [t for t in range(7, 16) if s.due(t, 15, {"ev": 7})] == [7, 10, 13, 15]


def test_due_from_event_ignores_other_events():
    assert due_steps(spec(every=1, from_event="ev"), steps=5, fired={"other": 0}) == []


def test_due_from_event_is_not_due_before_the_firing_step():
    """The docstring: "only from the step the event fired on". (The runner never asks about a
    step before the firing one, but ``due`` itself answers for any step.)"""
    assert not spec(every=3, from_event="ev").due(4, 15, {"ev": 7})


def test_window_from_start_spans_length_steps_after_the_offset():
    assert Window("start", 10, 20).bounds(100) == (10, 30)


def test_window_from_start_without_length_runs_to_the_end():
    assert Window("start", 10).bounds(100) == (10, 100)


def test_window_fraction_is_a_share_of_the_run():
    assert Window("start", 0, None, 0.25).bounds(100) == (0, 25)


def test_window_from_end_counts_back():
    assert Window("end", 10, 20).bounds(100) == (70, 90)


def test_window_from_end_without_length_starts_at_zero():
    assert Window("end", 10).bounds(100) == (0, 90)


def test_window_from_end_with_fraction():
    assert Window("end", 0, None, 0.5).bounds(100) == (50, 100)


def test_window_anchored_on_an_event():
    assert Window("ev", 5, 10).bounds(100, {"ev": 40}) == (45, 55)


def test_window_anchored_on_an_event_without_length_runs_to_the_end():
    assert Window("ev").bounds(100, {"ev": 40}) == (40, 100)


def test_window_until_an_event_ends_there():
    assert Window("start", 0, None, None, "stop").bounds(100, {"stop": 30}) == (0, 30)


def test_window_until_a_later_event_keeps_its_length():
    assert Window("start", 0, 20, None, "stop").bounds(100, {"stop": 60}) == (0, 20)


def test_window_is_clipped_to_the_run():
    assert Window("start", 90, 50).bounds(100) == (90, 100)


def test_window_from_end_is_clipped_at_zero():
    assert Window("end", 0, 500).bounds(100) == (0, 100)


def test_window_with_a_missing_event_raises():
    with pytest.raises(KeyError):
        Window("ev").bounds(100, {})


def test_window_lists_the_events_it_needs():
    assert Window("ev", until="stop").events() == ["ev", "stop"]


def test_window_on_a_run_anchor_needs_no_event():
    assert Window("end").events() == [] and Window("start").events() == []


def expectation(on):
    return Expectation("e", "lambda_max", Approx(Target(1.0), rtol=1e-6), None, {}, None, None, Window(), on, "")


def test_for_device_applies_the_devices_override():
    cuda = Approx(Target(1.0), rtol=1e-3)
    assert expectation({"cuda": cuda}).for_device("cuda").check is cuda


def test_for_device_keeps_the_other_fields():
    e = expectation({"cuda": Interval(0.9, 1.1)})
    assert dataclasses.replace(e.for_device("cuda"), check=e.check) == e


def test_for_device_without_an_override_is_unchanged():
    e = expectation({"cuda": Approx(Target(1.0), rtol=1e-3)})
    assert e.for_device("cpu") is e


def test_for_device_from_a_suite_file(tmp_path):
    text = VALID.replace('bound = 0.9\n', 'bound = 0.9\non = { cuda = { bound = 0.95 } }\n', 1)
    e = load_suite(write(tmp_path, text)).expectations[0]
    assert e.for_device("cuda").check.bound.value == 0.95
    assert e.for_device("cpu").check.bound.value == 0.9


def test_expectation_kind_is_its_checks_kind():
    assert expectation({}).kind == "approx"


def test_event_without_a_measure_is_predicted():
    assert EventSpec("e", None, "gd_edge", {}, None, None, None).predicted


def test_event_on_a_measure_is_not_predicted():
    assert not EventSpec("e", "loss", None, {}, None, None, 0.1).predicted
