"""The suite specification: frozen types for what a suite file says, with no TOML and no
registry in them (:mod:`harness.spec.reader` reads and validates a file into them).

A :class:`Suite` holds its problem's options, its update rule's table, the measures
(:class:`MeasureSpec`, with their cadence), the events (:class:`EventSpec`), the expectations
(:class:`Expectation`, each with its :class:`~harness.spec.checks.Check`) and its sweep points, each
point a fully validated variant of the suite (:meth:`Suite.at`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .checks import Check
from .statistics import Statistic

__all__ = ["SCHEMA_VERSION", "DEVICES", "DTYPES", "Suite", "MeasureSpec", "EventSpec", "Window", "Expectation",
           "Overlay"]

SCHEMA_VERSION = 1
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class MeasureSpec:
    """A named measure, its options and its cadence: every ``every`` steps, or every
    ``coarse_every`` steps before step ``coarse_until``; always at the first and last step."""

    name: str
    kind: str
    measure: Any
    every: int = 1
    coarse_until: int = 0
    coarse_every: int = 0
    from_event: str | None = None

    def due(self, step: int, steps: int, fired: dict[str, int] | None = None) -> bool:
        """Whether to measure at ``step`` of a run whose last step is ``steps``; with
        ``from_event``, only from the step the event fired on (``fired``: event -> step)."""
        if self.from_event is not None:
            if fired is None or self.from_event not in fired or step < fired[self.from_event]:
                return False
            return (step - fired[self.from_event]) % self.every == 0 or step == steps
        if step in (0, steps):
            return True
        cadence = self.coarse_every if step < self.coarse_until else self.every
        return step % cadence == 0


@dataclass(frozen=True)
class EventSpec:
    """The first step at which a measure (or its ratio to a prediction) is ``>= above`` or
    ``<= below``; or, with no measure, the step a prediction gives (rounded by ``round``).
    Windows may be anchored on it or end at it."""

    name: str
    measure: str | None
    predict: str | None
    args: dict
    compare: str | None
    above: float | None
    below: float | None
    round: str = "ceil"

    @property
    def predicted(self) -> bool:
        """An event at a predicted step (``round(prediction)``), not at a measured crossing."""
        return self.measure is None


@dataclass(frozen=True)
class Window:
    """Steps ``[start, end]`` counted from an anchor: ``"start"`` (step 0), ``"end"`` (the last
    step, counting back) or an event name. ``length`` in steps, or ``fraction`` of the run."""

    anchor: str = "start"
    offset: int = 0
    length: int | None = None
    fraction: float | None = None
    until: str | None = None

    def events(self) -> list[str]:
        """The events this window needs."""
        return [e for e in (self.anchor, self.until) if e not in (None, "start", "end")]

    def bounds(self, steps: int, events: dict[str, int] | None = None) -> tuple[int, int]:
        """``[start, end]`` for a run whose last step is ``steps``; ``events``: first steps."""
        events = events or {}
        length = self.length if self.length is not None else (
            round(self.fraction * steps) if self.fraction is not None else None)
        if self.anchor == "end":
            end = steps - self.offset
            start = 0 if length is None else end - length
        else:
            base = 0 if self.anchor == "start" else events[self.anchor]
            start = base + self.offset
            end = steps if length is None else start + length
        if self.until is not None:
            end = min(end, events[self.until])
        return max(start, 0), min(end, steps)

    def describe(self) -> str:
        parts = [f"anchor={self.anchor}"]
        if self.offset:
            parts.append(f"offset={self.offset}")
        if self.length is not None:
            parts.append(f"length={self.length}")
        if self.fraction is not None:
            parts.append(f"fraction={self.fraction:g}")
        if self.until is not None:
            parts.append(f"until={self.until}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Expectation:
    """One asserted statement about a case's trajectory (see docs/suite-format.md): the
    statistic of ``measure`` (or of its ratio/difference to prediction ``predict``) over
    ``window``, judged by ``check`` (``on``: the check with a device's tolerance overrides)."""

    name: str
    measure: str
    check: Check
    predict: str | None
    args: dict
    compare: str | None
    statistic: Statistic | None
    window: Window
    on: dict[str, Check]
    why: str
    across: str | None = None
    aggregate: str | None = None
    allow_divergence: bool = False
    where: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The check's kind, as the suite names it (``"approx"``, ``"le"``, ``"reaches"``...)."""
        return self.check.kind

    def applies(self, point: dict) -> bool:
        """Whether this expectation is asserted on a case at this sweep point (``{label: value}``):
        each ``where`` axis has one of the accepted values there."""
        return all(any(point.get(k) == v for v in accepted) for k, accepted in self.where.items())

    @property
    def over_sweep(self) -> bool:
        """An expectation over a sweep: a per-case statistic aggregated across ``across``."""
        return self.across is not None

    def for_device(self, device: str) -> "Expectation":
        """This expectation with the tolerance overrides for ``device`` applied."""
        return dataclasses.replace(self, check=self.on[device]) if device in self.on else self


@dataclass(frozen=True)
class Suite:
    """A validated suite file."""

    file: str
    sha256: str
    id: str
    claim: str
    source: str
    devices: tuple[str, ...]
    dtypes: dict[str, str]
    seeds: tuple[int, ...]
    matmul_precision: str
    slow: bool
    report_only: bool
    problem_kind: str
    problem: Any
    problem_table: dict
    optimizer_kind: str
    optimizer_table: dict
    sweep: dict[str, list]
    steps: int
    measures: dict[str, MeasureSpec]
    events: dict[str, EventSpec]
    expectations: tuple[Expectation, ...]
    sweep_expectations: tuple[Expectation, ...] = ()
    zip_sweep: bool = False
    stop_event: str | None = None
    stop_after: int = 0
    overlays: tuple["Overlay", ...] = ()
    id_labels: tuple[str, ...] = ()  # the sweep axes a case id shows (default: all)
    deprecated: str | None = None  # the old sweep form's message, printed where the suite is loaded
    points: tuple[tuple[tuple[str, Any], ...], ...] = ((),)  # every sweep point, in order
    variants: tuple["Suite", ...] = ()  # one per sweep point, in the order of sweep_points()

    def sweep_points(self) -> list[dict[str, Any]]:
        """Every sweep point (``{label: value}``): each block's combinations of its axes' values
        (with mode ``zip`` the i-th values together), block after block; one empty point
        without axes."""
        return [dict(p) for p in self.points]

    def at(self, point: dict[str, Any]) -> "Suite":
        """The variant of one sweep point: its problem, optimiser, run and tables as written into
        the file at that point (:mod:`harness.spec.expansion`). A variant is its own only variant."""
        if not self.variants:
            return self
        return self.variants[self.sweep_points().index(dict(point))]


@dataclass(frozen=True)
class Overlay:
    """A prediction drawn over a measure in reports (``[[overlay]]``), asserted by nothing:
    e.g. the predicted loss curve under the measured one."""

    measure: str
    predict: str
    args: dict
