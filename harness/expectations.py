"""Evaluating a suite's expectations on one case's recorded trajectories.

For each expectation: take the measure's series; if a prediction is named, evaluate it at
every measurement step (arguments bound from the expectation's ``args``, the optimiser's
hyper-parameters and the measures at the same step) and form the ratio (or difference);
cut the window (anchored on the start, the end or an event); reduce it with the statistic;
compare with the check. The result is a :class:`Verdict` that carries everything a failure
table or a comparison across commits needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .checks import CHECKS
from .predictions import PREDICTIONS, arguments
from .statistics import StatisticError
from .suite import EventSpec, Expectation, Suite

__all__ = ["Verdict", "evaluate", "compared_series", "event_step"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one expectation on one case."""

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["window"] = list(self.window) if self.window else None
        d["last"] = [list(p) for p in self.last]
        for k in ("measured", "measured_raw", "predicted", "margin"):
            if d[k] is not None and not math.isfinite(d[k]):
                d[k] = None if math.isnan(d[k]) else (math.copysign(1e308, d[k]))
        return d


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
        if name in args:
            fixed[name] = args[name]
        elif name in hyper:
            fixed[name] = float(hyper[name])
        else:
            s, v = _series(trajectories, name)
            per_step[name] = dict(zip(s.tolist(), v.tolist()))
    keep = [i for i, s in enumerate(steps.tolist()) if all(s in m for m in per_step.values())]
    steps, values = steps[keep], values[keep]
    pred = np.array([fn(**fixed, **{n: m[s] for n, m in per_step.items()}) for s in steps.tolist()],
                    dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = values / pred if compare == "ratio" else values - pred
    return steps, out, pred


def event_step(event: EventSpec, trajectories: dict, hyper: dict) -> int | None:
    """The first step at which the event's series is ``>= above`` (or ``<= below``)."""
    steps, values, _ = compared_series(event.measure, event.predict, event.args, event.compare, trajectories, hyper)
    with np.errstate(invalid="ignore"):
        hit = values >= event.above if event.above is not None else values <= event.below
    idx = np.flatnonzero(hit)
    return int(steps[idx[0]]) if len(idx) else None


def _fail(e: Expectation, message: str, window=None) -> Verdict:
    return Verdict(e.name, False, e.measure, e.check, e.statistic.label() if e.statistic else None,
                   None, None, None, "", None, window, message, [], e.predict, e.compare)


def evaluate(suite: Suite, e: Expectation, trajectories: dict, hyper: dict,
             divergence: str | None = None, device: str = "cpu") -> Verdict:
    """Evaluate expectation ``e`` (with ``device``'s tolerance overrides) on a case.

    ``divergence``: the message of a run that diverged; every expectation then fails with it.
    """
    e = e.for_device(device)
    if divergence is not None:
        return _fail(e, divergence)
    event = None
    if e.window.anchor not in ("start", "end"):
        event = event_step(suite.events[e.window.anchor], trajectories, hyper)
        if event is None:
            return _fail(e, f"event {e.window.anchor!r} never happened, so its window does not exist")
    lo, hi = e.window.bounds(suite.steps, event)
    steps, values, pred = compared_series(e.measure, e.predict, e.args, e.compare, trajectories, hyper)
    _, raw = _series(trajectories, e.measure)
    raw_by_step = dict(zip(_series(trajectories, e.measure)[0].tolist(), raw.tolist()))
    inside = (steps >= lo) & (steps <= hi)
    ws, wv = steps[inside], values[inside]
    last = [(int(s), float(v)) for s, v in zip(ws[-5:], wv[-5:])]
    predicted = float(np.median(pred[inside])) if pred is not None and inside.any() else None
    if e.check == "reaches":
        with np.errstate(invalid="ignore"):
            hit = wv >= e.threshold if e.direction == "above" else wv <= e.threshold
        idx = np.flatnonzero(hit)
        measured = float(ws[idx[0]] - lo) if len(idx) else math.nan
        passed, margin, tol = CHECKS["reaches"](measured, e.within)
        verb = ">=" if e.direction == "above" else "<="
        tol = f"{verb} {e.threshold:g} within {e.within} steps"
        msg = "" if passed else (f"never reached {verb} {e.threshold:g} in steps [{lo}, {hi}]" if math.isnan(measured)
                                 else f"reached {verb} {e.threshold:g} only after {measured:.0f} steps")
        return Verdict(e.name, passed, e.measure, e.check, "steps_to_reach", measured,
                       measured, predicted, tol, margin, (lo, hi), msg, last, e.predict, e.compare)
    try:
        measured = e.statistic(ws, wv)
        measured_raw = e.statistic(ws, np.array([raw_by_step[s] for s in ws.tolist()])) if e.predict else measured
    except StatisticError as exc:
        return Verdict(e.name, False, e.measure, e.check, e.statistic.label(), None, None, predicted, "", None,
                       (lo, hi), str(exc), last, e.predict, e.compare)
    if e.check == "approx":
        passed, margin, tol = CHECKS["approx"](measured, e.target, e.rtol, e.atol)
    elif e.check == "interval":
        passed, margin, tol = CHECKS["interval"](measured, *e.interval)
    else:
        passed, margin, tol = CHECKS[e.check](measured, e.bound)
    msg = "" if passed else f"{e.statistic.label()} = {measured:.6g}, outside {tol}"
    return Verdict(e.name, bool(passed), e.measure, e.check, e.statistic.label(), measured, measured_raw,
                   predicted, tol, margin, (lo, hi), msg, last, e.predict, e.compare)
