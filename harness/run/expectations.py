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

from ..spec.checks import Ge, Outcome, Target
from .events import event_step
from .series import compared_series, prediction_key, resolver, series
from ..spec.types import Expectation, Suite
from ..spec.statistics import StatisticError, spearman

__all__ = ["Verdict", "evaluate", "failed", "evaluate_sweep", "WindowError"]


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The outcome of one expectation on one case (or one sweep group), built by keyword. Its
    JSON form (:meth:`to_dict`) is the ``expectations`` entry of a record (:mod:`harness.output.records`)."""

    name: str
    passed: bool
    measure: str
    check: str
    statistic: str | None = None
    measured: float | None = None
    measured_raw: float | None = None
    predicted: float | None = None
    tolerance: str = ""
    margin: float | None = None
    window: tuple[int, int] | None = None
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
    raw_steps, raw = series(trajectories, e.measure)
    raw_by_step = dict(zip(raw_steps.tolist(), raw.tolist()))
    inside = (steps >= lo) & (steps <= hi)
    other = None
    if e.statistic is not None and e.statistic.other is not None:
        o_steps, o_values = series(trajectories, e.statistic.other)
        o_by_step = dict(zip(o_steps.tolist(), o_values.tolist()))
        inside &= np.isin(steps, o_steps)
        other = np.array([o_by_step[s] for s in steps[inside].tolist()])
    ws = steps[inside]
    predicted = float(np.median(pred[inside])) if pred is not None and inside.any() else None
    return _Windowed(ws, values[inside], np.array([raw_by_step[s] for s in ws.tolist()]), other, predicted, (lo, hi))


def _threshold(e: Expectation) -> float | None:
    """The crossing level of a ``reaches`` check or of a thresholded statistic."""
    if e.check.level() is not None:
        return e.check.level()
    if e.statistic is not None and e.statistic.name in ("first_step_above", "first_step_below"):
        return e.statistic.param
    return None


def _verdict(e: Expectation, outcome: Outcome | None = None, **fields) -> Verdict:
    """A verdict on ``e``: passed, margin, tolerance and limits from ``outcome`` (none: failed)."""
    common = dict(name=e.name, measure=e.measure, check=e.kind, predict=e.predict, compare=e.compare)
    if outcome is not None:
        common.update(passed=bool(outcome.passed), margin=outcome.margin, tolerance=outcome.tolerance,
                      limits=outcome.limits)
    else:
        common["passed"] = False
    return Verdict(**{**common, **fields})


def failed(e: Expectation, message: str, **fields) -> Verdict:
    """``e`` failed without a statistic (a missing window, a diverged or crashed run)."""
    return _verdict(e, message=message, **fields)


def _fail(e: Expectation, message: str, window=None, predicted=None, last=()) -> Verdict:
    return failed(e, message, statistic=e.statistic.label() if e.statistic else None, predicted=predicted,
                  window=window, last=list(last), threshold=_threshold(e), prediction=_key(e))


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
    resolve = resolver(hyper)
    common = dict(window=(lo, hi), last=last, threshold=_threshold(e), prediction=_key(e))
    own = e.check.own_statistic(w.steps, w.values, lo)
    if own is not None:  # a check that measures its own statistic (reaches: the steps to a crossing)
        outcome = e.check.evaluate(own, resolve)
        finite = not math.isnan(own)
        return _verdict(e, outcome, **common, statistic=e.check.statistic_name, measured=own if finite else None,
                        predicted=w.predicted, message="" if outcome.passed else e.check.failure(own, outcome, "", (lo, hi)),
                        **({} if finite else {"margin": None}))
    try:
        measured = e.statistic(w.steps, w.values, w.other)
        measured_raw = e.statistic(w.steps, w.raw, w.other) if e.predict else measured
    except StatisticError as exc:
        return _fail(e, str(exc), (lo, hi), w.predicted, last)
    outcome = e.check.evaluate(measured, resolve)
    msg = "" if outcome.passed else e.check.failure(measured, outcome, e.statistic.label(), (lo, hi))
    predicted = w.predicted
    for target in e.check.targets():  # a predicted target or bound is the prediction reported
        if target.predicted:
            predicted = resolve(target)
    return _verdict(e, outcome, **common, statistic=e.statistic.label(), measured=measured,
                    measured_raw=measured_raw, predicted=predicted, message=msg)


_AGGREGATES = {"min": np.min, "max": np.max, "median": np.median, "mean": np.mean}


def _aggregate(how: str, xs: list[float], ys: list[float]) -> float:
    """A sweep's per-case values ``ys`` (at axis values ``xs``, ascending) as one number: their
    rank correlation with the axis, the last over the first, or a summary (min, max, median, mean)."""
    if how == "spearman":
        return spearman(np.array(xs), np.array(ys))
    if how == "last_over_first":  # the largest axis value's statistic over the smallest's
        return ys[-1] / ys[0] if ys[0] else math.nan
    return float(_AGGREGATES[how](ys))


def evaluate_sweep(suite: Suite, e: Expectation, group: list[tuple[Any, Any]], device: str = "cpu") -> Verdict:
    """Evaluate a sweep expectation on one group: ``[(axis value, CaseResult), ...]``.

    A target or bound that is a prediction is aggregated like the measurement: evaluated for each
    case with that case's bindings, then the same aggregate over the group (so
    ``aggregate = "last_over_first"`` with ``target = { predict = "relu_loss_slope" }`` compares the
    measured gain across the sweep with the predicted gain)."""
    e = e.for_device(device)
    per_case: dict[str, float | None] = {}
    xs, ys = [], []
    problems = []
    ordered = sorted(group, key=lambda p: p[0])
    for value, result in ordered:
        one = evaluate(suite, _per_case(e), result.trajectories, result.bindings or result.case.bindings,
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
        return failed(e, "; ".join(problems), statistic=label, per_case=per_case)
    measured = _aggregate(e.aggregate, xs, ys)
    if e.aggregate == "spearman" and math.isnan(measured):
        return failed(e, "spearman is undefined: the per-case statistic is constant across the sweep",
                      statistic=label, per_case=per_case)
    resolvers = [resolver(r.bindings or r.case.bindings) for _, r in ordered]

    def resolve(target):  # a constant as it is; a prediction per case, aggregated like the measurement
        if not target.predicted:
            return target.value
        return _aggregate(e.aggregate, xs, [one(target) for one in resolvers])
    outcome = e.check.evaluate(measured, resolve)
    msg = "" if outcome.passed else e.check.failure(measured, outcome, label, None)
    return _verdict(e, outcome, statistic=label, measured=measured, message=msg, per_case=per_case)


def _per_case(e: Expectation) -> Expectation:
    """The per-case part of a sweep expectation: only its statistic's value is used."""
    return dataclasses.replace(e, check=Ge(Target(-math.inf)), across=None, aggregate=None, on={})
