"""Checks: compare one measured number with its target and say by how much it passes.

A check kind is one frozen class here, registered in :data:`CHECKS` under the name a suite's
``check = "..."`` uses. It holds its own tolerance keys, builds itself from an expectation's
table (:meth:`from_keys`, every missing or inconsistent key a :class:`~harness.errors.SuiteError`
naming it) and evaluates a statistic into an :class:`Outcome`. A target or bound is a
:class:`Target`: a constant, or a prediction evaluated for the case. Adding a check kind is one
class in this module.

The margin is signed, positive when the check passes, in the units of the measured statistic:
the distance to the nearest edge of the accepted region (``compare`` reads it across commits).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping

import numpy as np

from ..errors import SuiteError

__all__ = ["CHECKS", "Check", "Key", "Outcome", "Target", "Approx", "Interval", "Le", "Ge", "Lt", "Gt", "Reaches",
           "tolerance_keys"]


@dataclass(frozen=True)
class Key:
    """A key of an expectation's table that a check kind reads: its name, its type (as the
    suite reader coerces it), a range check of :mod:`harness.options` (``"nonnegative"``...), and
    whether it is a :class:`Target` (a number, or ``{ predict, args }``)."""

    name: str
    type: Any
    check: str | None = None
    target: bool = False


@dataclass(frozen=True)
class Target:
    """A target or bound: the constant ``value``, or prediction ``predict`` with fixed ``args``,
    evaluated once per case (its other arguments bound from the case's roles)."""

    value: float | None = None
    predict: str | None = None
    args: Mapping[str, float] = field(default_factory=dict)

    @property
    def predicted(self) -> bool:
        return self.predict is not None


Resolve = Callable[[Target], float]
"""Evaluates a :class:`Target` for the case at hand."""


@dataclass(frozen=True)
class Outcome:
    """What a check says of one statistic: whether it passed, by how much (``margin``), the
    accepted region as text (``tolerance``) and as numbers (``limits``, None: unbounded)."""

    passed: bool
    margin: float
    tolerance: str
    limits: tuple[float | None, float | None] | None = None


class Check:
    """The interface of a check kind (every kind below is a frozen dataclass implementing it):
    its name, the keys it reads from an expectation's table (the suite reader builds its table
    type from them, and ``on.<device>`` may override them), how it builds itself from them and
    how it judges a statistic."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[Key, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()  # the keys the kind requires
    statistic_name: ClassVar[str | None] = None  # set by a kind that measures its own statistic

    @classmethod
    def from_keys(cls, keys: Mapping[str, Any], file: str, path: str, default_target: Target | None = None) -> "Check":
        """The check from an expectation's tolerance keys (``TOLERANCE_KEYS``; absent keys are None)."""
        raise NotImplementedError

    def evaluate(self, x: float, resolve: Resolve) -> Outcome:
        """The outcome for the statistic ``x``."""
        raise NotImplementedError

    def targets(self) -> tuple[Target, ...]:
        """The targets and bounds this check resolves (a predicted one is reported as the prediction)."""
        return ()

    def own_statistic(self, steps, values, start: int) -> float | None:
        """A kind that measures its own statistic on the window (``reaches``: the steps to a
        crossing; its ``statistic_name`` names it) returns it here; None: the expectation's
        ``statistic`` is judged. Such a kind is per case (no sweep aggregate) and takes no
        ``statistic``."""
        return None

    def level(self) -> float | None:
        """The level a series must cross, where the kind has one (drawn in reports)."""
        return None

    def failure(self, x: float, outcome: Outcome, label: str, window: tuple[int, int] | None) -> str:
        """The message of a failed verdict."""
        return f"{label} = {x:.6g}, outside {outcome.tolerance}"


CHECKS: dict[str, type[Check]] = {}


def tolerance_keys() -> dict[str, Key]:
    """Every key some check kind reads, by name (the keys an expectation's table and its
    ``on.<device>`` overrides may hold beside the expectation's own)."""
    return {k.name: k for cls in CHECKS.values() for k in cls.keys}


def _register(cls: type[Check]) -> type[Check]:
    CHECKS[cls.kind] = cls
    return cls


def _missing(keys: Mapping[str, Any], needs: tuple[str, ...], kind: str, file: str, path: str) -> None:
    for need in needs:
        if keys.get(need) is None:
            raise SuiteError(file, f"{path}.{need}", f"missing; check {kind!r} needs it")


def _unused(keys: Mapping[str, Any], cls: type[Check], file: str, path: str) -> None:
    """A tolerance key that check kind ``cls`` does not read (``cls.keys``) is a mistake in the
    file (a bound on an interval)."""
    used = [k.name for k in cls.keys]
    for key in tolerance_keys():
        if key not in used and keys.get(key) is not None:
            raise SuiteError(file, f"{path}.{key}", f"check {cls.kind!r} does not use {key!r} "
                             f"(it reads {', '.join(repr(k) for k in used) or 'nothing'})")


@_register
@dataclass(frozen=True)
class Approx(Check):
    """``|x - target| <= atol + rtol * |target|``."""

    target: Target
    rtol: float = 0.0
    atol: float = 0.0
    kind: ClassVar[str] = "approx"
    keys: ClassVar[tuple[Key, ...]] = (Key("target", float | dict, target=True), Key("rtol", float, "nonnegative"),
                                       Key("atol", float, "nonnegative"))

    @classmethod
    def from_keys(cls, keys, file, path, default_target=None):
        _unused(keys, cls, file, path)
        target = keys.get("target") or default_target
        if target is None:
            raise SuiteError(file, f"{path}.target", "missing; check 'approx' without a prediction needs a target")
        if keys.get("rtol") is None and keys.get("atol") is None:
            raise SuiteError(file, f"{path}.rtol", "missing; check 'approx' needs rtol and/or atol")
        return cls(target, keys.get("rtol") or 0.0, keys.get("atol") or 0.0)

    def evaluate(self, x, resolve):
        target = resolve(self.target)
        tol = self.atol + self.rtol * abs(target)
        return Outcome(abs(x - target) <= tol, tol - abs(x - target), f"{target:.6g} ± {tol:.3g}",
                       (target - tol, target + tol))

    def targets(self):
        return (self.target,)


@_register
@dataclass(frozen=True)
class Interval(Check):
    """``lo <= x <= hi``."""

    lo: float
    hi: float
    kind: ClassVar[str] = "interval"
    keys: ClassVar[tuple[Key, ...]] = (Key("interval", list[float]),)
    needs: ClassVar[tuple[str, ...]] = ("interval",)

    @classmethod
    def from_keys(cls, keys, file, path, default_target=None):
        _missing(keys, cls.needs, cls.kind, file, path)
        _unused(keys, cls, file, path)
        return cls(*keys["interval"])

    def evaluate(self, x, resolve):
        margin = min(x - self.lo, self.hi - x)
        return Outcome(margin >= 0, margin, f"[{self.lo:.6g}, {self.hi:.6g}]", (self.lo, self.hi))


@dataclass(frozen=True)
class _Bound(Check):
    """``x OP bound`` for a constant or predicted bound."""

    bound: Target
    keys: ClassVar[tuple[Key, ...]] = (Key("bound", float | dict, target=True),)
    needs: ClassVar[tuple[str, ...]] = ("bound",)
    op: ClassVar[Callable[[float, float], bool]]
    symbol: ClassVar[str]
    upper: ClassVar[bool]  # the bound is an upper one (le, lt)

    @classmethod
    def from_keys(cls, keys, file, path, default_target=None):
        _missing(keys, cls.needs, cls.kind, file, path)
        _unused(keys, cls, file, path)
        return cls(keys["bound"])

    def evaluate(self, x, resolve):
        b = resolve(self.bound)
        return Outcome(bool(self.op(x, b)), b - x if self.upper else x - b, f"{self.symbol} {b:.6g}",
                       (None, b) if self.upper else (b, None))

    def targets(self):
        return (self.bound,)


@_register
@dataclass(frozen=True)
class Le(_Bound):
    """``x <= bound``."""

    kind: ClassVar[str] = "le"
    op: ClassVar = operator.le
    symbol: ClassVar[str] = "<="
    upper: ClassVar[bool] = True


@_register
@dataclass(frozen=True)
class Ge(_Bound):
    """``x >= bound``."""

    kind: ClassVar[str] = "ge"
    op: ClassVar = operator.ge
    symbol: ClassVar[str] = ">="
    upper: ClassVar[bool] = False


@_register
@dataclass(frozen=True)
class Lt(_Bound):
    """``x < bound`` (strict)."""

    kind: ClassVar[str] = "lt"
    op: ClassVar = operator.lt
    symbol: ClassVar[str] = "<"
    upper: ClassVar[bool] = True


@_register
@dataclass(frozen=True)
class Gt(_Bound):
    """``x > bound`` (strict)."""

    kind: ClassVar[str] = "gt"
    op: ClassVar = operator.gt
    symbol: ClassVar[str] = ">"
    upper: ClassVar[bool] = False


@_register
@dataclass(frozen=True)
class Reaches(Check):
    """The series crosses ``threshold`` (``direction`` ``"above"``: ``>=``; ``"below"``: ``<=``)
    within ``within`` steps of the window's start. Its statistic is the steps taken to the first
    crossing (:meth:`steps_to_reach`, NaN: never), so it takes no ``statistic`` of its own."""

    threshold: float
    within: int
    direction: str = "above"
    kind: ClassVar[str] = "reaches"
    statistic_name: ClassVar[str | None] = "steps_to_reach"
    keys: ClassVar[tuple[Key, ...]] = (Key("threshold", float), Key("within", int, "nonnegative"),
                                       Key("direction", Literal["above", "below"]))
    needs: ClassVar[tuple[str, ...]] = ("threshold", "within")

    @classmethod
    def from_keys(cls, keys, file, path, default_target=None):
        _missing(keys, cls.needs, cls.kind, file, path)
        _unused(keys, cls, file, path)
        return cls(keys["threshold"], keys["within"], keys.get("direction") or "above")

    def own_statistic(self, steps, values, start):
        return self.steps_to_reach(steps, values, start)

    def level(self):
        return self.threshold

    def failure(self, x, outcome, label, window):
        lo, hi = window
        if math.isnan(x):
            return f"never reached {self.verb} {self.threshold:g} in steps [{lo}, {hi}]"
        return f"reached {self.verb} {self.threshold:g} only after {x:.0f} steps"

    @property
    def verb(self) -> str:
        return ">=" if self.direction == "above" else "<="

    def steps_to_reach(self, steps, values, start: int) -> float:
        """Steps from ``start`` to the first point of ``(steps, values)`` across the threshold."""
        with np.errstate(invalid="ignore"):
            hit = values >= self.threshold if self.direction == "above" else values <= self.threshold
        idx = np.flatnonzero(hit)
        return float(steps[idx[0]] - start) if len(idx) else math.nan

    def evaluate(self, x, resolve):
        text = f"{self.verb} {self.threshold:g} within {self.within} steps"
        if math.isnan(x):
            return Outcome(False, -math.inf, text, (None, float(self.within)))
        return Outcome(x <= self.within, self.within - x, text, (None, float(self.within)))
