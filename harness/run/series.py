"""A measure's series against a prediction: the prediction evaluated at each measurement step,
its arguments bound from an expectation's ``args``, the case's roles (:func:`harness.training.optimizers.roles`,
the problem's options, ``steps``, ``seed``) and the measures recorded at the same step.

A trajectory is ``{"steps": [...], "values": [...], "aux": {...}}`` (:class:`harness.output.records.Trajectory`
names its fields); ``trajectories`` maps a measure's name to its trajectory.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import numpy as np

from ..predictions import PREDICTIONS, arguments

__all__ = ["Trajectory", "compared_series", "predicted_value", "resolver", "prediction_key", "prediction_series", "series"]


class Trajectory(TypedDict):
    """One measure's recorded series: the steps it was measured at, its values (NaN where the
    measurement could not be trusted) and auxiliary columns aligned with the steps (``None``
    where a column has no value). It is kept in memory in this form and written as it is."""

    steps: list[int]
    values: list[float]
    aux: dict[str, list[Any]]


def series(trajectories: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of measure ``name`` as arrays (int64, float64)."""
    t = trajectories[name]
    return np.asarray(t["steps"], dtype=np.int64), np.asarray(t["values"], dtype=np.float64)


def compared_series(measure: str, predict: str | None, args: dict, compare: str | None,
                    trajectories: dict, hyper: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(steps, measure or measure-vs-prediction, prediction)`` at the measure's steps.

    Steps at which a measure the prediction needs was not recorded are dropped. A prediction
    that binds nothing per step (no measure, no ``step``) is evaluated once and broadcast.
    """
    steps, values = series(trajectories, measure)
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
            s, v = series(trajectories, source)
            per_step[name] = dict(zip(s.tolist(), v.tolist()))
    keep = [i for i, s in enumerate(steps.tolist()) if all(s in m for m in per_step.values())]
    steps, values = steps[keep], values[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        if per_step:
            pred = np.array([_safe(fn, {**fixed, **{n: m[s] for n, m in per_step.items()}}) for s in steps.tolist()],
                            dtype=np.float64)
        else:
            pred = np.full(len(steps), _safe(fn, fixed), dtype=np.float64)
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


def resolver(bindings: dict):
    """``Target -> float`` for a case: a constant as it is, a prediction bound from its ``args``
    and the case's ``bindings``."""
    return lambda t: predicted_value(t.predict, t.args, bindings) if t.predicted else t.value


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
