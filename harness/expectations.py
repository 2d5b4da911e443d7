"""Evaluating a suite's expectations on recorded trajectories.

For each expectation: take the measure's series; if a prediction is named, evaluate it at
every measurement step (arguments bound from the expectation's ``args``, the optimiser's
hyper-parameters and the measures at the same step) and form the ratio (or difference);
cut the window (anchored on the start, the end or an event, optionally ending at an event);
reduce it with the statistic; compare with the check. The result is a :class:`Verdict` that
carries everything a failure table or a comparison across commits needs.

An expectation over a sweep (``[[sweep_expect]]``) computes that per-case statistic for each
case of a group (cases that differ only in the ``across`` axis), aggregates the values
across the axis (Spearman correlation with the axis value, min, max, median, mean) and checks
the aggregate.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .checks import CHECKS, approx_tolerance
from .predictions import PREDICTIONS, arguments
from .statistics import StatisticError, spearman
from .suite import EventSpec, Expectation, Suite

__all__ = ["Verdict", "evaluate", "evaluate_sweep", "compared_series", "event_step", "WindowError",
           "prediction_key", "prediction_series"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one expectation on one case (or one sweep group)."""

    name: str
    passed: bool
    measure: str
    check: str
    statistic: str | None
    measured: float | None
    measured_raw: float | None
    predicted: float | None
    tolerance: str
    margin: float | None
    window: tuple[int, int] | None
    message: str = ""
    last: list[tuple[int, float]] = field(default_factory=list)
    predict: str | None = None
    compare: str | None = None
    per_case: dict[str, float | None] | None = None
    limits: tuple[float | None, float | None] | None = None
    threshold: float | None = None
    prediction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = list(self.window) if self.window else None
        d["last"] = [list(p) for p in self.last]
        d["limits"] = list(self.limits) if self.limits else None
        return d


class WindowError(ValueError):
    """The window cannot be formed (an event it needs never happened)."""


def _series(trajectories: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    t = trajectories[name]
    return np.asarray(t["steps"], dtype=np.int64), np.asarray(t["values"], dtype=np.float64)


def compared_series(measure: str, predict: str | None, args: dict, compare: str | None,
                    trajectories: dict, hyper: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(steps, measure or measure-vs-prediction, prediction)`` at the measure's steps.

    Steps at which a measure the prediction needs was not recorded are dropped.
    """
    steps, values = _series(trajectories, measure)
    if predict is None:
        return steps, values, None
    fn = PREDICTIONS[predict]
    fixed, per_step = {}, {}
    for name in arguments(predict):
        source = args.get(name, name)
        if name in args and not isinstance(source, str):
            fixed[name] = float(source)
        elif name not in args and name in hyper:
            fixed[name] = hyper[name]
        elif name == "step" and name not in args:  # the measurement's own step
            per_step[name] = {s: float(s) for s in steps.tolist()}
        else:  # a measure at the same step: named by args, or the argument's own name
            s, v = _series(trajectories, source)
            per_step[name] = dict(zip(s.tolist(), v.tolist()))
    keep = [i for i, s in enumerate(steps.tolist()) if all(s in m for m in per_step.values())]
    steps, values = steps[keep], values[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        pred = np.array([_safe(fn, {**fixed, **{n: m[s] for n, m in per_step.items()}}) for s in steps.tolist()],
                        dtype=np.float64)
        out = values / pred if compare == "ratio" else values - pred
    return steps, out, pred


def _safe(fn, kwargs: dict) -> float:
    """A prediction at one step; NaN where its arguments are out of its domain (e.g. NaN)."""
    try:
        return float(fn(**kwargs))
    except (ValueError, ZeroDivisionError, OverflowError):
        return math.nan


def predicted_value(predict: str, args: dict, bindings: dict) -> float:
    """A prediction that needs no measure, bound from ``args`` then the case's ``bindings``."""
    kwargs = {n: (float(args[n]) if n in args else bindings[n]) for n in arguments(predict)}
    return _safe(PREDICTIONS[predict], kwargs)


def event_step(event: EventSpec, trajectories: dict, hyper: dict) -> int | None:
    """The first step at which the event's series is ``>= above`` (or ``<= below``); for a
    predicted event, the predicted step rounded as the event says (None if not finite)."""
    if event.predicted:
        at = predicted_value(event.predict, event.args, hyper)
        if not math.isfinite(at):
            return None
        return int({"ceil": math.ceil, "floor": math.floor, "nearest": round}[event.round](at))
    steps, values, _ = compared_series(event.measure, event.predict, event.args, event.compare, trajectories, hyper)
    with np.errstate(invalid="ignore"):
        hit = values >= event.above if event.above is not None else values <= event.below
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None


@dataclass(frozen=True)
class _Windowed:
    steps: np.ndarray
    values: np.ndarray
    raw: np.ndarray
    other: np.ndarray | None
    predicted: float | None
    bounds: tuple[int, int]


def _windowed(suite: Suite, e: Expectation, trajectories: dict, hyper: dict, last_step: int) -> _Windowed:
    events = {}
    for name in e.window.events():
        step = event_step(suite.events[name], trajectories, hyper)
        if step is None:
            raise WindowError(f"event {name!r} never happened, so the window does not exist")
        events[name] = step
    lo, hi = e.window.bounds(last_step, events)
    steps, values, pred = compared_series(e.measure, e.predict, e.args, e.compare, trajectories, hyper)
    raw_steps, raw = _series(trajectories, e.measure)
    raw_by_step = dict(zip(raw_steps.tolist(), raw.tolist()))
    inside = (steps >= lo) & (steps <= hi)
    other = None
    if e.statistic is not None and e.statistic.other is not None:
        o_steps, o_values = _series(trajectories, e.statistic.other)
        o_by_step = dict(zip(o_steps.tolist(), o_values.tolist()))
        inside &= np.isin(steps, o_steps)
        other = np.array([o_by_step[s] for s in steps[inside].tolist()])
    ws = steps[inside]
    predicted = float(np.median(pred[inside])) if pred is not None and inside.any() else None
    return _Windowed(ws, values[inside], np.array([raw_by_step[s] for s in ws.tolist()]), other, predicted, (lo, hi))


def _resolve(value, bindings: dict):
    """A target or bound: a number, or ``(prediction, args)`` evaluated for the case."""
    return predicted_value(*value, bindings) if isinstance(value, tuple) else value


def _check(e: Expectation, x: float, bindings: dict) -> tuple[bool, float, str]:
    if e.check == "approx":
        return CHECKS["approx"](x, _resolve(e.target, bindings), e.rtol, e.atol)
    if e.check == "interval":
        return CHECKS["interval"](x, *e.interval)
    return CHECKS[e.check](x, _resolve(e.bound, bindings))


def _limits(e: Expectation, bindings: dict) -> tuple[float | None, float | None] | None:
    """The accepted region of the checked statistic, ``(low, high)`` (None: unbounded)."""
    if e.check == "approx":
        target = _resolve(e.target, bindings)
        tol = approx_tolerance(target, e.rtol, e.atol)
        return target - tol, target + tol
    if e.check == "interval":
        return tuple(e.interval)
    if e.check in ("le", "lt"):
        return None, _resolve(e.bound, bindings)
    if e.check in ("ge", "gt"):
        return _resolve(e.bound, bindings), None
    return None


def _threshold(e: Expectation) -> float | None:
    """The crossing level of a ``reaches`` check or of a thresholded statistic."""
    if e.check == "reaches":
        return e.threshold
    if e.statistic is not None and e.statistic.name in ("first_step_above", "first_step_below"):
        return e.statistic.param
    return None


def prediction_key(predict: str, args: dict, measure: str) -> str:
    """The name of a prediction series in a record: ``predict``, its fixed arguments and the
    measure it is evaluated on (``"gd_edge on lambda_max"``)."""
    label = predict if not args else f"{predict}(" + ", ".join(f"{k}={args[k]}" for k in sorted(args)) + ")"
    return f"{label} on {measure}"


def prediction_series(expectations, trajectories: dict, hyper: dict) -> dict[str, dict]:
    """Every prediction named by ``expectations``, evaluated at each step of its measure:
    ``{prediction_key: {"predict", "args", "measure", "steps", "values"}}`` (what a report plots)."""
    out: dict[str, dict] = {}
    for e in expectations:
        if e.predict is None or e.measure not in trajectories:
            continue
        key = prediction_key(e.predict, e.args, e.measure)
        if key in out:
            continue
        steps, _, pred = compared_series(e.measure, e.predict, e.args, None, trajectories, hyper)
        out[key] = {"predict": e.predict, "args": dict(e.args), "measure": e.measure,
                    "steps": steps.tolist(), "values": pred.tolist()}
    return out


def _fail(e: Expectation, message: str, window=None, predicted=None, last=()) -> Verdict:
    return Verdict(e.name, False, e.measure, e.check, e.statistic.label() if e.statistic else None,
                   None, None, predicted, "", None, window, message, list(last), e.predict, e.compare,
                   threshold=_threshold(e), prediction=_key(e))


def _key(e: Expectation) -> str | None:
    return prediction_key(e.predict, e.args, e.measure) if e.predict else None


def evaluate(suite: Suite, e: Expectation, trajectories: dict, hyper: dict,
             divergence: str | None = None, device: str = "cpu", last_step: int | None = None) -> Verdict:
    """Evaluate expectation ``e`` (with ``device``'s tolerance overrides) on one case.

    ``divergence``: the message of a run that diverged; every expectation then fails with it.
    ``last_step``: the run's last step (default ``run.steps``; earlier when it stopped on an event).
    """
    e = e.for_device(device)
    if divergence is not None and not e.allow_divergence:
        return _fail(e, divergence)
    last_step = suite.steps if last_step is None else last_step
    try:
        w = _windowed(suite, e, trajectories, hyper, last_step)
    except WindowError as exc:
        return _fail(e, str(exc))
    lo, hi = w.bounds
    last = [(int(s), float(v)) for s, v in zip(w.steps[-5:], w.values[-5:])]
    if e.check == "reaches":
        with np.errstate(invalid="ignore"):
            hit = w.values >= e.threshold if e.direction == "above" else w.values <= e.threshold
        idx = np.flatnonzero(hit)
        measured = float(w.steps[idx[0]] - lo) if len(idx) else math.nan
        passed, margin, _ = CHECKS["reaches"](measured, e.within)
        verb = ">=" if e.direction == "above" else "<="
        tol = f"{verb} {e.threshold:g} within {e.within} steps"
        msg = "" if passed else (f"never reached {verb} {e.threshold:g} in steps [{lo}, {hi}]" if math.isnan(measured)
                                 else f"reached {verb} {e.threshold:g} only after {measured:.0f} steps")
        return Verdict(e.name, passed, e.measure, e.check, "steps_to_reach", None if math.isnan(measured) else measured,
                       None, w.predicted, tol, None if math.isnan(measured) else margin, (lo, hi), msg, last,
                       e.predict, e.compare, limits=(None, float(e.within)), threshold=e.threshold,
                       prediction=_key(e))
    try:
        measured = e.statistic(w.steps, w.values, w.other)
        measured_raw = e.statistic(w.steps, w.raw, w.other) if e.predict else measured
    except StatisticError as exc:
        return _fail(e, str(exc), (lo, hi), w.predicted, last)
    passed, margin, tol = _check(e, measured, hyper)
    msg = "" if passed else f"{e.statistic.label()} = {measured:.6g}, outside {tol}"
    predicted = w.predicted
    for value in (e.target, e.bound):  # a predicted target or bound is the prediction reported
        if isinstance(value, tuple):
            predicted = _resolve(value, hyper)
    return Verdict(e.name, bool(passed), e.measure, e.check, e.statistic.label(), measured, measured_raw,
                   predicted, tol, margin, (lo, hi), msg, last, e.predict, e.compare,
                   limits=_limits(e, hyper), threshold=_threshold(e), prediction=_key(e))


_AGGREGATES = {"min": np.min, "max": np.max, "median": np.median, "mean": np.mean}


def evaluate_sweep(suite: Suite, e: Expectation, group: list[tuple[Any, Any]], device: str = "cpu") -> Verdict:
    """Evaluate a sweep expectation on one group: ``[(axis value, CaseResult), ...]``."""
    e = e.for_device(device)
    per_case: dict[str, float | None] = {}
    xs, ys = [], []
    problems = []
    for value, result in sorted(group, key=lambda p: p[0]):
        one = evaluate(suite, _per_case(e), result.trajectories, result.case.bindings,
                       result.divergence_message, device, result.last_step)
        per_case[result.case.id] = one.measured
        if one.measured is None:
            problems.append(f"{result.case.id}: {one.message}")
        else:
            xs.append(float(value))
            ys.append(one.measured)
    label = f"{e.aggregate}({e.statistic.label()} vs {e.across})" if e.aggregate == "spearman" else \
        f"{e.aggregate}({e.statistic.label()})"
    if problems:
        return Verdict(e.name, False, e.measure, e.check, label, None, None, None, "", None, None,
                       "; ".join(problems), [], e.predict, e.compare, per_case)
    if e.aggregate == "spearman":
        measured = spearman(np.array(xs), np.array(ys))
        if math.isnan(measured):
            return Verdict(e.name, False, e.measure, e.check, label, None, None, None, "", None, None,
                           "spearman is undefined: the per-case statistic is constant across the sweep",
                           [], e.predict, e.compare, per_case)
    elif e.aggregate == "last_over_first":  # the largest axis value's statistic over the smallest's
        measured = ys[-1] / ys[0] if ys[0] else math.nan
    else:
        measured = float(_AGGREGATES[e.aggregate](ys))
    passed, margin, tol = _check(e, measured, group[0][1].case.bindings)
    msg = "" if passed else f"{label} = {measured:.6g}, outside {tol}"
    return Verdict(e.name, bool(passed), e.measure, e.check, label, measured, None, None, tol, margin, None, msg,
                   [], e.predict, e.compare, per_case, limits=_limits(e, group[0][1].case.bindings))


def _per_case(e: Expectation) -> Expectation:
    """The per-case part of a sweep expectation: only its statistic's value is used."""
    return dataclasses.replace(e, check="ge", bound=-math.inf, across=None, aggregate=None, on={})
