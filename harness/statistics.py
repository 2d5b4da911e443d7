"""Window statistics: pure functions from a windowed series to one number.

A statistic is named in a suite as a string (``"median"``, ``"p90"``, ``"frac_increasing"``)
or a table (``{ name = "percentile", q = 90 }``, ``{ name = "fraction_above", threshold = 1 }``).
Every statistic refuses a window that holds non-finite values (a diverged or unconverged
measurement) or too few points, with a message saying which steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Statistic", "STATISTICS", "StatisticError", "parse_statistic", "spearman"]


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
    "max_abs": (lambda v: float(np.max(np.abs(v))), 1),
    "max_drop_after_min": (_max_drop_after_min, 1),
    "max_drawdown_after_min": (_max_drawdown_after_min, 1),
    "log_slope": (None, 3),  # computed in Statistic.__call__
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
    from scipy.stats import spearmanr

    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
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
            fn, need = STATISTICS[self.name]
        if len(values) < max(need, 1) and self.name != "count":
            raise StatisticError(f"statistic {self.label()} needs at least {max(need, 1)} point(s); "
                                 f"the window holds {len(values)}")
        return fn(values)


def parse_statistic(spec: str | dict) -> Statistic:
    """A :class:`Statistic` from its suite form; ``ValueError`` with the allowed forms."""
    allowed = sorted(STATISTICS) + ["pNN (percentile, e.g. p90)", "{name='percentile', q=..}",
                                     "{name='fraction_above'|'fraction_below', threshold=..}",
                                     "{name='spearman', with='<measure>'}",
                                     "{name='first_step_above'|'first_step_below', threshold=..}",
                                     "{name='longest_run_within', threshold=..} (steps spanned by |v| <= threshold)"]
    if isinstance(spec, str):
        if spec in STATISTICS:
            return Statistic(spec)
        m = re.fullmatch(r"p(\d+(?:\.\d+)?)", spec)
        if m and 0 <= float(m.group(1)) <= 100:
            return Statistic("percentile", float(m.group(1)))
        raise ValueError(f"unknown statistic {spec!r}; expected one of {allowed}")
    if isinstance(spec, dict):
        name = spec.get("name")
        key = _PARAMETRISED.get(name)
        if key is None:
            if name in STATISTICS and set(spec) == {"name"}:
                return Statistic(name)
            raise ValueError(f"unknown statistic table {spec!r}; expected one of {allowed}")
        if set(spec) != {"name", key}:
            raise ValueError(f"statistic {name!r} takes exactly the keys 'name' and {key!r}, got {sorted(spec)}")
        value = spec[key]
        if name == "spearman":
            if not isinstance(value, str):
                raise ValueError(f"statistic 'spearman': 'with' must name a measure, got {value!r}")
            return Statistic(name, other=value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"statistic {name!r}: {key} must be a number, got {value!r}")
        if name == "percentile" and not 0 <= value <= 100:
            raise ValueError(f"percentile q must be in [0, 100], got {value!r}")
        return Statistic(name, float(value))
    raise ValueError(f"expected a statistic name or table, got {spec!r}")
