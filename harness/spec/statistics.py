"""Window statistics: pure functions from a windowed series to one number.

A statistic is named in a suite as a string (``"median"``, ``"p90"``, ``"frac_increasing"``)
or a table (``{ name = "percentile", q = 90 }``, ``{ name = "fraction_above", threshold = 1 }``).
Every statistic refuses a window that holds non-finite values (a diverged or unconverged
measurement) or too few points, with a message saying which steps.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..registry import suggest

__all__ = ["Statistic", "STATISTICS", "StatisticError", "StatisticSpecError", "parse_statistic", "spearman"]


class StatisticError(ValueError):
    """The window cannot give the statistic (empty, too short, non-finite values)."""


def _frac_increasing(v: np.ndarray) -> float:
    return float(np.mean(np.diff(v) > 0))


def _frac_decreasing(v: np.ndarray) -> float:
    return float(np.mean(np.diff(v) < 0))


def _max_drop_after_min(v: np.ndarray) -> float:
    """Largest one-step decrease after the series' minimum (0 when it never decreases)."""
    tail = v[int(np.argmin(v)):]
    return float(max(0.0, np.max(-np.diff(tail)))) if len(tail) > 1 else 0.0


def _median_drift(v: np.ndarray) -> float:
    """``median(second half) / median(first half) - 1``: how far a series moved over the window,
    robust to the period-2 oscillation and catapults of a run at the edge of stability (a plateau
    gives about 0; a series still rising through the edge, its relative rise)."""
    half = len(v) // 2
    return float(np.median(v[len(v) - half:]) / np.median(v[:half]) - 1.0)


def _max_drawdown_after_min(v: np.ndarray) -> float:
    """Largest fall below the running maximum after the series' minimum."""
    tail = v[int(np.argmin(v)):]
    return float(np.max(np.maximum.accumulate(tail) - tail))


# name -> (function of values, minimum number of points)
STATISTICS: dict[str, tuple[Callable[[np.ndarray], float], int]] = {
    "median": (lambda v: float(np.median(v)), 1),
    "mean": (lambda v: float(np.mean(v)), 1),
    "min": (lambda v: float(np.min(v)), 1),
    "max": (lambda v: float(np.max(v)), 1),
    "first": (lambda v: float(v[0]), 1),
    "last": (lambda v: float(v[-1]), 1),
    "std": (lambda v: float(np.std(v)), 2),
    "count": (lambda v: float(len(v)), 0),
    "frac_increasing": (_frac_increasing, 2),
    "frac_decreasing": (_frac_decreasing, 2),
    "last_over_first": (lambda v: float(v[-1] / v[0]), 2),
    "last_minus_first": (lambda v: float(v[-1] - v[0]), 2),
    "median_drift": (_median_drift, 4),
    "max_abs": (lambda v: float(np.max(np.abs(v))), 1),
    "max_drop_after_min": (_max_drop_after_min, 1),
    "max_drawdown_after_min": (_max_drawdown_after_min, 1),
    "log_slope": (None, 3),  # computed in Statistic.__call__
    "span": (None, 1),  # computed in Statistic.__call__: last step - first step of the window
}
_PARAMETRISED = {"percentile": "q", "fraction_above": "threshold", "fraction_below": "threshold", "spearman": "with",
                 "first_step_above": "threshold", "first_step_below": "threshold", "longest_run_within": "threshold"}


def _finite(steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        where = ", ".join(str(int(s)) for s in np.asarray(steps)[bad][:5])
        raise StatisticError(f"{int(bad.sum())} non-finite value(s) in the window (steps {where}); "
                             "a diverged run or an unconverged eigen-solve")
    return values


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    # here, not at import: scipy.stats adds ~1.3 s to every CLI start and worker. Under pytest the
    # plugin imports it first (harness.pytest_plugin): a C extension first imported inside a pytester
    # run is dropped from sys.modules when that run ends and cannot be loaded again in the process.
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


@dataclass(frozen=True)
class Statistic:
    """A named statistic, with its parameter for ``percentile`` and ``fraction_*``, or the
    other measure ``other`` for ``spearman`` (rank correlation of the two series over the
    window's common steps)."""

    name: str
    param: float | None = None
    other: str | None = None

    def label(self) -> str:
        if self.name == "percentile":
            return f"p{self.param:g}"
        if self.other is not None:
            return f"{self.name}(with {self.other})"
        return self.name if self.param is None else f"{self.name}({self.param:g})"

    def __call__(self, steps: np.ndarray, values: np.ndarray, other: np.ndarray | None = None) -> float:
        values = _finite(steps, values)
        if self.name == "spearman":
            other = _finite(steps, other)
            if len(values) < 3:
                raise StatisticError(f"spearman needs at least 3 common points; the window holds {len(values)}")
            rho = spearman(values, other)
            if np.isnan(rho):
                raise StatisticError("spearman is undefined: one of the series is constant over the window")
            return rho
        if self.name == "percentile":
            need = 1
            fn = lambda v: float(np.percentile(v, self.param))
        elif self.name in ("first_step_above", "first_step_below"):
            hit = values >= self.param if self.name == "first_step_above" else values <= self.param
            idx = np.flatnonzero(hit)
            if not len(idx):
                raise StatisticError(f"the series never crosses {self.param:g} in the window")
            return float(np.asarray(steps)[idx[0]])
        elif self.name == "log_slope":  # least-squares slope of ln(v) per step
            if len(values) < 3 or np.any(values <= 0):
                raise StatisticError("log_slope needs at least 3 positive values in the window")
            return float(np.polyfit(np.asarray(steps, dtype=np.float64), np.log(values), 1)[0])
        elif self.name == "span":  # the window's length in steps (e.g. between two measured events)
            if not len(values):
                raise StatisticError("span needs at least 1 point; the window holds none")
            return float(np.asarray(steps)[-1] - np.asarray(steps)[0])
        elif self.name == "longest_run_within":  # a plateau: consecutive points with |v| <= threshold
            best, start = 0.0, None
            steps = np.asarray(steps)
            for i, ok in enumerate(np.abs(values) <= self.param):
                if ok and start is None:
                    start = i
                if ok:
                    best = max(best, float(steps[i] - steps[start]))
                else:
                    start = None
            return best
        elif self.name == "fraction_above":
            need, fn = 1, lambda v: float(np.mean(v > self.param))
        elif self.name == "fraction_below":
            need, fn = 1, lambda v: float(np.mean(v < self.param))
        else:
            fn, need = STATISTICS[self.name] if self.name in STATISTICS else \
                ((lambda v: float(USER_STATISTICS[self.name](v))), 1)
        if len(values) < max(need, 1) and self.name != "count":
            raise StatisticError(f"statistic {self.label()} needs at least {max(need, 1)} point(s); "
                                 f"the window holds {len(values)}")
        return fn(values)


class StatisticSpecError(ValueError):
    """A statistic's suite form is malformed; ``key`` is the key of its table at fault ("" for
    the statistic itself, ``"name"``, ``"q"``, ``"threshold"``, ``"with"`` or an unknown key)."""

    def __init__(self, message: str, key: str = ""):
        super().__init__(message)
        self.key = key


def _names() -> list[str]:
    return sorted([*STATISTICS, *_PARAMETRISED])


# a user's statistic named by import path "package.module:function", fn(values) -> float
# (harness.protocols.WindowStatistic); plugins may also add STATISTICS[name] = (fn, min_points)
from ..registry import Registry as _Registry, is_import_path as _is_import_path, load_plugins as _load_plugins  # noqa: E402

USER_STATISTICS = _Registry("statistic")


def parse_statistic(spec: str | dict) -> Statistic:
    """A :class:`Statistic` from its suite form; :class:`StatisticSpecError` (a ``ValueError``)
    with the allowed forms, a did-you-mean hint and the table key at fault."""
    allowed = sorted(STATISTICS) + ["pNN (percentile, e.g. p90)", "{name='percentile', q=..}",
                                     "{name='fraction_above'|'fraction_below', threshold=..}",
                                     "{name='spearman', with='<measure>'}",
                                     "{name='first_step_above'|'first_step_below', threshold=..}",
                                     "{name='longest_run_within', threshold=..} (steps spanned by |v| <= threshold)"]
    if isinstance(spec, str):
        if _is_import_path(spec):
            if spec not in USER_STATISTICS:
                raise StatisticSpecError(USER_STATISTICS.unknown(spec))
            return Statistic(spec)
        if spec in STATISTICS or (spec not in _PARAMETRISED and _load_plugins() and spec in STATISTICS):
            return Statistic(spec)
        m = re.fullmatch(r"p(\d+(?:\.\d+)?)", spec)
        if m and 0 <= float(m.group(1)) <= 100:
            return Statistic("percentile", float(m.group(1)))
        if spec in _PARAMETRISED:
            key = _PARAMETRISED[spec]
            raise StatisticSpecError(f"statistic {spec!r} needs its parameter: write {{ name = {spec!r}, {key} = ... }}")
        hint = suggest(spec, _names()) if not m else " (a percentile pNN needs NN in [0, 100])"
        raise StatisticSpecError(f"unknown statistic {spec!r}{hint}; expected one of {allowed}")
    if isinstance(spec, dict):
        if "name" not in spec:
            raise StatisticSpecError(f"missing; a statistic table names its statistic, one of {_names()}", "name")
        name = spec["name"]
        if not isinstance(name, str):
            raise StatisticSpecError(f"expected a string naming a statistic, one of {_names()}, got {name!r}", "name")
        key = _PARAMETRISED.get(name)
        if key is None:
            if name not in STATISTICS:
                raise StatisticSpecError(f"unknown statistic {name!r}{suggest(name, _names())}; expected one of "
                                         f"{allowed}", "name")
            extra = sorted(k for k in spec if k != "name")
            if extra:
                raise StatisticSpecError(f"unknown key; statistic {name!r} takes no parameter (only 'name')", extra[0])
            return Statistic(name)
        for k in spec:
            if k not in ("name", key):
                raise StatisticSpecError(f"unknown key{suggest(k, [key])}; statistic {name!r} takes the keys "
                                         f"'name' and {key!r}", k)
        if key not in spec:
            raise StatisticSpecError(f"missing; statistic {name!r} needs {key!r}", key)
        value = spec[key]
        if name == "spearman":
            if not isinstance(value, str):
                raise StatisticSpecError(f"statistic 'spearman': 'with' must name a measure, got {value!r}", key)
            return Statistic(name, other=value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise StatisticSpecError(f"statistic {name!r}: {key} must be a finite number, got {value!r}", key)
        if name == "percentile" and not 0 <= value <= 100:
            raise StatisticSpecError(f"percentile q must be in [0, 100], got {value!r}", key)
        return Statistic(name, float(value))
    raise StatisticSpecError(f"expected a statistic name (a string) or a table {{ name = ..., ... }}, got {spec!r}")
